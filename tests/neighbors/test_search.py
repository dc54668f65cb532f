"""The float64-ranked neighbour search against the loop reference, ties and near-ties included."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmetric.neighbors.index import NeighborIndex
from fairmetric.neighbors.search import iter_neighbours, search_rows, search_vectors
from tests.neighbors.reference import pair_score, ranked_blocks

METRICS = ["l2", "cosine", "ip"]


def near_tie_rows() -> np.ndarray:
    """Query 0 = e1; rows 1 (a) and 2 (b) at cosine ~0.9996 from it, b nearer by ~4e-8.

    Their unit-normalised float32 first components are equal, so any float32 inner product with
    e1 ties them (faiss then lists the smaller index, a, first); float64 says b.
    """
    q = np.array([1, 0, 0, 0], np.float32)
    a = np.array([0.99960005, 0.0282806, 0, 0], np.float32)
    b = np.array([0.99960005, 0, 0.02827922, 0], np.float32)
    far = np.array([[0, 0, 0, 1], [0, 0.6, 0, 0.8], [0, 0, -1, 0]], np.float32)
    return np.vstack([q, a, b, far])


def with_duplicates(n: int = 30, d: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[5] = x[3]
    x[9] = x[3]
    x[12] = x[3]  # four copies of row 3
    x[20] = x[7]  # a pair
    return x


def blocks_from(nb, i: int) -> list[set[int]]:
    """The output's tie blocks of query ``i`` up to the end of the block at position k-1."""
    out, p = [], 0
    stop = nb.end[i, nb.k - 1]
    while p < stop:
        e = nb.end[i, p]
        out.append({int(j) for j in nb.ids[i, p:e]})
        p = e
    return out


def reference_prefix(x, i, k, metric) -> list[set[int]]:
    out, pos = [], 0
    for b in ranked_blocks(x, i, metric):
        if pos >= k:
            break
        out.append(set(b))
        pos += len(b)
    return out


def test_near_tie_rows_really_tie_in_float32_and_not_in_float64():
    x = near_tie_rows()
    assert pair_score(x, 0, 2, "cosine") - pair_score(x, 0, 1, "cosine") == pytest.approx(
        3.9e-8, rel=0.05
    )
    swapped = x[[0, 2, 1, 3, 4, 5]]  # the same rows, a and b trading places
    firsts = []
    for rows, a in ((x, 1), (swapped, 2)):
        unit = rows / np.linalg.norm(rows.astype(np.float64), axis=1, keepdims=True)
        index = faiss.IndexFlatIP(4)
        index.add(unit.astype(np.float32))
        scores, ids = index.search(unit[:1].astype(np.float32), 3)
        assert scores[0, 1] == scores[0, 2]  # a float32 tie ...
        firsts.append(ids[0, 1] == a)
    assert any(firsts)  # ... broken by position, so in one of the orders the farther row wins


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_reranking_fixes_the_float32_near_tie(metric):
    x = near_tie_rows()
    assert pair_score(x, 0, 2, "l2") < pair_score(x, 0, 1, "l2")  # same order under l2
    swapped = x[[0, 2, 1, 3, 4, 5]]  # b is row 1 here
    raw_wrong = []
    for rows, b in ((x, 2), (swapped, 1)):
        raw = NeighborIndex(rows, metric=metric, index="exact").search(np.array([0]), 1)[1]
        raw_wrong.append(raw[0, 0] != b)
        nb = search_rows(NeighborIndex(rows, metric=metric, index="exact"), np.array([0]), 1)
        assert nb.ids[0, 0] == b and not nb.tied[0] and nb.reranked[0]
        assert nb.ids.shape == (1, 1)
    if metric == "cosine":
        assert any(raw_wrong)  # faiss alone gets it wrong in one of the two row orders


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 2, 3, 5, 12])
@pytest.mark.parametrize("margin", [0, 1, 8])
def test_blocks_equal_the_reference(metric, k, margin):
    x = with_duplicates()
    nb = search_rows(NeighborIndex(x, metric=metric, index="exact"), None, k, margin=margin)
    for i in range(len(x)):
        assert blocks_from(nb, i) == reference_prefix(x, i, k, metric), i
        assert i not in set(nb.ids[i].tolist())
    # the copies of row 3 tie with each other: their first block holds the other three copies
    if metric != "ip":  # under ip the copies' nearest rows are the largest ones, not each other
        assert blocks_from(nb, 3)[0] == {5, 9, 12}
        assert nb.tied[[3, 5, 9, 12]].all()


@pytest.mark.parametrize("metric", METRICS)
def test_scores_are_float64_and_equal_within_blocks(metric):
    x = with_duplicates()
    nb = search_rows(NeighborIndex(x, metric=metric, index="exact"), None, 4, exact_scores=True)
    assert nb.scores.dtype == np.float64
    for i in range(len(x)):
        for p in range(4):
            j = int(nb.ids[i, p])
            np.testing.assert_allclose(nb.scores[i, p], pair_score(x, i, j, metric), rtol=1e-12)
        s = nb.scores[i, : nb.end[i, 3]]
        same = s[1:] == s[:-1]
        np.testing.assert_array_equal(same, (nb.start[i, 1 : len(s)] < np.arange(1, len(s))))


