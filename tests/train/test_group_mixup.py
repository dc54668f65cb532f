"""The group_mixup hook: intra-class, cross-group input mixup (LISA intra-label)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from fairmetric.train.hooks import HOOKS, StepInput
from fairmetric.train.hooks.group_mixup import GroupMixupConfig, GroupMixupHook, group_mixup


def _loop_reference(x, labels, groups, mixed, partner, lam):
    """Row by row: unmixed rows unchanged; a mixed row is lam x_i + (1 - lam) x_j with j of the
    same class and another group."""
    out = x.clone()
    for i in range(len(x)):
        if mixed[i]:
            j = int(partner[i])
            assert labels[j] == labels[i] and groups[j] != groups[i]
            out[i] = float(lam[i]) * x[i] + (1 - float(lam[i])) * x[j]
        else:
            assert int(partner[i]) == -1 and float(lam[i]) == 1.0
    return out


LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3])
GROUPS = torch.tensor([0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1])


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_reference(p, seed):
    x = torch.randn(12, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    out, mixed, partner, lam = group_mixup(
        x, LABELS, GROUPS, p=p, generator=torch.Generator().manual_seed(seed)
    )
    assert_close(out, _loop_reference(x, LABELS, GROUPS, mixed, partner, lam))
    eligible = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0], dtype=torch.bool)
    assert not (mixed & ~eligible).any()  # only classes showing two groups are mixed
    if p == 1.0:
        assert (mixed == eligible).all()
    if p == 0.0:
        assert not mixed.any() and out is x


def test_statistical_properties_of_the_draws():
    """Over many draws: the share of eligible rows mixed is p; the partner is uniform among the
    row's same-class other-group rows; lambda ~ Beta(alpha, alpha) (mean 1/2, variance
    1 / (4 (2 alpha + 1)))."""
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(12, 2)
    mixed_rows, lams, partners_of_3 = 0, [], []
    trials = 4000
    for _ in range(trials):
        _, mixed, partner, lam = group_mixup(x, LABELS, GROUPS, p=0.3, alpha=2.0, generator=gen)
        mixed_rows += int(mixed[:4].sum()) + int(mixed[8:10].sum())
        lams += lam[mixed].tolist()
        if mixed[3]:
            partners_of_3.append(int(partner[3]))
    share = mixed_rows / (6 * trials)
    assert share == pytest.approx(0.3, abs=3 * np.sqrt(0.3 * 0.7 / (6 * trials)))
    lams = np.array(lams)
    assert lams.mean() == pytest.approx(0.5, abs=0.01)
    assert lams.var() == pytest.approx(1 / 20, rel=0.06)
    counts = np.bincount(partners_of_3, minlength=3)[:3]  # row 3 (minority) mixes with 0, 1, 2
    assert counts.min() > 0.28 * len(partners_of_3) and counts.max() < 0.39 * len(partners_of_3)


def test_validation_and_registration():
    assert "group_mixup" in HOOKS.names()
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="p must"):
        group_mixup(x, LABELS[:4], GROUPS[:4], p=1.5)
    with pytest.raises(ValueError, match="alpha"):
        group_mixup(x, LABELS[:4], GROUPS[:4], alpha=0.0)
    assert GroupMixupHook.needs_groups(GroupMixupConfig(enabled=True))
    assert not GroupMixupHook.needs_groups(GroupMixupConfig())


def test_hook_is_deterministic_per_epoch_and_resumable():
    x = torch.randn(12, 5)
    step = StepInput(x, LABELS, GROUPS[:, None], GROUPS)
    hook = GroupMixupHook(config=GroupMixupConfig(enabled=True, p=0.7), seed=3)
    hook.set_epoch(1)
    first = hook.before_forward(step).x
    state = hook.rank_state()
    second = hook.before_forward(step).x
    other = GroupMixupHook(config=GroupMixupConfig(enabled=True, p=0.7), seed=3)
    other.set_epoch(1)
    assert_close(other.before_forward(step).x, first)
    other.load_rank_state(state)
    assert_close(other.before_forward(step).x, second)
    assert hook.after_forward(None)["group_mixup_per_step"] > 0
    out = hook.before_forward(step)
    assert (out.labels == LABELS).all() and (out.groups == GROUPS).all()
