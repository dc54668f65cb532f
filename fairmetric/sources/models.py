"""Model sources: a wrapped plain function, a timm backbone's pooled features, and the data split a
model is embedded on."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from fairmetric.errors import UserError

__all__ = ["CallableEncoder", "Features", "data_split", "import_callable"]


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


class Features(nn.Module):
    """A timm backbone's pooled features (what a released backbone offers as its embedding)."""

    def __init__(self, embedder: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder.features(x)


def data_split(config: str | Path | None, overrides: list[str] | None, split: str, what: str):
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


def import_callable(spec: str) -> Callable[..., Any]:
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
