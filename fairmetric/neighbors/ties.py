"""The tie rule: tie-averaged credit for neighbour metrics, tie weights for neighbour votes.

A ranked neighbour list is a sequence of **tie blocks**: maximal runs of neighbours whose float64
scores are equal (duplicate rows, or rows equidistant from the query). Positions are 0-based; the
block of position ``p`` is ``[start[p], end[p])``, of size ``t = end[p] - start[p]``. Near-ties
below float32 resolution are *not* ties: :mod:`fairmetric.neighbors.search` resolves them in
float64 first, so only real ties are left.

Every order of the members of a tie block is an equally valid ranking. Rather than pick one (by
row index, as faiss does), fairmetric uses one rule that depends only on the scores, so it does not
change with ``k``, the index type, faiss's IP or L2 kernels, the CPU, or the order of the rows:

**Tie-averaged credit** (the metrics). A metric gets its expected value under a uniformly random
order of every tie block (blocks independent):

- *hit within the first ``c``* (Recall@c): let the block of position ``c-1`` be ``[s, e)`` with
  ``t`` members of which ``b`` are relevant, ``m = c - s`` of its members inside the cut-off, and
  ``h`` relevant neighbours before ``s``. Then ``credit = 1`` if ``h > 0``, else the
  hypergeometric probability that one of the ``m`` slots holds a relevant member,
  ``1 - C(t-b, m) / C(t, m) = 1 - Π_{j<m} (t-b-j)/(t-j)``.
- *count within the first ``c``* (homophily's numerator and denominator, precision): the expected
  count, ``h + m·b/t``. A ratio of two counts (homophily) is the ratio of their expectations.
- *average precision* (MAP@R): ``AP = (1/R) Σ_{p<L} rel(p)·C(p)/(p+1)`` with ``C(p)`` the
  relevant count up to and including ``p`` and ``L = min(R, K)``. By linearity its expectation is
  ``(1/R) Σ_{p<L} [ (b/t)(1+H) + (p-s)·b(b-1)/(t(t-1)) ] / (p+1)``, where ``[s, e)`` is ``p``'s
  block with ``b`` relevant of ``t`` and ``H`` the relevant count before ``s``: a member is
  relevant with probability ``b/t``, and two members of the same block both with
  ``b(b-1)/(t(t-1))`` (the exact expected AP under random tie order, as McSherry & Najork 2008
  compute tie-aware measures).

Without ties (``t = 1`` everywhere) each formula is the usual one, bit for bit.

**Tie weights** (selections: a vote, a pick among the ``c`` nearest). The members of the block
that straddles the cut-off, ``[s, e)`` with ``m = c - s`` slots for ``t`` members, share those
slots: each gets weight ``m/t``, every neighbour before ``s`` weight 1 (a random tie order gives
each member a slot with probability ``m/t``). Weights are kept as integers scaled by ``t``
(``t`` before ``s``, ``m`` inside the block), so equal vote totals compare exactly. How a vote
tie between values is broken is the caller's rule (:func:`vote`).

Missing neighbours (id ``-1``, from an approximate index) are singleton blocks with no credit
and no weight.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "blocks_from_equal",
    "expected_average_precision",
    "expected_count",
    "hit_probability",
    "tie_weights",
    "vote",
]


def blocks_from_equal(same_as_next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tie blocks ``(start, end)``, each ``(q, W)`` int64, from ``same_as_next (q, W-1)`` bool:
    whether position ``p+1`` is tied with position ``p``."""
    q, w1 = same_as_next.shape
    w = w1 + 1
    pos = np.broadcast_to(np.arange(w, dtype=np.int64), (q, w))
    new = np.ones((q, w), dtype=bool)
    new[:, 1:] = ~same_as_next
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones((q, w), dtype=bool)  # position p is the last of its block
    last[:, :-1] = ~same_as_next
    end = np.minimum.accumulate(np.where(last, pos + 1, w)[:, ::-1], axis=1)[:, ::-1]
    return start, np.ascontiguousarray(end)


def _cutoff(start: np.ndarray, end: np.ndarray, c: int) -> tuple[np.ndarray, ...]:
    """Block ``[s, e)`` of position ``c-1`` for every query, its size ``t`` and slots ``m``."""
    if not 1 <= c <= start.shape[1]:
        raise ValueError(f"cut-off c={c} must be in [1, {start.shape[1]}] (the list's width)")
    s = start[:, c - 1]
    e = end[:, c - 1]
    return s, e, e - s, c - s


def _prefix(prop: np.ndarray) -> np.ndarray:
    """``(q, W+1)`` prefix sums of ``prop`` with a leading 0 column."""
    q = prop.shape[0]
    out = np.zeros((q, prop.shape[1] + 1), dtype=np.float64)
    np.cumsum(prop, axis=1, dtype=np.float64, out=out[:, 1:])
    return out


def expected_count(prop: np.ndarray, start: np.ndarray, end: np.ndarray, c: int) -> np.ndarray:
    """Expected number of positions with ``prop`` among the first ``c`` under random tie order.

    ``h + m·b/t``: ``h`` = count before the cut-off block ``[s, e)``, ``b`` = count inside it,
    ``m = c - s`` of its ``t`` members within the cut-off. Exact integers without ties.

    Args:
        prop: ``(q, W)`` bool or 0/1 property of each ranked neighbour (0 for missing ones).
        start, end: the tie blocks (:func:`blocks_from_equal`).
        c: the cut-off, ``1 <= c <= W``.

    Returns:
        ``(q,)`` float64.
    """
    s, e, t, m = _cutoff(start, end, c)
    pre = _prefix(prop)
    rows = np.arange(len(s))
    before = pre[rows, s]
    inside = pre[rows, e] - before
    return before + m * inside / t


