"""The tie-averaged formulas against brute-force enumeration of every order of the tied blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmetric.neighbors.ties import (
    blocks_from_equal,
    expected_average_precision,
    expected_count,
    hit_probability,
    tie_weights,
    vote,
)


def blocks_of(sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    start, end, pos = [], [], 0
    for s in sizes:
        start += [pos] * s
        end += [pos + s] * s
        pos += s
    return np.array([start]), np.array([end])


def all_orders(values: list, sizes: list[int]) -> list[list]:
    """Every arrangement of ``values`` with each block's members permuted."""
    parts, pos = [], 0
    for s in sizes:
        parts.append(values[pos : pos + s])
        pos += s
    return [
        [v for p in perm for v in p]
        for perm in itertools.product(*(list(itertools.permutations(p)) for p in parts))
    ]


def ap_of(rel: list[int], r: int, k: int) -> float:
    if r == 0:
        return 0.0
    hits, total = 0, 0.0
    for rank, v in enumerate(rel[: min(r, k)], start=1):
        if v:
            hits += 1
            total += hits / rank
    return total / r


tie_case = st.lists(st.integers(1, 4), min_size=1, max_size=4).flatmap(
    lambda sizes: st.tuples(
        st.just(sizes), st.lists(st.booleans(), min_size=sum(sizes), max_size=sum(sizes))
    )
)


@settings(max_examples=150, deadline=None)
@given(case=tie_case, data=st.data())
def test_formulas_equal_enumeration(case, data):
    sizes, rel = case
    w = sum(sizes)
    start, end = blocks_of(sizes)
    prop = np.array([rel])
    arrangements = all_orders([int(v) for v in rel], sizes)
    for c in range(1, w + 1):
        hit = np.mean([float(any(a[:c])) for a in arrangements])
        count = np.mean([sum(a[:c]) for a in arrangements])
        assert hit_probability(prop, start, end, c)[0] == pytest.approx(hit, abs=1e-12)
        assert expected_count(prop, start, end, c)[0] == pytest.approx(count, abs=1e-12)
    r = data.draw(st.integers(0, w + 2))
    k = data.draw(st.integers(1, w))
    ap = np.mean([ap_of(a, r, k) for a in arrangements])
    got = expected_average_precision(prop, start, end, np.array([r]), k)[0]
    assert got == pytest.approx(ap, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(case=tie_case, data=st.data())
def test_vote_weights_are_the_expected_votes(case, data):
    sizes, _ = case
    w = sum(sizes)
    start, end = blocks_of(sizes)
    values = data.draw(st.lists(st.integers(0, 2), min_size=w, max_size=w))
    c = data.draw(st.integers(1, w))
    weights, scale = tie_weights(start, end, c)
    arrangements = all_orders(list(range(w)), sizes)  # positions' members, permuted in blocks
    for v in range(3):
        expected = np.mean([sum(1 for m in a[:c] if values[m] == v) for a in arrangements])
        got = sum(weights[0, p] for p in range(w) if values[p] == v) / scale[0]
        assert got == pytest.approx(expected, abs=1e-12)
    assert weights.sum() == c * scale[0]
    # the winner has the largest expected vote; a vote tie goes to the smallest code
    won = vote(np.array([values]), start, end, c, 3)[0]
    totals = [sum(weights[0, p] for p in range(w) if values[p] == v) for v in range(3)]
    assert won == int(np.argmax(totals)) and totals[won] == max(totals)


def test_hand_examples():
    # block of 3 at positions 0-2 holding one relevant member: P(hit@1) = 1/3, @2 = 2/3
    start, end = blocks_of([3, 1])
    rel = np.array([[0, 1, 0, 1]])
    assert hit_probability(rel, start, end, 1)[0] == pytest.approx(1 / 3)
    assert hit_probability(rel, start, end, 2)[0] == pytest.approx(2 / 3)
    assert hit_probability(rel, start, end, 3)[0] == 1.0
    assert expected_count(rel, start, end, 2)[0] == pytest.approx(2 / 3)
    # no ties: the plain values, exactly
    start, end = blocks_of([1, 1, 1])
    rel = np.array([[0, 1, 1]])
    assert hit_probability(rel, start, end, 1)[0] == 0.0
    assert hit_probability(rel, start, end, 2)[0] == 1.0
    # MAP@R with R = 2: only ranks 1-2 count, a hit at rank 2 scores P(2) = 1/2
    assert expected_average_precision(rel, start, end, np.array([2]), 3)[0] == (1 / 2) / 2
    assert expected_average_precision(rel, start, end, np.array([3]), 3)[0] == (1 / 2 + 2 / 3) / 3


def test_vote_tie_breaks():
    # positions: [A] then block {B, A} straddling c=2: A has 1 + 1/2, B has 1/2 -> A
    start, end = blocks_of([1, 2])
    assert vote(np.array([[0, 1, 0]]), start, end, 2, 2)[0] == 0
    # block {0, 1} at the front, c=2: a 1-1 vote tie; both seen at rank 0 -> smallest code
    start, end = blocks_of([2, 1])
    for values in ([1, 0, 1], [0, 1, 1]):
        assert vote(np.array([values]), start, end, 2, 2, nearest_first=True)[0] == 0
    # no ties, 1-1: the nearer voter's value with nearest_first, else the smallest code
    start, end = blocks_of([1, 1])
    assert vote(np.array([[1, 0]]), start, end, 2, 2, nearest_first=True)[0] == 1
    assert vote(np.array([[1, 0]]), start, end, 2, 2)[0] == 0


def test_blocks_from_equal():
    same = np.array([[False, True, True, False], [True, False, False, True]])
    start, end = blocks_from_equal(same)
    np.testing.assert_array_equal(start, [[0, 1, 1, 1, 4], [0, 0, 2, 3, 3]])
    np.testing.assert_array_equal(end, [[1, 4, 4, 4, 5], [2, 2, 3, 5, 5]])


def test_cutoff_outside_the_list_is_an_error():
    start, end = blocks_of([2])
    with pytest.raises(ValueError, match="cut-off c=3"):
        hit_probability(np.array([[1, 0]]), start, end, 3)
