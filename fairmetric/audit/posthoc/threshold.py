"""The verification threshold at a target false-match rate: the one implementation, shared by
the post-hoc fixes and the verification audit (:mod:`fairmetric.audit.verification.threshold`).

With ``n`` impostor scores and ``k = floor(target · n)``: if ``k = 0`` the threshold is just above
the largest score (nothing matches); otherwise, with ``v`` the ``k``-th largest score, ``τ = v``
when at most ``k`` scores are ``>= v`` and the next float above ``v`` when ties at ``v`` would let
more than ``k`` through. A pair matches when ``s >= τ``, so the realised FMR never exceeds the
target (it may fall below it when scores tie).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_target_fmr", "threshold_at_fmr"]


def check_target_fmr(target_fmr: object, key: str = "target_fmr") -> float:
    """``target_fmr`` as a float in (0, 1), or a ValueError naming ``key``."""
    if isinstance(target_fmr, bool) or not isinstance(target_fmr, (int, float, np.floating)):
        raise ValueError(f"{key} must be a number in (0, 1), got {target_fmr!r}")
    value = float(target_fmr)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{key} must be a number in (0, 1) (e.g. 1e-3), got {target_fmr!r}")
    return value


def threshold_at_fmr(impostor_scores: np.ndarray, target_fmr: float) -> float:
    """The smallest-match-set threshold ``τ`` whose FMR on ``impostor_scores`` is ``<= target_fmr``.

    Args:
        impostor_scores: 1-D finite scores of impostor pairs (higher = more similar).
        target_fmr: the target false-match rate, in (0, 1).

    Returns:
        ``τ`` (a float); a pair matches when ``s >= τ``. See the module docstring for the rule.
    """
    target = check_target_fmr(target_fmr)
    s = np.asarray(impostor_scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"impostor_scores must be 1-D, got shape {s.shape}")
    if s.size == 0:
        raise ValueError("impostor_scores is empty: a threshold needs at least one impostor pair")
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ValueError(f"impostor_scores must be finite, got {float(s[bad])} at index {bad}")
    n = s.size
    k = math.floor(target * n + 1e-9)  # the slack absorbs rounding: 0.29 * 100 = 28.99...6
    if k / n > target:  # but never past the target (0.0999999999999 of 10 is k = 0, not 1)
        k -= 1
    if k == 0:
        return float(np.nextafter(s.max(), np.inf))
    # the k-th largest score: index n - k of the ascending order
    v = np.partition(s, n - k)[n - k]
    if int(np.count_nonzero(s >= v)) <= k:
        return float(v)
    return float(np.nextafter(v, np.inf))
