"""Per-sample audit metrics against slow loop references (METHODS.md §1).

Every reference below is written with explicit Python loops over queries, neighbours or pairs, on
tiny seeded data with random floats (no distance ties). Neighbour ids come from a brute-force
numpy argsort (query excluded), never from ``fairmetric.neighbors.index``. The last section feeds
NeighbourStats the float64-ranked search on data with ties and near-ties and checks every query
against the enumeration reference of ``tests/neighbors/reference.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fairmetric.audit.metrics import (
    NeighbourStats,
    alignment_contributions,
    linear_probe_predictions,
    uniformity_contributions,
)

# --------------------------------------------------------------------------------------------
# helpers and loop references
# --------------------------------------------------------------------------------------------


def brute_force_ids(x: np.ndarray, k: int) -> np.ndarray:
    """``(N, k)`` nearest-neighbour ids by squared L2, the query itself excluded."""
    n = len(x)
    ids = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        d = np.array([float(np.sum((x[i] - x[j]) ** 2)) for j in range(n)])
        d[i] = np.inf
        ids[i] = np.argsort(d, kind="stable")[:k]
    return ids


def make_data(n: int = 40, d: int = 5, n_classes: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    labels[-1] = n_classes  # a singleton class: not a valid query
    x = rng.normal(size=(n, d)) + 0.8 * rng.normal(size=(n_classes + 1, d))[labels]
    attrs = {"tone": rng.integers(0, 3, n), "sex": rng.integers(0, 2, n)}
    return x, labels, attrs


def ref_hits(labels, ids, k):
    out = np.zeros(len(labels), dtype=bool)
    for i in range(len(labels)):
        for j in ids[i][:k]:
            if j >= 0 and labels[j] == labels[i]:
                out[i] = True
    return out


def ref_valid(labels):
    return np.array(
        [
            sum(1 for j in range(len(labels)) if j != i and labels[j] == labels[i]) > 0
            for i in range(len(labels))
        ]
    )


def ref_ap(labels, ids):
    """MAP@R per query: ``(1/R) Σ_{j ≤ min(R, K)} P(j)·rel(j)``, 0 for lone queries."""
    n = len(labels)
    out = np.zeros(n)
    for i in range(n):
        r = sum(1 for j in range(n) if j != i and labels[j] == labels[i])
        if r == 0:
            continue
        total, hits = 0.0, 0
        for rank, j in enumerate(ids[i], start=1):
            if rank > r:
                break
            if j >= 0 and labels[j] == labels[i]:
                hits += 1
                total += hits / rank  # P(rank) · rel(rank)
        out[i] = total / r
    return out


def ref_homophily(labels, codes, ids, hk):
    n = len(labels)
    out = np.full(n, np.nan)
    for i in range(n):
        base = sum(1 for j in range(n) if codes[j] == codes[i]) / n
        others = [j for j in ids[i][:hk] if j >= 0 and labels[j] != labels[i]]
        if others:
            shared = sum(1 for j in others if codes[j] == codes[i])
            out[i] = (shared / len(others)) / base
    return out


def ref_vote(codes, ids, lk):
    """Majority vote; a tie goes to the tied value whose nearest voter is nearest."""
    out = np.zeros(len(ids), dtype=np.int64)
    for i in range(len(ids)):
        count: dict[int, int] = {}
        first: dict[int, int] = {}
        for rank, j in enumerate(ids[i][:lk]):
            if j < 0:
                continue
            v = int(codes[j])
            count[v] = count.get(v, 0) + 1
            first.setdefault(v, rank)
        if count:
            out[i] = max(count, key=lambda v: (count[v], -first[v]))
    return out


def vote_is_unique(codes, ids, lk):
    """Queries whose vote has a single most frequent value (no tie to break)."""
    out = np.zeros(len(ids), dtype=bool)
    for i in range(len(ids)):
        vals = [int(codes[j]) for j in ids[i][:lk] if j >= 0]
        if vals:
            c = np.bincount(vals)
            out[i] = (c == c.max()).sum() == 1
    return out


def stats_for(labels, attrs, ids, *, ks=(1, 2, 4), hk=5, lk=3):
    s = NeighbourStats(labels, attrs, ks=ks, homophily_k=hk, leakage_k=lk)
    s.update(0, ids)
    return s


def balanced_accuracy(y, pred):
    return float(np.mean([np.mean(pred[y == v] == v) for v in np.unique(y)]))


# --------------------------------------------------------------------------------------------
# NeighbourStats
# --------------------------------------------------------------------------------------------


def test_hits_and_valid_match_loops():
    x, labels, attrs = make_data()
    ids = brute_force_ids(x, 8)
    s = stats_for(labels, attrs, ids, ks=(4, 1, 2, 8, 2))
    assert s.ks == [1, 2, 4, 8]
    np.testing.assert_array_equal(s.valid, ref_valid(labels))
    assert not s.valid[-1]  # the singleton class
    for k in s.ks:
        np.testing.assert_array_equal(s.hits[k], ref_hits(labels, ids, k))
    # k beyond the returned columns uses all of them
    s_big = stats_for(labels, attrs, ids[:, :3], ks=(8,))
    np.testing.assert_array_equal(s_big.hits[8], ref_hits(labels, ids, 3))


@pytest.mark.parametrize("truncated", [False, True])  # K >= max R, and K < max R
def test_map_at_r_matches_loop(truncated):
    x, labels, attrs = make_data(n=48, n_classes=4)
    r = np.bincount(labels)[labels] - 1
    k = 3 if truncated else int(r.max()) + 2
    assert (r > k).any() == truncated
    ids = brute_force_ids(x, k)
    s = stats_for(labels, attrs, ids)
    np.testing.assert_allclose(s.ap, ref_ap(labels, ids), rtol=0, atol=1e-12)
    assert np.all(s.ap[~s.valid] == 0)
    assert np.all((s.ap >= 0) & (s.ap <= 1))


def test_map_at_r_hand_example():
    # query 0, class 0 has R = 3 others (1, 2, 3); ranks: 1 hit, 2 miss, 3 hit, 4 hit
    labels = np.array([0, 0, 0, 0, 1, 1])
    ids = np.array([[1, 4, 2, 3, 5]])
    s = NeighbourStats(labels, {}, ks=[1], homophily_k=1, leakage_k=1)
    s.update(0, ids)
    # only ranks <= R = 3 count: (1/1 + 2/3) / 3
    assert s.ap[0] == pytest.approx((1 + 2 / 3) / 3)


@pytest.mark.parametrize("truncated", [False, True])  # PML divides by the full R too
def test_map_at_r_and_precision_at_1_match_pml(truncated):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    x, labels, attrs = make_data(n=48, n_classes=4, seed=3)
    x = x.astype(np.float32)
    r = np.bincount(labels)[labels] - 1
    k = 3 if truncated else int(r.max()) + 2
    assert (r > k).any() == truncated
    ids = brute_force_ids(x.astype(np.float64), k)
    s = stats_for(labels, attrs, ids)
    calc = AccuracyCalculator(
        include=("mean_average_precision_at_r", "precision_at_1"),
        k=k,
        device=torch.device("cpu"),
    )
    emb, lab = torch.from_numpy(x), torch.from_numpy(labels)
    acc = calc.get_accuracy(emb, lab, emb, lab, ref_includes_query=True)
    assert s.ap[s.valid].mean() == pytest.approx(acc["mean_average_precision_at_r"], abs=1e-6)
    assert s.hits[1][s.valid].mean() == pytest.approx(acc["precision_at_1"], abs=1e-6)


def test_homophily_matches_loop():
    x, labels, attrs = make_data(n=50, n_classes=5, seed=1)
    ids = brute_force_ids(x, 7)
    for hk in (1, 3, 7):
        s = stats_for(labels, attrs, ids, hk=hk)
        for a, codes in attrs.items():
            np.testing.assert_allclose(
                s.homophily[a], ref_homophily(labels, codes, ids, hk), rtol=1e-12
            )
    # hk = 1 with a same-class nearest neighbour: no different-class neighbour -> NaN
    s1 = stats_for(labels, attrs, ids, hk=1)
    same_first = labels[ids[:, 0]] == labels
    assert same_first.any()
    assert np.isnan(s1.homophily["tone"][same_first]).all()
    assert not np.isnan(s1.homophily["tone"][~same_first]).any()


def test_homophily_hand_example():
    # base rates: value 0 -> 4/6, value 1 -> 2/6
    labels = np.array([0, 0, 1, 2, 3, 4])
    codes = np.array([1, 0, 1, 0, 0, 0])
    ids = np.array([[1, 2, 3, 4, 5]])  # first 3: same class (skipped), value 1, value 0
    s = NeighbourStats(labels, {"a": codes}, ks=[1], homophily_k=3, leakage_k=1)
    s.update(0, ids)
    assert s.homophily["a"][0] == pytest.approx((1 / 2) / (2 / 6))


def test_vote_matches_loop_where_majority_is_unique():
    x, labels, attrs = make_data(n=60, seed=2)
    ids = brute_force_ids(x, 6)
    for lk in (1, 3, 5, 6):
        s = stats_for(labels, attrs, ids, lk=lk)
        for a, codes in attrs.items():
            ref = ref_vote(codes, ids, lk)
            if lk == 1:  # a single voter: its value
                np.testing.assert_array_equal(ref, codes[ids[:, 0]])
            unique = vote_is_unique(codes, ids, lk)
            assert unique.sum() > 20
            np.testing.assert_array_equal(s.vote[a][unique], ref[unique])


@pytest.mark.parametrize(
    "neighbour_values, expected",
    [
        ([1, 0, 1, 0], 1),  # tie 2-2, nearest voter has value 1
        ([0, 1, 0, 1], 0),
        ([0, 1, 1, 1, 0], 1),  # no tie: the majority wins over the nearest
    ],
)
def test_vote_ties_go_to_nearer_neighbour(neighbour_values, expected):
    k = len(neighbour_values)
    codes = np.array([0, *neighbour_values])
    labels = np.arange(k + 1)
    s = NeighbourStats(labels, {"a": codes}, ks=[1], homophily_k=1, leakage_k=k)
    s.update(0, np.arange(1, k + 1)[None, :])
    assert s.vote["a"][0] == expected == ref_vote(codes, np.arange(1, k + 1)[None, :], k)[0]


@pytest.mark.parametrize("neighbour_values", [[1, 0, 0, 2, 1], [1, 0, 0, 1], [1, 0, 2, 2, 0, 1]])
def test_vote_tie_rank_sum_bug(neighbour_values):
    k = len(neighbour_values)
    codes = np.array([0, *neighbour_values])
    s = NeighbourStats(np.arange(k + 1), {"a": codes}, ks=[1], homophily_k=1, leakage_k=k)
    s.update(0, np.arange(1, k + 1)[None, :])
    # the tied values include 1, the value of the nearest voter (rank 1)
    assert ref_vote(codes, np.arange(1, k + 1)[None, :], k)[0] == 1
    assert s.vote["a"][0] == 1


def test_vote_bonus_never_overturns_majority():
    lk = 10_001
    codes = np.array([0] + [1] * 5000 + [0] * 5001)  # value 1 nearer, value 0 one vote more
    s = NeighbourStats(np.arange(lk + 1), {"a": codes}, ks=[1], homophily_k=1, leakage_k=lk)
    s.update(0, np.arange(1, lk + 1)[None, :])
    assert s.vote["a"][0] == 0


def test_missing_neighbours_are_ignored():
    x, labels, attrs = make_data(n=40, seed=4)
    n = len(labels)
    # make -1 dangerous: read as an index it would hit the last sample; give that sample the
    # class / attribute values of query 0
    labels = labels.copy()
    labels[-1] = labels[0]
    for c in attrs.values():
        c[-1] = c[0]
    full = brute_force_ids(x, 8)
    ids = full.copy()
    rng = np.random.default_rng(0)
    cut = rng.integers(0, 9, n)  # faiss style: the last columns missing
    cut[0] = 0  # query 0: every neighbour missing
    for i in range(n):
        ids[i, cut[i] :] = -1
    s = stats_for(labels, attrs, ids, ks=(1, 3, 8), hk=6, lk=5)
    for k in s.ks:
        np.testing.assert_array_equal(s.hits[k], ref_hits(labels, ids, k))
    np.testing.assert_allclose(s.ap, ref_ap(labels, ids), atol=1e-12)
    assert not s.hits[8][0] and s.ap[0] == 0
    for a, codes in attrs.items():
        np.testing.assert_allclose(s.homophily[a], ref_homophily(labels, codes, ids, 6), rtol=1e-12)
        assert np.isnan(s.homophily[a][0])
        unique = vote_is_unique(codes, ids, 5)
        np.testing.assert_array_equal(s.vote[a][unique], ref_vote(codes, ids, 5)[unique])
    # each row equals the same row searched with only its present columns
    for i in range(1, n):
        if 0 < cut[i] < 8:
            sub = NeighbourStats(labels, attrs, ks=(1, 3, 8), homophily_k=6, leakage_k=5)
            sub.update(i, full[i : i + 1, : cut[i]])
            for k in s.ks:
                assert s.hits[k][i] == sub.hits[k][i]
            assert s.ap[i] == pytest.approx(sub.ap[i], abs=1e-12)
            for a in attrs:
                np.testing.assert_equal(s.homophily[a][i], sub.homophily[a][i])
                assert s.vote[a][i] == sub.vote[a][i]


def test_missing_neighbours_anywhere_in_the_row():
    x, labels, attrs = make_data(n=30, seed=5)
    ids = brute_force_ids(x, 8)
    ids[np.random.default_rng(1).random(ids.shape) < 0.3] = -1
    s = stats_for(labels, attrs, ids, ks=(1, 4), hk=8, lk=8)
    for k in s.ks:
        np.testing.assert_array_equal(s.hits[k], ref_hits(labels, ids, k))
    np.testing.assert_allclose(s.ap, ref_ap(labels, ids), atol=1e-12)
    for a, codes in attrs.items():
        np.testing.assert_allclose(s.homophily[a], ref_homophily(labels, codes, ids, 8), rtol=1e-12)
        unique = vote_is_unique(codes, ids, 8)
        np.testing.assert_array_equal(s.vote[a][unique], ref_vote(codes, ids, 8)[unique])


def test_chunked_updates_equal_one_update():
    x, labels, attrs = make_data(n=45, seed=6)
    ids = brute_force_ids(x, 6)
    one = stats_for(labels, attrs, ids, ks=(1, 5), hk=4, lk=5)
    chunked = NeighbourStats(labels, attrs, ks=(1, 5), homophily_k=4, leakage_k=5)
    bounds = [0, 1, 8, 9, 30, 45]
    for lo, hi in reversed(list(zip(bounds[:-1], bounds[1:]))):  # any order
        chunked.update(lo, ids[lo:hi])
    for k in one.ks:
        np.testing.assert_array_equal(chunked.hits[k], one.hits[k])
    np.testing.assert_array_equal(chunked.ap, one.ap)
    for a in attrs:
        np.testing.assert_array_equal(chunked.homophily[a], one.homophily[a])
        np.testing.assert_array_equal(chunked.vote[a], one.vote[a])


@pytest.mark.parametrize(
    "ks, hk, lk, expected",
    [((1, 2, 4), 3, 2, 4), ((1,), 10, 3, 10), ((2,), 1, 7, 7), ((), 0, 0, 1)],
)
def test_k_needed(ks, hk, lk, expected):
    s = NeighbourStats(np.array([0, 0, 1]), {}, ks=ks, homophily_k=hk, leakage_k=lk)
    assert s.k_needed == expected


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(3, 14),
    k=st.integers(1, 6),
    n_classes=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_neighbour_stats_vs_loops(n, k, n_classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    labels = rng.integers(0, n_classes, n)
    codes = rng.integers(0, 3, n)
    k = min(k, n - 1)
    ids = brute_force_ids(x, k)
    s = stats_for(labels, {"a": codes}, ids, ks=(1, k), hk=k, lk=k)
    np.testing.assert_array_equal(s.valid, ref_valid(labels))
    for kk in s.ks:
        np.testing.assert_array_equal(s.hits[kk], ref_hits(labels, ids, kk))
    np.testing.assert_allclose(s.ap, ref_ap(labels, ids), atol=1e-12)
    np.testing.assert_allclose(s.homophily["a"], ref_homophily(labels, codes, ids, k), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# alignment
# --------------------------------------------------------------------------------------------


def ref_alignment(x, labels, cells):
    n = len(labels)
    cells = np.zeros(n, dtype=int) if cells is None else cells
    out = [np.zeros(n) for _ in range(4)]
    for i in range(n):
        for j in range(n):
            if i == j or cells[i] != cells[j]:
                continue
            d2 = float(np.sum((x[i] - x[j]) ** 2))
            if labels[i] == labels[j]:
                out[0][i] += d2
                out[1][i] += 1
            else:
                out[2][i] += d2
                out[3][i] += 1
    return tuple(out)


def assert_alignment_close(got, ref, rtol=1e-9, atol=1e-9):
    for g, r, name in zip(got, ref, ["same_sum", "same_pairs", "diff_sum", "diff_pairs"]):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("with_cells", [False, True])
def test_alignment_matches_loops(with_cells):
    x, labels, attrs = make_data(n=35, seed=7)
    cells = attrs["tone"] if with_cells else None
    got = alignment_contributions(x, labels, cells)
    ref = ref_alignment(x, labels, cells)
    assert_alignment_close(got, ref)
    if not with_cells:  # None is one cell
        assert_alignment_close(alignment_contributions(x, labels, np.full(len(labels), 3)), ref)


def test_alignment_totals_are_means_over_unordered_pairs():
    x, labels, attrs = make_data(n=30, seed=8)
    cells = attrs["sex"]
    same_sum, same_pairs, diff_sum, diff_pairs = alignment_contributions(x, labels, cells)
    same, diff = [], []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if cells[i] != cells[j]:
                continue
            d2 = float(np.sum((x[i] - x[j]) ** 2))
            (same if labels[i] == labels[j] else diff).append(d2)
    assert same_sum.sum() / same_pairs.sum() == pytest.approx(np.mean(same), rel=1e-12)
    assert diff_sum.sum() / diff_pairs.sum() == pytest.approx(np.mean(diff), rel=1e-12)
    # per group: the samples of one cell
    g = cells == 1
    same_g = [
        float(np.sum((x[i] - x[j]) ** 2))
        for i in np.flatnonzero(g)
        for j in np.flatnonzero(g)
        if i < j and labels[i] == labels[j]
    ]
    assert same_sum[g].sum() / same_pairs[g].sum() == pytest.approx(np.mean(same_g), rel=1e-12)


def test_alignment_is_stable_under_large_offsets():
    x, labels, attrs = make_data(n=30, seed=9)
    x = x * 0.1  # small distances: the hard case for ||a||² + ||b||² - 2ab
    ref = ref_alignment(x, labels, attrs["tone"])
    got = alignment_contributions(x + 1000.0, labels, attrs["tone"])
    assert_alignment_close(got, ref, rtol=1e-6, atol=1e-6)
    got32 = alignment_contributions((x + 1000.0).astype(np.float32), labels, attrs["tone"])
    ref32 = ref_alignment((x + 1000.0).astype(np.float32).astype(np.float64), labels, attrs["tone"])
    assert_alignment_close(got32, ref32, rtol=1e-6, atol=1e-6)


def test_alignment_singletons_and_empty_cells():
    x = np.random.default_rng(0).normal(size=(4, 2))
    labels = np.array([0, 1, 0, 2])
    cells = np.array([5, 5, 9, 7])  # sample 2 and 3 alone in their cells
    same_sum, same_pairs, diff_sum, diff_pairs = alignment_contributions(x, labels, cells)
    np.testing.assert_array_equal(same_pairs, [0, 0, 0, 0])
    np.testing.assert_array_equal(diff_pairs, [1, 1, 0, 0])
    np.testing.assert_array_equal(same_sum, [0, 0, 0, 0])
    np.testing.assert_allclose(diff_sum[:2], np.sum((x[0] - x[1]) ** 2))
    np.testing.assert_array_equal(diff_sum[2:], [0, 0])


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(
        np.float64, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=st.floats(-5, 5)
    ),
    data=st.data(),
)
def test_property_alignment_vs_loops(x, data):
    n = len(x)
    labels = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    cells = data.draw(st.none() | st.lists(st.integers(0, 2), min_size=n, max_size=n).map(np.array))
    got = alignment_contributions(x, labels, cells)
    assert_alignment_close(got, ref_alignment(x, labels, cells), rtol=1e-8, atol=1e-8)


# --------------------------------------------------------------------------------------------
# uniformity
# --------------------------------------------------------------------------------------------


def ref_uniformity(x, cells, t):
    n = len(x)
    cells = np.zeros(n, dtype=int) if cells is None else cells
    num, den = np.zeros(n), np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i != j and cells[i] == cells[j]:
                num[i] += math.exp(-t * float(np.sum((x[i] - x[j]) ** 2)))
                den[i] += 1
    return num, den


def sphere(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("t", [2.0, 0.5])
def test_uniformity_exact_path_matches_loops(t):
    x = sphere(40, 4, 0)
    cells = np.random.default_rng(1).integers(0, 3, 40)
    cells[0] = 7  # a singleton
    lnum, den = uniformity_contributions(x, cells, t=t)
    ref_num, ref_den = ref_uniformity(x, cells, t)
    np.testing.assert_allclose(np.exp(lnum), ref_num, rtol=1e-5)
    np.testing.assert_array_equal(den, ref_den)
    assert lnum[0] == -np.inf and den[0] == 0
    # one cell when cells is None
    lnum1, den1 = uniformity_contributions(x, t=t)
    r1 = ref_uniformity(x, None, t)
    np.testing.assert_allclose(np.exp(lnum1), r1[0], rtol=1e-5)
    np.testing.assert_array_equal(den1, r1[1])


def test_uniformity_sampled_path_counts_and_singletons():
    x = sphere(30, 3, 2)
    cells = np.array([0] * 20 + [1] * 9 + [2])
    lnum, den = uniformity_contributions(x, cells, partners=5, exact_max=8, seed=0)
    np.testing.assert_array_equal(den[:29], 5)  # both cells sampled
    assert den[29] == 0 and lnum[29] == -np.inf
    assert np.all(np.isfinite(lnum[:29])) and np.all(lnum[:29] <= math.log(5))
    # mixed: cell 1 (9 samples) exact when exact_max = 9
    lnum, den = uniformity_contributions(x, cells, partners=5, exact_max=9, seed=0)
    np.testing.assert_array_equal(den, [5] * 20 + [8] * 9 + [0])
    np.testing.assert_allclose(
        np.exp(lnum[20:29]), ref_uniformity(x[20:29], None, 2.0)[0], rtol=1e-5
    )


@pytest.mark.parametrize("m", [2, 3, 7])
def test_uniformity_sampled_partners_never_self(m):
    # far-apart points: exp(-t d²) is far below 1, so a single self pair would add exp(0) = 1,
    # a log of at least 0; without it the log is about -t·d² of the nearest partner drawn
    x = np.arange(m, dtype=np.float64)[:, None] * 100.0
    lnum, den = uniformity_contributions(x, partners=500, exact_max=1, seed=3)
    np.testing.assert_array_equal(den, 500)
    assert np.all(lnum < -2.0 * 100.0**2 + math.log(500) + 1e-6)


def test_uniformity_sampled_partners_uniform_over_others():
    # 1-D points with distinct exp(-t d²) per partner: recover the partner histogram per sample
    m = 4
    x = np.array([[0.0], [0.3], [0.7], [1.2]])
    t = 1.0
    draws = 4000
    counts = np.zeros((m, m))
    # one partner per call, varying the seed: num[i] identifies the partner drawn for i
    for seed in range(draws // 10):
        lnum, _ = uniformity_contributions(x, t=t, partners=1, exact_max=1, seed=seed)
        for i in range(m):
            e = np.exp(-t * (x[i, 0] - x[:, 0]) ** 2)
            j = int(np.argmin(np.abs(e - np.exp(lnum[i]))))
            counts[i, j] += 1
    assert np.all(np.diag(counts) == 0)
    off = counts[~np.eye(m, dtype=bool)].reshape(m, m - 1)
    expected = draws // 10 / (m - 1)
    assert np.all(np.abs(off - expected) < 5 * math.sqrt(expected))


def test_uniformity_sampled_estimate_close_to_exact():
    x = sphere(300, 3, 4)
    lnum, den = uniformity_contributions(x, exact_max=1024)
    exact = np.log(np.exp(lnum).sum() / den.sum())
    ests = []
    for seed in range(20):
        lnum_s, den_s = uniformity_contributions(x, partners=32, exact_max=10, seed=seed)
        np.testing.assert_array_equal(den_s, 32)
        ests.append(np.exp(lnum_s).sum() / den_s.sum())
    ests = np.array(ests)
    # one estimate: log-scale sd measured ~0.02
    assert abs(np.log(ests[0]) - exact) < 0.1
    # unbiased: the mean over seeds within 4 standard errors of the exact mean
    se = ests.std(ddof=1) / math.sqrt(len(ests))
    assert abs(ests.mean() - math.exp(exact)) < 4 * se + 1e-9


def test_uniformity_sampled_is_seeded():
    x = sphere(50, 3, 5)
    cells = np.array([0, 1] * 25)
    a = uniformity_contributions(x, cells, partners=4, exact_max=5, seed=11)
    b = uniformity_contributions(x, cells, partners=4, exact_max=5, seed=11)
    c = uniformity_contributions(x, cells, partners=4, exact_max=5, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_uniformity_exact_path_is_translation_invariant():
    x = sphere(40, 4, 6) * 0.3
    lnum, _ = uniformity_contributions(x)
    lnum_off, _ = uniformity_contributions(x + 100.0)
    np.testing.assert_allclose(np.exp(lnum_off), np.exp(lnum), rtol=1e-4)


# --------------------------------------------------------------------------------------------
# linear probe
# --------------------------------------------------------------------------------------------


def ref_folds(codes, folds, seed):
    """The stratified fold assignment of ``linear_probe_predictions`` (same RNG calls)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(codes), dtype=np.int64)
    for v in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == v)
        fold[members] = rng.permutation(len(members)) % folds
    return fold


