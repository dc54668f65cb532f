"""Neighbour search against the float64 torch reference, on tiny deterministic data."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fairmetric.neighbors.index as index_module
from fairmetric.neighbors.index import (
    NeighborIndex,
    _drop_self,
    default_nlist,
    default_nlist_pq,
    knn_bruteforce,
    nprobe_for_recall,
    nprobe_needed,
)

METRICS = ["l2", "cosine", "ip"]
HAS_GPU = faiss.get_num_gpus() > 0


def _random(n: int = 60, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _clustered(n: int = 5000, d: int = 16, clusters: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)) * 3
    return (centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


def _recall(ids: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / ref.shape[1] for a, b in zip(ids, ref)]))


# ----------------------------------------------------------------------------- the reference


def test_bruteforce_matches_explicit_loops():
    x = _random(12, 3, seed=1).astype(np.float64)
    for metric in METRICS:
        s, i = knn_bruteforce(x, 4, metric=metric)
        for q in range(len(x)):
            cand = []
            for j in range(len(x)):
                if j == q:
                    continue
                if metric == "l2":
                    cand.append((sum((x[q, t] - x[j, t]) ** 2 for t in range(3)), j))
                else:
                    a, b = x[q], x[j]
                    if metric == "cosine":
                        a, b = a / np.sqrt((a * a).sum()), b / np.sqrt((b * b).sum())
                    cand.append((-sum(a[t] * b[t] for t in range(3)), j))
            cand.sort()
            assert [j for _, j in cand[:4]] == list(i[q])
            sign = 1 if metric == "l2" else -1
            np.testing.assert_allclose(s[q], [sign * v for v, _ in cand[:4]], rtol=1e-12)


# ----------------------------------------------------------------------------- exact search


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("exclude_self", [True, False])
def test_exact_equals_reference(metric, exclude_self):
    x = _random()
    index = NeighborIndex(x, metric=metric, index="exact")
    scores, ids = index.search(None, 7, exclude_self=exclude_self)
    ref_s, ref_i = knn_bruteforce(x, 7, metric=metric, exclude_self=exclude_self)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert scores.shape == ids.shape == (60, 7)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)
    if exclude_self:
        assert not (ids == np.arange(60)[:, None]).any()
    elif metric != "ip":  # under raw inner product a longer vector can beat the query itself
        np.testing.assert_array_equal(ids[:, 0], np.arange(60))
    assert index.index_used == "exact"
    assert (
        index.description
        == f"{'IndexFlatL2' if metric == 'l2' else 'IndexFlatIP'} (exact, {metric})"
    )
    json.dumps(index.params)


def test_float64_and_tensor_input_give_same_result():
    x = _random()
    ref = NeighborIndex(x).search(None, 5)
    for inp in (x.astype(np.float64), torch.from_numpy(x), np.asfortranarray(x), x.tolist()):
        s, i = NeighborIndex(inp).search(None, 5)
        np.testing.assert_array_equal(i, ref[1])
        np.testing.assert_allclose(s, ref[0], rtol=1e-6)
    half = torch.from_numpy(x).to(torch.bfloat16)  # numpy has no bfloat16: cast on the way
    assert NeighborIndex(half).search(None, 5)[1].shape == (60, 5)


def test_input_array_not_modified_and_cosine_vectors_are_unit():
    x = _random() * 5
    before = x.copy()
    index = NeighborIndex(x, metric="cosine")
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1, rtol=1e-6)
    assert NeighborIndex(x).vectors is x  # float32 C-contiguous: no copy


def test_drop_self_wherever_it_is():
    ids = np.array(
        [[4, 0, 7], [5, 6, 1], [2, 3, 8]]
    )  # self (rows 0, 1, 2) in column 1, absent, col 0
    scores = np.arange(9, dtype=np.float32).reshape(3, 3)
    s, i = _drop_self(scores, ids, np.array([0, 1, 2]))
    np.testing.assert_array_equal(i, [[4, 7], [5, 6], [3, 8]])
    np.testing.assert_array_equal(s, [[0, 2], [3, 4], [7, 8]])


@pytest.mark.parametrize("metric", METRICS)
def test_duplicates_self_removed_even_when_not_first(metric):
    x = _random(40, 6, seed=3)
    x[[5, 9, 13, 21]] = x[0]  # five copies of row 0
    x[30] = x[31]
    k = 3  # fewer than the other copies: self may fall out of the top k+1 altogether
    index = NeighborIndex(x, metric=metric, index="exact")
    scores, ids = index.search(None, k)
    ref_s, ref_i = knn_bruteforce(x, k, metric=metric)
    assert not (ids == np.arange(40)[:, None]).any()
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)
    copies = {0, 5, 9, 13, 21}
    canonical = np.arange(40)
    canonical[list(copies)] = 0
    canonical[31] = 30
    # equal up to the order of tied copies
    np.testing.assert_array_equal(canonical[ids], canonical[ref_i])
    if metric != "ip":  # a copy is a nearest neighbour (under ip a longer vector can beat it)
        for q in copies:
            assert set(ids[q]) <= copies - {q}
        assert ids[30, 0] == 31 and ids[31, 0] == 30
        # with k = 4 every other copy is a neighbour, whichever column self came back in
        _, ids4 = index.search(None, 4)
        for q in copies:
            assert set(ids4[q]) == copies - {q}


# ----------------------------------------------------------------------------- chunks and subsets


@pytest.mark.parametrize("chunk_size", [1, 7, 60])
def test_iter_search_chunks_concatenate_to_search(chunk_size):
    x = _random()
    index = NeighborIndex(x, metric="cosine")
    full_s, full_i = index.search(None, 5)
    starts, parts_s, parts_i = [], [], []
    for start, stop, s, i in index.iter_search(5, chunk_size=chunk_size):
        assert stop - start == len(s) == len(i) <= chunk_size
        starts.append((start, stop))
        parts_s.append(s)
        parts_i.append(i)
    assert starts[0][0] == 0 and starts[-1][1] == 60
    assert all(a[1] == b[0] for a, b in zip(starts, starts[1:]))
    np.testing.assert_array_equal(np.concatenate(parts_i), full_i)
    # faiss takes a different (non-BLAS) path for very small chunks: scores agree to rounding
    np.testing.assert_allclose(np.concatenate(parts_s), full_s, rtol=1e-5, atol=1e-6)


def test_iter_search_with_progress_bar():
    index = NeighborIndex(_random())
    assert sum(len(s) for _, _, s, _ in index.iter_search(3, chunk_size=16, progress=True)) == 60


def test_query_subset_and_mask():
    x = _random()
    index = NeighborIndex(x, metric="l2")
    full_s, full_i = index.search(None, 4)
    q = np.array([3, 0, 17, 3])
    s, i = index.search(q, 4)
    np.testing.assert_array_equal(i, full_i[q])
    np.testing.assert_allclose(s, full_s[q], rtol=1e-5, atol=1e-6)
    mask = np.zeros(60, bool)
    mask[[2, 40]] = True
    np.testing.assert_array_equal(index.search(mask, 4)[1], full_i[[2, 40]])
    s, i = index.search(np.array([], dtype=np.int64), 4)
    assert s.shape == i.shape == (0, 4)
    # without self-exclusion, a query's first neighbour is itself
    assert list(index.search(q, 4, exclude_self=False)[1][:, 0]) == [3, 0, 17, 3]


# ----------------------------------------------------------------------------- approximate indexes


@pytest.fixture(scope="module")
def clustered():
    x = _clustered()
    return x, {m: knn_bruteforce(x, 10, metric=m)[1] for m in ("l2", "cosine")}


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_approximate_recall(clustered, kind, metric):
    x, ref = clustered
    index = NeighborIndex(x, metric=metric, index=kind)
    assert index.index_used == kind
    _, ids = index.search(None, 10)
    assert _recall(ids, ref[metric]) >= 0.95
    assert not (ids == np.arange(len(x))[:, None]).any()
    json.dumps(index.params)
    if kind == "ivf":
        assert index.params["nlist"] == default_nlist(5000) == 128
        cal = index.params["calibration"]
        assert cal["nprobe_source"] == "calibrated" and cal["recall@1"] >= cal["sample_target@1"]
        assert cal["sample_queries"] == 2000
        assert index.description.startswith("IndexIVFFlat(nlist=128, nprobe=")
    else:
        assert index.params["hnsw_m"] == 32
        assert index.description.startswith("IndexHNSWFlat(M=32")


def test_ivf_is_seeded():
    x = _clustered(2000, 8, 20)
    a = NeighborIndex(x, index="ivf", nlist=20, nprobe=2, seed=3).search(None, 5)[1]
    b = NeighborIndex(x, index="ivf", nlist=20, nprobe=2, seed=3).search(None, 5)[1]
    np.testing.assert_array_equal(a, b)


def test_missing_neighbours_are_minus_one_with_nan_score():
    x = _clustered(400, 4, 10, seed=1)
    index = NeighborIndex(x, index="ivf", nlist=10, nprobe=1, train_size=400)
    scores, ids = index.search(None, 150)  # more than one list holds
    missing = ids == -1
    assert missing.any()
    assert np.isnan(scores[missing]).all() and np.isfinite(scores[~missing]).all()
    assert not (ids == np.arange(400)[:, None]).any()
    # missing slots come last, found neighbours stay sorted
    assert (np.diff(missing.astype(int), axis=1) >= 0).all()


def test_hnsw_ef_search_and_params():
    x = _clustered(1000, 8, 10)
    index = NeighborIndex(x, index="hnsw", hnsw_m=8, ef_search=16)
    assert index.params["ef_search"] == 16 and index.params["hnsw_m"] == 8
    _, ids = index.search(None, 20)  # ef below k is raised to k
    assert (ids >= 0).all()


# ----------------------------------------------------------------------------- auto, threads, GPU


def test_auto_picks_exact_then_ivfpq_on_the_cpu():
    x = _clustered(2000, 8, 20)
    assert NeighborIndex(x, exact_max=2000).index_used == "exact"
    index = NeighborIndex(x, exact_max=1999, target_recall=0.5, use_gpu=False)
    assert index.index_used == "ivfpq" and index.params["index"] == "ivfpq"
    assert index.params["nlist"] == default_nlist_pq(2000) == 45 < default_nlist(2000)
    assert index.params["train_size"] == 2000


def test_ivf_that_would_be_slower_than_exact_search_is_rejected_or_warned(monkeypatch):
    x = np.random.default_rng(0).normal(size=(4000, 32)).astype(np.float32)  # no structure
    with pytest.warns(UserWarning, match="consider index='exact'"):
        forced = NeighborIndex(x, index="ivf")
    assert forced.index_used == "ivf" and forced.params["nprobe"] > 102 / 25
    # "auto" picks IVF-Flat on a GPU only (there is no GPU fast-scan index), and there falls back
    # to exact search instead; simulated on the CPU by what "auto" resolves to
    monkeypatch.setattr(
        index_module, "_auto_kind", lambda n, top, gpu: "exact" if n <= top else "ivf"
    )
    with pytest.warns(UserWarning, match="index='auto' uses exact search"):
        index = NeighborIndex(x, exact_max=100)
    assert index.index_used == "exact" and index.description == "IndexFlatL2 (exact, l2)"
    rejected = index.params["ivf_rejected"]
    assert rejected["nlist"] == 102 and rejected["nprobe_needed"] > 102 / 25
    ref = knn_bruteforce(x[:300], 3)[1]
    with pytest.warns(UserWarning, match="uses exact search"):
        small = NeighborIndex(x[:300], exact_max=10)
    np.testing.assert_array_equal(small.search(None, 3)[1], ref)


def test_auto_on_unstructured_data_keeps_ivfpq_and_probes_more_lists():
    x = np.random.default_rng(0).normal(size=(4000, 32)).astype(np.float32)
    index = NeighborIndex(x, exact_max=100, use_gpu=False)
    assert index.index_used == "ivfpq"
    assert index.params["nprobe"] > index.params["nlist"] / 25  # IVF-Flat would have given up


def test_default_nlist():
    assert default_nlist(100_000) == 1265
    assert default_nlist(1_000_000) == 4000
    assert default_nlist(10**11) == 65536
    assert default_nlist(1000) == 25  # n // 39 beats the floor of 16 only when smaller
    assert default_nlist(5) == 1


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_nprobe_calibration_predicts_ivf_recall_exactly(metric):
    x = _clustered(3000, 8, 40, seed=2)
    x += np.random.default_rng(0).normal(size=x.shape).astype(np.float32) * 2  # make it harder
    index = NeighborIndex(x, metric=metric, index="ivf", nlist=64, nprobe=1, train_size=3000)
    needed = nprobe_needed(index.vectors, index._index.quantizer, 64, metric=metric, queries=500)
    assert len(needed) == 500 and (np.diff(needed) >= 0).all()
    rows = np.sort(np.random.default_rng([0, 1]).choice(3000, 500, replace=False))
    true_nn = knn_bruteforce(x, 1, metric=metric)[1][rows, 0]
    for nprobe in (1, 2, 4, 8, 64):
        index._index.nprobe = nprobe
        found = index.search(rows, 1)[1][:, 0]
        assert np.mean(found == true_nn) == pytest.approx(np.mean(needed <= nprobe), abs=0.002)
    assert np.mean(needed <= 64) == 1.0
    for target in (0.5, 0.9, 0.995, 1.0):
        p = nprobe_for_recall(needed, target)
        assert np.mean(needed <= p) >= target
        assert p == 1 or np.mean(needed <= p - 1) < target


def test_given_nprobe_reports_its_calibrated_recall():
    x = _clustered(2000, 8, 20)
    index = NeighborIndex(x, index="ivf", nlist=40, nprobe=40)
    cal = index.params["calibration"]
    assert cal == {
        "nprobe_source": "given",
        "target_recall@1": 0.995,
        "sample_target@1": pytest.approx(0.995 + 1.645 * (0.995 * 0.005 / 2000) ** 0.5),
        "sample_queries": 2000,
        "recall@1": 1.0,
    }
    assert NeighborIndex(x, index="ivf", nlist=40, target_recall=0.5).params["nprobe"] <= 40


def test_ivf_warns_when_it_needs_most_lists():
    x = np.random.default_rng(0).normal(size=(4000, 32)).astype(np.float32)  # no structure
    with pytest.warns(UserWarning, match="slower than exact search: consider index='exact'"):
        NeighborIndex(x, index="ivf", nlist=64, target_recall=1.0)


def test_threads_are_restored():
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        seen = []
        real_search = faiss.IndexFlatL2.search

        def spy(self, *args, **kwargs):
            seen.append(faiss.omp_get_max_threads())
            return real_search(self, *args, **kwargs)

        index = NeighborIndex(_random(), threads=3)
        assert faiss.omp_get_max_threads() == 1
        assert index.params["threads"] == 3
        faiss.IndexFlatL2.search = spy
        try:
            index.search(None, 3)
        finally:
            faiss.IndexFlatL2.search = real_search
        assert seen == [3]
        assert faiss.omp_get_max_threads() == 1
        assert NeighborIndex(_random()).params["threads"] == 1
    finally:
        faiss.omp_set_num_threads(previous)


@pytest.mark.skipif(HAS_GPU, reason="faiss sees a GPU")
def test_use_gpu_true_without_gpu_faiss_is_a_clear_error():
    with pytest.raises(ValueError, match="use_gpu=True.*no GPU support.*use_gpu=False"):
        NeighborIndex(_random(), use_gpu=True)
    assert NeighborIndex(_random()).params["gpu"] is False  # None falls back to CPU


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs GPU faiss")
@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_gpu_matches_cpu(kind):
    x = _clustered(3000, 16, 30)
    kw = {"nlist": 30, "nprobe": 30} if kind == "ivf" else {}  # full probe: exact results
    cpu_s, cpu_i = NeighborIndex(x, index=kind, use_gpu=False, **kw).search(None, 5)
    gpu = NeighborIndex(x, index=kind, use_gpu=True, **kw)
    assert gpu.params["gpu"] is True and gpu.description.startswith("Gpu")
    s, i = gpu.search(None, 5)
    assert (i == cpu_i).mean() > 0.99
    np.testing.assert_allclose(s, cpu_s, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="GPU limit"):
        gpu.search(None, 2048)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (np.zeros(10), {}, r"x must be a 2-D array.*\(10,\)"),
        (np.zeros((1, 4)), {}, "at least 2 rows"),
        (np.zeros((5, 0)), {}, "D=0"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "real numeric"),
        (np.eye(4, dtype=complex), {}, "real numeric"),
        (_random(10, 4), {"metric": "euclid"}, "unknown metric 'euclid'.*'l2', 'cosine', 'ip'"),
        (
            _random(10, 4),
            {"index": "flat"},
            "unknown index 'flat'.*'auto', 'exact', 'ivf', 'ivfpq', 'hnsw'",
        ),
        (_random(10, 4), {"threads": 0}, "threads must be >= 1"),
        (_random(10, 4), {"use_gpu": "yes"}, "use_gpu must be"),
        (_random(10, 4), {"hnsw_m": 1}, "hnsw_m must be >= 2"),
        (_random(10, 4), {"exact_max": 1.5}, "exact_max must be an integer"),
        (_random(10, 4), {"index": "exact", "nprobe": 4}, "nprobe applies to IVF only"),
        (_random(10, 4), {"index": "ivf", "ef_search": 4}, "ef_search applies to index='hnsw'"),
        (_random(10, 4), {"index": "ivf", "nlist": 11}, r"nlist must be in \[1, 10\]"),
        (_random(10, 4), {"index": "ivf", "nlist": 4, "nprobe": 5}, r"nprobe must be in \[1, 4\]"),
        (
            _random(10, 4),
            {"index": "ivf", "nlist": 4, "train_size": 3},
            r"train_size must be in \[4, 10\]",
        ),
        (_random(10, 4), {"index": "hnsw", "use_gpu": True}, "use_gpu=True"),
        (_random(10, 4), {"target_recall": 0}, r"target_recall must be in \(0, 1\]"),
        (_random(10, 4), {"target_recall": "high"}, "target_recall must be a number"),
    ],
)
def test_construction_errors(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeighborIndex(x, **kwargs)


def test_non_finite_rows_are_named():
    x = _random(20, 3)
    x[[4, 11]] = np.nan
    x[15, 0] = np.inf
    with pytest.raises(ValueError, match=r"3 row\(s\) with NaN or Inf.*\[4, 11, 15\].*drop"):
        NeighborIndex(x)
    big = _random(20, 3).astype(np.float64)
    big[2, 1] = 1e300  # overflows float32
    with pytest.raises(ValueError, match=r"1 row\(s\).*\[2\]"):
        NeighborIndex(big)
    with pytest.raises(ValueError, match="NaN or Inf"):
        knn_bruteforce(x, 2)


def test_zero_norm_rows_under_cosine():
    x = _random(20, 3)
    x[[3, 7]] = 0
    with pytest.raises(ValueError, match=r"2 zero-norm row\(s\).*\[3, 7\].*metric='l2'"):
        NeighborIndex(x, metric="cosine")
    with pytest.raises(ValueError, match="zero-norm"):
        knn_bruteforce(x, 2, metric="cosine")
    NeighborIndex(x, metric="l2")  # fine under l2


@pytest.mark.parametrize(
    ("k", "exclude_self", "match"),
    [
        (0, True, r"k must be in \[1, 9\]"),
        (10, True, r"k must be in \[1, 9\], got 10 \(N=10 rows, minus the query itself\)"),
        (11, False, r"k must be in \[1, 10\], got 11 \(N=10 rows\)"),
        (2.0, True, "k must be an integer"),
        (True, True, "k must be an integer"),
    ],
)
def test_k_errors(k, exclude_self, match):
    index = NeighborIndex(_random(10, 4))
    with pytest.raises(ValueError, match=match):
        index.search(None, k, exclude_self=exclude_self)
    with pytest.raises(ValueError, match=match):
        index.iter_search(k, exclude_self=exclude_self)  # raised at the call, not at next()
    with pytest.raises(ValueError, match=match):
        knn_bruteforce(_random(10, 4), k, exclude_self=exclude_self)
    assert index.search(None, 10, exclude_self=False)[1].shape == (10, 10)


@pytest.mark.parametrize(
    ("queries", "match"),
    [
        (np.array([0, 10]), r"1 index\(es\) out of range \[0, 10\), first \[10\]"),
        (np.array([-1, 3]), r"out of range.*\[-1\]"),
        (np.array([[0, 1]]), "1-D"),
        (np.array([0.0, 1.0]), "integer row indices"),
        (np.array([True, False]), r"boolean mask must have shape \(10,\)"),
    ],
)
def test_query_errors(queries, match):
    with pytest.raises(ValueError, match=match):
        NeighborIndex(_random(10, 4)).search(queries, 2)


def test_other_search_argument_errors():
    index = NeighborIndex(_random(10, 4))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        index.iter_search(2, chunk_size=0)
    with pytest.raises(ValueError, match="exclude_self must be True or False"):
        index.search(None, 2, exclude_self="yes")
    with pytest.raises(ValueError, match="unknown metric"):
        knn_bruteforce(_random(10, 4), 2, metric="L2")


# ----------------------------------------------------------------------------- property


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 40),
    d=st.integers(1, 6),
    metric=st.sampled_from(METRICS),
    exclude_self=st.booleans(),
    duplicates=st.integers(0, 3),
    data=st.data(),
)
def test_exact_search_equals_bruteforce(seed, n, d, metric, exclude_self, duplicates, data):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) * rng.uniform(0.1, 10)).astype(np.float32)
    for _ in range(duplicates):
        x[rng.integers(n)] = x[rng.integers(n)]
    k = data.draw(st.integers(1, n - 1 if exclude_self else n), label="k")
    scores, ids = NeighborIndex(x, metric=metric, index="exact").search(
        None, k, exclude_self=exclude_self
    )
    # the full ranking, to see ties across the k-th position too
    full = n - 1 if exclude_self else n
    ref_s, ref_i = knn_bruteforce(x, full, metric=metric, exclude_self=exclude_self)
    scale = float((x.astype(np.float64) ** 2).sum(1).max()) if metric != "cosine" else 1.0
    tol = 1e-5 * max(scale, 1e-12)
    np.testing.assert_allclose(scores, ref_s[:, :k], rtol=1e-4, atol=tol)
    if exclude_self:
        assert not (ids == np.arange(n)[:, None]).any()
    padded = np.concatenate([ref_s, np.full((n, 1), np.inf)], axis=1)
    gap_after = np.abs(np.diff(padded, axis=1))[:, :k]
    gap_before = np.concatenate([np.full((n, 1), np.inf), gap_after[:, :-1]], axis=1)
    clear = (gap_after > 10 * tol) & (gap_before > 10 * tol)
    np.testing.assert_array_equal(ids[clear], ref_i[:, :k][clear])


def test_release_frees_the_index_but_keeps_vectors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    index = NeighborIndex(x, metric="l2", index="exact")
    index.release()
    np.testing.assert_array_equal(index.vectors, x)  # the caller's rows, still valid
    with pytest.raises(RuntimeError, match="released"):
        index.search(None, 3)
    # an exact cosine index reads its rows from the index storage: release keeps the index
    cos = NeighborIndex(x, metric="cosine", index="exact")
    before = cos.vectors.copy()
    cos.release()
    np.testing.assert_array_equal(cos.vectors, before)
    assert cos.search(None, 3)[1].shape == (50, 3)


@pytest.mark.filterwarnings("ignore:IVF needs")
def test_ivf_calibration_survives_faiss_torch_utils():
    """pytorch-metric-learning imports faiss.contrib.torch_utils, which makes some faiss methods
    return torch tensors: the audit must work in a process that trained with PML first."""
    import faiss.contrib.torch_utils  # noqa: F401

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 8)).astype(np.float32)
    x = (centres[rng.integers(0, 20, 3000)] + 0.1 * rng.standard_normal((3000, 8))).astype(
        np.float32
    )
    index = NeighborIndex(x, metric="l2", index="ivf")
    scores, ids = index.search(None, 5)
    assert isinstance(ids, np.ndarray) and ids.shape == (3000, 5)
