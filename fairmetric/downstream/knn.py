"""k-nearest-neighbour classifier on embeddings, with exact faiss search.

A test point gets the majority label of its ``k`` nearest training points (uniform votes). Ties
between labels go to the **smallest label**, the rule of scikit-learn's ``KNeighborsClassifier``
(``weights="uniform"``), so both give the same predictions on the same data. Distances are
squared Euclidean (``"l2"``) or cosine (``"cosine"``: inner products of unit-normalised rows);
the search is exact (``faiss.knn``, brute force). Ties in *distance* at the ``k``-th neighbour
are broken by faiss's order, which need not be scikit-learn's.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np

from fairmetric.downstream.base import DownstreamClassifier
from fairmetric.utils import faiss_threads

__all__ = ["KNNClassifier"]

KNNMetric = Literal["cosine", "l2"]


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"{name} has {zero.size} zero-norm row(s) (first at {zero[:5].tolist()}); cosine "
            "similarity is undefined for them: drop them or use metric='l2'"
        )
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


class KNNClassifier(DownstreamClassifier):
    """Majority vote of the ``k`` nearest training embeddings (exact faiss search).

    Args:
        k: neighbours per query, ``1 <= k <= n_train``.
        metric: ``"cosine"`` or ``"l2"``.
        threads: OpenMP threads for faiss during the search (restored afterwards); ``None``
            leaves faiss's setting alone.
        batch_size: queries per faiss call (bounds memory to ``batch_size · k`` results).
    """

    name = "knn"

    def __init__(
        self,
        *,
        k: int = 5,
        metric: KNNMetric = "cosine",
        threads: int | None = None,
        batch_size: int = 16384,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if metric not in get_args(KNNMetric):
            raise ValueError(f"unknown metric {metric!r}; valid values: 'cosine', 'l2'")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.k = int(k)
        self.metric: KNNMetric = metric
        self.threads = threads
        self.batch_size = batch_size

    def _check_train_size(self, n: int) -> None:
        if self.k > n:
            raise ValueError(
                f"k={self.k} is larger than the training set ({n} rows); lower k to at most {n}"
            )

    def _fit(self, x: np.ndarray, codes: np.ndarray) -> None:
        self._train = _unit_rows(x, "x") if self.metric == "cosine" else x
        self._codes = codes

    def kneighbors(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` nearest training rows of each row of ``x``, nearest
        first: squared distances (``"l2"``) or cosine similarities (``"cosine"``); ``ids`` index
        the training rows."""
        return self._search(self._check_query(x))

    def _search(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if self.metric == "cosine":
            x = _unit_rows(x, "x")
        metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        parts = []
        with faiss_threads(self.threads):
            for start in range(0, len(x), self.batch_size):
                block = x[start : start + self.batch_size]
                s, i = faiss.knn(block, self._train, self.k, metric=metric)
                # np.asarray: pytorch-metric-learning patches faiss to return tensors at times
                parts.append((np.asarray(s), np.asarray(i, dtype=np.int64)))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _predict_codes(self, x: np.ndarray) -> np.ndarray:
        _, ids = self._search(x)
        if (ids < 0).any():  # pragma: no cover - exact search with k <= n always fills
            raise RuntimeError("faiss returned fewer neighbours than k")
        votes = self._codes[ids]  # (q, k)
        n_classes = len(self.classes_)
        flat = (np.arange(len(votes))[:, None] * n_classes + votes).ravel()
        counts = np.bincount(flat, minlength=len(votes) * n_classes).reshape(-1, n_classes)
        return counts.argmax(axis=1)  # first maximum: the smallest label wins a tie

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k, "metric": self.metric}
