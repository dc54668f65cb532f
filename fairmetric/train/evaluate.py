"""Per-epoch evaluation during training: exact Recall@k, overall and per attribute value, and the
embedding spread (mean resultant length, effective rank; METHODS.md §5) beside it.

Computed through the audit's own path (:func:`fairmetric.neighbors.search.iter_neighbours`:
an exact faiss search re-ranked in float64, then tie-averaged credit,
:func:`fairmetric.neighbors.ties.hit_probability`) with the audit's default metric, cosine, so the
Recall@k in ``metrics.jsonl`` equals the one in the audit's ``report.json`` for the same
embeddings, exactly. The spread is measured on the same rows as the audit's (unit rows under
cosine) with the audit's function, so its group values equal the report's ``mean_resultant_length``
and ``effective_rank`` too. The full audit (many metrics, uncertainty) is :mod:`fairmetric.audit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fairmetric.audit.metrics.spread import crossed, group_spread
from fairmetric.embeddings import EmbeddingSet
from fairmetric.neighbors.index import Metric, NeighborIndex
from fairmetric.neighbors.search import iter_neighbours
from fairmetric.neighbors.ties import hit_probability
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE, check_min_group_size

__all__ = ["evaluate_embeddings", "knn_hits", "recall_by_group", "spread_by_group"]

#: the spread entries logged beside Recall@k (the audit report's keys)
SPREAD_KEYS = ("mean_resultant_length", "effective_rank")


def knn_hits(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    ks: Sequence[int],
    *,
    metric: Metric = "cosine",
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """For every query, the credit for one of its k nearest other samples sharing its label.

    Without ties the credit is 1 (hit) or 0; when the ``k``-th neighbour is tied (equal float64
    score) with others outside the first ``k``, it is the probability of a hit under a random
    order of the tied block (hypergeometric, :func:`~fairmetric.neighbors.ties.hit_probability`).

    Args:
        embeddings: ``(N, D)`` embeddings.
        labels: ``(N,)`` labels.
        ks: the k values.
        metric: ``"cosine"`` (default, the audit's), ``"l2"`` (squared Euclidean) or ``"ip"``.
        chunk_size: queries per search block.

    Returns:
        ``(hits, valid)``: ``hits`` is ``(N, len(ks))`` float64 in ``[0, 1]``; ``valid`` marks the
        queries whose class has at least one other sample (only those count towards Recall@k).
    """
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
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
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    n = x.shape[0]
    ks = [int(k) for k in ks]
    if max(ks) >= n:
        raise ValueError(f"k={max(ks)} needs more than {max(ks)} samples, got {n}")
    y = y.astype(np.int64)
    hits = np.zeros((n, len(ks)))
    index = NeighborIndex(x, metric=metric, index="exact", use_gpu=False)
    for nb in iter_neighbours(index, max(ks), chunk_size=chunk_size):
        present = nb.present
        same = (y[np.where(present, nb.ids, 0)] == y[nb.rows][:, None]) & present
        for j, k in enumerate(ks):
            hits[nb.rows, j] = hit_probability(same, nb.start, nb.end, k)
    counts = np.bincount(y)
    valid = counts[y] > 1
    return hits, valid


def recall_by_group(
    emb: EmbeddingSet,
    ks: Sequence[int] = (1,),
    attributes: Sequence[str] | None = None,
    *,
    metric: Metric = "cosine",
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Recall@k overall and per value of each attribute (:func:`knn_hits`).

    Group values are ``sum(credit) / count`` over the group's valid queries, as the audit's
    metric frame computes them, so they equal the audit's ``recall@k`` bit for bit. As in the
    audit, a group with fewer than ``min_group_size`` valid queries keeps its value but is left
    out of the gap (and named under ``"not_compared"``).

    Returns:
        ``{"recall@k": {"overall": r, "by_group": {attribute: {value_name: r}}, "gap":
        {attribute: max - min}, "not_compared": {attribute: [value_name, ...]}}}``; a group
        with no valid query gets ``None``; ``"not_compared"`` lists only attributes with such
        groups.
    """
    min_group_size = check_min_group_size(min_group_size)
    hits, valid = knn_hits(emb.embeddings, emb.labels, ks, metric=metric)
    attributes = list(emb.attribute_names if attributes is None else attributes)
    out: dict[str, Any] = {}
    for j, k in enumerate(ks):
        h = hits[:, j]
        by_group: dict[str, dict[str, float | None]] = {}
        gaps: dict[str, float | None] = {}
        small: dict[str, list[str]] = {}
        for a in attributes:
            col = emb.attribute(a)
            values, counts = {}, {}
            for v in np.unique(col):
                mask = (col == v) & valid
                name = emb.attribute_value_names[a][v]
                counts[name] = int(mask.sum())
                values[name] = float(h[mask].sum() / float(mask.sum())) if mask.any() else None
            by_group[a] = values
            gaps[a] = _gap(values, counts, min_group_size, small, a)
        entry: dict[str, Any] = {
            "overall": float(h[valid].sum() / float(valid.sum())) if valid.any() else None,
            "by_group": by_group,
            "gap": gaps,
        }
        if small:
            entry["not_compared"] = small
        out[f"recall@{k}"] = entry
    return out


def _gap(
    values: dict[str, float | None],
    counts: dict[str, int],
    min_group_size: int,
    small: dict[str, list[str]],
    attribute: str,
) -> float | None:
    """max - min over the groups with a value and at least ``min_group_size`` samples; the
    groups with a value but fewer are added to ``small[attribute]``."""
    kept = [v for g, v in values.items() if v is not None and counts[g] >= min_group_size]
    left = [g for g, v in values.items() if v is not None and counts[g] < min_group_size]
    if left:
        small[attribute] = left
    return float(max(kept) - min(kept)) if len(kept) > 1 else None


def evaluate_embeddings(
    emb: EmbeddingSet,
    ks: Sequence[int] = (1,),
    attributes: Sequence[str] | None = None,
    *,
    metric: Metric = "cosine",
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """What each epoch's evaluation logs in ``metrics.jsonl``: :func:`recall_by_group` and,
    beside it, :func:`spread_by_group` (so a gap closed by collapsing the space shows); groups
    below ``min_group_size`` samples are kept out of the gaps, as in the audit."""
    return {
        **recall_by_group(emb, ks, attributes, metric=metric, min_group_size=min_group_size),
        **spread_by_group(emb, attributes, metric=metric, min_group_size=min_group_size),
    }


def spread_by_group(
    emb: EmbeddingSet,
    attributes: Sequence[str] | None = None,
    *,
    metric: Metric = "cosine",
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Mean resultant length and effective rank (METHODS.md §5) overall and per value of each
    attribute, on the rows the audit measures them on (unit rows under ``"cosine"``, normalised
    as the neighbour index normalises them; the embeddings otherwise).

    Computed by :func:`fairmetric.audit.metrics.spread.group_spread` (float64, one summation
    order), so the group values equal the audit's ``mean_resultant_length`` and
    ``effective_rank`` for the same embeddings.

    Returns:
        ``{"mean_resultant_length": {...}, "effective_rank": {...}}``, each ``{"overall": v,
        "by_group": {attribute: {value_name: v}}, "gap": {attribute: max - min}, "ratio":
        {attribute: min / max}}``; ``None`` where undefined (the effective rank of a group of one
        sample; the mean resultant length of a group of zero vectors). Groups with fewer than
        ``min_group_size`` samples keep their value but are left out of the gap and ratio (and
        named under ``"not_compared"``, only for attributes with such groups).
    """
    min_group_size = check_min_group_size(min_group_size)
    x = np.asarray(emb.embeddings)
    if metric == "cosine":  # as fairmetric.neighbors normalises rows: float64, then float32
        x64 = x.astype(np.float64)
        norms = np.linalg.norm(x64, axis=1)
        norms[norms == 0] = 1.0
        x = (x64 / norms[:, None]).astype(np.float32)
    attributes = list(emb.attribute_names if attributes is None else attributes)
    overall = group_spread(x, np.zeros(len(x), dtype=np.int64))
    out: dict[str, Any] = {
        key: {"overall": overall[key]["overall"], "by_group": {}, "gap": {}, "ratio": {}}
        for key in SPREAD_KEYS
    }
    small: dict[str, dict[str, list[str]]] = {key: {} for key in SPREAD_KEYS}
    # the audit pools each group from its attributes' crossed cells: the same bits here
    partition = crossed([emb.attribute(a) for a in attributes])
    for a in attributes:
        col = emb.attribute(a)
        names = list(emb.attribute_value_names[a])
        per = group_spread(x, col, names, partition=partition)
        counts = {names[c]: int(n) for c, n in enumerate(np.bincount(col, minlength=len(names)))}
        for key in SPREAD_KEYS:
            values = per[key]["by_group"]
            gap = _gap(values, counts, min_group_size, small[key], a)
            kept = [v for g, v in values.items() if v is not None and counts[g] >= min_group_size]
            out[key]["by_group"][a] = values
            out[key]["gap"][a] = gap
            out[key]["ratio"][a] = None if gap is None or max(kept) <= 0 else min(kept) / max(kept)
    for key in SPREAD_KEYS:
        if small[key]:
            out[key]["not_compared"] = small[key]
    return out
