"""Build pytorch-metric-learning losses and miners by class name, with keyword arguments.

Any loss in ``pytorch_metric_learning.losses`` and miner in ``pytorch_metric_learning.miners`` works.
Nested PML objects are given as mappings with a ``name``: ``distance: {name: CosineSimilarity}``,
``reducer: {name: MeanReducer}``, ``embedding_regularizer: {name: LpRegularizer}``. Losses that own
parameters and need ``num_classes`` / ``embedding_size`` (proxy and classification losses) get them
filled in from the data and the model.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

__all__ = ["LossConfig", "MinerConfig", "build_loss", "build_miner", "list_losses", "list_miners"]


@dataclass
class LossConfig:
    """A pytorch-metric-learning loss by class name, with its keyword arguments."""

    name: str = "TripletMarginLoss"
    params: dict[str, Any] = field(default_factory=lambda: {"margin": 0.2})


@dataclass
class MinerConfig:
    """An optional pytorch-metric-learning miner (``name: null`` for none)."""

    name: str | None = "TripletMarginMiner"
    params: dict[str, Any] = field(
        default_factory=lambda: {"margin": 0.2, "type_of_triplets": "semihard"}
    )


_NESTED = {
    "distance": "distances",
    "reducer": "reducers",
    "embedding_regularizer": "regularizers",
    "weight_regularizer": "regularizers",
}


def _pml_classes(module_name: str, base_name: str) -> dict[str, type]:
    import importlib

    module = importlib.import_module(f"pytorch_metric_learning.{module_name}")
    base = getattr(module, base_name, None)
    out = {}
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and not name.startswith(("Base", "Generic")):
            if base is None or issubclass(obj, base):
                out[name] = obj
    return out


def list_losses() -> list[str]:
    """Names of the PML losses :func:`build_loss` accepts."""
    return sorted(_pml_classes("losses", "BaseMetricLossFunction"))


def list_miners() -> list[str]:
    """Names of the PML miners :func:`build_miner` accepts."""
    return sorted(_pml_classes("miners", "BaseMiner"))


def _lookup(kind: str, name: str, registry: dict[str, type]) -> type:
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown {kind} {name!r}.{hint} Available: {', '.join(sorted(registry))}")
    return registry[name]


def _instantiate(kind: str, cls: type, params: dict[str, Any]) -> Any:
    params = dict(params)
    for key, module in _NESTED.items():
        spec = params.get(key)
        if isinstance(spec, dict):
            spec = dict(spec)
            if "name" not in spec:
                raise ValueError(f"{kind} parameter {key!r} needs a 'name' (e.g. {{name: ...}})")
            sub_cls = _lookup(key, spec.pop("name"), _pml_classes(module, ""))
            params[key] = _instantiate(key, sub_cls, spec)
        elif isinstance(spec, str):
            params[key] = _instantiate(key, _lookup(key, spec, _pml_classes(module, "")), {})
    try:
        return cls(**params)
    except TypeError as e:
        sig = inspect.signature(cls.__init__)
        raise ValueError(
            f"bad parameters for {kind} {cls.__name__}: {e}. Signature: {sig}"
        ) from None


def build_loss(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    num_classes: int | None = None,
    embedding_size: int | None = None,
) -> nn.Module:
    """Instantiate a PML loss by class name (``num_classes``/``embedding_size`` auto-filled)."""
    cls = _lookup("loss", name, _pml_classes("losses", "BaseMetricLossFunction"))
    params = dict(params or {})
    accepted = inspect.signature(cls.__init__).parameters
    if "num_classes" in accepted and "num_classes" not in params and num_classes is not None:
        params["num_classes"] = num_classes
    if (
        "embedding_size" in accepted
        and "embedding_size" not in params
        and embedding_size is not None
    ):
        params["embedding_size"] = embedding_size
    return _instantiate("loss", cls, params)


def build_miner(name: str | None, params: dict[str, Any] | None = None) -> nn.Module | None:
    """Instantiate a PML miner by class name (``None`` → no miner)."""
    if name is None:
        return None
    cls = _lookup("miner", name, _pml_classes("miners", "BaseMiner"))
    return _instantiate("miner", cls, params or {})
