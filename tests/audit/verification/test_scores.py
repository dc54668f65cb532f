"""`pair_scores` against explicit float64 loops over the float32 rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairmetric.audit.verification import pair_scores


def _ref(x: np.ndarray, i, j, metric: str) -> np.ndarray:
    x32 = np.asarray(x, dtype=np.float32)
    out = []
    for a, b in zip(i, j):
        u = [float(v) for v in x32[a]]
        w = [float(v) for v in x32[b]]
        if metric == "cosine":
            dot = math.fsum(p * q for p, q in zip(u, w))
            nu = math.sqrt(math.fsum(p * p for p in u))
            nw = math.sqrt(math.fsum(q * q for q in w))
            out.append(dot / (nu * nw))
        else:
            out.append(-math.sqrt(math.fsum((p - q) ** 2 for p, q in zip(u, w))))
    return np.array(out)


def _data(n: int = 9, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))  # float64 input: the scores use its float32 rounding
    i, j = np.triu_indices(n, 1)
    return x, i, j


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_matches_float64_loops(metric):
    x, i, j = _data()
    got = pair_scores(x, i, j, metric)
    assert got.dtype == np.float64 and got.shape == (len(i),)
    np.testing.assert_allclose(got, _ref(x, i, j, metric), rtol=1e-13, atol=1e-15)


def test_uses_the_float32_rounding_of_the_rows():
    x, i, j = _data(seed=1)
    assert np.array_equal(pair_scores(x, i, j), pair_scores(x.astype(np.float32), i, j))


def test_cosine_of_rows_scaled_by_1e20():
    x, i, j = _data(seed=2)
    big = (x * 1e20).astype(np.float32)
    got = pair_scores(big, i, j, "cosine")
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, _ref(big, i, j, "cosine"), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got, pair_scores(x, i, j, "cosine"), atol=1e-6)  # scale-free


def test_cosine_bounds_and_self_pairs():
    x, _, _ = _data(seed=3)
    idx = np.arange(len(x))
    np.testing.assert_allclose(pair_scores(x, idx, idx), 1.0, atol=1e-15)
    assert (pair_scores(x, idx, idx, "l2") == 0).all()
    anti = np.vstack([x[0], -x[0]])
    np.testing.assert_allclose(pair_scores(anti, [0], [1]), -1.0, atol=1e-15)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_duplicate_rows_give_bit_identical_scores(metric):
    x, _, _ = _data(n=6, seed=4)
    x = np.vstack([x, x[2], x[2]]).astype(np.float32)  # rows 6 and 7 duplicate row 2
    others = np.array([0, 1, 3, 4, 5])
    s2 = pair_scores(x, np.full(5, 2), others, metric)
    s6 = pair_scores(x, np.full(5, 6), others, metric)
    s7 = pair_scores(x, others, np.full(5, 7), metric)  # and in the second position
    assert np.array_equal(s2, s6) and np.array_equal(s2, s7)
    # symmetric in the pair
    assert np.array_equal(
        pair_scores(x, [0, 1], [3, 4], metric), pair_scores(x, [3, 4], [0, 1], metric)
    )


def test_l2_is_minus_the_distance():
    x = np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    assert pair_scores(x, [0], [1], "l2")[0] == -5.0


def test_empty_pairs_and_bad_metric():
    x, _, _ = _data()
    assert pair_scores(x, [], [], "cosine").shape == (0,)
    with pytest.raises(ValueError, match="metric must be 'cosine' or 'l2'"):
        pair_scores(x, [0], [1], "ip")
