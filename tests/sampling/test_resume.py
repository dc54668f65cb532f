"""Mid-epoch resume of the batch samplers: ``set_epoch(epoch, start_batch=...)``."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.sampling import (
    EpochBalancedBatchSampler,
    GroupQuotaBatchSampler,
    MPerClassBatchSampler,
)

KINDS = ["m_per_class", "epoch_balanced", "group_quota"]


def _data() -> tuple[np.ndarray, np.ndarray]:
    """12 classes of uneven size over 2 groups, the second group small (deterministic)."""
    labels = np.repeat(np.arange(12), [6, 9, 4, 12, 7, 8, 5, 10, 6, 9, 11, 7])
    groups = (np.arange(len(labels)) % 5 == 0).astype(int)
    return labels, groups


def make(kind: str, **kwargs):
    labels, groups = _data()
    kwargs = dict(m=2, batch_size=8, seed=3) | kwargs
    if kind == "m_per_class":
        return MPerClassBatchSampler(labels, **kwargs)
    if kind == "epoch_balanced":
        return EpochBalancedBatchSampler(labels, groups, **kwargs)
    return GroupQuotaBatchSampler(labels, groups, **kwargs)


def run(sampler, epoch: int, start_batch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch, start_batch=start_batch)
    return list(sampler)


@pytest.mark.parametrize("kind", KINDS)
def test_resume_yields_the_rest_of_the_uninterrupted_epoch(kind):
    sampler = make(kind, num_batches=9)
    for epoch in (0, 2):
        full = run(sampler, epoch)
        assert len(full) == 9
        assert run(sampler, epoch) == full  # start_batch=0 is the plain epoch
        for k in (1, 4, 8, 9):
            assert run(sampler, epoch, k) == full[k:]
            assert len(sampler) == 9 - k
            fresh = make(kind, num_batches=9)  # a new process after a restart
            fresh.set_epoch(epoch, start_batch=k)
            assert list(fresh) == full[k:]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("num_batches", "steps"),
    [(11, 2), (11, 3), (12, 4), (9, 0), (10, 5)],  # (10, 5): saved after the last step
)
def test_resume_with_a_different_world_size(kind, num_batches, steps):
    # a 2-rank run checkpoints after `steps` steps; the run resumes on 3 ranks
    before = [
        run(make(kind, num_batches=num_batches, rank=r, world_size=2), 1)[:steps] for r in range(2)
    ]
    start = steps * 2
    after = [make(kind, num_batches=num_batches, rank=r, world_size=3, seed=3) for r in range(3)]
    per_rank = -(-(num_batches - start) // 3)
    shares = [run(s, 1, start) for s in after]
    assert all(len(s) == per_rank for s in after)
    assert all(len(b) == per_rank for b in shares)
    consumed = [before[i % 2][i // 2] for i in range(start)]
    resumed = [shares[i % 3][i // 3] for i in range(per_rank * 3)]
    # the global sequence (world_size=1), continued past num_batches to cover the padding
    padded = run(make(kind, num_batches=start + per_rank * 3), 1)
    assert consumed + resumed == padded
    assert (consumed + resumed)[:num_batches] == run(make(kind, num_batches=num_batches), 1)


@pytest.mark.parametrize("kind", KINDS)
def test_len_validation_and_no_leak(kind):
    sampler = make(kind, num_batches=7, rank=1, world_size=3)
    assert len(sampler) == 3
    sampler.set_epoch(4, start_batch=2)
    assert (sampler.epoch, sampler.start_batch, len(sampler)) == (4, 2, 2)
    sampler.set_epoch(4, start_batch=np.int64(5))  # numpy integers are fine
    assert (sampler.start_batch, len(sampler), len(list(sampler))) == (5, 1, 1)
    sampler.set_epoch(4, start_batch=7)  # the epoch was complete: nothing left
    assert len(sampler) == 0 and list(sampler) == []
    for bad, match in [
        (-1, r"start_batch must be a non-negative integer.*steps_done \* world_size.*got -1"),
        (8, r"start_batch=8 exceeds the epoch's num_batches=7; pass min\(steps_done"),
        (2.0, r"start_batch must be an integer.*got 2\.0 of type float"),
        ("3", r"start_batch must be an integer.*got '3' of type str"),
        (None, r"start_batch must be an integer"),
        (True, r"start_batch must be an integer.*bool"),
    ]:
        with pytest.raises(ValueError, match=match):
            sampler.set_epoch(5, start_batch=bad)
        assert (sampler.epoch, sampler.start_batch) == (4, 7)  # a refused call changes nothing
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        sampler.set_epoch(-1, start_batch=1)
    sampler.set_epoch(5)  # a new epoch starts from the beginning
    assert (sampler.epoch, sampler.start_batch, len(sampler)) == (5, 0, 3)
    assert list(sampler) == run(make(kind, num_batches=7, rank=1, world_size=3), 5)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip(kind):
    sampler = make(kind, num_batches=8)
    assert sampler.state_dict() == {"epoch": 0, "start_batch": 0}
    sampler.set_epoch(3, start_batch=5)
    state = sampler.state_dict()
    assert state == {"epoch": 3, "start_batch": 5}
    restored = make(kind, num_batches=8, rank=1, world_size=2)  # another world size
    restored.load_state_dict(state)
    assert restored.state_dict() == state and len(restored) == 2
    single = make(kind, num_batches=8)
    single.load_state_dict(state)
    assert list(single) == list(sampler) == run(make(kind, num_batches=8), 3)[5:]
    single.load_state_dict({"epoch": 4})  # start_batch defaults to 0
    assert single.state_dict() == {"epoch": 4, "start_batch": 0}
    with pytest.raises(ValueError, match=r"key 'epoch'.*got keys \['start_batch'\]"):
        single.load_state_dict({"start_batch": 1})
    with pytest.raises(ValueError, match=r"got keys \['epoch', 'step'\]"):
        single.load_state_dict({"epoch": 1, "step": 2})
    with pytest.raises(ValueError, match="exceeds the epoch's num_batches=8"):
        single.load_state_dict({"epoch": 1, "start_batch": 9})
