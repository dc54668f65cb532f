"""Tests for fairmetric.sampling.MPerClassBatchSampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils import common_functions as pml_common
from torch.utils.data import DataLoader, TensorDataset

from fairmetric.sampling import MPerClassBatchSampler


def balanced(classes: int, per_class: int) -> np.ndarray:
    return np.repeat(np.arange(classes), per_class)


def imbalanced(classes: int = 100, low: int = 5, high: int = 60) -> np.ndarray:
    sizes = np.random.default_rng(0).integers(low, high + 1, classes)
    return np.repeat(np.arange(classes), sizes)


def epoch_batches(sampler: MPerClassBatchSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def coverage(batches: list[list[int]], n: int) -> float:
    return len({i for b in batches for i in b}) / n


CONFIGS = [
    # (labels, m, batch_size)
    (balanced(20, 10), 4, 32),
    (balanced(8, 3), 4, 16),  # every class smaller than m: drawn with replacement
    (imbalanced(30, 1, 12), 3, 24),  # tiny and large classes mixed
    (np.array(["a", "b", "c", "a", "b", "c", "a"]), 2, 6),  # string labels, all classes per batch
    (balanced(5, 7), 1, 5),
]


@pytest.mark.parametrize(("labels", "m", "batch_size"), CONFIGS)
def test_every_batch_has_m_per_class(labels, m, batch_size):
    sampler = MPerClassBatchSampler(labels, m=m, batch_size=batch_size, num_batches=25, seed=3)
    assert len(sampler) == 25
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == 25
        for batch in batches:
            assert len(batch) == batch_size and all(isinstance(i, int) for i in batch)
            counts = Counter(labels[batch].tolist())
            assert len(counts) == batch_size // m
            assert set(counts.values()) == {m}
            for cls in counts:  # indices repeat only when the class is smaller than m
                members = [i for i in batch if labels[i] == cls]
                assert len(set(members)) == min(m, int(np.sum(labels == cls)))


def test_default_num_batches():
    assert len(MPerClassBatchSampler(balanced(10, 10), m=2, batch_size=8)) == 100 // 8
    assert len(MPerClassBatchSampler(balanced(10, 1), m=2, batch_size=8)) == 1  # at least one


def test_same_seed_and_epoch_give_same_batches():
    labels = imbalanced(40, 2, 20)
    a = MPerClassBatchSampler(labels, m=4, batch_size=32, seed=7)
    b = MPerClassBatchSampler(labels, m=4, batch_size=32, seed=7)
    np.random.seed(123)  # global random state must play no part
    first = epoch_batches(a, 5)
    np.random.seed(456)
    torch.manual_seed(9)
    assert epoch_batches(b, 5) == first
    assert epoch_batches(a, 5) == first  # iterating again repeats the epoch
    assert epoch_batches(a, 6) != first
    assert epoch_batches(MPerClassBatchSampler(labels, m=4, batch_size=32, seed=8), 5) != first


def _pml_coverage(labels: np.ndarray, m: int, batch_size: int, num_batches: int) -> list[float]:
    sampler = MPerClassSampler(
        labels, m, batch_size=batch_size, length_before_new_iter=num_batches * batch_size
    )
    return [len(set(iter(sampler))) / len(labels) for _ in range(10)]


@pytest.mark.parametrize(
    ("labels", "floor"),
    [(balanced(100, 32), 0.99), (imbalanced(), 0.95)],
    ids=["balanced", "imbalanced"],
)
def test_coverage_of_one_epoch_beats_pml(labels, floor, monkeypatch):
    m, batch_size = 4, 64
    sampler = MPerClassBatchSampler(labels, m=m, batch_size=batch_size)
    ours = [coverage(epoch_batches(sampler, e), len(labels)) for e in range(10)]
    # PML draws from its module-level NUMPY_RANDOM: give it a seeded generator of its own
    monkeypatch.setattr(pml_common, "NUMPY_RANDOM", np.random.RandomState(0))
    pml = _pml_coverage(labels, m, batch_size, len(sampler))
    assert min(ours) >= floor
    assert np.mean(pml) < 0.7  # about 1 - 1/e: classes and samples drawn independently
    assert min(ours) > max(pml) + 0.25


def test_coverage_is_exact_when_every_class_fits_whole_batches():
    # 8 classes of 8, m=4, 2 classes per batch: 8 batches can cover all 64 samples
    labels = balanced(8, 8)
    sampler = MPerClassBatchSampler(labels, m=4, batch_size=8)
    covered = [coverage(epoch_batches(sampler, e), len(labels)) for e in range(20)]
    assert np.mean(covered) >= 0.95


def test_classes_repeat_only_after_their_samples_are_used():
    labels = balanced(4, 12)
    sampler = MPerClassBatchSampler(labels, m=4, batch_size=8, num_batches=20)
    seen: dict[int, list[int]] = {c: [] for c in range(4)}
    for batch in epoch_batches(sampler):
        for i in batch:
            seen[int(labels[i])].append(i)
    for indices in seen.values():  # each class's stream: a permutation, then the next one
        for start in range(0, len(indices) - 11, 12):
            assert len(set(indices[start : start + 12])) == 12


@pytest.mark.parametrize(("num_batches", "world_size"), [(12, 3), (12, 4), (10, 4), (5, 2)])
def test_ranks_share_out_the_global_sequence(num_batches, world_size):
    labels = imbalanced(30, 2, 15)
    kwargs = dict(m=2, batch_size=16, seed=1)
    ranks = [
        MPerClassBatchSampler(
            labels, num_batches=num_batches, rank=r, world_size=world_size, **kwargs
        )
        for r in range(world_size)
    ]
    per_rank = [epoch_batches(s, 2) for s in ranks]
    per_rank_len = -(-num_batches // world_size)
    assert all(len(s) == per_rank_len for s in ranks)
    assert all(len(b) == per_rank_len for b in per_rank)  # ranks step together
    interleaved = [
        per_rank[i % world_size][i // world_size] for i in range(per_rank_len * world_size)
    ]
    single = epoch_batches(MPerClassBatchSampler(labels, num_batches=num_batches, **kwargs), 2)
    assert interleaved[:num_batches] == single
    if num_batches % world_size == 0:
        assert len(interleaved) == len(single)
    padded = MPerClassBatchSampler(labels, num_batches=len(interleaved), **kwargs)
    assert interleaved == epoch_batches(padded, 2)  # padding continues the same stream


def test_works_as_dataloader_batch_sampler():
    labels = balanced(6, 5)
    data = TensorDataset(torch.arange(30), torch.as_tensor(labels))
    sampler = MPerClassBatchSampler(labels, m=5, batch_size=10, num_batches=4)
    loader = DataLoader(data, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    for x, y in batches:
        assert torch.equal(torch.as_tensor(labels)[x], y)
        assert sorted(Counter(y.tolist()).values()) == [5, 5]


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        ([], dict(m=2, batch_size=4), "labels is empty"),
        ([[0, 1], [1, 0]], dict(m=2, batch_size=4), "one-dimensional"),
        ([0, 1], dict(m=0, batch_size=4), "m must be at least 1, got 0"),
        ([0, 1], dict(m=3, batch_size=4), "batch_size must be a positive multiple of m=3, got 4"),
        ([0, 1], dict(m=2, batch_size=0), "positive multiple"),
        (
            [0, 0, 1, 1, 2],
            dict(m=2, batch_size=8),
            r"m × classes does not fit: batch_size=8 with m=2 needs 4 distinct classes per batch "
            "but labels has only 3",
        ),
        ([0, 1], dict(m=1, batch_size=2, num_batches=0), "num_batches must be at least 1"),
        ([0, 1], dict(m=1, batch_size=2, world_size=0), "world_size must be at least 1"),
        ([0, 1], dict(m=1, batch_size=2, rank=2, world_size=2), r"rank must be in \[0, world_size"),
        ([0, 1], dict(m=1, batch_size=2, rank=-1), "rank must be in"),
    ],
)
def test_errors(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MPerClassBatchSampler(labels, **kwargs)


def test_negative_seed_or_epoch_is_refused_up_front():
    labels = np.repeat(np.arange(4), 8)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        MPerClassBatchSampler(labels, m=2, batch_size=4, seed=-1)
    sampler = MPerClassBatchSampler(labels, m=2, batch_size=4)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        sampler.set_epoch(-1)
