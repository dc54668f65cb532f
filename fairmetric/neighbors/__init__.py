"""The one neighbour search of fairmetric: exact and approximate faiss indexes, chunked,
self-exclusion by index, float64 re-ranking of the candidates and one tie rule.

Layer 2 of the package (see ``tests/test_layers.py``): used by the audit, SMOTE, the k-NN
classifier and the per-epoch evaluation, so that every path computes neighbours the same way.

- :mod:`~fairmetric.neighbors.index`: :class:`NeighborIndex`, the faiss index (float32 scores);
- :mod:`~fairmetric.neighbors.rerank`: float64 scores from the rows and the float32 error bound;
- :mod:`~fairmetric.neighbors.search`: :func:`iter_neighbours`, :func:`search_rows`,
  :func:`search_vectors` → :class:`Neighbours` in float64 order with exact tie blocks;
- :mod:`~fairmetric.neighbors.ties`: the tie rule (tie-averaged credit, tie weights for votes).
"""

from fairmetric.neighbors.index import (
    IndexKind,
    Metric,
    NeighborIndex,
    default_nlist,
    knn_bruteforce,
    nprobe_for_recall,
    nprobe_needed,
)
from fairmetric.neighbors.search import (
    DEFAULT_MARGIN,
    Neighbours,
    iter_neighbours,
    search_rows,
    search_rows_exact,
    search_vectors,
)

__all__ = [
    "DEFAULT_MARGIN",
    "IndexKind",
    "Metric",
    "NeighborIndex",
    "Neighbours",
    "default_nlist",
    "iter_neighbours",
    "knn_bruteforce",
    "nprobe_for_recall",
    "nprobe_needed",
    "search_rows",
    "search_rows_exact",
    "search_vectors",
]
