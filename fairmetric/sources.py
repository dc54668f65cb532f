"""Turn what a user points ``fairmetric audit`` at into an :class:`EmbeddingSet`.

Accepted sources:

- an embedding file: ``.npz`` or ``.safetensors`` written by :meth:`EmbeddingSet.save`;
- a ``.npy`` matrix plus a CSV of labels and attributes (``labels_csv``: header ``label,<attr>...``
  with distinct names, one row per embedding; ids such as ``007`` stay strings, see
  :func:`~fairmetric.data.csv_table.typed_column`);
- a fairmetric run folder (its ``config.yaml`` describes the data) or exported model folder (give a
  ``config``), embedded on the config's split;
- a timm model name (its pooled features, ``pretrained=False`` or a local ``weights`` file), with a
  ``config`` describing the data;
- ``module:function``: any Python callable mapping a batch of inputs (a float tensor, images in
  ``[0, 1]`` or vectors) to embeddings (a tensor or array), with a ``config`` describing the data —
  the way to audit released models such as sentence encoders or face-recognition networks.

Model sources are embedded batched under :func:`torch.inference_mode` with the speed settings
``precision`` (fp32, bf16, fp16), ``channels_last`` and ``num_workers``; a model folder's config
supplies those it sets in its ``train`` section (so a run is embedded the way it was trained).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from fairmetric.data.csv_table import read_csv_table
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError

__all__ = ["load_source", "CallableEncoder"]


class CallableEncoder(nn.Module):
    """Wrap a plain function ``batch -> embeddings`` as a module (numpy outputs are converted)."""

    def __init__(self, fn: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.fn(x)
        except Exception as e:  # the user's code: a user error, named, not a fairmetric bug
            name = (
                f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', self.fn)}"
            )
            raise UserError(
                f"the encoder {name} failed on a batch of shape {tuple(x.shape)} "
                f"({type(e).__name__}: {str(e)[:200]}); it must map a float tensor (batch, ...) to "
                "embeddings (batch, D) (set FAIRMETRIC_TRACEBACK=1 to see where it failed)"
            ) from e
        out = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out)
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(
                f"the encoder returned shape {tuple(out.shape)} for a batch of {x.shape[0]}; it "
                "must return one embedding row per input, (batch, D)"
            )
        return out.float()


class _Features(nn.Module):
    """A timm backbone's pooled features (what a released backbone offers as its embedding)."""

    def __init__(self, embedder: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder.features(x)


def _read_labels_csv(path: Path, n: int) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"labels CSV not found: {path}")
    table = read_csv_table(
        path,
        required=("label",),
        expected="starting with 'label' (label,<attribute columns...>)",
    )
    if len(table.rows) != n:
        raise ValueError(
            f"{path} has {len(table.rows)} rows but the .npy file has {n} embeddings; they must "
            "match one to one"
        )
    width = len(table.header)
    for row, line in zip(table.rows, table.lines):
        if len(row) != width:
            raise ValueError(f"{path} line {line}: expected {width} fields, got {len(row)}")
    return {
        "labels": table.column(0),
        "attributes": {h: table.column(j) for j, h in enumerate(table.header) if j > 0},
    }


def _data_split(config: str | Path | None, overrides: list[str] | None, split: str, what: str):
    """The ``split`` of the config's dataset, and the config."""
    from fairmetric.train.config import load_config
    from fairmetric.train.trainer import build_data

    if config is None:
        raise ValueError(
            f"auditing {what} needs a dataset: pass --config CONFIG (its data section)"
        )
    cfg = load_config(config, overrides)
    splits = build_data(cfg)
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; this dataset has: {', '.join(splits)}")
    return splits[split], cfg


def _import_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r} of {spec!r}: {e}") from None
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r} (from {spec!r})")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"{spec!r} is not callable")
    return fn


def load_source(
    source: str | Path,
    *,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    split: str = "test",
    labels_csv: str | Path | None = None,
    weights: str | Path | None = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = False,
    precision: str | None = None,
    channels_last: bool | None = None,
    num_workers: int | None = None,
) -> EmbeddingSet:
    """Resolve an audit source (see the module docstring) into an :class:`EmbeddingSet`.

    Rows with NaN/Inf are kept (``allow_invalid``) so the audit can report or drop them.

    ``precision`` (``fp32``, ``bf16``, ``fp16``), ``channels_last`` and ``num_workers`` set how a
    model source is embedded (see :func:`~fairmetric.models.embed.embed_dataset`); ``None``
    takes a model folder's config's ``train`` settings (with its ``pin_memory`` and
    ``prefetch_factor``), else fp32, contiguous layout, no workers. Embedding files ignore them.
    """
    from fairmetric.models.embed import embed_dataset, inference_settings

    text = str(source)
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix in (".npz", ".safetensors"):
        return EmbeddingSet.load(path, allow_invalid=True)
    if suffix == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"embedding matrix not found: {path}")
        if labels_csv is None:
            raise ValueError(f"a .npy matrix carries no labels: pass --labels CSV for {path}")
        try:
            matrix = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path} is not a plain numpy array file ({e})") from None
        columns = _read_labels_csv(Path(labels_csv), len(matrix))
        return EmbeddingSet(
            embeddings=matrix, allow_invalid=True, metadata={"source": text}, **columns
        )
    if path.is_dir():
        from fairmetric.models.embedder import CONFIG_FILE, load_embedder

        model_dir = path / "model" if (path / "model" / CONFIG_FILE).is_file() else path
        if not (model_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is neither a fairmetric run folder (model/{CONFIG_FILE}) nor an "
                f"exported model folder ({CONFIG_FILE})"
            )
        if config is None and (path / "config.yaml").is_file():
            config = path / "config.yaml"
        dataset, cfg = _data_split(config, overrides, split, f"the model in {path}")
        speed = inference_settings(cfg.train)
        model: nn.Module = load_embedder(model_dir)
    elif ":" in text and not path.exists():
        speed = {}
        model = CallableEncoder(_import_callable(text))  # a typo fails before any data work
        dataset, _ = _data_split(config, overrides, split, f"the encoder {text}")
    else:
        import timm

        speed = {}
        if not timm.is_model(text):
            if path.suffix or path.exists():
                raise ValueError(
                    f"cannot audit {text!r}: not an embedding file (.npz, .safetensors, .npy + "
                    "--labels), a model folder, a timm model name or module:function"
                )
            raise FileNotFoundError(
                f"{text!r} is not an existing file or folder, a timm model name, or module:function"
            )
        from fairmetric.models.embedder import Embedder

        dataset, _ = _data_split(config, overrides, split, f"the timm model {text}")
        model = _Features(
            Embedder(
                backbone=text,
                embedding_dim=1,
                input_size=tuple(dataset.input_shape),
                pretrained_weights=None if weights is None else str(weights),
            )
        )
    given = {"precision": precision, "channels_last": channels_last, "num_workers": num_workers}
    speed.update({k: v for k, v in given.items() if v is not None})
    return embed_dataset(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        progress=progress,
        metadata={"source": text, "split": split},
        allow_invalid=True,
        **speed,
    )
