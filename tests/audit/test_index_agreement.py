"""Approximate indexes keep the audit's promise or are not used: per-group Recall@1 measured
against brute force on sampled queries, HNSW's efSearch calibrated, a failing forced index
refused with a clear message, ``auto`` falling back to exact search."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fairmetric import EmbeddingSet
from fairmetric.audit import audit
from fairmetric.audit.agreement import IndexDisagrees, agreement, check_index, sample_rows
from fairmetric.neighbors import NeighborIndex

FAST = dict(ks=(1,), bootstrap=0, linear_probe=False, homophily_k=3, leakage_k=3)


def _clustered(n=3000, d=16, classes=150, noise=0.3, seed=0) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d))
    labels = rng.integers(0, classes, size=n)
    x = centres[labels] + noise * rng.normal(size=(n, d))
    return EmbeddingSet(
        embeddings=x.astype(np.float32),
        labels=labels,
        attributes={"g": rng.integers(0, 2, size=n)},
    )


def _hard(n=3000, d=64, seed=1) -> EmbeddingSet:
    """Isotropic noise in 64-d with a weak class signal: neighbours are hard to find."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 300, size=n)
    centres = rng.normal(size=(300, d))
    x = 0.6 * centres[labels] + rng.normal(size=(n, d))
    return EmbeddingSet(
        embeddings=x.astype(np.float32),
        labels=labels,
        attributes={"g": rng.integers(0, 2, size=n)},
    )


def _loop_hits(x, labels, rows):
    """Recall@1 hit (tie-averaged) of each row by brute force over float64 cosine."""
    x = x.astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = []
    for r in rows:
        s = x @ x[r]
        s[r] = -np.inf
        best = np.flatnonzero(s == s.max())
        out.append(float(np.mean(labels[best] == labels[r])))
    return np.array(out)


def test_the_exact_side_of_the_check_is_brute_force():
    data = _hard(n=800)
    index = NeighborIndex(data.embeddings, metric="cosine", index="hnsw", ef_search=8)
    result = agreement(index, data, ["g"], per_group=300, tolerance=0.02, seed=0)
    rows = sample_rows(data, ["g"], 300, 0)
    ref = _loop_hits(data.embeddings, data.labels, rows)
    codes = data.attribute("g")[rows]
    for code, name in enumerate(data.attribute_value_names["g"]):
        got = result["groups"]["g"][name]
        assert got["queries"] == int((codes == code).sum()) == 300
        assert got["recall@1_exact"] == pytest.approx(ref[codes == code].mean(), abs=1e-12)
        assert not got["whole_group"]


def test_too_few_sampled_queries_to_ever_pass_is_refused():
    data = _hard(n=800)
    index = NeighborIndex(data.embeddings, metric="cosine", index="hnsw")
    with pytest.raises(ValueError, match="sample at least 598"):
        agreement(index, data, ["g"], per_group=400)


def test_an_exact_audit_records_no_check():
    report = audit(_clustered(n=500), index="exact", **FAST)
    assert report.metadata["index_agreement"] is None


def test_hnsw_is_calibrated_until_it_agrees():
    data = _hard()
    # a sparse graph (degree 8): the beam of the first try (the 10 candidates searched) is too
    # small on this data with any faiss version, so the calibration has to widen it
    index = NeighborIndex(data.embeddings, metric="cosine", index="hnsw", ef_search=2, hnsw_m=8)
    result = check_index(index, data, ["g"], per_group=1000, seed=0)
    assert result["passed"]
    tried = result["ef_search_tried"]
    assert tried[0] == 2 and len(tried) > 1 and tried == sorted(tried)
    assert index.params["ef_search"] == tried[-1]
    for v in result["groups"]["g"].values():
        assert v["bound"] <= 0.005


def test_the_audit_with_hnsw_equals_exact_within_the_promise():
    data = _clustered()
    exact = audit(data, index="exact", **FAST)
    approx = audit(data, index="hnsw", **FAST)
    meta = approx.metadata["index_agreement"]
    assert meta["passed"] and set(meta["groups"]["g"]) == {"0", "1"}
    for g, v in exact["recall@1"].values("g").items():
        assert abs(approx["recall@1"].values("g")[g] - v) <= 0.005


def test_ivf_is_calibrated_on_the_audits_promise():
    data = _hard()
    index = NeighborIndex(data.embeddings, metric="cosine", index="ivf", nlist=64, nprobe=1)
    capped = check_index(index, data, ["g"], per_group=1000, max_nprobe=1)
    assert not capped["passed"] and capped["nprobe_tried"] == [1]
    result = check_index(index, data, ["g"], per_group=1000)
    assert result["passed"] and result["nprobe_tried"][0] == 1
    assert index.params["nprobe"] == result["nprobe_tried"][-1] <= 64


def test_a_forced_index_that_cannot_agree_is_refused(monkeypatch):
    import fairmetric.audit.agreement as agreement_module

    monkeypatch.setattr(agreement_module, "MAX_EF_SEARCH", 2)  # a beam that cannot reach it
    with pytest.raises(IndexDisagrees, match="does not keep the audit's promise") as e:
        audit(_hard(), index="hnsw", index_options={"ef_search": 1, "hnsw_m": 2}, **FAST)
    assert "g=" in str(e.value) and "--index exact" in str(e.value)


