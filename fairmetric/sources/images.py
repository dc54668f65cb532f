"""Released image models, each with the preprocessing it was trained with.

An :class:`ImageModel` pairs a network mapping a batch of preprocessed images to ``(B, D)``
embeddings with the transform that turns one image into its input:

- a **timm** model name (:func:`timm_image_model`): ``timm.create_model(name, pretrained=False,
  num_classes=0)`` (the pooled features) with a local weights file loaded strictly, and the eval
  transform of its own data config, ``timm.data.create_transform(**resolve_data_config({},
  model=model))``: resize to ``input_size / crop_pct``, centre crop to ``input_size``, normalise
  with the model's mean and standard deviation. A name without weights is refused unless
  ``random_weights=True`` says that a randomly initialised network is meant;
- an **open_clip** image tower, ``open_clip:ARCH`` (:func:`~fairmetric.sources.clip.open_clip_image_model`).

:func:`preprocess_dataset` gives a dataset the model's transform: image files are decoded to PIL
images and go through it as they would in the model's own evaluation; in-memory image tensors
(values in ``[0, 1]``, e.g. the coloured digits) go through the same resize, crop and
normalisation as tensors (grey images repeated to three channels).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairmetric.data.dataset import (
    AttributeDataset,
    ImageFileDataset,
    TensorAttributeDataset,
    _Subset,
)
from fairmetric.errors import UserError
from fairmetric.sources.image_model import WEIGHTS_KINDS, ImageModel, check_weights_file
from fairmetric.sources.models import ConcatDataset

__all__ = [
    "ImageModel",
    "check_weights_file",
    "image_model",
    "preprocess_dataset",
    "timm_image_model",
]

_CLIP_RANDOM = "{source}: --random-weights applies to timm models; give --weights CHECKPOINT"


def timm_image_model(
    name: str, *, weights: str | Path | None = None, random_weights: bool = False
) -> ImageModel:
    """A timm model's pooled features with its own eval preprocessing.

    Args:
        name: a timm model name (``timm.list_models()``).
        weights: a local state dict (``.safetensors``, or a torch file read with
            ``weights_only=True``; ``state_dict`` / ``model`` wrappers and ``module.`` prefixes
            are unwrapped). Every backbone tensor must be there with its shape; the classifier's
            may be extra (it is dropped: ``num_classes=0``).
        random_weights: audit the randomly initialised network (a baseline, or a test) instead.

    Raises:
        UserError: an unknown name, neither or both of ``weights`` and ``random_weights``.
        FileNotFoundError: no file at ``weights``.
        ValueError: a corrupt weights file, or weights of another architecture (the message
            names the model, the file and the keys that do not fit).
    """
    import timm
    import timm.data

    from fairmetric.models.embedder import load_backbone_weights

    if not timm.is_model(name):
        raise UserError(f"{name!r} is not a timm model name (see timm.list_models())")
    _check_weights_choice(f"timm model {name!r}", weights, random_weights)
    path = None if weights is None else check_weights_file(weights, f"timm model {name!r}")
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if path is not None:
        try:
            load_backbone_weights(model, path)
        except ValueError as e:
            raise ValueError(f"timm model {name!r}: {e}") from None
    model.eval()
    cfg = timm.data.resolve_data_config({}, model=model)
    return ImageModel(
        module=model,
        transform=timm.data.create_transform(**cfg),
        input_size=tuple(int(v) for v in cfg["input_size"]),
        name=name,
        weights=None if path is None else str(path),
    )


def _check_weights_choice(what: str, weights: Any, random_weights: bool) -> None:
    if not isinstance(random_weights, bool):
        raise UserError(f"random_weights must be true or false, got {random_weights!r}")
    if weights is not None and random_weights:
        raise UserError(
            f"{what}: give either weights (--weights FILE) or random_weights (--random-weights), "
            "not both"
        )
    if weights is None and not random_weights:
        raise UserError(
            f"{what} has no weights: pass --weights FILE ({WEIGHTS_KINDS}; weights=... in "
            "Python), or --random-weights (random_weights=True) to audit the randomly "
            "initialised network on purpose"
        )


def image_model(
    source: str | ImageModel,
    *,
    weights: str | Path | None = None,
    random_weights: bool = False,
) -> ImageModel:
    """An :class:`ImageModel` from a name: ``open_clip:ARCH`` (with ``weights``, a local
    checkpoint) or a timm model name; a ready :class:`ImageModel` is returned as it is."""
    if isinstance(source, ImageModel):
        if weights is not None or random_weights:
            raise UserError("weights and random_weights apply to a model name, not an ImageModel")
        return source
    if not isinstance(source, str):
        raise UserError(
            f"expected a timm model name, 'open_clip:ARCH' or an ImageModel, got "
            f"{type(source).__name__}"
        )
    if source.startswith("open_clip:"):
        from fairmetric.sources.clip import open_clip_image_model

        if random_weights:
            raise UserError(_CLIP_RANDOM.format(source=source))
        return open_clip_image_model(source.removeprefix("open_clip:"), weights=weights)
    return timm_image_model(source, weights=weights, random_weights=random_weights)


class _Transformed(_Subset):
    """Every sample of an in-memory image dataset, its tensor passed through ``transform``."""

    def __init__(self, parent: AttributeDataset, transform: Callable, input_size: tuple) -> None:
        super().__init__(parent, np.arange(len(parent)))
        self.transform = transform
        self.input_shape = tuple(input_size)

    def load_input(self, index: int) -> torch.Tensor:
        x = self.parent.load_input(int(self.indices[index]))
        if x.shape[0] == 1 and self.input_shape[0] == 3:
            x = x.expand(3, *x.shape[1:])
        return self.transform(x)

    def subset(self, indices: Any) -> AttributeDataset:
        return _Subset(self, np.asarray(indices, dtype=np.int64))


def preprocess_dataset(dataset: AttributeDataset, model: ImageModel) -> AttributeDataset:
    """``dataset`` with ``model``'s preprocessing (same samples, order, labels and ids).

    Image files (:class:`~fairmetric.data.dataset.ImageFileDataset`, a subset of one; every
    split of a config, ``split="all"``, alike) are decoded and go through ``model.transform``
    as PIL images. In-memory image tensors
    (:class:`~fairmetric.data.dataset.TensorAttributeDataset` of ``(C, H, W)`` values in
    ``[0, 1]``) go through the same transform as tensors: resize, crop and normalisation act on
    tensors alike (torchvision, antialiased); one grey channel is repeated to three.

    Raises:
        UserError: the dataset's inputs are not images (vectors), or a kind of dataset whose
            images cannot be re-preprocessed.
    """
    if isinstance(dataset, ImageFileDataset):
        return dataset.with_transform(model.transform, image_size=model.input_size[1])
    if isinstance(dataset, _Subset):
        return preprocess_dataset(dataset.parent, model).subset(dataset.indices)
    if isinstance(dataset, ConcatDataset):  # --split all
        return ConcatDataset(
            [preprocess_dataset(p, model) for p in dataset.parts], name=dataset.name
        )
    if isinstance(dataset, TensorAttributeDataset):
        shape = tuple(dataset.input_shape)
        if len(shape) != 3 or shape[0] not in (1, model.input_size[0]):
            raise UserError(
                f"the image model {model.name} takes images; dataset {dataset.name!r} has "
                f"inputs of shape {shape} (it needs (C, H, W) images with 1 or "
                f"{model.input_size[0]} channels)"
            )
        return _Transformed(dataset, model.transform, model.input_size)
    raise UserError(
        f"cannot give dataset {dataset.name!r} ({type(dataset).__name__}) the preprocessing of "
        f"{model.name}: expected image files (an ImageFileDataset) or in-memory image tensors "
        "(a TensorAttributeDataset); for any other dataset use fairmetric.sources.embed_images"
    )
