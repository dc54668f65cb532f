"""ClassMixedBatchSampler: m-per-class batches in which each class shows all its groups."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fairmetric.sampling import SAMPLERS
from fairmetric.sampling.class_mixed import (
    ClassMixedBatchSampler,
    mixed_share_from_proportions,
    within_class_quotas,
)


def _quota_reference(sizes, m):
    """Slow reference: slots one at a time. First round-robin over the present groups while a
    group is below min(size, m // G); then each remaining slot to the group with the largest
    unmet proportional share of the spare samples."""
    sizes = list(sizes)
    present = [g for g, n in enumerate(sizes) if n > 0]
    floor = m // max(1, len(present))
    q = [0] * len(sizes)
    for g in present:
        while q[g] < min(sizes[g], floor):
            q[g] += 1
    rest = m - sum(q)
    spare = [n - x for n, x in zip(sizes, q)]
    if rest and sum(spare) >= rest:
        share = [rest * s / sum(spare) for s in spare]
        add = [int(np.floor(x)) for x in share]
        left = rest - sum(add)
        for g in sorted(range(len(sizes)), key=lambda g: -(share[g] - add[g])):
            if left and add[g] < spare[g]:
                add[g] += 1
                left -= 1
        q = [a + b for a, b in zip(q, add)]
    elif rest:
        q = [a + b for a, b in zip(q, spare)]
        q[int(np.argmax(sizes))] += rest - sum(spare)
    return q


@pytest.mark.parametrize("m", [2, 3, 4, 6, 8])
def test_within_class_quotas_match_reference(m):
    for sizes in itertools.product(range(0, 7), repeat=3):
        if sum(sizes) == 0:
            continue
        q = within_class_quotas(np.array(sizes), m)
        assert q.tolist() == _quota_reference(sizes, m), sizes
        assert q.sum() == m
        if sum(sizes) >= m:
            assert (q <= np.array(sizes)).all()  # no group repeated to fill a quota
            present = np.array(sizes) > 0
            if m >= present.sum():
                assert (q[present] >= 1).all()  # every group of the class is shown


def _data(seed=0, n_classes=60, per=10, p_minority=0.05):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per)
    groups = np.zeros(len(labels), dtype=np.int64)
    groups[rng.permutation(len(labels))[: int(p_minority * len(labels))]] = 1
    return labels, groups


def test_batches_are_m_per_class_and_show_every_group_of_their_classes():
    labels, groups = _data()
    s = ClassMixedBatchSampler(labels, groups, m=4, batch_size=32, seed=3)
    mixed = {c for c in np.unique(labels) if len(np.unique(groups[labels == c])) > 1}
    assert s.mixed.sum() == len(mixed)
    for batch in s:
        b = np.array(batch)
        classes, counts = np.unique(labels[b], return_counts=True)
        assert len(classes) == 8 and (counts == 4).all()
        assert len(np.unique(b)) == len(b)
        for c in classes:
            in_batch = set(groups[b[labels[b] == c]].tolist())
            assert in_batch == set(groups[labels == c].tolist())  # every group of the class


def test_minority_share_and_cell_coverage_statistics():
    """Statistical property: a class with n_min minority samples shows min(n_min, m // 2) of them
    every time it is picked, so the batches' minority share is the pick-weighted mean of the quotas
    (here ~2.4x plain m-per-class); and every sample of a cell is seen in turn (counts within one
    cycle of each other)."""
    labels, groups = _data(seed=1, n_classes=200)
    s = ClassMixedBatchSampler(labels, groups, m=4, batch_size=64, seed=0)
    quotas = s._quotas
    seen = np.zeros(len(labels), dtype=np.int64)
    minority, total, expected = 0, 0, 0.0
    for epoch in range(10):
        s.set_epoch(epoch)
        for batch in s:
            b = np.array(batch)
            np.add.at(seen, b, 1)
            minority += int(groups[b].sum())
            total += len(b)
            expected += quotas[np.unique(labels[b]), 1].sum()
    assert minority == expected
    assert minority / total > 2 * groups.mean()
    for c in range(200):
        for g in (0, 1):
            cell = np.flatnonzero((labels == c) & (groups == g))
            if len(cell) > 1:
                assert seen[cell].max() - seen[cell].min() <= 10  # one per epoch at most


def test_mixed_share_sets_the_mixed_classes_per_batch():
    labels, groups = _data(seed=2)
    mixed = np.array([len(np.unique(groups[labels == c])) > 1 for c in range(60)])
    for share, want in ((1.0, min(8, int(mixed.sum()))), (0.5, 4), (0.0, 0)):
        s = ClassMixedBatchSampler(labels, groups, m=4, batch_size=32, mixed_share=share, seed=0)
        assert s.mixed_per_batch == want
        for batch in s:
            classes = np.unique(labels[np.array(batch)])
            assert mixed[classes].sum() == want


def test_deterministic_resumable_and_sharded():
    labels, groups = _data(seed=4)
    make = lambda **kw: ClassMixedBatchSampler(  # noqa: E731
        labels, groups, m=4, batch_size=32, seed=7, **kw
    )
    a, b = make(), make()
    a.set_epoch(2)
    b.set_epoch(2)
    full = list(a)
    assert full == list(b)
    b.set_epoch(2, start_batch=5)
    assert list(b) == full[5:]
    r0, r1 = make(rank=0, world_size=2), make(rank=1, world_size=2)
    r0.set_epoch(2)
    r1.set_epoch(2)
    assert list(r0) == full[0::2]
    assert list(r1)[: len(full[1::2])] == full[1::2]
    a.set_epoch(3)
    assert list(a) != full


def test_per_identity_groups_reduce_to_plain_m_per_class_batches():
    labels = np.repeat(np.arange(40), 10)
    groups = (labels < 4).astype(np.int64)  # the group belongs to the class
    s = ClassMixedBatchSampler(labels, groups, m=4, batch_size=32, seed=0)
    assert not s.mixed.any()
    for batch in s:
        assert (np.unique(labels[np.array(batch)], return_counts=True)[1] == 4).all()


def test_config_and_validation():
    assert "class_mixed" in SAMPLERS.names()
    assert mixed_share_from_proportions(None) is None
    assert mixed_share_from_proportions({"mixed": 1.0}) == 1.0
    assert mixed_share_from_proportions({"mixed": 1, "pure": 3}) == 0.25
    with pytest.raises(ValueError, match="mixed and pure"):
        mixed_share_from_proportions({"minority": 0.5})
    with pytest.raises(ValueError, match="not all 0"):
        mixed_share_from_proportions({"mixed": 0.0})
    labels, groups = _data()
    with pytest.raises(ValueError, match="mixed_share"):
        ClassMixedBatchSampler(labels, groups, m=4, batch_size=32, mixed_share=1.5)
    with pytest.raises(ValueError, match="groups"):
        ClassMixedBatchSampler(labels, groups[:-1], m=4, batch_size=32)
    with pytest.raises(ValueError, match="multiple of m"):
        ClassMixedBatchSampler(labels, groups, m=4, batch_size=30)
