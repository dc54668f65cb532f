"""`sample_pairs`: exhaustive sets against itertools loops; sampled sets: kind, size, seeding,
uniformity."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from scipy.stats import chi2

from fairmetric.audit.verification import sample_pairs

# rows 0..9: identity 2 has one sample; groups: a = rows 0-4, b = rows 5-9
LABELS = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
GROUPS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
BIG = 10_000


def _unordered(p) -> list[tuple[int, int]]:
    return sorted((min(a, b), max(a, b)) for a, b in zip(p.i.tolist(), p.j.tolist()))


def _genuine_ref(labels) -> list[tuple[int, int]]:
    return [(a, b) for a, b in combinations(range(len(labels)), 2) if labels[a] == labels[b]]


def _impostor_ref(labels, rows=None) -> list[tuple[int, int]]:
    rows = range(len(labels)) if rows is None else rows
    return [(a, b) for a, b in combinations(rows, 2) if labels[a] != labels[b]]


def test_exhaustive_sets_are_all_pairs_of_their_kind():
    p = sample_pairs(LABELS, {"g": GROUPS}, genuine=BIG, impostor=BIG, same_group=BIG, seed=0)
    assert p.genuine.exhaustive and p.impostor.exhaustive
    assert _unordered(p.genuine) == _genuine_ref(LABELS)
    assert _unordered(p.impostor) == _impostor_ref(LABELS)
    assert p.genuine.available == len(_genuine_ref(LABELS)) == 1 + 3 + 1 + 1
    assert p.impostor.available == len(_impostor_ref(LABELS)) == 45 - 6
    assert set(p.same_group) == {"g"} and set(p.same_group["g"]) == {0, 1}
    for g in (0, 1):
        s = p.same_group["g"][g]
        rows = np.flatnonzero(GROUPS == g).tolist()
        ref = _impostor_ref(LABELS, rows)
        assert s.exhaustive and _unordered(s) == ref and s.available == len(ref)
    for s in (p.genuine, p.impostor, *p.same_group["g"].values()):
        assert (s.i != s.j).all() and len(set(_unordered(s))) == len(s)  # no pair twice


def test_exhaustive_when_the_budget_equals_the_pairs_of_that_kind():
    # 39 impostor pairs among 45 pairs in all: a budget of 39 holds every impostor pair
    p = sample_pairs(LABELS, {}, genuine=6, impostor=39, same_group=1, seed=0)
    assert p.genuine.exhaustive and _unordered(p.genuine) == _genuine_ref(LABELS)
    assert p.impostor.exhaustive and _unordered(p.impostor) == _impostor_ref(LABELS)


def test_no_pairs_of_a_kind():
    singles = np.arange(4)
    p = sample_pairs(singles, {"g": np.zeros(4)}, genuine=5, impostor=5, same_group=5)
    assert len(p.genuine) == 0 and p.genuine.available == 0
    one_id = np.zeros(4, dtype=int)
    p = sample_pairs(one_id, {"g": np.array([0, 0, 1, 1])}, genuine=5, impostor=5, same_group=5)
    assert len(p.impostor) == 0 and p.impostor.available == 0
    assert all(len(s) == 0 and s.available == 0 for s in p.same_group["g"].values())


def _random_set(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(15), rng.integers(1, 5, size=15))
    groups = (labels % 3 == 0).astype(int)
    return labels, groups


def test_sampled_sets_have_the_right_kind_size_and_availability():
    labels, groups = _random_set()
    p = sample_pairs(labels, {"g": groups}, genuine=7, impostor=50, same_group=20, seed=5)
    assert not p.genuine.exhaustive and not p.impostor.exhaustive
    assert len(p.genuine) == 7 and len(p.impostor) == 50
    assert p.genuine.available == len(_genuine_ref(labels))
    assert p.impostor.available == len(_impostor_ref(labels))
    assert (labels[p.genuine.i] == labels[p.genuine.j]).all()
    assert (labels[p.impostor.i] != labels[p.impostor.j]).all()
    for s in (p.genuine, p.impostor):
        assert (s.i != s.j).all() and s.i.dtype.kind == "i"
    for g, s in p.same_group["g"].items():
        ref = _impostor_ref(labels, np.flatnonzero(groups == g).tolist())
        assert s.available == len(ref)
        assert len(s) == min(20, len(ref)) if s.exhaustive else len(s) == 20
        assert (labels[s.i] != labels[s.j]).all() and (s.i != s.j).all()
        assert (groups[s.i] == g).all() and (groups[s.j] == g).all()


def test_draws_are_seeded():
    labels, groups = _random_set(1)
    kw = dict(genuine=7, impostor=50, same_group=20)
    a = sample_pairs(labels, {"g": groups}, seed=3, **kw)
    b = sample_pairs(labels, {"g": groups}, seed=3, **kw)
    c = sample_pairs(labels, {"g": groups}, seed=4, **kw)
    for x, y in ((a.genuine, b.genuine), (a.impostor, b.impostor)):
        assert np.array_equal(x.i, y.i) and np.array_equal(x.j, y.j)
    for g in a.same_group["g"]:
        assert np.array_equal(a.same_group["g"][g].i, b.same_group["g"][g].i)
        assert np.array_equal(a.same_group["g"][g].j, b.same_group["g"][g].j)
    assert not np.array_equal(a.impostor.i, c.impostor.i)


def _chi2_ok(counts: list[int], probs: list[float]) -> None:
    """Pearson chi-square goodness of fit, generous bound (p > 1e-6)."""
    total = sum(counts)
    stat = sum((c - total * p) ** 2 / (total * p) for c, p in zip(counts, probs))
    assert chi2.sf(stat, len(counts) - 1) > 1e-6, (counts, stat)


def test_sampled_impostor_pairs_are_uniform():
    labels = np.array([0, 0, 1, 1, 2])  # 8 impostor pairs among 10
    ref = _impostor_ref(labels)
    freq: Counter = Counter()
    for seed in range(600):  # a budget of 9 < 10 pairs in all: sampled
        p = sample_pairs(labels, {}, genuine=10, impostor=7, same_group=1, seed=seed)
        assert not p.impostor.exhaustive and len(p.impostor) == 7
        freq.update(_unordered(p.impostor))
    assert set(freq) == set(ref)
    _chi2_ok([freq[q] for q in ref], [1 / len(ref)] * len(ref))


def test_sampled_same_group_pairs_are_uniform():
    labels = np.array([0, 0, 1, 1, 2, 3, 3])
    groups = np.array([0, 0, 0, 0, 0, 1, 1])
    ref = _impostor_ref(labels, [0, 1, 2, 3, 4])
    freq: Counter = Counter()
    for seed in range(600):
        p = sample_pairs(labels, {"g": groups}, genuine=10, impostor=99, same_group=6, seed=seed)
        s = p.same_group["g"][0]
        assert not s.exhaustive and len(s) == 6
        freq.update(_unordered(s))
    assert set(freq) == set(ref)
    _chi2_ok([freq[q] for q in ref], [1 / len(ref)] * len(ref))


def test_sampled_genuine_pairs_are_uniform_and_identities_weighted_by_pairs():
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 3])  # 1 + 3 + 6 (+ 0) genuine pairs
    ref = _genuine_ref(labels)
    freq: Counter = Counter()
    for seed in range(800):
        p = sample_pairs(labels, {}, genuine=9, impostor=99, same_group=1, seed=seed)
        assert not p.genuine.exhaustive and len(p.genuine) == 9
        assert (labels[p.genuine.i] == labels[p.genuine.j]).all()
        freq.update(_unordered(p.genuine))
    assert set(freq) == set(ref)
    _chi2_ok([freq[q] for q in ref], [1 / len(ref)] * len(ref))
    by_id = Counter()
    for (a, _), c in freq.items():
        by_id[int(labels[a])] += c
    _chi2_ok([by_id[0], by_id[1], by_id[2]], [1 / 10, 3 / 10, 6 / 10])
    assert 3 not in by_id


@pytest.mark.parametrize("kind", ["impostor", "genuine"])
def test_both_orders_of_a_pair_appear_when_sampling(kind):
    # pairs are unordered: the sampler may put either sample first (the owner is random)
    labels = np.array([0, 0, 0, 1, 1, 1])
    p = sample_pairs(labels, {}, genuine=2, impostor=3, same_group=1, seed=0)
    big = [sample_pairs(labels, {}, genuine=2, impostor=3, same_group=1, seed=s) for s in range(50)]
    firsts = {int(x) for q in big for x in getattr(q, kind).i}
    assert firsts == set(range(6)) and len(getattr(p, kind)) in (2, 3)


def test_few_impostors_among_many_genuine_pairs_are_all_taken():
    # one identity with 3000 samples and one with a single sample: 3000 impostor pairs among
    # 4.5M pairs; the rejection sampler (drawing 200k pairs at 0.07% acceptance) used to give up
    # with RuntimeError after ~30 s, although all 3000 impostor pairs fit the budget
    labels = np.concatenate([np.zeros(3000, dtype=int), [1]])
    p = sample_pairs(labels, {"g": np.zeros(3001)}, genuine=10, impostor=10**6, same_group=200_000)
    for s in (p.impostor, p.same_group["g"][0]):
        assert s.exhaustive and len(s) == s.available == 3000
        assert (s.j == 3000).all() and sorted(s.i.tolist()) == list(range(3000))