def ref_probe(x, codes, fold, ridge, weighted=True):
    """Weighted ridge by least squares on an augmented system (independent of the normal equations).

    Minimises ``Σ_i w_i ||[z_i, 1] W - onehot_i||² + λ' ||W_features||²`` with ``z`` standardised on
    the training folds, ``w_i = 1 / count(value_i)`` and ``λ' = ridge · mean(w)``; the bias is not
    penalised.
    """
    n, d = x.shape
    n_values = int(codes.max()) + 1
    pred = np.zeros(n, dtype=np.int64)
    for f in np.unique(fold):
        tr = np.flatnonzero(fold != f)
        te = np.flatnonzero(fold == f)
        mean = np.array([np.mean(x[tr, c]) for c in range(d)])
        std = np.array([np.std(x[tr, c]) for c in range(d)]) + 1e-8
        counts = {v: int(np.sum(codes[tr] == v)) for v in range(n_values)}
        rows, targets = [], []
        ws = [1.0 / counts[codes[i]] if weighted else 1.0 for i in tr]
        lam = ridge * float(np.mean(ws))
        for i, w in zip(tr, ws):
            rows.append(math.sqrt(w) * np.append((x[i] - mean) / std, 1.0))
            targets.append(math.sqrt(w) * np.eye(n_values)[codes[i]])
        for c in range(d):
            row = np.zeros(d + 1)
            row[c] = math.sqrt(lam)
            rows.append(row)
            targets.append(np.zeros(n_values))
        coef = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)[0]
        for i in te:
            pred[i] = int(np.argmax(np.append((x[i] - mean) / std, 1.0) @ coef))
    return pred


