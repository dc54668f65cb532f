"""IVF settings of the neighbour search: the list count and the ``nprobe`` that reaches a target
Recall@1, measured on the data being indexed (see :class:`~fairmetric.neighbors.index.NeighborIndex`)."""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from fairmetric.neighbors.checks import _drop_self

__all__ = [
    "default_nlist",
    "default_nlist_pq",
    "default_pq_m",
    "nprobe_for_recall",
    "nprobe_needed",
    "probes_to_reach",
]


def default_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: ``round(4·sqrt(n))`` clamped to ``[16, 65536]`` and to
    ``n // 39`` (faiss wants at least 39 training points per centroid), and at least 1."""
    nlist = min(max(round(4 * math.sqrt(n)), 16), 65536, n // 39)
    return max(int(nlist), 1)


def default_nlist_pq(n: int) -> int:
    """IVF-PQ list count for ``n`` vectors: ``round(sqrt(n))`` clamped as :func:`default_nlist`.

    Fewer, longer lists than IVF-Flat's: a fast-scan list costs little to scan and much to train
    (k-means on ``39·nlist`` rows); 1000 lists at 1M train in about 2 s on 2 cores."""
    nlist = min(max(round(math.sqrt(n)), 16), 65536, n // 39)
    return max(int(nlist), 1)


def default_pq_m(d: int) -> int:
    """IVF-PQ code length: the largest divisor of ``d`` up to ``max(1, d // 4)`` (32 for 128,
    so one 4-bit number per 4 dimensions)."""
    top = max(1, d // 4)
    return max(m for m in range(1, top + 1) if d % m == 0)


def nprobe_needed(
    x: np.ndarray,
    quantizer: Any,
    nlist: int,
    *,
    metric: str,
    queries: int = 2000,
    seed: int = 0,
    gpu_resources: Any = None,
) -> np.ndarray:
    """For a seeded sample of query rows, the IVF ``nprobe`` each needs to find its true nearest
    neighbour (self excluded), sorted ascending.

    An ``IndexIVFFlat`` computes exact scores inside the lists it visits, so a query finds its
    true nearest neighbour exactly when the neighbour's list is among its ``nprobe`` nearest
    centroids. The true neighbour comes from an exact brute-force search of the sample against all
    of ``x`` (``faiss.knn``: no second copy of ``x``; ``queries / N`` of a full exact search), its
    list from the trained ``quantizer``, and the rank of that list among the query's centroids is
    what the query needs. Recall@1 at ``nprobe = p`` is then ``mean(needed <= p)``.

    Args:
        x: the ``(N, D)`` float32 rows as indexed (unit-norm under ``"cosine"``).
        quantizer: the trained L2 coarse quantizer (an ``IndexFlatL2`` of ``nlist`` centroids).
        nlist: number of lists.
        metric: the search metric (it defines the true neighbour).
        queries: sample size (all rows when ``N`` is smaller).
        seed: seed of the sample.
        gpu_resources: a ``faiss.StandardGpuResources`` to run the exact search on the GPU.
    """
    n = x.shape[0]
    m = min(n, queries)
    rows = np.sort(np.random.default_rng([seed, 1]).choice(n, m, replace=False))
    q = x[rows]
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if gpu_resources is not None:
        scores, ids = faiss.knn_gpu(gpu_resources, q, x, 2, metric=faiss_metric)
    else:
        scores, ids = faiss.knn(q, x, 2, metric=faiss_metric)
    nn = _drop_self(scores, ids, rows)[1][:, 0]
    need = probes_to_reach(q, x[nn], quantizer, nlist)
    need.sort()
    return need


def probes_to_reach(q: np.ndarray, targets: np.ndarray, quantizer: Any, nlist: int) -> np.ndarray:
    """For each query row ``q[i]``, the ``nprobe`` an IVF search needs to visit the list of the
    vector ``targets[i]``: one plus the number of centroids nearer to the query than that list's
    (float64 distances from the trained L2 ``quantizer``)."""
    target_list = np.asarray(quantizer.assign(np.ascontiguousarray(targets), 1))[:, 0]
    # np.asarray: once faiss.contrib.torch_utils is imported (pytorch-metric-learning does), faiss
    # methods without an array argument return torch tensors
    centroids = np.asarray(quantizer.reconstruct_n(0, nlist), dtype=np.float64)
    c_norm = (centroids**2).sum(axis=1)
    m = len(q)
    need = np.empty(m, dtype=np.int64)
    step = max(1, 2**21 // nlist)
    for start in range(0, m, step):
        qc = np.asarray(q[start : start + step], dtype=np.float64)
        dist = c_norm[None, :] - 2 * qc @ centroids.T  # ||q - c||² minus the constant ||q||²
        own = dist[np.arange(len(qc)), target_list[start : start + step]]
        need[start : start + step] = (dist < own[:, None]).sum(axis=1) + 1
    return need


def nprobe_for_recall(needed: np.ndarray, target_recall: float) -> int:
    """The smallest ``nprobe`` with ``mean(needed <= nprobe) >= target_recall`` (``needed``
    sorted, from :func:`nprobe_needed`)."""
    return int(needed[max(math.ceil(target_recall * len(needed)) - 1, 0)])
