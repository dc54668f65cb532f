"""Argument checks shared by the offline and in-batch SMOTE (:mod:`~fairmetric.sampling.smote`,
:mod:`~fairmetric.sampling.smote_batch`)."""

from __future__ import annotations

from numbers import Integral
from typing import Any

RATIO_MODES = ("uniform", "midpoint")


def _check_int(value: Any, name: str, low: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}{hint}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}{hint}")
    return int(value)


def _check_choice(value: Any, name: str, valid: tuple[str, ...], hint: str = "") -> str:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(
            f"unknown {name} {value!r}; valid values: {', '.join(map(repr, valid))}{hint}"
        )
    return value