def probe_data(n=300, d=4, n_values=3, shift=1.0, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_values, n)
    centres = rng.normal(size=(n_values, d)) * shift
    return rng.normal(size=(n, d)) + centres[codes], codes


@pytest.mark.parametrize("folds, ridge, seed", [(2, 1.0, 0), (3, 10.0, 1), (5, 0.1, 2)])
def test_linear_probe_matches_reference(folds, ridge, seed):
    x, codes = probe_data(n=150, shift=0.7, seed=seed)
    pred = linear_probe_predictions(x, codes, folds=folds, ridge=ridge, seed=seed)
    fold = ref_folds(codes, folds, seed)
    for f in range(folds):  # stratified: every value split evenly across folds
        for v in np.unique(codes):
            assert abs(np.sum((fold == f) & (codes == v)) - np.sum(codes == v) / folds) <= 1
    np.testing.assert_array_equal(pred, ref_probe(x, codes, fold, ridge))


def test_linear_probe_never_sees_its_test_fold():
    x, codes = probe_data(n=120, seed=3)
    fold = ref_folds(codes, 2, 0)
    pred = linear_probe_predictions(x, codes, folds=2, seed=0)
    i = int(np.flatnonzero(fold == 0)[0])
    x2 = x.copy()
    x2[i] = 50.0  # a wild outlier in fold 0
    pred2 = linear_probe_predictions(x2, codes, folds=2, seed=0)
    rest_of_fold = (fold == 0) & (np.arange(len(x)) != i)
    # the probe that predicts fold 0 is fitted on fold 1 only: unchanged predictions
    np.testing.assert_array_equal(pred2[rest_of_fold], pred[rest_of_fold])
    # ... while fold-0 data does shape the fold-1 predictions (the check is not vacuous)
    x3 = x.copy()
    x3[fold == 0] = np.random.default_rng(9).normal(size=((fold == 0).sum(), x.shape[1])) * 5
    pred3 = linear_probe_predictions(x3, codes, folds=2, seed=0)
    assert not np.array_equal(pred3[fold == 1], pred[fold == 1])


