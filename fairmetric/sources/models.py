"""Model sources: a wrapped plain function, and the data split a model is embedded on."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from fairmetric.data.dataset import AttributeDataset
from fairmetric.errors import UserError

__all__ = ["CallableEncoder", "ConcatDataset", "concat_splits", "data_split", "import_callable"]


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


def data_split(config: str | Path | None, overrides: list[str] | None, split: str, what: str):
    """The ``split`` of the config's dataset, and the config.

    ``split="all"`` is the whole dataset: every split the config builds, concatenated in the
    order the dataset lists them (for a released model, which saw none of them in training).
    """
    from fairmetric.train.config import load_config
    from fairmetric.train.trainer import build_data

    if config is None:
        raise ValueError(
            f"auditing {what} needs a dataset: pass --config CONFIG (its data section)"
        )
    cfg = load_config(config, overrides)
    splits = build_data(cfg)
    if split == "all" and "all" not in splits:
        return concat_splits(splits), cfg
    if split not in splits:
        raise ValueError(
            f"unknown split {split!r}; this dataset has: {', '.join(splits)} (or 'all' for "
            "every split)"
        )
    return splits[split], cfg


class ConcatDataset(AttributeDataset):
    """Several datasets one after another, with one naming of labels and attribute values."""

    def __init__(self, parts: list[AttributeDataset], name: str) -> None:
        first = parts[0]
        same = all(
            p.label_names == first.label_names
            and p.attribute_names == first.attribute_names
            and p.attribute_value_names == first.attribute_value_names
            for p in parts
        )
        if same:  # subsets of one dataset: the codes already agree
            super().__init__(
                labels=np.concatenate([p.labels for p in parts]),
                attributes=np.concatenate([p.attributes for p in parts]),
                attribute_names=first.attribute_names,
                label_names=first.label_names,
                attribute_value_names=first.attribute_value_names,
                name=name,
            )
        else:  # built separately: match codes by their names
            if any(p.attribute_names != first.attribute_names for p in parts):
                raise UserError(
                    "the splits of this dataset have different attributes; audit one split"
                )
            super().__init__(
                labels=[p.label_names[c] for p in parts for c in p.labels],
                attributes={
                    a: [p.value_name(a, c) for p in parts for c in p.attribute(a)]
                    for a in first.attribute_names
                },
                name=name,
            )
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        ids = [getattr(p, "sample_ids", None) for p in parts]
        if all(i is not None for i in ids):
            self.sample_ids = [v for i in ids for v in i]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.parts[0].input_shape)

    def load_input(self, index: int) -> Any:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[part][index - int(self.offsets[part])][0]


def concat_splits(splits: dict[str, AttributeDataset]) -> AttributeDataset:
    """Every split of a dataset as one dataset (``--split all``)."""
    parts = list(splits.values())
    return ConcatDataset(parts, name=parts[0].name)


def import_callable(spec: str) -> Callable[..., Any]:
    """The callable ``module:function`` names (``function`` may be dotted: ``module:Class.method``).

    The module is imported from the Python path; when it is not found there, from the current
    folder (so ``my_encoder:embed`` works next to ``my_encoder.py``; the folder is on the path
    for that import only).
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{spec!r} is not module:function")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or module_name.split(".")[0] != e.name.split(".")[0]:
            raise ValueError(f"cannot import module {module_name!r} of {spec!r}: {e}") from None
        module = _import_from_cwd(module_name, spec)
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


def _import_from_cwd(module_name: str, spec: str) -> Any:
    cwd = str(Path.cwd())
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"cannot import module {module_name!r} of {spec!r}: {e}; looked on the Python path "
            f"and in the current folder {cwd} (run from the folder holding "
            f"{module_name.replace('.', '/')}.py, or add its folder to PYTHONPATH)"
        ) from None
    finally:
        sys.path.remove(cwd)
