"""Embed images with a released image model (:mod:`fairmetric.sources.images`), each the way the
model expects it:

- :func:`embed_images`: any ``torch.utils.data.Dataset`` yielding ``(image, target)`` (a
  torchvision dataset such as ``ImageFolder``, ``CelebA`` or ``FakeData``) or a fairmetric
  :class:`~fairmetric.data.dataset.AttributeDataset`, from Python;
- :func:`load_image_source`: what ``fairmetric audit MODEL`` embeds: a folder of images plus a
  CSV whose columns are chosen by name (``--images``, ``--table``), or a config's dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fairmetric.data.dataset import AttributeDataset
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError
from fairmetric.sources.images import (
    _CLIP_RANDOM,
    ImageModel,
    _check_weights_choice,
    check_weights_file,
    image_model,
    preprocess_dataset,
)

__all__ = ["embed_images", "load_image_source"]

#: labels or one attribute: one value per sample, or a function of the dataset's target
Column = Sequence[Any] | np.ndarray | Callable[[Any], Any]


def _to_input(image: Any, model: ImageModel) -> torch.Tensor:
    """One dataset image (PIL, or a tensor ``(C, H, W)`` / ``(H, W)``) through the model's
    transform; tensors are read as values in ``[0, 1]`` (``uint8`` ones are divided by 255)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return model.transform(image.convert("RGB"))
    if isinstance(image, torch.Tensor) and image.ndim in (2, 3):
        x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
        x = x.unsqueeze(0) if x.ndim == 2 else x
        if x.shape[0] == 1 and model.input_size[0] == 3:
            x = x.expand(3, *x.shape[1:])
        return model.transform(x)
    shape = f" of shape {tuple(image.shape)}" if hasattr(image, "shape") else ""
    raise UserError(
        f"the dataset yields images of type {type(image).__name__}{shape}; expected PIL images "
        "or image tensors (C, H, W) in [0, 1] (leave out the dataset's own transform: the "
        f"model's preprocessing is applied here)"
    )


class _Preprocessed(Dataset):
    """``(model input, target)`` items of a dataset of ``(image, target)``."""

    def __init__(self, dataset: Dataset, model: ImageModel) -> None:
        self.dataset = dataset
        self.model = model

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise UserError(
                f"item {index} of the dataset is a {type(item).__name__}; expected "
                "(image, target) pairs, as torchvision datasets yield"
            )
        return _to_input(item[0], self.model), item[1]


def _collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, list[Any]]:
    return torch.stack([x for x, _ in batch]), [t for _, t in batch]


def _plain(target: Any) -> Any:
    """A target as a plain value: 0-d tensors and numpy scalars become Python numbers."""
    if isinstance(target, torch.Tensor) and target.ndim == 0:
        return target.item()
    if isinstance(target, np.generic):
        return target.item()
    return target


def _column(values: Column, targets: list[Any], what: str) -> list[Any] | np.ndarray:
    if callable(values):
        try:
            return [_plain(values(t)) for t in targets]
        except Exception as e:
            raise UserError(
                f"{what}: the function failed on a target ({type(e).__name__}: {str(e)[:200]})"
            ) from None
    return values  # length checked before embedding


def _check_length(values: Any, n: int, what: str) -> None:
    if values is None or callable(values):
        return
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise UserError(
            f"{what} must be one value per sample (a list or array) or a function of the "
            f"target, got {type(values).__name__}"
        )
    if len(values) != n:
        raise UserError(f"{what} has {len(values)} values but the dataset has {n} samples")