def test_linear_probe_separable_and_independent():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 3))
    score = x[:, 0] + 0.5 * x[:, 1]
    x = x[np.abs(score) > 0.5]  # a margin
    codes = (score[np.abs(score) > 0.5] > 0).astype(np.int64)
    pred = linear_probe_predictions(x, codes, seed=0)
    assert balanced_accuracy(codes, pred) > 0.97
    # attribute independent of x: chance (1/3) within tolerance (sd ~0.02 at n = 1200)
    x = rng.normal(size=(1200, 6))
    codes = rng.integers(0, 3, 1200)
    pred = linear_probe_predictions(x, codes, seed=0)
    assert abs(balanced_accuracy(codes, pred) - 1 / 3) < 0.08


def test_linear_probe_balances_an_imbalanced_attribute():
    rng = np.random.default_rng(5)
    n = 2000
    codes = (rng.random(n) < 0.05).astype(np.int64)  # 95:5
    x = rng.normal(size=(n, 4))
    x[:, 0] += 1.0 * codes  # weakly predictable (d' = 1)
    pred = linear_probe_predictions(x, codes, seed=0)
    minority_recall = np.mean(pred[codes == 1] == 1)
    assert minority_recall > 0.4
    assert balanced_accuracy(codes, pred) > 0.6
    # an unweighted least-squares probe on the same folds nearly never predicts the minority
    unweighted = ref_probe(x, codes, ref_folds(codes, 2, 0), 1.0, weighted=False)
    assert np.mean(unweighted[codes == 1] == 1) < 0.1