def test_boundary_block_larger_than_the_margin_is_complete():
    # 15 copies of one row: the block of a copy's nearest neighbours has 14 members, k=1
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    x[10:25] = x[10]
    for index in ("exact", "hnsw"):
        nb = search_rows(NeighborIndex(x, metric="l2", index=index), np.array([10, 24]), 1)
        assert nb.ids.shape == (2, 14) and nb.expanded.all()
        assert set(nb.ids[0].tolist()) == set(range(11, 25))
        assert set(nb.ids[1].tolist()) == set(range(10, 24))
        assert (nb.start == 0).all() and (nb.end == 14).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_iter_neighbours_equals_search_rows(metric, chunk_size):
    x = with_duplicates()
    index = NeighborIndex(x, metric=metric, index="exact")
    whole = search_rows(index, None, 3)
    for nb in iter_neighbours(index, 3, chunk_size=chunk_size):
        for r, i in enumerate(nb.rows):
            assert blocks_from(nb, r) == blocks_from(whole, i)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_row_order_does_not_change_the_blocks(metric):
    x = with_duplicates()
    perm = np.random.default_rng(3).permutation(len(x))
    inv = np.argsort(perm)
    a = search_rows(NeighborIndex(x, metric=metric, index="exact"), None, 3)
    b = search_rows(NeighborIndex(x[perm], metric=metric, index="exact"), None, 3)
    for i in range(len(x)):
        mapped = [{int(perm[j]) for j in blk} for blk in blocks_from(b, inv[i])]
        assert mapped == blocks_from(a, i)


@pytest.mark.parametrize("metric", METRICS)
def test_outside_vectors(metric):
    x = with_duplicates()
    index = NeighborIndex(x, metric=metric, index="exact")
    queries = np.vstack([x[[3, 7]], np.random.default_rng(5).normal(size=(3, 4))])
    nb = search_vectors(index, queries, 2)
    assert nb.rows is None
    for q in range(len(queries)):
        # reference: the query appended as an extra row, which excludes only itself
        ref = reference_prefix(np.vstack([x, queries[q : q + 1]]), len(x), 2, metric)
        assert blocks_from(nb, q) == ref
    if metric != "ip":
        # a copy of row 3 as the query: the four copies tie at the front, none is excluded
        assert blocks_from(nb, 0)[0] == {3, 5, 9, 12}
        assert blocks_from(nb, 1)[0] == {7, 20}
    with pytest.raises(ValueError, match=r"shape \(q, 4\)"):
        search_vectors(index, x[:, :3], 1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        search_vectors(index, np.full((1, 4), np.nan), 1)


def test_margin_errors():
    index = NeighborIndex(with_duplicates(), index="exact")
    with pytest.raises(ValueError, match="margin must be a non-negative integer"):
        search_rows(index, None, 2, margin=-1)
    with pytest.raises(ValueError, match="k must be"):
        search_rows(index, None, 30)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(3, 14),
    d=st.integers(1, 3),
    copies=st.integers(0, 5),
    seed=st.integers(0, 2**31 - 1),
    metric=st.sampled_from(["l2", "cosine"]),
    data=st.data(),
)
def test_property_blocks_equal_the_reference(n, d, copies, seed, metric, data):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)  # small integers: many exact ties
    x[np.abs(x).sum(axis=1) == 0] = 1.0  # no zero rows (cosine)
    for _ in range(copies):
        i, j = rng.integers(0, n, 2)
        x[i] = x[j]
    k = data.draw(st.integers(1, n - 1))
    nb = search_rows(NeighborIndex(x, metric=metric, index="exact"), None, k, margin=1)
    for i in range(n):
        assert blocks_from(nb, i) == reference_prefix(x, i, k, metric)


def test_boundary_queries_come_in_bounded_pieces(monkeypatch):
    import fairmetric.neighbors.search as search

    monkeypatch.setattr(search, "_PIECE_RESULTS", 100)
    x = np.ones((40, 3), np.float32)  # a collapsed embedding: every row ties with every other
    x[:5] += np.arange(5, dtype=np.float32)[:, None]  # rows 1-4 differ (row 0 is all ones)
    pieces = list(iter_neighbours(NeighborIndex(x, metric="l2", index="exact"), 1))
    rows = np.concatenate([nb.rows for nb in pieces])
    assert sorted(rows.tolist()) == list(range(40))
    assert all(nb.ids.size <= 100 for nb in pieces if nb.expanded.all())
    for nb in pieces:
        for r, i in enumerate(nb.rows):
            assert blocks_from(nb, r) == reference_prefix(x, i, 1, "l2")
    whole = search_rows(NeighborIndex(x, metric="l2", index="exact"), None, 1)
    np.testing.assert_array_equal(whole.rows, np.arange(40))
    np.testing.assert_array_equal(whole.positions, np.arange(40))
    # 36 copies of (1, 1, 1) (rows 0, 5-39); row 1 = (2, 2, 2) has them and row 2 = (3, 3, 3)
    # all at squared distance 3: a block of 37
    assert whole.ids.shape == (40, 37) and whole.expanded[5:].all()
    assert set(whole.ids[1].tolist()) == {0, 2, *range(5, 40)}
