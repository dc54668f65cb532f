"""Ranges of config values, declared on dataclass fields: ``lr: float = bounded(1e-3, gt=0)``.

A bottom-layer module, so every plug-in's config (losses, samplers, training hooks) can declare
its ranges; :func:`fairmetric.train.config_schema.build` checks them when a config is loaded, so an
out-of-range value fails naming the key and the range, before anything is built or allocated.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["RANGE", "Range", "bounded", "check_param_types", "check_range"]

#: ``dataclasses.field(metadata={RANGE: Range(...)})``: the values the field accepts
RANGE = "fairmetric.range"


@dataclass(frozen=True)
class Range:
    """Bounds of a number (or of every item of a list of numbers); ``None`` is unbounded.

    ``gt``/``lt`` exclude the bound, ``ge``/``le`` include it; a float must also be finite.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        """``between 1 and 65536``, ``> 0``, ``>= 0 and < 1``."""

        def fmt(bound: float) -> str:
            return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"

        if self.ge is not None and self.le is not None and self.gt is None and self.lt is None:
            return f"between {fmt(self.ge)} and {fmt(self.le)}"
        parts = [
            f"{op} {fmt(bound)}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(parts) or "finite"


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    **kwargs: Any,
) -> Any:
    """A dataclass field whose value (when not ``None``) must lie in the given range."""
    metadata = {**kwargs.pop("metadata", {}), RANGE: Range(ge=ge, gt=gt, le=le, lt=lt)}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def check_range(value: Any, bounds: Range, key: str, *, nullable: bool = False) -> None:
    """Raise a ``ValueError`` naming ``key`` and the allowed range unless ``value`` (a number or
    a list of numbers; ``None`` passes) lies in ``bounds`` (``nullable``: say that null is
    allowed too)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if item is None or isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if not bounds.holds(item):
            what = "every item of " + key if isinstance(value, (list, tuple)) else key
            finite = "a finite number " if isinstance(item, float) else ""
            null = " or null" if nullable else ""
            raise ValueError(f"{what} must be {finite}{bounds.describe()}{null}, got {item!r}")


def check_param_types(params: dict[str, Any], fn: Any, key: str) -> None:
    """Refuse a value of a free ``params`` mapping whose type cannot be that of ``fn``'s
    parameter: anything but a number where the default is a number, anything but true/false where
    it is a boolean (``loss.params.margin: abc`` fails here, not as a TypeError mid-training).
    Parameters without a number or boolean default are not checked."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    for name, value in params.items():
        p = signature.parameters.get(name)
        if p is None or value is None or p.default is None or p.default is inspect.Parameter.empty:
            continue
        default = p.default
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            want = "a number"
        else:
            continue
        if not ok:
            raise ValueError(f"{key}.{name}: expected {want} (default {default!r}), got {value!r}")
