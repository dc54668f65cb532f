"""Tests for fairmetric.sampling.balanced: epoch-level re-sampling and per-batch group quotas."""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow
from torch.utils.data import DataLoader, TensorDataset

from fairmetric.sampling.balanced import EpochBalancedBatchSampler, GroupQuotaBatchSampler
from fairmetric.sampling.m_per_class import MPerClassBatchSampler, _ClassStream

# --------------------------------------------------------------------------------------------
# data


def within_classes(classes: int, per_group: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Every class has ``per_group[g]`` samples of every group g (coloured digits)."""
    labels = np.repeat(np.arange(classes), sum(per_group))
    groups = np.tile(np.repeat(np.arange(len(per_group)), per_group), classes)
    return labels, groups


def one_group_per_class(
    classes_per_group: list[int], per_class: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each class lies in one group (identities -> ethnicity)."""
    class_group = np.repeat(np.arange(len(classes_per_group)), classes_per_group)
    labels = np.repeat(np.arange(len(class_group)), per_class)
    return labels, class_group[labels]


def mixed() -> tuple[np.ndarray, np.ndarray]:
    """30 classes of 12 over 3 groups, each class in a random non-empty subset of the groups."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), 12)
    patterns = rng.integers(1, 8, 30)
    groups = np.concatenate([rng.choice([g for g in range(3) if p >> g & 1], 12) for p in patterns])
    return labels, groups


def colored_digits_like() -> tuple[np.ndarray, np.ndarray]:
    """5 digit classes of 360, colour 95:5 inside every class."""
    return within_classes(5, [342, 18])


def epoch_batches(sampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def coverage(batches: list[list[int]], n: int) -> float:
    return len({i for b in batches for i in b}) / n


def lr_quotas(batch_size: int, weights: list[int]) -> list[int]:
    """Largest-remainder rounding in exact arithmetic, ties to the earlier group."""
    exact = [Fraction(batch_size * w, sum(weights)) for w in weights]
    out = [math.floor(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda g: (-(exact[g] - out[g]), g))
    for g in order[: batch_size - sum(out)]:
        out[g] += 1
    return out


# --------------------------------------------------------------------------------------------
# GroupQuotaBatchSampler

QUOTA_CONFIGS = [
    # (data, m, batch_size, proportions, expected quotas)
    (within_classes(20, [10, 10]), 4, 16, None, [8, 8]),
    (within_classes(6, [20, 5, 3]), 2, 12, [0.5, 0.25, 0.25], [6, 3, 3]),
    (within_classes(7, [9, 9, 9]), 2, 14, None, [5, 5, 4]),  # largest remainder: 14/3 each
    (colored_digits_like(), 8, 40, None, [20, 20]),
    (colored_digits_like(), 8, 40, {0: 0.3, 1: 0.7}, [12, 28]),
    (one_group_per_class([12, 4], 10), 4, 16, None, [8, 8]),
    (one_group_per_class([6, 3, 2], 7), 3, 18, [3, 2, 1], [9, 6, 3]),
    (mixed(), 3, 24, [0.5, 0.25, 0.25], [12, 6, 6]),
    (mixed(), 2, 20, [0.2, 0.3, 0.5], [4, 6, 10]),
]
QUOTA_IDS = [
    "within",
    "within-3-uneven",
    "within-remainder",
    "colored",
    "colored-30:70",
    "pure",
    "pure-3",
    "mixed",
    "mixed-2",
]


@pytest.mark.parametrize(
    ("data", "m", "batch_size", "proportions", "quotas"), QUOTA_CONFIGS, ids=QUOTA_IDS
)
def test_every_batch_meets_class_and_group_quotas_exactly(data, m, batch_size, proportions, quotas):
    labels, groups = data
    sampler = GroupQuotaBatchSampler(
        labels, groups, m=m, batch_size=batch_size, proportions=proportions, num_batches=30, seed=2
    )
    assert sampler.quotas.tolist() == quotas
    k = batch_size // m
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == 30
        for batch in batches:
            assert len(batch) == batch_size and all(isinstance(i, int) for i in batch)
            classes = Counter(labels[batch].tolist())
            assert len(classes) == k and set(classes.values()) == {m}
            assert np.bincount(groups[batch], minlength=len(quotas)).tolist() == quotas


def test_many_groups_and_classes_mixed_support():
    # 400 classes over 4 groups, most of them in one group, the rest in random subsets; K=64.
    # An exhaustive per-class feasibility search blows up here (millions of states per batch).
    rng = np.random.default_rng(1)
    labels, groups = [], []
    for c in range(400):
        n = int(rng.integers(5, 30))
        if rng.random() < 0.6:
            g = np.full(n, rng.integers(4))
        else:
            g = rng.choice([g for g in range(4) if rng.random() < 0.6] or [0], n)
        labels += [c] * n
        groups += g.tolist()
    labels, groups = np.array(labels), np.array(groups)
    t = time.perf_counter()
    sampler = GroupQuotaBatchSampler(
        labels, groups, m=4, batch_size=256, proportions=[4, 3, 2, 1], num_batches=12
    )
    assert sampler.quotas.tolist() == lr_quotas(256, [4, 3, 2, 1]) == [102, 77, 51, 26]
    for batch in epoch_batches(sampler):
        assert sorted(Counter(labels[batch].tolist()).values()) == [4] * 64
        assert np.bincount(groups[batch], minlength=4).tolist() == [102, 77, 51, 26]
    assert time.perf_counter() - t < 10  # about 0.1 s; guards against a combinatorial search


def test_quotas_use_largest_remainder_and_accept_dicts():
    labels, groups = within_classes(10, [5, 5, 5])
    make = lambda p, bs=20: GroupQuotaBatchSampler(  # noqa: E731
        labels, groups, m=2, batch_size=bs, proportions=p
    ).quotas.tolist()
    assert make(None) == [7, 7, 6]  # 6.67 each: the two earliest groups take the extra units
    assert make([1, 1, 2]) == [5, 5, 10]
    assert make({2: 0.5, 0: 0.3, 1: 0.2}) == [6, 4, 10]
    assert make([0.45, 0.35, 0.2]) == [9, 7, 4]
    assert make([0.46, 0.37, 0.17], 10) == [4, 4, 2]  # 4.6, 3.7, 1.7: the .7s take the 2 units
    for weights in ([1, 1, 1], [3, 2, 2], [5, 1, 3], [1, 4, 4]):
        for bs in (6, 10, 14, 20):
            assert make(weights, bs) == lr_quotas(bs, weights)


def test_string_groups_and_labels():
    labels = np.array(list("aabbccaabbcc"))
    groups = np.array(["red", "blue"] * 6)
    sampler = GroupQuotaBatchSampler(
        labels, groups, m=2, batch_size=4, proportions={"red": 1, "blue": 1}, num_batches=6
    )
    assert sampler.group_values == ["blue", "red"]
    for batch in epoch_batches(sampler):
        assert Counter(groups[batch].tolist()) == {"red": 2, "blue": 2}
        assert sorted(Counter(labels[batch].tolist()).values()) == [2, 2]


@pytest.mark.parametrize(
    ("data", "m", "batch_size", "mean_floor", "min_floor"),
    [
        (within_classes(20, [10, 10]), 4, 16, 0.97, 0.94),
        (one_group_per_class([8, 8], 20), 4, 16, 0.98, 0.96),
    ],
    ids=["within", "pure"],
)
def test_coverage_on_balanced_data(data, m, batch_size, mean_floor, min_floor):
    labels, groups = data
    sampler = GroupQuotaBatchSampler(labels, groups, m=m, batch_size=batch_size)
    assert len(sampler) == len(labels) // batch_size  # full coverage is possible
    covered = [coverage(epoch_batches(sampler, e), len(labels)) for e in range(10)]
    assert np.mean(covered) >= mean_floor
    assert min(covered) >= min_floor


def test_coverage_on_colored_digits_reaches_the_quota_bound():
    labels, groups = colored_digits_like()
    batch_size = 40
    sampler = GroupQuotaBatchSampler(labels, groups, m=8, batch_size=batch_size)
    num_batches = len(labels) // batch_size
    assert len(sampler) == num_batches == 45
    # the batches hold num_batches * quota samples of each group: majority capped at 900
    sizes = np.bincount(groups)
    bound = np.minimum(sizes, num_batches * sampler.quotas).sum() / len(labels)
    assert bound == pytest.approx(0.55)
    minority = np.flatnonzero(groups == 1)
    for epoch in range(5):
        batches = epoch_batches(sampler, epoch)
        assert bound - 0.005 <= coverage(batches, len(labels)) <= bound + 1e-12
        assert set(minority.tolist()) <= {i for b in batches for i in b}


def test_small_cells_are_drawn_with_replacement():
    # 2 classes, each with a single sample of group 1; the quota asks for 4 of group 1 per batch
    labels = np.repeat([0, 1], 10)
    groups = np.zeros(20, dtype=int)
    groups[[0, 10]] = 1
    sampler = GroupQuotaBatchSampler(labels, groups, m=4, batch_size=8, num_batches=5)
    assert sampler.quotas.tolist() == [4, 4]
    for batch in epoch_batches(sampler):
        counts = Counter(batch)
        assert counts[0] == 2 and counts[10] == 2  # each lone sample twice
        assert all(c == 1 for i, c in counts.items() if groups[i] == 0)


def test_small_cells_are_not_overdrawn_when_other_cells_can_fill_the_quota():
    # class 0 has one sample of group 1, classes 1 and 2 have many: quota 4 of group 1 fits in
    # classes 1 and 2 (and class 0's one sample), so no batch needs a duplicate
    labels = np.repeat([0, 1, 2], 12)
    groups = np.zeros(36, dtype=int)
    groups[[0, 12, 13, 14, 15, 16, 24, 25, 26, 27, 28]] = 1
    sampler = GroupQuotaBatchSampler(
        labels, groups, m=4, batch_size=12, proportions=[2, 1], num_batches=20
    )
    assert sampler.quotas.tolist() == [8, 4]
    for epoch in range(3):
        for batch in epoch_batches(sampler, epoch):
            assert len(set(batch)) == len(batch)


def test_same_seed_and_epoch_give_same_batches():
    labels, groups = mixed()
    kwargs = dict(m=3, batch_size=24, proportions=[2, 1, 1])
    a = GroupQuotaBatchSampler(labels, groups, seed=7, **kwargs)
    b = GroupQuotaBatchSampler(labels, groups, seed=7, **kwargs)
    np.random.seed(123)  # global random state must play no part
    first = epoch_batches(a, 5)
    np.random.seed(456)
    torch.manual_seed(9)
    assert epoch_batches(b, 5) == first
    assert epoch_batches(a, 5) == first
    assert epoch_batches(a, 6) != first
    assert epoch_batches(GroupQuotaBatchSampler(labels, groups, seed=8, **kwargs), 5) != first


@pytest.mark.parametrize(
    ("data", "m", "batch_size", "proportions", "match"),
    [
        # more classes per batch than classes
        (
            within_classes(3, [2, 2]),
            1,
            4,
            None,
            r"needs 4 distinct classes per batch but labels has only 3",
        ),
        # batch_size not a multiple of m
        (
            within_classes(3, [2, 2]),
            2,
            5,
            None,
            r"batch_size must be a positive multiple of m=2, got 5; use e\.g\. batch_size=4",
        ),
        # a requested group with no samples
        (
            within_classes(3, [2, 2]),
            1,
            2,
            {0: 1, 1: 1, 2: 1},
            r"group\(s\) \[2\] with no samples.*groups present are \[0, 1\]",
        ),
        (within_classes(3, [2, 2]), 1, 2, {0: 1}, r"no share for group\(s\) \[1\]"),
        (within_classes(3, [2, 2]), 1, 2, [1, 1, 1], r"3 shares but there are 2 groups"),
        (within_classes(3, [2, 2]), 1, 2, [1, -1], r"non-negative"),
        (within_classes(3, [2, 2]), 1, 2, [0, 0], r"sum to zero"),
        (within_classes(3, [2, 2]), 1, 2, [1, 0], r"group\(s\) \[1\] a zero share"),
        (within_classes(3, [2, 2]), 1, 2, [1, np.nan], r"finite"),
        # a quota that rounds to 0
        (
            within_classes(3, [2, 2]),
            1,
            3,
            [0.9, 0.1],
            r"quota of 0 samples per batch.*batch_size >= 10 gives every group",
        ),
        # pure regime, quota not a multiple of m: suggests whole-class quotas and a smaller m
        (
            one_group_per_class([8, 8], 5),
            4,
            16,
            [0.6, 0.4],
            r"must be a multiple of m.*quotas \{0: 10, 1: 6\}.*"
            r"proportions=\{0: 0\.5, 1: 0\.5\} \(quotas \[8, 8\]\); or m=2",
        ),
        # one group of whole classes needs more classes than it has
        (
            one_group_per_class([15, 1], 5),
            4,
            16,
            None,
            r"group\(s\) \[1\] need 8 samples per batch, i\.e\. at least 2 classes.*"
            r"only 1 classes have any.*proportions=\{0: 0\.75, 1: 0\.25\}",
        ),
        # no K-set can hold the quotas although each group alone has enough classes
        (
            (np.repeat(np.arange(4), 6), np.r_[[0] * 6, [1] * 6, [2] * 6, [0, 1] * 3]),
            2,
            4,
            [2, 1, 1],
            r"no set of 2 classes can hold quotas \{0: 2, 1: 1, 2: 1\}.*m=1 with the same quotas",
        ),
        (
            (np.arange(4), np.zeros(5, dtype=int)),
            1,
            2,
            None,
            r"groups has 5 entries but labels has 4",
        ),
    ],
)
def test_impossible_constraints_raise_helpful_errors(data, m, batch_size, proportions, match):
    labels, groups = data
    with pytest.raises(ValueError, match=match):
        GroupQuotaBatchSampler(labels, groups, m=m, batch_size=batch_size, proportions=proportions)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_batches=0), "num_batches must be at least 1"),
        (dict(world_size=0), "world_size must be at least 1"),
        (dict(rank=2, world_size=2), r"rank must be in \[0, world_size=2\)"),
        (dict(m=0), "m must be at least 1, got 0"),
        (dict(seed=-1), "seed must be a non-negative integer"),
    ],
)
def test_bad_sharding_arguments_raise(kwargs, match):
    labels, groups = within_classes(4, [2, 2])
    with pytest.raises(ValueError, match=match):
        GroupQuotaBatchSampler(labels, groups, **(dict(m=1, batch_size=2) | kwargs))


def test_suggested_settings_are_feasible():
    labels, groups = one_group_per_class([8, 8], 5)
    GroupQuotaBatchSampler(labels, groups, m=4, batch_size=16, proportions={0: 0.5, 1: 0.5})
    GroupQuotaBatchSampler(labels, groups, m=2, batch_size=16, proportions=[0.6, 0.4])
    labels, groups = one_group_per_class([15, 1], 5)
    GroupQuotaBatchSampler(labels, groups, m=4, batch_size=16, proportions=[0.75, 0.25])


def _brute_force_feasible(cell_sizes: np.ndarray, quotas: list[int], m: int, k: int) -> bool:
    """Is there a K-set of classes and an allocation? Max-flow per K-subset (scipy)."""
    n_classes, n_groups = cell_sizes.shape
    total = m * k
    for subset in itertools.combinations(range(n_classes), k):
        n = 2 + k + n_groups  # source, classes, groups, sink
        cap = np.zeros((n, n), dtype=np.int32)
        for i, c in enumerate(subset):
            cap[0, 1 + i] = m
            for g in range(n_groups):
                if cell_sizes[c, g] > 0:
                    cap[1 + i, 1 + k + g] = total
        for g in range(n_groups):
            cap[1 + k + g, n - 1] = quotas[g]
        if maximum_flow(csr_matrix(cap), 0, n - 1).flow_value == total:
            return True
    return False


@st.composite
def quota_problems(draw):
    n_groups = draw(st.sampled_from([1, 2, 2, 3, 3]))
    n_classes = draw(st.integers(1, 6))
    patterns = draw(
        st.lists(st.integers(1, 2**n_groups - 1), min_size=n_classes, max_size=n_classes)
    )
    union = 0
    for p in patterns:
        union |= p
    if union != 2**n_groups - 1:  # every group must have samples: add it to the first class
        patterns[0] |= (2**n_groups - 1) & ~union
    cell_sizes = np.zeros((n_classes, n_groups), dtype=int)
    for c, p in enumerate(patterns):
        for g in range(n_groups):
            if p >> g & 1:
                cell_sizes[c, g] = draw(st.integers(1, 3))
    m = draw(st.integers(1, 3))
    k = draw(st.integers(1, n_classes))
    weights = draw(st.lists(st.integers(1, 3), min_size=n_groups, max_size=n_groups))
    seed = draw(st.integers(0, 2**16))
    return cell_sizes, m, k, weights, seed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(quota_problems())
def test_property_accepts_exactly_the_feasible_problems_and_meets_quotas(problem):
    cell_sizes, m, k, weights, seed = problem
    labels = np.repeat(
        np.repeat(np.arange(cell_sizes.shape[0]), cell_sizes.shape[1]), cell_sizes.ravel()
    )
    groups = np.repeat(
        np.tile(np.arange(cell_sizes.shape[1]), cell_sizes.shape[0]), cell_sizes.ravel()
    )
    batch_size = m * k
    quotas = lr_quotas(batch_size, weights)
    kwargs = dict(m=m, batch_size=batch_size, proportions=weights, num_batches=4, seed=seed)
    if min(quotas) == 0:
        with pytest.raises(ValueError, match="quota of 0"):
            GroupQuotaBatchSampler(labels, groups, **kwargs)
        return
    if not _brute_force_feasible(cell_sizes, quotas, m, k):
        with pytest.raises(ValueError, match="impossible|no set of|multiple of m"):
            GroupQuotaBatchSampler(labels, groups, **kwargs)
        return
    sampler = GroupQuotaBatchSampler(labels, groups, **kwargs)
    assert sampler.quotas.tolist() == quotas
    for epoch in range(2):
        for batch in epoch_batches(sampler, epoch):
            assert sorted(Counter(labels[batch].tolist()).values()) == [m] * k
            assert np.bincount(groups[batch], minlength=len(quotas)).tolist() == quotas
            # an index repeats only when its (class, group) cell is smaller than its share
            for i, c in Counter(batch).items():
                if c > 1:
                    cell = (labels == labels[i]) & (groups == groups[i])
                    assert sum(batch.count(int(j)) for j in np.flatnonzero(cell)) > cell.sum()


# --------------------------------------------------------------------------------------------
# EpochBalancedBatchSampler


def expected_counts(sizes: np.ndarray, shares: np.ndarray, mode: str) -> np.ndarray:
    total = (sizes / shares).max() if mode == "over" else (sizes / shares).min()
    return np.rint(total * shares).astype(int)


EPOCH_CONFIGS = [
    # (data, m, batch_size, target, mode)
    (colored_digits_like(), 8, 40, None, "over"),
    (colored_digits_like(), 8, 40, [0.7, 0.3], "over"),
    (colored_digits_like(), 8, 40, None, "under"),
    (colored_digits_like(), 4, 20, {0: 0.6, 1: 0.4}, "under"),
    (one_group_per_class([12, 3], 30), 5, 20, None, "over"),
    (within_classes(10, [40, 10, 4]), 4, 16, [1, 2, 1], "over"),
    (mixed(), 3, 24, [1, 2, 1], "under"),
]
EPOCH_IDS = [
    "colored-over",
    "colored-over-70:30",
    "colored-under",
    "colored-under-60:40",
    "pure-over",
    "3-groups-over",
    "mixed-under",
]


@pytest.mark.parametrize(
    ("data", "m", "batch_size", "target", "mode"), EPOCH_CONFIGS, ids=EPOCH_IDS
)
def test_epoch_pool_has_the_exact_target_counts(data, m, batch_size, target, mode):
    labels, groups = data
    sampler = EpochBalancedBatchSampler(
        labels, groups, m=m, batch_size=batch_size, target=target, mode=mode
    )
    sizes = np.bincount(groups)
    shares = np.full(len(sizes), 1 / len(sizes)) if target is None else None
    if isinstance(target, dict):
        shares = np.array([target[g] for g in range(len(sizes))], dtype=float)
    elif target is not None:
        shares = np.asarray(target, dtype=float)
    shares = shares / shares.sum()
    counts = expected_counts(sizes, shares, mode)
    assert sampler.group_counts.tolist() == counts.tolist()
    assert sampler.pool_size == counts.sum()
    assert len(sampler) == counts.sum() // batch_size
    n_classes = labels.max() + 1
    pools = []
    for epoch in range(3):
        pool = sampler.epoch_indices(epoch)
        pools.append(pool)
        assert np.bincount(groups[pool], minlength=len(sizes)).tolist() == counts.tolist()
        mult = np.bincount(pool, minlength=len(labels))
        for g in range(len(sizes)):
            whole, rest = divmod(int(counts[g]), int(sizes[g]))
            in_g = groups == g
            # every sample `whole` times, a without-replacement subset of `rest` once more
            assert set(mult[in_g].tolist()) <= {whole, whole + 1}
            assert int((mult[in_g] == whole + 1).sum()) == rest
            if rest:  # stratified by class: every class keeps its share of the subset, ± 1
                extra = np.bincount(labels[in_g & (mult == whole + 1)], minlength=n_classes)
                share = rest * np.bincount(labels[in_g], minlength=n_classes) / sizes[g]
                assert np.all(np.abs(extra - share) < 1)
        if mode == "over":  # every sample is in the pool
            assert mult.min() >= 1
        else:  # never repeats
            assert mult.max() == 1
    assert (
        not np.array_equal(pools[0], pools[1])
        or mode == "over"
        and all(c % s == 0 for c, s in zip(counts, sizes))
    )


@pytest.mark.parametrize(
    ("data", "m", "batch_size", "target", "mode"), EPOCH_CONFIGS, ids=EPOCH_IDS
)
def test_epoch_batches_match_the_target_within_sampling_error(data, m, batch_size, target, mode):
    labels, groups = data
    sampler = EpochBalancedBatchSampler(
        labels, groups, m=m, batch_size=batch_size, target=target, mode=mode, seed=4
    )
    raw = np.bincount(groups) / len(groups)
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        flat = np.concatenate(batches)
        freq = np.bincount(groups[flat], minlength=len(raw)) / len(flat)
        # binomial standard deviation of a group's share among len(flat) draws
        sd = np.sqrt(sampler.target * (1 - sampler.target) / len(flat))
        assert np.all(np.abs(freq - sampler.target) <= 4 * sd), (freq, sampler.target, sd)
        pool = set(sampler.epoch_indices(epoch).tolist())
        assert set(flat.tolist()) <= pool  # the batches draw from the epoch's pool only
        for batch in batches:
            classes = Counter(labels[batch].tolist())
            assert len(classes) == batch_size // m and set(classes.values()) == {m}
            assert len(set(batch)) == len(batch)  # every class has >= m distinct pool entries
    # the test can fail: the raw frequencies are far from the target at this sample size
    if not np.allclose(raw, sampler.target):
        assert np.any(np.abs(raw - sampler.target) > 4 * sd)


def test_over_sampling_covers_every_sample_of_the_small_group():
    labels, groups = colored_digits_like()
    sampler = EpochBalancedBatchSampler(labels, groups, m=8, batch_size=40, mode="over")
    minority = set(np.flatnonzero(groups == 1).tolist())
    for epoch in range(3):
        seen = Counter(i for b in epoch_batches(sampler, epoch) for i in b)
        assert minority <= set(seen)
        # each minority sample is repeated about 1710 / 90 = 19 times
        assert 15 <= min(seen[i] for i in minority) <= max(seen[i] for i in minority) <= 22


def test_under_sampling_redraws_a_new_subset_every_epoch():
    labels, groups = colored_digits_like()
    sampler = EpochBalancedBatchSampler(labels, groups, m=4, batch_size=20, mode="under")
    pools = [set(sampler.epoch_indices(e).tolist()) for e in range(4)]
    majority = set(np.flatnonzero(groups == 0).tolist())
    minority = set(np.flatnonzero(groups == 1).tolist())
    for a, b in itertools.combinations(pools, 2):
        assert a != b
        assert a & minority == b & minority == minority  # the small group is kept whole
    assert len(set.union(*pools) & majority) > 3 * 90  # different majority samples each epoch


def test_epoch_sampler_is_deterministic_and_ignores_global_state():
    labels, groups = mixed()
    kwargs = dict(m=3, batch_size=24, target=[1, 2, 1])
    a = EpochBalancedBatchSampler(labels, groups, seed=7, **kwargs)
    b = EpochBalancedBatchSampler(labels, groups, seed=7, **kwargs)
    np.random.seed(1)
    first = epoch_batches(a, 3)
    np.random.seed(2)
    torch.manual_seed(3)
    assert epoch_batches(b, 3) == first
    assert np.array_equal(a.epoch_indices(3), b.epoch_indices(3))
    assert epoch_batches(a, 4) != first
    assert epoch_batches(EpochBalancedBatchSampler(labels, groups, seed=8, **kwargs), 3) != first
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        a.set_epoch(-1)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        a.epoch_indices(-1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(target={0: 1, 1: 1, 7: 1}), r"group\(s\) \[7\] with no samples"),
        (dict(target={0: 1}), r"no share for group\(s\) \[1\]"),
        (dict(target=[1, -0.5]), "non-negative"),
        (dict(target=[0.0, 0.0]), "sum to zero"),
        (dict(target=[1.0, 0.0]), "zero share"),
        (dict(target=[1.0]), "1 shares but there are 2 groups"),
        (dict(mode="sideways"), "mode must be 'over' or 'under'"),
        (dict(mode="under", target=[1, 1000]), "keeps no sample of group 0"),
        (dict(m=3, batch_size=20), "multiple of m=3"),
        (dict(batch_size=48), "needs 6 distinct classes per batch but labels has only 5"),
        (dict(num_batches=0), "num_batches must be at least 1"),
        (dict(rank=1), r"rank must be in \[0, world_size=1\)"),
    ],
)
def test_epoch_sampler_rejects_bad_arguments(kwargs, match):
    labels, groups = colored_digits_like()
    args = dict(m=8, batch_size=40) | kwargs
    with pytest.raises(ValueError, match=match):
        EpochBalancedBatchSampler(labels, groups, **args)


def test_under_sampling_that_would_drop_classes_is_rejected():
    labels = np.repeat(np.arange(10), 50)
    groups = np.zeros(500, dtype=int)
    groups[0] = 1  # one sample of group 1: uniform target keeps 1 sample of group 0
    with pytest.raises(ValueError, match="fewer than the 5 classes a batch needs"):
        EpochBalancedBatchSampler(labels, groups, m=2, batch_size=10, mode="under")
    EpochBalancedBatchSampler(labels, groups, m=2, batch_size=10, mode="over")


# --------------------------------------------------------------------------------------------
# both samplers


def _make(kind: str, **kwargs):
    labels, groups = mixed()
    if kind == "quota":
        return GroupQuotaBatchSampler(labels, groups, m=3, batch_size=12, **kwargs)
    return EpochBalancedBatchSampler(labels, groups, m=3, batch_size=12, **kwargs)


@pytest.mark.parametrize("kind", ["quota", "epoch"])
@pytest.mark.parametrize(("num_batches", "world_size"), [(12, 3), (10, 4), (5, 2)])
def test_ranks_share_out_the_global_sequence(kind, num_batches, world_size):
    ranks = [
        _make(kind, num_batches=num_batches, rank=r, world_size=world_size, seed=1)
        for r in range(world_size)
    ]
    per_rank = [epoch_batches(s, 2) for s in ranks]
    per_rank_len = -(-num_batches // world_size)
    assert all(len(s) == per_rank_len for s in ranks)
    assert all(len(b) == per_rank_len for b in per_rank)
    interleaved = [
        per_rank[i % world_size][i // world_size] for i in range(per_rank_len * world_size)
    ]
    single = epoch_batches(_make(kind, num_batches=num_batches, seed=1), 2)
    assert interleaved[:num_batches] == single
    padded = _make(kind, num_batches=len(interleaved), seed=1)
    assert interleaved == epoch_batches(padded, 2)


@pytest.mark.parametrize("kind", ["quota", "epoch"])
def test_works_as_dataloader_batch_sampler(kind):
    labels, _ = mixed()
    data = TensorDataset(torch.arange(len(labels)), torch.as_tensor(labels))
    sampler = _make(kind, num_batches=4)
    loader = DataLoader(data, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    for x, y in batches:
        assert torch.equal(torch.as_tensor(labels)[x], y)
        assert sorted(Counter(y.tolist()).values()) == [3, 3, 3, 3]


# --------------------------------------------------------------------------------------------
# the shared core


@settings(max_examples=80, deadline=None)
@given(
    mult=st.lists(st.integers(1, 5), min_size=1, max_size=25),
    m=st.integers(1, 8),
    takes=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
def test_property_class_stream_takes_distinct_indices_from_its_pool(mult, m, takes, seed):
    pool = np.repeat(np.arange(100, 100 + len(mult)), mult)
    stream = _ClassStream(pool, np.random.default_rng(seed))
    taken = Counter()
    for _ in range(takes):
        out = stream.take(m).tolist()
        assert len(out) == m and set(out) <= set(pool.tolist())
        if len(mult) >= m:
            assert len(set(out)) == m
        else:  # every distinct index, then repeats
            assert set(out) == set(pool.tolist())
        taken.update(out)
    if len(mult) >= 2 * m:  # room to spread copies: the stream follows the multiplicities
        expected = takes * m * np.asarray(mult) / len(pool)
        got = np.array([taken[i] for i in range(100, 100 + len(mult))])
        assert np.all(np.abs(got - expected) <= 4 + 0.15 * expected)


def test_class_stream_stays_bounded_when_one_index_holds_most_copies():
    # 6 distinct indices, m=6: every take needs all of them, so most copies of 105 cannot be used
    pool = np.r_[np.arange(100, 105), np.full(50, 105)]
    stream = _ClassStream(pool, np.random.default_rng(0))
    for _ in range(300):
        assert sorted(stream.take(6).tolist()) == list(range(100, 106))
        assert len(stream.order) - stream.pos <= len(pool)


def test_m_per_class_sampler_unchanged_by_the_shared_core():
    # a fixed batch of the pre-refactor implementation (seed 5, epoch 1): same stream of RNG calls
    labels = np.repeat(np.arange(6), [3, 5, 7, 4, 9, 2])
    sampler = MPerClassBatchSampler(labels, m=2, batch_size=6, num_batches=3, seed=5)
    assert epoch_batches(sampler, 1) == PRE_REFACTOR_BATCHES


PRE_REFACTOR_BATCHES = [[8, 11, 27, 23, 7, 5], [0, 2, 25, 19, 16, 18], [24, 20, 13, 9, 15, 17]]
