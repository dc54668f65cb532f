"""Per-epoch evaluation during training: exact Recall@k, overall and per attribute value.

A simple exact computation (chunked distance matrix + top-k) for the test split; the full audit
(faiss, many metrics, uncertainty) is :mod:`fairmetric.audit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fairmetric.embeddings import EmbeddingSet

__all__ = ["knn_hits", "recall_by_group"]


def knn_hits(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    ks: Sequence[int],
    *,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """For every query, whether one of its k nearest other samples (Euclidean) shares its label.

    Args:
        embeddings: ``(N, D)`` embeddings.
        labels: ``(N,)`` labels.
        ks: the k values.
        chunk_size: queries per distance block (memory ``chunk_size × N``).

    Returns:
        ``(hits, valid)``: ``hits`` is ``(N, len(ks))`` bool; ``valid`` marks the queries whose class
        has at least one other sample (only those count towards Recall@k).
    """
    x = np.asarray(embeddings)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"labels must have shape ({x.shape[0]},) to match embeddings, got {y.shape}"
        )
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x).all(1))
        raise ValueError(f"{bad.size} embedding rows contain NaN/Inf (first: {bad[:5].tolist()})")
    if y.size and (y.dtype.kind not in "iu" or y.min() < 0):
        raise ValueError("labels must be non-negative integer codes")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    # float64 on centred data: |q|^2 + |x|^2 - 2 q.x cancels badly in float32 far from the origin
    x = torch.from_numpy(x.astype(np.float64) - x.mean(0, dtype=np.float64))
    y = torch.from_numpy(y.astype(np.int64))
    n = x.shape[0]
    ks = [int(k) for k in ks]
    if max(ks) >= n:
        raise ValueError(f"k={max(ks)} needs more than {max(ks)} samples, got {n}")
    kmax = max(ks)
    hits = torch.zeros(n, len(ks), dtype=torch.bool)
    sq = (x * x).sum(1)
    for start in range(0, n, chunk_size):
        q = x[start : start + chunk_size]
        d = sq[start : start + len(q), None] + sq[None, :] - 2.0 * q @ x.T
        d[torch.arange(len(q)), torch.arange(start, start + len(q))] = float("inf")
        nn_idx = d.topk(kmax, dim=1, largest=False).indices
        same = y[nn_idx] == y[start : start + len(q), None]
        for j, k in enumerate(ks):
            hits[start : start + len(q), j] = same[:, :k].any(1)
    counts = torch.bincount(y)
    valid = counts[y] > 1
    return hits.numpy(), valid.numpy()


def recall_by_group(
    emb: EmbeddingSet, ks: Sequence[int] = (1,), attributes: Sequence[str] | None = None
) -> dict[str, Any]:
    """Recall@k overall and per value of each attribute.

    Returns:
        ``{"recall@k": {"overall": r, "by_group": {attribute: {value_name: r}}, "gap":
        {attribute: max - min}}}``; a group with no valid query gets ``None``.
    """
    hits, valid = knn_hits(emb.embeddings, emb.labels, ks)
    attributes = list(emb.attribute_names if attributes is None else attributes)
    out: dict[str, Any] = {}
    for j, k in enumerate(ks):
        h = hits[:, j]
        by_group: dict[str, dict[str, float | None]] = {}
        gaps: dict[str, float | None] = {}
        for a in attributes:
            col = emb.attribute(a)
            values = {}
            for v in np.unique(col):
                mask = (col == v) & valid
                values[emb.attribute_value_names[a][v]] = (
                    float(h[mask].mean()) if mask.any() else None
                )
            by_group[a] = values
            present = [r for r in values.values() if r is not None]
            gaps[a] = float(max(present) - min(present)) if len(present) > 1 else None
        out[f"recall@{k}"] = {
            "overall": float(h[valid].mean()) if valid.any() else None,
            "by_group": by_group,
            "gap": gaps,
        }
    return out