def test_linear_probe_close_to_sklearn_ridge_classifier():
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import PredefinedSplit, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for n_values, seed in [(2, 6), (3, 7)]:
        rng = np.random.default_rng(seed)
        n = 600
        p = np.array([0.7, 0.2, 0.1][:n_values])
        codes = rng.choice(n_values, size=n, p=p / p.sum())
        x = rng.normal(size=(n, 5)) + 0.8 * rng.normal(size=(n_values, 5))[codes]
        pred = linear_probe_predictions(x, codes, folds=3, seed=seed)
        skl = cross_val_predict(
            make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0, class_weight="balanced")),
            x,
            codes,
            cv=PredefinedSplit(ref_folds(codes, 3, seed)),
        )
        assert abs(balanced_accuracy(codes, pred) - balanced_accuracy(codes, skl)) < 0.05


# -- uniformity_by_grouping: one shared partner sample for every grouping -----------------------


def _exact_uniformity(x: np.ndarray, members: np.ndarray, t: float = 2.0) -> float:
    """Slow reference: log of the mean of exp(-t d²) over all unordered pairs of ``members``."""
    vals = [
        np.exp(-t * np.sum((x[i].astype(np.float64) - x[j]) ** 2))
        for a, i in enumerate(members)
        for j in members[a + 1 :]
    ]
    return float(np.log(np.mean(vals)))


