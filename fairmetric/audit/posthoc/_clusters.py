"""Shared plumbing of the attribute-free fixes: k-means clusters of the calibration embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np

from fairmetric.audit.posthoc._checks import PairSet
from fairmetric.audit.posthoc.base import PosthocFix, check_int

__all__ = ["ClusterFix", "assign_clusters"]

#: clusters when ``n_clusters`` is None (Terhörst et al. 2020 and Salvador et al. 2022 use 100)
DEFAULT_CLUSTERS = 100


def assign_clusters(x: np.ndarray, centroids: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest centroid (squared L2 distance, float64) of each row of ``x``; ties go
    to the lower index."""
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(centroids, dtype=np.float64)
    c2 = np.einsum("kd,kd->k", c, c)
    out = np.empty(x.shape[0], dtype=np.int64)
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk]
        d2 = np.einsum("nd,nd->n", xb, xb)[:, None] - 2.0 * (xb @ c.T) + c2[None, :]
        out[start : start + chunk] = np.argmin(d2, axis=1)  # first minimum: the lower index
    return out


class ClusterFix(PosthocFix):
    """A fix with one set of numbers per k-means cluster of the calibration embeddings.

    ``fit`` runs scikit-learn's ``KMeans(n_clusters, random_state=seed, n_init=n_init)`` on the
    calibration rows (float64); every row, calibration or not, then belongs to its nearest stored
    centroid (:func:`assign_clusters`), so fit and transform assign clusters the same way.
    """

    needs_x = True

    centroids: np.ndarray

    def _init_clusters(self, n_clusters: int | None, seed: int, n_init: int) -> None:
        if n_clusters is not None:
            check_int(n_clusters, "n_clusters", self.name)
        self.n_clusters = None if n_clusters is None else int(n_clusters)
        self.seed = check_int(seed, "seed", self.name, minimum=0)
        self.n_init = check_int(n_init, "n_init", self.name)

    def _fit_clusters(self, pairs: PairSet) -> np.ndarray:
        """Fit k-means on ``pairs.x``; returns the cluster of every calibration row."""
        from sklearn.cluster import KMeans

        x = pairs.x
        assert x is not None
        n = x.shape[0]
        k = min(DEFAULT_CLUSTERS, n) if self.n_clusters is None else self.n_clusters
        if k > n:
            raise ValueError(
                f"{self.name}: n_clusters={k} is more than the {n} rows of the calibration "
                "embeddings: lower n_clusters or use more rows"
            )
        n_distinct = np.unique(x, axis=0).shape[0]
        if k > n_distinct:
            raise ValueError(
                f"{self.name}: n_clusters={k} is more than the {n_distinct} distinct rows of the "
                "calibration embeddings: lower n_clusters"
            )
        km = KMeans(n_clusters=k, random_state=self.seed, n_init=self.n_init).fit(x)
        self.centroids = np.asarray(km.cluster_centers_, dtype=np.float64)
        return assign_clusters(x, self.centroids)

    def _clusters(self, pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
        """Per pair: the cluster of each side."""
        assert pairs.x is not None
        if pairs.x.shape[1] != self.centroids.shape[1]:
            raise ValueError(
                f"{self.name}: x has {pairs.x.shape[1]} columns but the fix was fitted on "
                f"{self.centroids.shape[1]}-dimensional embeddings"
            )
        rows = assign_clusters(pairs.x, self.centroids)
        return rows[pairs.i], rows[pairs.j]

    def _cluster_state(self) -> dict[str, Any]:
        return {"centroids": self.centroids.tolist()}

    def _load_cluster_state(self, state: dict[str, Any]) -> int:
        self.centroids = self._array(state, "centroids", (None, None))
        if self.centroids.shape[0] == 0:
            raise ValueError(f"{self.name}: saved state 'centroids' is empty")
        return int(self.centroids.shape[0])
