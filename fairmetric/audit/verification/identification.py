"""Rank-1 identification errors by group: for every sample whose identity has another sample, is
its nearest other sample (exact search, float64 re-ranked) of another identity, and of which
group? The verification counterpart of the audit's Recall@1, split by where the error lands.
With a gallery, each probe whose identity is enrolled is searched against the gallery.

A tie at rank 1 (equal float64 scores) shares the query's one unit of error equally among the
tied samples (the audit's tie rule, :mod:`fairmetric.neighbors.ties`), so the numbers do not
depend on the index or the row order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from fairmetric.neighbors.index import NeighborIndex
from fairmetric.neighbors.search import iter_neighbours, search_vectors

__all__ = ["identification_errors"]


def _chunks(x: np.ndarray, metric: str, n_probes: int | None) -> Iterator[tuple[np.ndarray, Any]]:
    """``(query rows, Neighbours)`` at rank 1: every row against the others, or the probes (rows
    ``< n_probes``) against the gallery (the rest; neighbour ids are then gallery positions)."""
    if n_probes is None:
        index = NeighborIndex(x, metric=metric, index="exact", use_gpu=False)
        for nb in iter_neighbours(index, 1, chunk_size=2048):
            yield np.asarray(nb.rows), nb
        return
    index = NeighborIndex(x[n_probes:], metric=metric, index="exact", use_gpu=False)
    for s in range(0, n_probes, 2048):
        nb = search_vectors(index, x[s : min(s + 2048, n_probes)], 1)
        yield np.arange(s, s + len(nb.ids), dtype=np.int64), nb


def identification_errors(
    x: np.ndarray,
    labels: np.ndarray,
    groups: dict[str, np.ndarray],
    metric: str = "cosine",
    n_probes: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per attribute: ``matrix[d, e]`` = share of group ``d``'s queries whose rank-1 neighbour is
    a *wrong* identity in group ``e`` (a row sums to the group's rank-1 error rate) and
    ``queries[d]`` = its queries (samples whose identity has another sample to be found).

    Args:
        x: ``(N, D)`` embeddings.
        labels: ``(N,)`` identity codes.
        groups: ``{attribute: (N,) group codes}``.
        metric: ``"cosine"`` or ``"l2"``.
        n_probes: with a gallery: rows ``< n_probes`` are probes searched against the other rows
            (the gallery); a probe is a query when its identity is enrolled in the gallery.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if n_probes is None:
        counts = np.bincount(labels)
        valid = counts[labels] > 1
    else:
        valid = np.zeros(len(labels), dtype=bool)
        valid[:n_probes] = np.isin(labels[:n_probes], labels[n_probes:])
    offset = 0 if n_probes is None else n_probes
    weights = []  # (query rows, neighbour rows, weight of a wrong neighbour)
    for rows, nb in _chunks(x, metric, n_probes):
        size = (nb.end[:, 0] - nb.start[:, 0]).astype(np.float64)
        for col in range(nb.ids.shape[1]):
            ids = np.where(nb.ids[:, col] >= 0, nb.ids[:, col] + offset, -1)
            take = (col < nb.end[:, 0]) & (ids >= 0)
            take &= labels[np.where(ids >= 0, ids, 0)] != labels[rows]
            take &= valid[rows]
            if take.any():
                weights.append((rows[take], ids[take], 1.0 / size[take]))
    q = np.concatenate([w[0] for w in weights]) if weights else np.zeros(0, np.int64)
    n = np.concatenate([w[1] for w in weights]) if weights else np.zeros(0, np.int64)
    w = np.concatenate([w[2] for w in weights]) if weights else np.zeros(0)
    out = {}
    for name, codes in groups.items():
        codes = np.asarray(codes, dtype=np.int64)
        g = int(codes.max()) + 1 if codes.size else 0
        errors = np.zeros((g, g))
        np.add.at(errors, (codes[q], codes[n]), w)
        queries = np.bincount(codes[valid], minlength=g).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = errors / queries[:, None]
        matrix[queries == 0] = np.nan
        out[name] = {"matrix": matrix, "queries": queries}
    return out