def test_uniformity_by_grouping_estimates_every_group():
    from fairmetric.audit.metrics import uniformity_by_grouping

    rng = np.random.default_rng(3)
    n = 1500
    x = rng.standard_normal((n, 4)).astype(np.float32) * 0.6
    big = (rng.random(n) < 0.7).astype(np.int64)  # groups of ~1050 and ~450 samples
    x[big == 1] *= 0.5  # the large group is tighter: a different uniformity
    tiny = np.zeros(n, dtype=np.int64)
    tiny[:3] = 1  # a 3-sample group: exact pairs
    overall, per = uniformity_by_grouping(
        x, {"big": big, "tiny": tiny}, partners=16, exact_max=500, seed=0
    )
    lnum, den = overall
    assert np.all(den == 16)
    assert np.log(np.exp(lnum).sum() / den.sum()) == pytest.approx(
        _exact_uniformity(x, np.arange(0, n, 3)), abs=0.08
    )
    for code in (0, 1):
        members = np.flatnonzero(big == code)
        g_num, g_den = per["big"]
        estimate = np.log(np.exp(g_num[members]).sum() / g_den[members].sum())
        assert estimate == pytest.approx(_exact_uniformity(x, members[::2]), abs=0.08)
    t_num, t_den = per["tiny"]
    assert np.all(t_den[:3] == 2)  # all pairs of the 3-sample group
    assert np.log(np.exp(t_num[:3]).sum() / t_den[:3].sum()) == pytest.approx(
        _exact_uniformity(x, np.arange(3)), rel=1e-5
    )


