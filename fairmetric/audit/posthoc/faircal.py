"""FairCal: per-cluster beta calibration of scores into probabilities, no attribute needed."""

from __future__ import annotations

from typing import Any

import numpy as np

from fairmetric.audit.posthoc._checks import PairSet
from fairmetric.audit.posthoc._clusters import ClusterFix
from fairmetric.audit.posthoc.beta import ScoreMap, beta_predict, fit_beta

__all__ = ["FairCal"]


class FairCal(ClusterFix):
    r"""FairCal (Salvador et al., ICLR 2022, "FairCal: Fairness Calibration for Face
    Verification"): k-means clusters, a beta calibrator per cluster.

    On the calibration split, cluster ``c``'s calibrator ``cal_c`` is fitted
    (:func:`~fairmetric.audit.posthoc.beta.fit_beta`) on the ``N_c`` calibration pairs with
    **either** row in ``c``. A pair's fixed score is its probability of being genuine:

    .. math:: p = \frac{N_{c(i)}\,\mathrm{cal}_{c(i)}(s) + N_{c(j)}\,\mathrm{cal}_{c(j)}(s)}
                       {N_{c(i)} + N_{c(j)}}

    A cluster whose pairs are all genuine or all impostor (or that has none) uses the global
    calibrator fitted on every calibration pair; when ``N_{c(i)} + N_{c(j)} = 0`` the two sides
    weigh equally.

    Args:
        n_clusters: k-means clusters; None: ``min(100, rows)``; more than the rows is an error.
        seed: k-means ``random_state``.
        n_init: k-means restarts.
        score_map: how scores map into (0, 1) for beta calibration: ``"cosine"`` (``(s + 1) / 2``)
            or ``"minmax"`` (calibration extremes → 0 and 1, e.g. for minus L2 distances).
    """

    name = "faircal"

    def __init__(
        self,
        *,
        n_clusters: int | None = None,
        seed: int = 0,
        n_init: int = 10,
        score_map: str = "cosine",
    ) -> None:
        self._init_clusters(n_clusters, seed, n_init)
        if score_map not in ("cosine", "minmax"):
            raise ValueError(
                f"{self.name}: score_map must be 'cosine' or 'minmax', got {score_map!r}"
            )
        self.score_map = score_map

    def _fit(self, pairs: PairSet) -> None:
        assert pairs.genuine is not None
        rows = self._fit_clusters(pairs)
        self.map = ScoreMap.fit(self.score_map, pairs.scores)
        u = self.map(pairs.scores)
        y = pairs.genuine
        if y.all() or not y.any():
            raise ValueError(
                f"{self.name}: the calibration pairs need both genuine and impostor pairs"
            )
        self.global_coef = fit_beta(u, y)
        ci, cj = rows[pairs.i], rows[pairs.j]
        k = self.centroids.shape[0]
        coefs = np.tile(self.global_coef, (k, 1))
        counts = np.zeros(k, dtype=np.int64)
        own = np.zeros(k, dtype=bool)
        for c in range(k):
            member = (ci == c) | (cj == c)
            counts[c] = int(member.sum())
            yc = y[member]
            if yc.any() and not yc.all():
                coefs[c] = fit_beta(u[member], yc)
                own[c] = True
        self.coefs, self.counts, self.own_calibrator = coefs, counts, own

    def _transform(self, pairs: PairSet) -> np.ndarray:
        ci, cj = self._clusters(pairs)
        u = self.map(pairs.scores)
        pi, pj = beta_predict(u, self.coefs[ci]), beta_predict(u, self.coefs[cj])
        ni, nj = self.counts[ci].astype(np.float64), self.counts[cj].astype(np.float64)
        total = ni + nj
        safe = np.where(total > 0, total, 1.0)
        return np.where(total > 0, (ni * pi + nj * pj) / safe, 0.5 * (pi + pj))

    def _state(self) -> dict[str, Any]:
        return {
            **self._cluster_state(),
            "score_lo": self.map.lo,
            "score_hi": self.map.hi,
            "global_coef": self.global_coef.tolist(),
            "coefs": self.coefs.tolist(),
            "counts": self.counts.tolist(),
            "own_calibrator": self.own_calibrator.astype(int).tolist(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        k = self._load_cluster_state(state)
        lo = float(self._array(state, "score_lo", ()))
        hi = float(self._array(state, "score_hi", ()))
        if not hi > lo:
            raise ValueError(f"{self.name}: saved state needs score_hi > score_lo")
        self.map = ScoreMap(self.score_map, lo, hi)  # type: ignore[arg-type]
        self.global_coef = self._array(state, "global_coef", (3,))
        self.coefs = self._array(state, "coefs", (k, 3))
        self.counts = self._array(state, "counts", (k,), dtype=np.int64)
        if np.any(self.counts < 0):
            raise ValueError(f"{self.name}: saved state 'counts' must be >= 0")
        self.own_calibrator = self._array(state, "own_calibrator", (k,), dtype=np.int64) != 0