def test_auto_falls_back_to_exact_search_when_ivf_disagrees(monkeypatch):
    import fairmetric.audit.agreement as agreement_module

    monkeypatch.setattr(agreement_module, "MAX_REFINE_FACTOR", 1)
    data = _hard()
    # one 4-bit number per row, one candidate re-scored per neighbour: hopeless at any nprobe
    options = {"exact_max": 100, "nlist": 64, "nprobe": 1, "pq_m": 1, "refine_factor": 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = audit(data, index="auto", index_options=options, **FAST)
    assert any("uses exact search instead" in str(w.message) for w in caught)
    meta = report.metadata["index_agreement"]
    assert meta["fallback"] == "exact" and not meta["passed"]
    assert report.metadata["index_choice"].startswith("exact search: auto built an approximate")
    assert (
        meta["nprobe_tried"] == [1, 2, 4, 8, 16, 32, 64] and meta["refine_factor_tried"] == [1] * 7
    )
    assert report.metadata["index"] == "exact"
    exact = audit(data, index="exact", **FAST)
    assert report["recall@1"].values("g") == exact["recall@1"].values("g")


def test_the_effort_setters_refuse_another_index_kind_and_out_of_range_values():
    data = _clustered(n=400)
    exact = NeighborIndex(data.embeddings, metric="cosine", index="exact")
    with pytest.raises(ValueError, match="nprobe applies to an IVF index"):
        exact.set_nprobe(2)
    with pytest.raises(ValueError, match="ef_search applies to an HNSW index"):
        exact.set_ef_search(64)
    ivf = NeighborIndex(data.embeddings, metric="cosine", index="ivf", nlist=8, nprobe=1)
    with pytest.raises(ValueError, match="nprobe"):
        ivf.set_nprobe(9)  # more lists than there are
    ivf.set_nprobe(8)
    assert ivf.params["nprobe"] == 8 and "nprobe=8" in ivf.description
    # all lists probed: IVF returns what exact search does
    from fairmetric.neighbors import search_rows

    rows = np.arange(50)
    assert np.array_equal(
        search_rows(ivf, rows, 1).ids[:, 0], search_rows(exact, rows, 1).ids[:, 0]
    )
    hnsw = NeighborIndex(data.embeddings, metric="cosine", index="hnsw")
    with pytest.raises(ValueError, match="ef_search"):
        hnsw.set_ef_search(0)


def test_ivfpq_is_calibrated_on_both_knobs():
    """nprobe doubles while the disagreeing queries' exact neighbours lie in unvisited lists,
    refine_factor while they were visited but ranked too low by the codes."""
    data = _hard()
    lists = NeighborIndex(
        data.embeddings, metric="cosine", index="ivfpq", nlist=64, nprobe=1, refine_factor=32
    )
    result = check_index(lists, data, ["g"], k=10)
    assert result["passed"] and result["nprobe_tried"][:2] == [1, 2]
    assert set(result["refine_factor_tried"]) == {32}
    codes = NeighborIndex(
        data.embeddings, metric="cosine", index="ivfpq", nlist=64, nprobe=64, refine_factor=1
    )
    result = check_index(codes, data, ["g"], k=10)
    assert result["passed"] and result["refine_factor_tried"][:2] == [1, 2]
    assert set(result["nprobe_tried"]) == {64} and result["search_depth"] == 10
    assert codes.params["refine_factor"] == result["refine_factor_tried"][-1]


def test_the_audit_with_ivfpq_equals_exact_within_the_promise():
    data = _clustered(n=4000)
    exact = audit(data, index="exact", **FAST)
    approx = audit(data, index="ivfpq", index_options={"nlist": 40}, **FAST)
    meta = approx.metadata["index_agreement"]
    assert meta["passed"] and approx.metadata["index"] == "ivfpq"
    assert meta["nprobe_tried"][0] == 1 and len(meta["refine_factor_tried"]) == len(
        meta["nprobe_tried"]
    )
    for g, v in exact["recall@1"].values("g").items():
        assert abs(approx["recall@1"].values("g")[g] - v) <= 0.005


def test_the_report_says_which_index_was_used_and_why():
    data = _clustered(n=4000)
    exact = audit(data, **FAST).metadata["index_choice"]
    assert exact.startswith("exact search, picked by auto: N = 4,000 <= 100,000 rows")
    forced = audit(data, index="exact", **FAST).metadata["index_choice"]
    assert forced == "exact search, as asked (--index exact)"
    report = audit(data, index_options={"exact_max": 1000}, **FAST)
    choice, meta = report.metadata["index_choice"], report.metadata["index_agreement"]
    assert report.metadata["index"] == "ivfpq"
    assert choice.startswith("IVF-PQ, N = 4,000 > 1,000 rows (exact_max)")
    assert report.metadata["index_description"] in choice
    assert f"on {meta['sample_queries']:,} sampled queries" in choice
    assert f"in {len(meta['nprobe_tried'])} step(s)" in choice
    seconds = report.metadata["seconds"]
    assert 0 < seconds["index"] < seconds["total"]


def test_each_group_is_measured_on_its_own_uniform_sample():
    """With two attributes the union of the samples holds more rows of a group than were drawn
    for it; only the rows drawn for the group (a uniform sample of it) count for it."""
    base = _hard(n=3000)
    rng = np.random.default_rng(4)
    data = EmbeddingSet(
        embeddings=base.embeddings,
        labels=base.labels,
        attributes={"g": base.attribute("g"), "h": rng.integers(0, 3, size=3000)},
    )
    index = NeighborIndex(data.embeddings, metric="cosine", index="hnsw", ef_search=8)
    result = agreement(index, data, ["g", "h"], per_group=600, seed=0)
    rows = sample_rows(data, ["g", "h"], 600, 0)
    for a in ("g", "h"):
        codes = data.attribute(a)
        for code, name in enumerate(data.attribute_value_names[a]):
            got = result["groups"][a][name]
            assert got["queries"] == 600 < int((codes[rows] == code).sum())
            assert not got["whole_group"]