def test_uniformity_by_grouping_small_sets_are_exact_and_seeded():
    from fairmetric.audit.metrics import uniformity_by_grouping

    rng = np.random.default_rng(4)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    codes = np.repeat([0, 1], [20, 40])
    (lnum, den), per = uniformity_by_grouping(x, {"g": codes}, exact_max=100)
    assert np.all(den == 59)
    assert np.log(np.exp(lnum).sum() / den.sum()) == pytest.approx(
        _exact_uniformity(x, np.arange(60)), rel=1e-5
    )
    a = uniformity_by_grouping(x, {"g": codes}, exact_max=10, seed=1)
    b = uniformity_by_grouping(x, {"g": codes}, exact_max=10, seed=1)
    np.testing.assert_array_equal(a[1]["g"][0], b[1]["g"][0])


@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_uniformity_by_grouping_shared_partners_match_loops_in_the_log_domain(scale):
    from fairmetric.audit.metrics import uniformity_by_grouping

    # shared partners (groups larger than exact_max and than N / partners); at 1e30 every
    # exp(-t d²) is 0 in float64, and a group's closest partner is rarely the row's closest one
    rng = np.random.default_rng(7)
    n, partners, seed, t = 240, 4, 5, 2.0
    x = (rng.standard_normal((n, 3)) * scale).astype(np.float32)
    codes = {"a": rng.integers(0, 2, n), "b": np.arange(n) % 3}
    (lnum, den), per = uniformity_by_grouping(
        x, codes, t=t, partners=partners, exact_max=10, seed=seed
    )
    # the draw: samples in a seeded random order, partners the next `partners` in that order
    order = np.random.default_rng(seed).permutation(n)
    x64 = x.astype(np.float64)

    def lse(logs):
        if not logs:
            return -math.inf
        top = max(logs)
        return top + math.log(math.fsum(math.exp(v - top) for v in logs))

    ref = {None: np.zeros(n), **{name: np.zeros(n) for name in codes}}
    ref_den = {name: np.zeros(n) for name in codes}
    for r in range(n):
        i = order[r]
        pairs = [order[(r + s) % n] for s in range(1, partners + 1)]
        logs = {j: -t * math.fsum((x64[i] - x64[j]) ** 2) for j in pairs}
        ref[None][i] = lse(list(logs.values()))
        for name, c in codes.items():
            inside = [v for j, v in logs.items() if c[j] == c[i]]
            ref[name][i] = lse(inside)
            ref_den[name][i] = len(inside)
    rtol, atol = (1e-12, 0.0) if scale > 1e18 else (1e-5, 1e-6)
    np.testing.assert_array_equal(den, partners)
    np.testing.assert_allclose(lnum, ref[None], rtol=rtol, atol=atol)
    for name in codes:
        np.testing.assert_array_equal(per[name][1], ref_den[name])
        np.testing.assert_array_equal(np.isfinite(per[name][0]), ref_den[name] > 0)
        got, want = per[name][0], ref[name]
        np.testing.assert_allclose(got[want > -np.inf], want[want > -np.inf], rtol=rtol, atol=atol)
    if scale > 1e18:
        assert np.all(np.isfinite(lnum)) and lnum.max() < -1e55


