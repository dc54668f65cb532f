"""The one neighbour search of fairmetric: exact and approximate faiss indexes, chunked,
self-exclusion by index.

Layer 2 of the package (see ``tests/test_layers.py``): used by the audit, SMOTE, the k-NN
classifier and the per-epoch evaluation, so that every path computes neighbours the same way.
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

__all__ = [
    "IndexKind",
    "Metric",
    "NeighborIndex",
    "default_nlist",
    "knn_bruteforce",
    "nprobe_for_recall",
    "nprobe_needed",
]
