r"""Calibration quality per group: ECE, KS and Brier score of P(genuine) against the labels.

For probabilities ``p`` and labels ``y`` (1 = genuine) of ``n`` pairs:

- ECE: ``Σ_b (n_b / n) |mean_b p − mean_b y|`` over ``bins`` equal-width bins of [0, 1]
  (bin ``min(⌊p · bins⌋, bins − 1)``);
- KS (Salvador et al. 2022, after Gupta et al. 2021): sort by ``p``; with cumulative sums
  ``P_k = (1/n) Σ_{m≤k} p_m`` and ``Y_k = (1/n) Σ_{m≤k} y_m``, ``KS = max_k |P_k − Y_k|``,
  taken only at the end of each run of tied ``p`` so the order within ties does not matter;
- Brier: ``mean (p − y)²``.

:func:`probability_from_scores` fits one global beta calibrator, so fixes whose output is a
score (thresholds, normalisation, FSN) can be judged on the same three numbers as FairCal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fairmetric.audit.posthoc._checks import group_label
from fairmetric.audit.posthoc.beta import BetaCalibrator, ScoreMapKind

__all__ = [
    "CalibrationReport",
    "brier_score",
    "calibration_by_group",
    "ece",
    "ks_calibration",
    "probability_from_scores",
]

METRICS = ("ece", "ks", "brier")


def _check(prob: object, genuine: object) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(genuine)
    if p.ndim != 1 or y.shape != p.shape:
        raise ValueError(
            f"prob and genuine must be 1-D of the same length, got {p.shape} and {y.shape}"
        )
    if p.size == 0:
        raise ValueError("prob is empty: calibration needs at least one pair")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("prob must hold finite probabilities in [0, 1]")
    return p, y.astype(np.float64)


def ece(prob: np.ndarray, genuine: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error over ``bins`` equal-width bins."""
    p, y = _check(prob, genuine)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    b = np.minimum((p * bins).astype(np.int64), bins - 1)
    # (n_b / n) |mean_b p - mean_b y| = |sum_b p - sum_b y| / n
    gap = np.abs(np.bincount(b, p, minlength=bins) - np.bincount(b, y, minlength=bins))
    return float(gap.sum() / p.size)


def ks_calibration(prob: np.ndarray, genuine: np.ndarray) -> float:
    """Largest distance between the cumulative predicted and observed curves (sorted by prob)."""
    p, y = _check(prob, genuine)
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    diff = np.cumsum(ps - ys) / p.size
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    return float(np.max(np.abs(diff[ends])))


def brier_score(prob: np.ndarray, genuine: np.ndarray) -> float:
    """Mean squared difference between the probability and the label."""
    p, y = _check(prob, genuine)
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class CalibrationReport:
    """ECE, KS and Brier score overall and per group.

    Attributes:
        overall: ``{"n", "ece", "ks", "brier"}`` over every pair given.
        by_group: group name → the same keys over the group's pairs (groups with no pair are
            left out).
    """

    overall: dict[str, float]
    by_group: dict[str, dict[str, float]] = field(default_factory=dict)

    def difference(self, metric: str) -> float:
        """Largest minus smallest per-group value of ``metric`` (``ece``, ``ks`` or ``brier``)."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        values = [g[metric] for g in self.by_group.values()]
        return float(max(values) - min(values)) if values else 0.0


def _summary(p: np.ndarray, y: np.ndarray, bins: int) -> dict[str, float]:
    return {
        "n": int(p.size),
        "ece": ece(p, y, bins),
        "ks": ks_calibration(p, y),
        "brier": brier_score(p, y),
    }


def calibration_by_group(
    prob: np.ndarray,
    genuine: np.ndarray,
    groups: np.ndarray,
    names: Sequence[str] | None = None,
    bins: int = 15,
) -> CalibrationReport:
    """Per-group ECE, KS and Brier score of pair probabilities.

    Args:
        prob: ``(P,)`` P(genuine) of each pair.
        genuine: ``(P,)`` bool labels.
        groups: ``(P,)`` group code of each pair; a negative code (e.g. ``-1`` for a cross-group
            pair, see :func:`~fairmetric.audit.posthoc.pair_groups`) counts only overall.
        names: names of the codes (default ``str(code)``).
        bins: equal-width ECE bins.
    """
    p, y = _check(prob, genuine)
    g = np.asarray(groups)
    if g.shape != p.shape:
        raise ValueError(f"groups must have shape {p.shape} (one code per pair), got {g.shape}")
    if g.size and not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"groups must hold integer codes, got dtype {g.dtype}")
    codes = np.unique(g[g >= 0]).tolist()
    if names is not None and codes and len(names) <= max(codes):
        raise ValueError(f"names has {len(names)} names but groups uses code {max(codes)}")
    by_group = {}
    for code in codes:
        label = str(names[code]) if names is not None else str(code)
        if label in by_group:
            raise ValueError(f"two groups are named {label!r} ({group_label(code, names or [])})")
        mask = g == code
        by_group[label] = _summary(p[mask], y[mask], bins)
    return CalibrationReport(_summary(p, y, bins), by_group)


def probability_from_scores(
    cal_scores: np.ndarray,
    cal_genuine: np.ndarray,
    *,
    score_map: ScoreMapKind = "minmax",
) -> Callable[[np.ndarray], np.ndarray]:
    """One global beta calibrator fitted on calibration scores; returns ``scores → P(genuine)``.

    ``score_map="minmax"`` (default) suits any score scale (shifted or standardised scores);
    ``"cosine"`` maps ``[-1, 1]`` to ``[0, 1]``.
    """
    return BetaCalibrator(score_map=score_map).fit(cal_scores, cal_genuine)