# --------------------------------------------------------------------------------------------
# NeighbourStats with ties (the tie rule of fairmetric.neighbors.ties)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_neighbour_stats_with_ties_match_the_enumeration_reference(metric):
    from fairmetric.neighbors.index import NeighborIndex
    from fairmetric.neighbors.search import iter_neighbours
    from tests.audit.test_tie_paths import tie_rows
    from tests.neighbors import reference as ref

    x, labels, colour = tie_rows()
    n, kk = len(x), 6
    s = NeighbourStats(labels, {"c": colour}, ks=(1, 2, 4), homophily_k=4, leakage_k=3)
    for nb in iter_neighbours(NeighborIndex(x, metric=metric, index="exact"), kk, chunk_size=5):
        s.add(nb)
    assert s.tied_queries > 0
    for i in range(n):
        for k in (1, 2, 4):
            assert s.hits[k][i] == pytest.approx(ref.recall_credit(x, labels, i, k, metric))
        assert s.ap[i] == pytest.approx(ref.ap_credit(x, labels, i, kk, metric))
        h = ref.homophily(x, labels, colour, i, 4, metric)
        if h is None:
            assert np.isnan(s.homophily["c"][i])
        else:
            assert s.homophily["c"][i] == pytest.approx(h)
        assert s.vote["c"][i] == ref.vote(x, colour, i, 3, metric, nearest_first=True)


def test_neighbour_stats_add_needs_the_query_rows_of_outside_vectors():
    from fairmetric.neighbors.index import NeighborIndex
    from fairmetric.neighbors.search import search_vectors

    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    nb = search_vectors(NeighborIndex(x, index="exact"), x[:2], 1)
    s = NeighbourStats(np.zeros(6, dtype=int), {}, ks=(1,), homophily_k=1, leakage_k=1)
    with pytest.raises(ValueError, match="the query rows of outside-vector neighbours"):
        s.add(nb)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 9),
    seed=st.integers(0, 2**31 - 1),
    kk=st.integers(1, 3),
    metric=st.sampled_from(["l2", "cosine"]),
)
def test_property_neighbour_stats_with_ties_vs_enumeration(n, seed, kk, metric):
    from fairmetric.neighbors.index import NeighborIndex
    from fairmetric.neighbors.search import iter_neighbours
    from tests.neighbors import reference as ref

    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, size=(n, 2)).astype(np.float32)  # few distinct rows: many ties
    x[np.abs(x).sum(axis=1) == 0] = [1, 1]
    labels = rng.integers(0, 3, n)
    codes = rng.integers(0, 2, n)
    kk = min(kk, n - 1)
    s = NeighbourStats(labels, {"c": codes}, ks=(1, kk), homophily_k=kk, leakage_k=kk)
    for nb in iter_neighbours(NeighborIndex(x, metric=metric, index="exact"), kk, margin=0):
        s.add(nb)
    for i in range(n):
        for k in (1, kk):
            assert s.hits[k][i] == pytest.approx(ref.recall_credit(x, labels, i, k, metric))
        assert s.ap[i] == pytest.approx(ref.ap_credit(x, labels, i, kk, metric))
        h = ref.homophily(x, labels, codes, i, kk, metric)
        assert (np.isnan(s.homophily["c"][i]) and h is None) or s.homophily["c"][i] == (
            pytest.approx(h)
        )
        assert s.vote["c"][i] == ref.vote(x, codes, i, kk, metric, nearest_first=True)
