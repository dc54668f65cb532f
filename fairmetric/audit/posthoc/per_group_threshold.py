"""Per-group thresholds, expressed as a score shift so that one global threshold applies."""

from __future__ import annotations

from typing import Any

import numpy as np

from fairmetric.audit.posthoc._checks import PairSet
from fairmetric.audit.posthoc._groupwise import GroupwiseFix
from fairmetric.audit.posthoc.threshold import check_target_fmr, threshold_at_fmr

__all__ = ["PerGroupThreshold"]


class PerGroupThreshold(GroupwiseFix):
    r"""One threshold per demographic group at the target FMR (needs the attribute).

    On the calibration split, ``τ_d`` = :func:`threshold_at_fmr` of group ``d``'s same-group
    impostor scores and ``τ_g`` that of all impostor scores. A pair's score moves by half of each
    side's group offset:

    .. math:: s' = s - \tfrac12\big[(τ_{d(i)} - τ_g) + (τ_{d(j)} - τ_g)\big]

    so a same-group pair of group ``d`` (``s' = s − τ_d + τ_g``) passes the global threshold
    ``τ_g`` exactly when ``s >= τ_d``: per-group thresholds, applied through one global one.
    A cross-group pair is compared with the mean of its two groups' thresholds. A group with
    fewer than ``1 / target_fmr`` same-group impostor pairs gets ``τ_d`` just above its largest
    impostor score (``k = 0`` in :func:`threshold_at_fmr`): collect more pairs for such groups.

    Args:
        target_fmr: the FMR at which every threshold is set, in (0, 1).
    """

    name = "per_group_threshold"

    def __init__(self, *, target_fmr: float = 1e-3) -> None:
        self.target_fmr = check_target_fmr(target_fmr, f"{self.name}: target_fmr")

    def _fit_groups(self, impostor_scores: np.ndarray, per_group: dict[int, np.ndarray]) -> None:
        self.global_threshold = threshold_at_fmr(impostor_scores, self.target_fmr)
        self.thresholds = np.array(
            [threshold_at_fmr(s, self.target_fmr) for s in per_group.values()]
        )

    def _transform(self, pairs: PairSet) -> np.ndarray:
        si, sj = self._slots(pairs)
        offset = self.thresholds - self.global_threshold
        return pairs.scores - 0.5 * (offset[si] + offset[sj])

    def _state(self) -> dict[str, Any]:
        return {
            **self._group_state(),
            "global_threshold": float(self.global_threshold),
            "thresholds": self.thresholds.tolist(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        n = self._load_group_state(state)
        self.thresholds = self._array(state, "thresholds", (n,))
        self.global_threshold = float(self._array(state, "global_threshold", ()))
