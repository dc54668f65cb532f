"""Numbers and intervals as report text (shared by the writers and report sections)."""

from __future__ import annotations

import math

__all__ = ["DASH", "format_interval", "format_number"]

#: what a table shows where there is no value to show (no interval without bootstrap)
DASH = "—"
_DASH = DASH


def format_number(value: float | None) -> str:
    """A value for a table: 3 decimals in ``[0.1, 1000)``, else 3 significant digits.

    ``None`` (not defined) is ``"n/a"``.
    """
    if value is None:
        return "n/a"
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0.000"
    if 0.1 <= abs(v) < 1000:
        return f"{v:.3f}"
    return f"{v:#.3g}"  # "#" keeps trailing zeros: 0.0110, not 0.011


def format_interval(low: float | None, high: float | None) -> str:
    """``"[low, high]"``, or a dash when there is no interval (no bootstrap)."""
    if low is None or high is None:
        return _DASH
    return f"[{format_number(low)}, {format_number(high)}]"