def hit_probability(prop: np.ndarray, start: np.ndarray, end: np.ndarray, c: int) -> np.ndarray:
    """Probability that one of the first ``c`` positions has ``prop``, under random tie order.

    1 when a neighbour before the cut-off block has it; otherwise the hypergeometric
    ``1 - Π_{j<m} (t-b-j)/(t-j)`` for ``b`` of the block's ``t`` members having it and ``m``
    slots. Exactly 0 or 1 without ties.

    Returns:
        ``(q,)`` float64 in ``[0, 1]``.
    """
    s, e, t, m = _cutoff(start, end, c)
    pre = _prefix(prop)
    rows = np.arange(len(s))
    before = pre[rows, s]
    b = pre[rows, e] - before
    out = (before > 0).astype(np.float64)
    open_ = (before == 0) & (b > 0)
    tied = open_ & (t > 1)
    out[open_ & (t == 1)] = 1.0
    if tied.any():
        tt, bb, mm = t[tied].astype(np.float64), b[tied], m[tied]
        miss = np.ones(len(tt))
        for j in range(int(mm.max())):
            # rows with j >= m are left as they are; their t - j may be 0 (m <= t always)
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.maximum(tt - bb - j, 0.0) / (tt - j)
            miss = np.where(j < mm, miss * factor, miss)
        out[tied] = 1.0 - miss
    return out


def expected_average_precision(
    rel: np.ndarray, start: np.ndarray, end: np.ndarray, r: np.ndarray, k: int
) -> np.ndarray:
    """Expected average precision at ``R`` (PML's MAP@R) under random tie order.

    ``(1/R) Σ_{p<L} [(b/t)(1+H) + (p-s)·b(b-1)/(t(t-1))] / (p+1)`` with ``L = min(R, k)``; see
    the module docstring. Positions at or beyond ``k`` count as misses even when a tie block
    reaching past ``k`` holds relevant members (they still raise ``b/t`` inside the list).

    Args:
        rel: ``(q, W)`` relevance (same class as the query), 0 for missing neighbours.
        start, end: the tie blocks.
        r: ``(q,)`` number of relevant rows in the whole set (0 gives AP 0).
        k: the list length the metric may use, ``<= W``.

    Returns:
        ``(q,)`` float64.
    """
    q, w = rel.shape
    k = min(int(k), w)
    pre = _prefix(rel)
    rows = np.arange(q)[:, None]
    s, e = start[:, :k], end[:, :k]
    t = (e - s).astype(np.float64)
    before = pre[rows, s]
    b = pre[rows, e] - before
    pos = np.arange(k)
    pair = np.where(t > 1, b * (b - 1) / np.where(t > 1, t * (t - 1), 1.0), 0.0)
    term = ((b / t) * (1.0 + before) + (pos[None, :] - s) * pair) / (pos[None, :] + 1)
    term[pos[None, :] >= np.asarray(r)[:, None]] = 0.0
    total = term.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, total / np.maximum(r, 1), 0.0)


def tie_weights(
    start: np.ndarray, end: np.ndarray, c: int, present: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights of the first ``c`` positions, scaled by the cut-off block's size.

    Returns:
        ``(weights (q, W) int64, scale (q,) int64)``: ``weights / scale`` is 1 before the
        cut-off block ``[s, e)``, ``m/t`` for its members, 0 after it (and for missing
        neighbours when ``present`` is given). Rows sum to ``c·scale`` when nothing is missing.
    """
    s, e, t, m = _cutoff(start, end, c)
    pos = np.arange(start.shape[1])[None, :]
    w = np.where(pos < s[:, None], t[:, None], np.where(pos < e[:, None], m[:, None], 0))
    if present is not None:
        w = np.where(present, w, 0)
    return w.astype(np.int64), t.astype(np.int64)


def vote(
    values: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    c: int,
    n_values: int,
    *,
    present: np.ndarray | None = None,
    nearest_first: bool = False,
) -> np.ndarray:
    """Weighted majority vote of the first ``c`` neighbours with :func:`tie_weights`.

    A vote tie (equal weight totals, compared exactly as integers) goes, with
    ``nearest_first=True``, to the value that appears at the nearest rank (a tie block's members
    all sit at the block's first rank), then to the **smallest code**; with
    ``nearest_first=False`` straight to the smallest code (scikit-learn's rule). All of this
    depends on scores and codes only, never on row order.

    Args:
        values: ``(q, W)`` int codes in ``[0, n_values)`` of the ranked neighbours.
        start, end: the tie blocks.
        c: voters (the cut-off).
        n_values: number of possible codes.
        present: ``(q, W)`` bool, False for missing neighbours (they do not vote).
        nearest_first: break vote ties by nearest appearance before the smallest code.

    Returns:
        ``(q,)`` int64 winning codes (0 when nobody votes).
    """
    q, w = values.shape
    weights, _ = tie_weights(start, end, c, present)
    voting = weights > 0
    safe = np.where(voting, values, 0)
    if n_values <= 64:
        score = np.empty((q, n_values), dtype=np.int64)
        for v in range(n_values):
            is_v = (safe == v) & voting
            score[:, v] = np.where(is_v, weights, 0).sum(axis=1)
            if nearest_first:
                first = np.where(is_v, start, c).min(axis=1)
                score[:, v] = score[:, v] * (c + 1) + (c - first)
    else:
        r, p = np.nonzero(voting)
        score = np.zeros((q, n_values), dtype=np.int64)
        np.add.at(score, (r, safe[r, p]), weights[r, p])
        if nearest_first:
            first = np.full((q, n_values), c, dtype=np.int64)
            np.minimum.at(first, (r, safe[r, p]), start[r, p])
            score = score * (c + 1) + (c - first)
    return score.argmax(axis=1)  # first maximum: the smallest code
