"""k-nearest-neighbour classifier on embeddings, with the exact, float64-ranked search.

A test point gets the majority label of its ``k`` nearest training points (uniform votes). Ties
between labels go to the **smallest label**, the rule of scikit-learn's ``KNeighborsClassifier``
(``weights="uniform"``), so both give the same predictions on the same data. Distances are
squared Euclidean (``"l2"``) or cosine (``"cosine"``); the search is
:func:`fairmetric.neighbors.search.search_vectors` over an exact faiss index, re-ranked in
float64, so near-ties below float32 resolution are resolved exactly.

**Ties in distance** at the ``k``-th neighbour (equal float64 scores, e.g. duplicate training
rows) follow the tie rule of :mod:`fairmetric.neighbors.ties`: the ``t`` members of the tied block
that straddles the cut-off share its ``m`` remaining slots, each voting with weight ``m/t``
(neighbours before the block vote with weight 1). The prediction therefore depends on distances
and labels only, never on the order of the training rows (scikit-learn, like faiss, keeps the
first rows in index order instead, so the two can differ on such data).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, get_args

import numpy as np

from fairmetric.downstream.base import DownstreamClassifier
from fairmetric.neighbors.index import NeighborIndex
from fairmetric.neighbors.search import Neighbours, search_vectors
from fairmetric.neighbors.ties import vote

__all__ = ["KNNClassifier"]

KNNMetric = Literal["cosine", "l2"]


class KNNClassifier(DownstreamClassifier):
    """Majority vote of the ``k`` nearest training embeddings (exact search, float64 order).

    Args:
        k: neighbours per query, ``1 <= k <= n_train``.
        metric: ``"cosine"`` or ``"l2"``.
        threads: OpenMP threads for faiss during the search (restored afterwards); ``None``
            leaves faiss's setting alone.
        batch_size: queries per search call (bounds memory to ``batch_size · k`` results).
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
        self._index = NeighborIndex(
            x, metric=self.metric, index="exact", threads=self.threads, use_gpu=False
        )
        self._codes = codes

    def kneighbors(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` nearest training rows of each row of ``x``, nearest
        first: float64 squared distances (``"l2"``) or cosine similarities (``"cosine"``);
        ``ids`` index the training rows. Tied rows are listed by index."""
        parts = list(self._search(self._check_query(x)))
        return (
            np.concatenate([nb.scores[:, : self.k] for nb in parts]),
            np.concatenate([nb.ids[:, : self.k] for nb in parts]),
        )

    def _search(self, x: np.ndarray) -> Iterator[Neighbours]:
        for s in range(0, max(len(x), 1), self.batch_size):
            yield search_vectors(self._index, x[s : s + self.batch_size], self.k, exact_scores=True)

    def _predict_codes(self, x: np.ndarray) -> np.ndarray:
        n_classes = len(self.classes_)
        return np.concatenate(
            [
                vote(
                    np.where(nb.present, self._codes[np.maximum(nb.ids, 0)], 0),
                    nb.start,
                    nb.end,
                    self.k,
                    n_classes,
                    present=nb.present,
                )
                for nb in self._search(x)
            ]
        )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k, "metric": self.metric}