def embed_images(
    model: str | ImageModel,
    dataset: Dataset,
    *,
    labels: Column | None = None,
    attributes: Mapping[str, Column] | None = None,
    weights: str | Path | None = None,
    random_weights: bool = False,
    batch_size: int = 64,
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = False,
    precision: str = "fp32",
    channels_last: bool = False,
) -> EmbeddingSet:
    """Embed every image of ``dataset`` with a released image model, preprocessed its way.

    ``dataset`` is any ``torch.utils.data.Dataset`` whose items are ``(image, target)`` (e.g. a
    torchvision dataset built *without* a transform: PIL images, or tensors in ``[0, 1]``) or a
    fairmetric :class:`~fairmetric.data.dataset.AttributeDataset` (which brings its own labels
    and attributes). Each image goes through the model's own transform (timm's data config,
    open_clip's preprocess). Labels and attributes are either one value per sample or a function
    of the target::

        from torchvision.datasets import CelebA
        data = CelebA("/data", split="test", target_type=["identity", "attr"])
        emb = embed_images(
            "resnet50", data, weights="/models/resnet50.safetensors",
            labels=lambda t: int(t[0]),
            attributes={"male": lambda t: int(t[1][20]), "young": lambda t: int(t[1][39])},
        )
        report = fairmetric.audit(emb)

    Args:
        model: a timm model name, ``"open_clip:ARCH"``, or a ready
            :class:`~fairmetric.sources.images.ImageModel`.
        dataset: the images, in order.
        labels: class of each sample; default: the target itself (an int or a string).
        attributes: ``{name: values or function of the target}``; default: none.
        weights: the model's local weights file (timm state dict, open_clip checkpoint).
        random_weights: a timm model left randomly initialised (on purpose).
        batch_size, device, num_workers, progress, precision, channels_last: as in
            :func:`~fairmetric.models.embed.embed_dataset`.

    Returns:
        An :class:`EmbeddingSet` ready for :func:`fairmetric.audit`; its metadata names the
        model and its weights.

    Raises:
        UserError: a column of the wrong length, a target that is no label without ``labels``,
            images of an unexpected type, and the model's own errors
            (:func:`~fairmetric.sources.images.image_model`).
    """
    from fairmetric.models.embed import embed_dataset, embed_tensors
    from fairmetric.utils import check_precision, resolve_device

    if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
        raise UserError(
            f"dataset must be a torch.utils.data.Dataset with a length, got "
            f"{type(dataset).__name__}"
        )
    n = len(dataset)
    _check_length(labels, n, "labels")
    for name, values in (attributes or {}).items():
        _check_length(values, n, f"attribute {name!r}")
    built = image_model(model, weights=weights, random_weights=random_weights)
    metadata = _model_metadata(built)
    if isinstance(dataset, AttributeDataset):
        if labels is not None or attributes is not None:
            raise UserError(
                "a fairmetric AttributeDataset carries its labels and attributes: leave out "
                "labels= and attributes="
            )
        return embed_dataset(
            built.module,
            preprocess_dataset(dataset, built),
            batch_size=batch_size,
            device=device,
            num_workers=num_workers,
            progress=progress,
            metadata=metadata,
            allow_invalid=True,
            precision=precision,
            channels_last=channels_last,
        )
    dev = resolve_device(device)
    check_precision(precision, dev)
    loader = DataLoader(
        _Preprocessed(dataset, built),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    targets: list[Any] = []

    def inputs():
        for x, batch_targets in loader:
            targets.extend(_plain(t) for t in batch_targets)
            yield x

    matrix = embed_tensors(
        built.module.to(dev),
        inputs(),
        device=dev,
        progress=progress,
        precision=precision,
        channels_last=channels_last,
    )
    if labels is None:
        bad = next((t for t in targets if not isinstance(t, (int, str))), None)
        if bad is not None:
            raise UserError(
                f"the dataset's targets (e.g. {type(bad).__name__} {str(bad)[:60]}) are not "
                "class labels: pass labels= (one value per sample, or a function of the target)"
            )
    return EmbeddingSet(
        embeddings=matrix,
        labels=targets if labels is None else _column(labels, targets, "labels"),
        attributes={
            name: _column(values, targets, f"attribute {name!r}")
            for name, values in (attributes or {}).items()
        },
        metadata={"dataset": type(dataset).__name__, **metadata},
        allow_invalid=True,
    )


def _model_metadata(model: ImageModel) -> dict[str, Any]:
    return {
        "source": model.name,
        "weights": model.weights or "random (--random-weights)",
        "input_size": list(model.input_size),
        "preprocess": " -> ".join(
            repr(t).replace("\n", " ") for t in getattr(model.transform, "transforms", [])
        )
        or repr(model.transform),
    }


def load_image_source(
    source: str,
    *,
    weights: str | Path | None = None,
    random_weights: bool = False,
    images: str | Path | None = None,
    table: str | Path | None = None,
    path_column: str | None = None,
    label_column: str | None = None,
    attribute_columns: Sequence[str] | None = None,
    skip_unreadable: bool = False,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    split: str = "test",
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = False,
    **speed: Any,
) -> EmbeddingSet:
    """``fairmetric audit MODEL``: a timm name or ``open_clip:ARCH`` on a folder of images.

    The images are either a folder with a CSV naming them (``images``; ``table``: the CSV,
    default ``labels.csv`` in the folder, relative to it or absolute; columns chosen by name,
    see :func:`~fairmetric.data.folder.load_folder_csv`; every row is audited and the
    embeddings' ids are the paths relative to the folder), or the ``split`` of a config's
    dataset. Either way each image gets the model's own preprocessing
    (:func:`~fairmetric.sources.images.preprocess_dataset`).

    ``speed`` takes ``precision``, ``channels_last``, ``num_workers`` (see
    :func:`~fairmetric.models.embed.embed_dataset`).
    """
    from fairmetric.models.embed import embed_dataset
    from fairmetric.sources.models import data_split

    what = source if source.startswith("open_clip:") else f"the timm model {source}"
    if source.startswith("open_clip:"):  # refuse bad weights flags before any data work
        if random_weights:
            raise UserError(_CLIP_RANDOM.format(source=source))
    else:
        _check_weights_choice(f"timm model {source!r}", weights, random_weights)
    if weights is not None:
        check_weights_file(weights, source)
    if images is None:
        flags = {"--table": table, "--path-column": path_column, "--skip-unreadable": None}
        if skip_unreadable:
            flags["--skip-unreadable"] = True
        given = [flag for flag, v in flags.items() if v is not None]
        if given:
            raise UserError(f"{', '.join(given)} describe an image folder: add --images FOLDER")
        if config is None:
            raise UserError(
                f"auditing {what} needs images: --images FOLDER (with a CSV naming them, "
                "--table) or --config CONFIG (its data section)"
            )
        dataset, _ = data_split(config, overrides, split, what)
    else:
        from fairmetric.data.folder import load_folder_csv

        if config is not None or overrides:
            raise UserError(
                "give the images either as --images FOLDER or through --config, not both"
            )
        folder = Path(images)
        dataset = load_folder_csv(
            folder,
            csv_file=table if table is not None else "labels.csv",
            path_column=path_column or "path",
            label_column=label_column or "label",
            attribute_columns=attribute_columns,
            skip_unreadable=skip_unreadable,
            name=folder.name or str(folder),
        )
    model = image_model(source, weights=weights, random_weights=random_weights)
    return embed_dataset(
        model.module,
        preprocess_dataset(dataset, model),
        batch_size=batch_size,
        device=device,
        progress=progress,
        metadata={**_model_metadata(model), "split": "all" if images is not None else split},
        allow_invalid=True,
        distributed=None,  # under torchrun the processes share the embedding
        **speed,
    )
