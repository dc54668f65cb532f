"""The one neighbour search: faiss candidates, re-ranked in float64, with exact tie blocks.

Every consumer (the audit, SMOTE, the k-NN classifier, the per-epoch evaluation) calls
:func:`iter_neighbours`, :func:`search_rows` or :func:`search_vectors` on a
:class:`~fairmetric.neighbors.index.NeighborIndex` and gets :class:`Neighbours`: the ``k`` nearest
rows of each query in **float64 order**, with the query's own row excluded by index, and the
**tie blocks** of the list (:mod:`fairmetric.neighbors.ties` turns them into tie-averaged credit).

How (per chunk of queries, all vectorised):

1. faiss (exact, IVF or HNSW) returns ``k + margin`` candidates with float32 scores.
2. Candidates whose float32 scores lie within twice the float32 error bound of a neighbour in the
   list (:meth:`~fairmetric.neighbors.rerank.RowScorer.error_bound`) form *ambiguous runs*; only
   their members are scored again in float64 from the rows, and each run is re-sorted by
   ``(float64 score, row id)``. Runs are separated by gaps larger than the error, so this is the
   exact float64 order of the whole list; other candidates keep their float32 score (within the
   bound of the float64 one).
3. Boundary: if the ``k``-th candidate's float32 score is within twice the bound of the last
   candidate's, rows outside the list could still tie with or beat it. Those queries (rare) are
   searched again exactly (brute force over the index's rows) with twice as many candidates,
   until the list reaches past the ``k``-th by more than the error or holds every row. The tie
   block at position ``k-1`` is then complete.
   These queries come in separate pieces of bounded size (:func:`iter_neighbours`).
4. Tie blocks are runs of equal float64 score. Within a block neighbours are listed by row id
   (only so the output is deterministic; metrics never depend on it). The list is cut after
   ``k`` but extended to the end of the block at position ``k-1``, so its width ``W >= k``.

Approximate indexes: the re-ranking and tie blocks are the same; the boundary step applies when
the index returned a full list, but an approximate index may still miss rows (a list it could not
fill keeps its ``-1`` slots and is taken as the index's answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fairmetric.neighbors.index import NeighborIndex, _check_queries
from fairmetric.neighbors.rerank import RowScorer
from fairmetric.neighbors.ties import blocks_from_equal

__all__ = [
    "DEFAULT_MARGIN",
    "Neighbours",
    "iter_neighbours",
    "search_rows",
    "search_rows_exact",
    "search_vectors",
]

#: extra faiss candidates per query beyond k, so near-ties at the cut-off are resolved in float64
DEFAULT_MARGIN = 8
# the most results (queries x width) one refined piece may hold before it is split
_PIECE_RESULTS = 1 << 23


@dataclass
class Neighbours:
    """Ranked neighbours of some queries, with their tie blocks.

    Attributes:
        rows: ``(q,)`` query row indices into the indexed set, or ``None`` for outside vectors.
        ids: ``(q, W)`` int64 neighbour rows, nearest first, ``W >= k``; columns past ``k`` hold
            the rest of the tie block at position ``k-1`` (``-1`` elsewhere, and for neighbours an
            approximate index did not find).
        scores: ``(q, W)`` float64 scores (squared distance for ``"l2"``, similarity otherwise):
            the float64 value for re-ranked candidates, faiss's float32 value otherwise; NaN for
            ``-1``.
        start, end: ``(q, W)`` int64 tie block ``[start, end)`` of each position.
        k: the requested number of neighbours.
        reranked: ``(q,)`` whether some candidates of the query were re-scored in float64.
        expanded: ``(q,)`` whether the query needed the exact boundary search.
        positions: ``(q,)`` position of each query in the call that searched it (pieces of
            :func:`iter_neighbours` may come out of order when queries needed the boundary
            search; use :attr:`rows`).
    """

    rows: np.ndarray | None
    ids: np.ndarray
    scores: np.ndarray
    start: np.ndarray
    end: np.ndarray
    k: int
    reranked: np.ndarray
    expanded: np.ndarray
    positions: np.ndarray

    @property
    def present(self) -> np.ndarray:
        """``(q, W)`` bool: the slot holds a neighbour."""
        return self.ids >= 0

    @property
    def tied(self) -> np.ndarray:
        """``(q,)`` bool: two neighbours among the first ``k`` (with the cut-off block) are tied
        in float64, so the tie rule decides something for this query."""
        size = self.end - self.start
        return ((size > 1) & self.present).any(axis=1)

    def __len__(self) -> int:
        return len(self.ids)


# ----------------------------------------------------------------------------- refinement


def _keys32(scores: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    key = scores.astype(np.float64) if metric == "l2" else -scores.astype(np.float64)
    return np.where(ids >= 0, key, np.inf)


def _rank(
    scorer: RowScorer,
    q64: np.ndarray,
    scores32: np.ndarray,
    ids: np.ndarray,
    k: int,
    eps: np.ndarray,
    exact_scores: bool,
) -> tuple[np.ndarray, ...]:
    """Re-rank candidate lists (already sorted by float32 score); see the module docstring.

    Returns ``(ids, keys, scored, boundary_ok)``: ids sorted by float64 order, sort keys
    (float64 where ``scored``), and whether the list certainly holds the whole block of the
    ``k``-th neighbour (rows outside it are farther).
    """
    q, width = ids.shape
    key = _keys32(scores32, ids, scorer.metric)
    present = ids >= 0
    with np.errstate(invalid="ignore"):
        link = np.diff(key, axis=1) <= 2 * eps[:, None]  # inf - inf = nan: not linked
    scored = np.zeros((q, width), dtype=bool)
    scored[:, :-1] |= link
    scored[:, 1:] |= link
    if exact_scores:
        scored[:, :k] |= present[:, :k]
    scored &= present
    # boundary: the k-th is farther than the error from the last candidate, or the list is short
    full = present.all(axis=1)
    with np.errstate(invalid="ignore"):
        gap_ok = key[:, -1] - key[:, k - 1] > 2 * eps
    boundary_ok = ~full | gap_ok
    qi, pj = np.nonzero(scored)
    if len(qi):
        key = key.copy()
        key[qi, pj] = scorer.keys(q64, qi, ids[qi, pj])
        touched = np.unique(qi)
        sub_key, sub_ids = key[touched], ids[touched]
        order = np.lexsort((sub_ids, sub_key))
        key[touched] = np.take_along_axis(sub_key, order, axis=1)
        ids = ids.copy()
        ids[touched] = np.take_along_axis(sub_ids, order, axis=1)
        scored[touched] = np.take_along_axis(scored[touched], order, axis=1)
    return ids, key, scored, boundary_ok


def _finish(
    scorer: RowScorer,
    positions: np.ndarray,
    rows: np.ndarray | None,
    ids: np.ndarray,
    key: np.ndarray,
    scored: np.ndarray,
    k: int,
    expanded: bool,
) -> Neighbours:
    """Tie blocks, cut after the block at position ``k-1``."""
    same = scored[:, 1:] & scored[:, :-1] & (key[:, 1:] == key[:, :-1])
    start, end = blocks_from_equal(same)
    width = int(max(k, end[:, k - 1].max())) if len(ids) else k
    ids, key, start, end = ids[:, :width], key[:, :width], start[:, :width], end[:, :width]
    keep = np.arange(width)[None, :] < np.maximum(end[:, k - 1], k)[:, None]
    ids = np.where(keep, ids, -1)
    present = ids >= 0
    pos = np.broadcast_to(np.arange(width), ids.shape)
    start = np.where(present, start, pos)
    end = np.where(present, np.minimum(end, width), pos + 1)
    scores = np.where(present, scorer.scores_from_keys(key), np.nan)
    return Neighbours(
        rows=None if rows is None else rows[positions],
        ids=ids,
        scores=scores,
        start=start,
        end=end,
        k=k,
        reranked=scored[:, :width].any(axis=1),
        expanded=np.full(len(ids), expanded),
        positions=positions,
    )


def _refine(
    index: NeighborIndex,
    scorer: RowScorer,
    rows: np.ndarray | None,
    q32: np.ndarray,
    scores32: np.ndarray,
    ids: np.ndarray,
    k: int,
    n_other: int,
    exact_scores: bool,
) -> Iterator[Neighbours]:
    """Re-rank one chunk of faiss results; yields the certain queries as one piece, then the
    boundary queries, searched again exactly, in pieces of bounded size."""
    q64 = q32.astype(np.float64)
    eps = scorer.error_bound(q64)
    ids, key, scored, ok = _rank(scorer, q64, scores32, ids, k, eps, exact_scores)
    ok |= ids.shape[1] >= n_other  # the list holds every row there is
    good = np.flatnonzero(ok)
    if len(good):
        yield _finish(scorer, good, rows, ids[good], key[good], scored[good], k, False)
    bad = np.flatnonzero(~ok)
    if len(bad):
        yield from _expand(
            index, scorer, rows, q32, q64, eps, bad, ids.shape[1], k, n_other, exact_scores
        )


def _expand(
    index: NeighborIndex,
    scorer: RowScorer,
    rows: np.ndarray | None,
    q32: np.ndarray,
    q64: np.ndarray,
    eps: np.ndarray,
    todo: np.ndarray,
    width: int,
    k: int,
    n_other: int,
    exact_scores: bool,
) -> Iterator[Neighbours]:
    """The queries ``todo`` searched exactly with twice ``width`` candidates; those still not
    certain recurse. Each piece holds at most about ``_PIECE_RESULTS`` results."""
    width = min(2 * width, n_other)
    step = max(1, _PIECE_RESULTS // (width + 1))
    for s in range(0, len(todo), step):
        part = todo[s : s + step]
        sc, ii = index.exact_candidates(q32[part], width, None if rows is None else rows[part])
        e_ids, e_key, e_scored, e_ok = _rank(scorer, q64[part], sc, ii, k, eps[part], exact_scores)
        e_ok |= width >= n_other
        done = np.flatnonzero(e_ok)
        if len(done):
            yield _finish(
                scorer, part[done], rows, e_ids[done], e_key[done], e_scored[done], k, True
            )
        if len(done) < len(part):
            yield from _expand(
                index, scorer, rows, q32, q64, eps, part[~e_ok], width, k, n_other, exact_scores
            )


def _merge(pieces: list[Neighbours], k: int) -> Neighbours:
    """One :class:`Neighbours` from pieces of one search call, in query order."""
    if not pieces:  # no queries
        empty = np.empty((0, k), dtype=np.int64)
        none = np.empty(0, dtype=np.int64)
        return Neighbours(
            rows=none,
            ids=empty,
            scores=empty.astype(np.float64),
            start=empty,
            end=empty,
            k=k,
            reranked=none.astype(bool),
            expanded=none.astype(bool),
            positions=none,
        )
    if len(pieces) == 1:
        return pieces[0]
    width = max(p.ids.shape[1] for p in pieces)
    order = np.argsort(np.concatenate([p.positions for p in pieces]), kind="stable")

    def cat(name: str, fill: float | int | None) -> np.ndarray:
        parts = []
        for p in pieces:
            a = getattr(p, name)
            extra = width - a.shape[1]
            if fill is None:  # block bounds of padding: singleton blocks at their positions
                pos = np.arange(a.shape[1], width)
                pad = np.broadcast_to(pos + (1 if name == "end" else 0), (len(a), extra))
                a = np.concatenate([a, pad], axis=1)
            else:
                a = np.pad(a, ((0, 0), (0, extra)), constant_values=fill)
            parts.append(a)
        return np.concatenate(parts)[order]

    rows = None if pieces[0].rows is None else np.concatenate([p.rows for p in pieces])[order]
    return Neighbours(
        rows=rows,
        ids=cat("ids", -1),
        scores=cat("scores", np.nan),
        start=cat("start", None),
        end=cat("end", None),
        k=k,
        reranked=np.concatenate([p.reranked for p in pieces])[order],
        expanded=np.concatenate([p.expanded for p in pieces])[order],
        positions=np.concatenate([p.positions for p in pieces])[order],
    )


# ----------------------------------------------------------------------------- entry points


def _margin(index: NeighborIndex, k: int, margin: int, n_other: int) -> int:
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be a non-negative integer, got {margin!r}")
    width = min(k + int(margin), n_other)
    if index._gpu:  # faiss GPU k-selection limit (k + 1 with self-exclusion)
        width = max(k, min(width, 2047))
    return width


def _scorer(index: NeighborIndex) -> RowScorer:
    scorer = getattr(index, "_scorer", None)
    if scorer is None:
        scorer = RowScorer(
            index.source, index.metric, score_shift=index.score_shift, centre=index._centre
        )
        index._scorer = scorer
    return scorer


def iter_neighbours(
    index: NeighborIndex,
    k: int,
    *,
    margin: int = DEFAULT_MARGIN,
    chunk_size: int | None = None,
    exact_scores: bool = False,
    progress: bool = False,
) -> Iterator[Neighbours]:
    """Neighbours of every indexed row (itself excluded by index), one chunk at a time.

    Args:
        index: the index over the rows.
        k: neighbours per query, ``1 <= k <= N-1``.
        margin: extra faiss candidates per query beyond ``k`` (more: fewer boundary searches).
        chunk_size: queries per faiss call (default: as :meth:`NeighborIndex.iter_search`).
        exact_scores: re-score every one of the first ``k`` candidates in float64 (otherwise
            only the ambiguous ones).
        progress: a tqdm bar over queries.

    Yields:
        :class:`Neighbours` pieces (``.rows`` says which queries): per chunk of queries, first
        those that needed no boundary search, then the others in pieces of at most about 8M
        results (a tie block can hold many rows: every copy of a duplicated row). Every row
        comes exactly once.
    """
    n_other = index.n - 1
    width = _margin(index, index._prepare(k, True, chunk_size)[0], margin, n_other)
    scorer = _scorer(index)
    # scores of the rescaled rows (the index's units) until Neighbours converts them
    width, chunk_size = index._prepare(width, True, chunk_size)
    for start, stop, scores, ids in index._iter(width, chunk_size, True, bool(progress)):
        rows = np.arange(start, stop, dtype=np.int64)
        yield from _refine(
            index, scorer, rows, index.query_rows(rows), scores, ids, k, n_other, exact_scores
        )


def search_rows(
    index: NeighborIndex,
    queries: np.ndarray | None,
    k: int,
    *,
    margin: int = DEFAULT_MARGIN,
    exact_scores: bool = False,
) -> Neighbours:
    """Neighbours of the indexed rows ``queries`` (``None``: all), themselves excluded by index.

    ``queries`` are row indices (any order, repeats allowed) or a boolean mask.
    """
    k = index._prepare(k, True, None)[0]
    rows = (
        np.arange(index.n, dtype=np.int64) if queries is None else _check_queries(queries, index.n)
    )
    n_other = index.n - 1
    width = _margin(index, k, margin, n_other)
    scores, ids = index._search_raw(rows, width, exclude_self=True)
    pieces = _refine(
        index, _scorer(index), rows, index.query_rows(rows), scores, ids, k, n_other, exact_scores
    )
    return _merge(list(pieces), k)


def search_rows_exact(
    index: NeighborIndex, queries: np.ndarray, k: int, *, margin: int = DEFAULT_MARGIN
) -> Neighbours:
    """:func:`search_rows` by brute force over every row, whatever the index kind: the exact
    neighbours an approximate index is checked against (same re-ranking, same tie blocks)."""
    k = index._prepare(k, True, None)[0]
    rows = _check_queries(queries, index.n)
    n_other = index.n - 1
    width = _margin(index, k, margin, n_other)
    q32 = index.query_rows(rows)
    scores, ids = index.exact_candidates(q32, width, rows)
    pieces = _refine(index, _scorer(index), rows, q32, scores, ids, k, n_other, False)
    return _merge(list(pieces), k)


def search_vectors(
    index: NeighborIndex,
    vectors: np.ndarray,
    k: int,
    *,
    margin: int = DEFAULT_MARGIN,
    exact_scores: bool = False,
) -> Neighbours:
    """Neighbours among the indexed rows of outside query vectors (nothing excluded).

    ``vectors`` is a ``(q, D)`` array, read as float32 (unit-normalised under ``"cosine"`` for
    faiss, re-scored from the raw float32 values).
    """
    k = index._prepare(k, False, None)[0]
    q32 = index.check_vectors(vectors)
    width = _margin(index, k, margin, index.n)
    scores, ids = index._search_vectors_raw(q32, width)
    pieces = _refine(index, _scorer(index), None, q32, scores, ids, k, index.n, exact_scores)
    return _merge(list(pieces), k)
