"""The global threshold at a target false match rate, and match counts at a threshold.

Convention (METHODS.md §6): a pair *matches* when its score ``s >= τ``. For ``n`` impostor scores
and a target ``FMR*``, let ``k`` be the largest count with ``k / n <= FMR*`` (``floor(FMR*·n)``).
``τ`` gives the largest realised FMR that is at most the target, and sits on a score where it
can: the ``k``-th largest score ``v`` when at most ``k`` scores reach it,
otherwise the next float above ``v`` (ties at ``v`` all fall below); with ``k = 0``, the next
float above the largest score. The realised FMR never exceeds the target, and with ties it is
what it is, reported next to the target.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["count_at_least", "threshold_at_fmr"]


def _check_target(target_fmr: float) -> float:
    if isinstance(target_fmr, bool) or not isinstance(target_fmr, (int, float, np.floating)):
        raise ValueError(f"target FMR must be a number in (0, 1), got {target_fmr!r}")
    if not 0 < float(target_fmr) < 1:
        raise ValueError(f"target FMR must lie in (0, 1), got {target_fmr!r} (e.g. 1e-3)")
    return float(target_fmr)


def threshold_at_fmr(impostor_scores: np.ndarray, target_fmr: float) -> float:
    """The global threshold ``τ`` at ``target_fmr`` (see the module docstring).

    Raises:
        ValueError: no impostor score, a non-finite score, or a target outside ``(0, 1)``.
    """
    target = _check_target(target_fmr)
    s = np.asarray(impostor_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("no impostor pairs to set a threshold from")
    if not np.isfinite(s).all():
        raise ValueError("impostor scores contain NaN or Inf")
    n = s.size
    k = math.floor(target * n + 1e-9)  # the slack absorbs rounding: 0.29 * 100 = 28.99...6
    if k / n > target:  # but never past the target (0.0999999999999 of 10 is k = 0, not 1)
        k -= 1
    if k == 0:
        return float(np.nextafter(s.max(), np.inf))
    v = float(np.partition(s, n - k)[n - k])  # the k-th largest
    if int(np.count_nonzero(s >= v)) <= k:
        return v
    return float(np.nextafter(v, np.inf))


def count_at_least(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_scores`` (ascending) are ``>= τ`` for each threshold."""
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")
