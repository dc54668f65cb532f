"""Scores of verification pairs, in float64 from the float32 rows, in a fixed summation order
(:class:`~fairmetric.neighbors.rerank.RowScorer`: the same on every CPU): cosine similarity, or
minus the Euclidean distance under ``"l2"``. Higher is more similar."""

from __future__ import annotations

import numpy as np

from fairmetric.neighbors.rerank import RowScorer

__all__ = ["pair_scores"]

_BLOCK = 65536  # pairs per block: about 64 MB of float64 rows at D = 128


def pair_scores(x: np.ndarray, i: np.ndarray, j: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """``(P,)`` float64 scores of the pairs ``(x[i], x[j])``, memory bounded (no N² matrix)."""
    if metric not in ("cosine", "l2"):
        raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}")
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    scorer = RowScorer(x, metric)
    out = np.empty(len(i))
    for s in range(0, len(i), _BLOCK):
        a = i[s : s + _BLOCK]
        q64 = np.asarray(x[a], dtype=np.float32).astype(np.float64)
        if metric == "cosine":
            # RowScorer's cosine divides by the rows' norms: the queries' come from q64 itself
            keys = scorer.keys(q64, np.arange(len(a)), j[s : s + _BLOCK])
            out[s : s + _BLOCK] = -keys
        else:
            keys = scorer.keys(q64, np.arange(len(a)), j[s : s + _BLOCK])
            out[s : s + _BLOCK] = -np.sqrt(keys)
    return out
