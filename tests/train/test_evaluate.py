"""Tests for fairmetric.train.evaluate against a slow, obviously correct reference.

The reference loops over queries, computes Euclidean distances (or cosine similarities) to every
other sample with numpy in float64, sorts them and looks at the first k labels. Embeddings are
continuous random numbers, so distance ties (where two correct answers exist) do not occur; the
property test also rejects the rare draw whose neighbour distances come within float32 rounding
of each other. ``knn_hits`` defaults to the audit's metric, cosine; the Euclidean references are
compared with ``metric="l2"``. Ties and near-ties: tests/neighbors/test_paths.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fairmetric.embeddings import EmbeddingSet
from fairmetric.train.evaluate import knn_hits, recall_by_group

# -- reference -----------------------------------------------------------------------------------


def ref_knn_hits(x, y, ks, metric="l2"):
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = list(np.asarray(y))
    n = len(x)
    hits = np.zeros((n, len(ks)), dtype=bool)
    valid = np.zeros(n, dtype=bool)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        dist = [np.sqrt(np.sum((x[i] - x[j]) ** 2)) for j in others]
        ranked = [others[t] for t in np.argsort(dist, kind="stable")]
        for c, k in enumerate(ks):
            hits[i, c] = any(y[j] == y[i] for j in ranked[:k])
        valid[i] = any(y[j] == y[i] for j in others)
    return hits, valid


def ref_recall_by_group(x, y, columns: dict[str, list[str]], ks, metric="cosine", min_size=10):
    """``columns`` maps an attribute to its per-sample value *names*; groups with fewer than
    ``min_size`` valid queries are kept out of the gap and listed under ``not_compared``."""
    hits, valid = ref_knn_hits(x, y, ks, metric)
    n = len(y)
    out = {}
    for c, k in enumerate(ks):
        queries = [i for i in range(n) if valid[i]]
        overall = sum(hits[i, c] for i in queries) / len(queries) if queries else None
        by_group, gap, small = {}, {}, {}
        for a, values in columns.items():
            by_group[a] = {}
            compared = []
            for v in sorted(set(values)):
                members = [i for i in range(n) if values[i] == v and valid[i]]
                by_group[a][v] = (
                    sum(hits[i, c] for i in members) / len(members) if members else None
                )
                if members and len(members) < min_size:
                    small.setdefault(a, []).append(v)
                elif members:
                    compared.append(by_group[a][v])
            gap[a] = max(compared) - min(compared) if len(compared) > 1 else None
        out[f"recall@{k}"] = {"overall": overall, "by_group": by_group, "gap": gap}
        if small:
            out[f"recall@{k}"]["not_compared"] = small
    return out


def near_tie(x, eps: float = 1e-4) -> bool:
    """Whether some query has two neighbours at (almost) the same squared distance."""
    x = np.asarray(x, dtype=np.float64)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    for i in range(len(x)):
        row = np.sort(np.delete(d2[i], i))
        if len(row) > 1 and np.min(np.diff(row)) < eps:
            return True
    return False


def assert_results_equal(got, expected):
    assert set(got) == set(expected)
    for key in expected:
        g, e = got[key], expected[key]
        if e["overall"] is None:
            assert g["overall"] is None, key
        else:
            assert g["overall"] == pytest.approx(e["overall"]), key
        assert list(g["by_group"]) == list(e["by_group"]) and list(g["gap"]) == list(e["gap"])
        for a in e["by_group"]:
            assert list(g["by_group"][a]) == list(e["by_group"][a])
            for v, r in e["by_group"][a].items():
                assert (g["by_group"][a][v] is None) == (r is None), (key, a, v)
                if r is not None:
                    assert g["by_group"][a][v] == pytest.approx(r)
            if e["gap"][a] is None:
                assert g["gap"][a] is None
            else:
                assert g["gap"][a] == pytest.approx(e["gap"][a])
        assert g.get("not_compared") == e.get("not_compared"), key


# -- data ----------------------------------------------------------------------------------------


def random_data(n: int = 40, d: int = 4, classes: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    return x, y


def make_set(x, y, columns: dict[str, list[str]]) -> EmbeddingSet:
    return EmbeddingSet(embeddings=x, labels=y, attributes=columns)


# -- knn_hits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ks", [[1], [1, 3, 5], [5, 1, 2], [39]])
def test_knn_hits_match_the_reference(ks):
    x, y = random_data()
    assert not near_tie(x)
    hits, valid = knn_hits(x, y, ks, metric="l2")
    ref_hits, ref_valid = ref_knn_hits(x, y, ks)
    assert hits.dtype == np.float64 and hits.shape == (40, len(ks))  # credits (ties: fractions)
    assert valid.dtype == bool and valid.shape == (40,)
    np.testing.assert_array_equal(hits, ref_hits)
    np.testing.assert_array_equal(valid, ref_valid)
    if ks[0] < 20:
        assert 0 < hits[:, 0].sum() < 40  # neither all hits nor all misses
    else:
        assert hits[:, 0].all()  # k = N - 1 sees every other sample


def test_hits_grow_with_k():
    x, y = random_data()
    hits, _ = knn_hits(x, y, [1, 2, 4, 8, 16], metric="l2")
    assert np.all(hits[:, :-1] <= hits[:, 1:])
    assert hits[:, 0].sum() < hits[:, -1].sum()


def test_self_is_excluded():
    # each point's nearest other sample has another label; counting the point itself (distance
    # 0) would turn every k=1 into a hit
    x = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.3, 0.0]], dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    hits, valid = knn_hits(x, y, [1, 2, 3], metric="l2")
    np.testing.assert_array_equal(hits[:, 0], [False, False, False, False])
    np.testing.assert_array_equal(hits[:, 1], [True, False, False, True])
    np.testing.assert_array_equal(hits[:, 2], [True, True, True, True])
    assert valid.all()


def test_singleton_classes_are_not_valid_queries():
    x, _ = random_data(n=12)
    # classes 50 and 51 have one sample each (labels need not be contiguous)
    y = np.array([0, 1, 2, 0, 50, 1, 2, 0, 1, 51, 2, 0])
    hits, valid = knn_hits(x, y, [1, 3], metric="l2")
    ref_hits, ref_valid = ref_knn_hits(x, y, [1, 3])
    np.testing.assert_array_equal(hits, ref_hits)
    np.testing.assert_array_equal(valid, ref_valid)
    assert not valid[4] and not valid[9] and valid.sum() == 10
    assert not hits[4].any() and not hits[9].any()


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 39, 40, 1000])
def test_chunk_size_does_not_change_the_result(chunk_size):
    x, y = random_data()
    full = knn_hits(x, y, [1, 4])
    chunked = knn_hits(x, y, [1, 4], chunk_size=chunk_size)
    np.testing.assert_array_equal(chunked[0], full[0])
    np.testing.assert_array_equal(chunked[1], full[1])


def test_accepts_tensors():
    x, y = random_data(n=15)
    a = knn_hits(torch.from_numpy(x), torch.from_numpy(y), [2])
    b = knn_hits(x, y, [2])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(
    "ks,match",
    [
        ([5], "k=5 needs more than 5 samples, got 5"),
        ([1, 9], "k=9 needs more than 9 samples, got 5"),
        ([0], r"ks must be positive integers, got \[0\]"),
        ([2, -1], "ks must be positive integers"),
        ([], r"ks must be positive integers, got \[\]"),
    ],
)
def test_bad_ks(ks, match):
    x, y = random_data(n=5, classes=2)
    with pytest.raises(ValueError, match=match):
        knn_hits(x, y, ks)


def test_large_common_offset_does_not_change_neighbours():
    x, y = random_data(n=60, classes=6)
    shifted = x + np.float32(1000.0)
    np.testing.assert_array_equal(
        knn_hits(shifted, y, [1, 3, 5], metric="l2")[0], ref_knn_hits(x, y, [1, 3, 5])[0]
    )


@pytest.mark.parametrize("case", ["length", "1d", "negative", "nan"])
def test_bad_inputs_are_value_errors(case):
    x, y = random_data(n=8, classes=2)
    if case == "length":
        y = y[:-1]
    elif case == "1d":
        x = x[:, 0]
    elif case == "negative":
        y = -1 - y
    else:
        x = x.copy()
        x[2] = np.nan
    with pytest.raises(ValueError):
        knn_hits(x, y, [1])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(3, 24),
    d=st.integers(1, 4),
    classes=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    chunk_size=st.integers(1, 30),
    data=st.data(),
)
def test_property_knn_hits_match_the_reference(n, d, classes, seed, chunk_size, data):
    ks = data.draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=3, unique=True))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    assume(not near_tie(x))
    hits, valid = knn_hits(x, y, ks, chunk_size=chunk_size, metric="l2")
    ref_hits, ref_valid = ref_knn_hits(x, y, ks)
    np.testing.assert_array_equal(hits, ref_hits)
    np.testing.assert_array_equal(valid, ref_valid)


# -- recall_by_group -----------------------------------------------------------------------------


def grouped_data(n: int = 40, seed: int = 0):
    x, y = random_data(n=n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    columns = {
        "sex": list(rng.choice(["f", "m"], size=n)),
        "age": list(rng.choice(["old", "young", "mid"], size=n)),
    }
    return x, y, columns


@pytest.mark.parametrize("ks", [(1,), (1, 2, 5)])
def test_recall_by_group_matches_the_reference(ks):
    x, y, columns = grouped_data()
    got = recall_by_group(make_set(x, y, columns), ks)
    expected = ref_recall_by_group(x, y, columns, ks)
    assert_results_equal(got, expected)
    assert list(got) == [f"recall@{k}" for k in ks]
    for r in got.values():
        by = r["by_group"]["age"]
        assert set(by) == {"mid", "old", "young"}
        assert r["gap"]["age"] == pytest.approx(max(by.values()) - min(by.values()))
        assert r["gap"]["age"] > 0


def test_recall_for_chosen_attributes_only():
    x, y, columns = grouped_data()
    got = recall_by_group(make_set(x, y, columns), (3,), attributes=["age"])
    assert set(got["recall@3"]["by_group"]) == {"age"} and set(got["recall@3"]["gap"]) == {"age"}
    assert_results_equal(got, ref_recall_by_group(x, y, {"age": columns["age"]}, (3,)))
    none = recall_by_group(make_set(x, y, columns), (1,), attributes=[])
    assert none["recall@1"]["by_group"] == {} and none["recall@1"]["gap"] == {}


def test_group_without_valid_queries_is_none():
    # group "b" holds only the two singleton classes, so none of its samples is a valid query
    x, _ = random_data(n=10)
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 7, 8])
    columns = {"g": ["a", "a", "c", "a", "c", "a", "c", "a", "b", "b"]}
    got = recall_by_group(make_set(x, y, columns), (1, 2), min_group_size=1)
    expected = ref_recall_by_group(x, y, columns, (1, 2), min_size=1)
    assert_results_equal(got, expected)
    for r in got.values():
        assert r["by_group"]["g"]["b"] is None
        assert r["by_group"]["g"]["a"] is not None and r["by_group"]["g"]["c"] is not None
        present = [r["by_group"]["g"]["a"], r["by_group"]["g"]["c"]]
        assert r["gap"]["g"] == pytest.approx(max(present) - min(present))


def test_gap_needs_two_groups_with_valid_queries():
    x, _ = random_data(n=6)
    y = np.array([0, 0, 1, 1, 2, 3])
    columns = {"g": ["a", "a", "a", "a", "b", "b"], "h": ["x"] * 6}
    got = recall_by_group(make_set(x, y, columns), (1,), min_group_size=1)["recall@1"]
    assert got["by_group"]["g"]["b"] is None and got["gap"]["g"] is None
    assert got["gap"]["h"] is None and got["by_group"]["h"]["x"] == got["overall"]


@pytest.mark.parametrize("min_size", [1, 5, 12, 16, 10_000])
def test_groups_below_min_group_size_stay_out_of_the_gap(min_size):
    x, y, columns = grouped_data()
    got = recall_by_group(make_set(x, y, columns), (1, 2), min_group_size=min_size)
    assert_results_equal(got, ref_recall_by_group(x, y, columns, (1, 2), min_size=min_size))
    # the group values never change; only which groups the gap compares
    every = recall_by_group(make_set(x, y, columns), (1, 2), min_group_size=1)
    for key in got:
        assert got[key]["by_group"] == every[key]["by_group"]
    if min_size == 10_000:
        assert got["recall@1"]["gap"] == {"sex": None, "age": None}
        assert got["recall@1"]["not_compared"] == {
            "sex": ["f", "m"],
            "age": ["mid", "old", "young"],
        }


def test_default_min_group_size_is_the_audits():
    from fairmetric.audit import audit

    x, y, columns = grouped_data()
    got = recall_by_group(make_set(x, y, columns), (1,))["recall@1"]
    report = audit(make_set(x, y, columns), ks=[1], bootstrap=0)
    for a in columns:
        assert got["gap"][a] == report["recall@1"].difference(a)


def test_min_group_size_is_checked():
    x, y, columns = grouped_data()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="min_group_size"):
            recall_by_group(make_set(x, y, columns), (1,), min_group_size=bad)


def test_no_valid_query_at_all():
    x, _ = random_data(n=5)
    got = recall_by_group(make_set(x, np.arange(5), {"g": ["a", "b", "a", "b", "a"]}), (1, 2))
    for r in got.values():
        assert r["overall"] is None
        assert r["by_group"]["g"] == {"a": None, "b": None}
        assert r["gap"]["g"] is None


def test_unknown_attribute():
    x, y, columns = grouped_data()
    with pytest.raises(ValueError, match="colour"):
        recall_by_group(make_set(x, y, columns), (1,), attributes=["colour"])


def test_recall_by_group_errors_come_from_knn_hits():
    x, y, columns = grouped_data(n=6)
    with pytest.raises(ValueError, match="needs more than"):
        recall_by_group(make_set(x, y, columns), (6,))
    with pytest.raises(ValueError, match="ks must be positive"):
        recall_by_group(make_set(x, y, columns), ())
