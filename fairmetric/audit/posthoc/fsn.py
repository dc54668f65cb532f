"""Fair score normalisation (FSN): per-cluster thresholds, no attribute needed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fairmetric.audit.posthoc._checks import PairSet
from fairmetric.audit.posthoc._clusters import ClusterFix
from fairmetric.audit.posthoc.base import check_int
from fairmetric.audit.posthoc.threshold import check_target_fmr, threshold_at_fmr

__all__ = ["FairScoreNormalisation"]


class FairScoreNormalisation(ClusterFix):
    r"""FSN (Terhörst et al. 2020, "Post-comparison mitigation of demographic bias in face
    recognition using fair score normalization"): k-means clusters stand in for the attribute.

    On the calibration split, ``t_g`` = :func:`threshold_at_fmr` of all impostor scores and, per
    cluster ``c``, ``t_c`` that of the impostor pairs with **both** rows in ``c``; then

    .. math:: s' = s - \tfrac12\big[(t_{c(i)} - t_g) + (t_{c(j)} - t_g)\big]

    A cluster with fewer than ``min_impostors`` such pairs keeps ``t_c = t_g`` (no shift): with
    fewer than ``1 / target_fmr`` pairs the threshold at the target is only the largest score, too
    noisy to use. ``min_impostors=None`` means ``ceil(1 / target_fmr)``.

    Args:
        target_fmr: the FMR at which the thresholds are set, in (0, 1).
        n_clusters: k-means clusters; None: ``min(100, rows)``; more than the rows is an error.
        seed: k-means ``random_state``.
        n_init: k-means restarts.
        min_impostors: fewest within-cluster impostor pairs for a cluster's own threshold.
    """

    name = "fsn"

    def __init__(
        self,
        *,
        target_fmr: float = 1e-3,
        n_clusters: int | None = None,
        seed: int = 0,
        n_init: int = 10,
        min_impostors: int | None = None,
    ) -> None:
        self.target_fmr = check_target_fmr(target_fmr, f"{self.name}: target_fmr")
        self._init_clusters(n_clusters, seed, n_init)
        if min_impostors is not None:
            min_impostors = check_int(min_impostors, "min_impostors", self.name)
        self.min_impostors = min_impostors

    def _min_impostors(self) -> int:
        if self.min_impostors is not None:
            return self.min_impostors
        return math.ceil(1.0 / self.target_fmr - 1e-9)

    def _fit(self, pairs: PairSet) -> None:
        rows = self._fit_clusters(pairs)
        imp = pairs.impostor()
        if not np.any(imp):
            raise ValueError(f"{self.name}: the calibration pairs have no impostor pair")
        self.global_threshold = threshold_at_fmr(pairs.scores[imp], self.target_fmr)
        ci, cj = rows[pairs.i], rows[pairs.j]
        within = imp & (ci == cj)
        k = self.centroids.shape[0]
        thresholds = np.full(k, self.global_threshold)
        counts = np.bincount(ci[within], minlength=k)
        for c in np.flatnonzero(counts >= self._min_impostors()).tolist():
            thresholds[c] = threshold_at_fmr(pairs.scores[within & (ci == c)], self.target_fmr)
        self.thresholds = thresholds
        self.impostor_counts = counts

    def _transform(self, pairs: PairSet) -> np.ndarray:
        ci, cj = self._clusters(pairs)
        offset = self.thresholds - self.global_threshold
        return pairs.scores - 0.5 * (offset[ci] + offset[cj])

    def _state(self) -> dict[str, Any]:
        return {
            **self._cluster_state(),
            "global_threshold": float(self.global_threshold),
            "thresholds": self.thresholds.tolist(),
            "impostor_counts": self.impostor_counts.tolist(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        k = self._load_cluster_state(state)
        self.thresholds = self._array(state, "thresholds", (k,))
        self.global_threshold = float(self._array(state, "global_threshold", ()))
        self.impostor_counts = self._array(state, "impostor_counts", (k,), dtype=np.int64)
