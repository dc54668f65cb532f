"""Group DRO against a literal transcription of Sagawa et al.'s ``LossComputer`` (issue 13).

``kohpangwei/group_DRO``, ``loss.py``::

    def compute_robust_loss(self, group_loss, group_count):
        adjusted_loss = group_loss
        if torch.all(self.adj > 0):
            adjusted_loss += self.adj / torch.sqrt(self.group_counts)
        if self.normalize_loss:
            adjusted_loss = adjusted_loss / (adjusted_loss.sum())
        self.adv_probs = self.adv_probs * torch.exp(self.step_size * adjusted_loss.data)
        self.adv_probs = self.adv_probs / (self.adv_probs.sum())
        robust_loss = group_loss @ self.adv_probs
        return robust_loss, self.adv_probs

with ``group_loss`` the per-group mean of the batch's per-sample losses (0 for an absent group).
Note the in-place ``+=``: the reference's robust loss includes ``adj / sqrt(n_g)`` (a constant, so
no gradient changes); fairmetric returns the loss without it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from fairmetric.losses.group_dro import GroupDROReducer


class _SagawaLossComputer:
    def __init__(self, group_counts, step_size, adj):
        self.group_counts = torch.as_tensor(group_counts, dtype=torch.float64)
        self.n_groups = len(group_counts)
        self.step_size = step_size
        self.adj = torch.full((self.n_groups,), float(adj), dtype=torch.float64)
        self.adv_probs = torch.ones(self.n_groups, dtype=torch.float64) / self.n_groups
        self.normalize_loss = False

    def compute_group_avg(self, losses, group_idx):
        group_map = (group_idx == torch.arange(self.n_groups).unsqueeze(1).long()).double()
        group_count = group_map.sum(1)
        group_denom = group_count + (group_count == 0).double()
        return (group_map @ losses.view(-1)) / group_denom, group_count

    def compute_robust_loss(self, group_loss, group_count):
        adjusted_loss = group_loss
        if torch.all(self.adj > 0):
            adjusted_loss += self.adj / torch.sqrt(self.group_counts)
        self.adv_probs = self.adv_probs * torch.exp(self.step_size * adjusted_loss.data)
        self.adv_probs = self.adv_probs / (self.adv_probs.sum())
        return group_loss @ self.adv_probs

    def loss(self, per_sample_losses, group_idx):
        group_loss, group_count = self.compute_group_avg(per_sample_losses, group_idx)
        return self.compute_robust_loss(group_loss, group_count)


def _element_dict(losses):
    n = len(losses)
    return {"loss": {"losses": losses, "indices": torch.arange(n), "reduction_type": "element"}}


@pytest.mark.parametrize("eta, C", [(0.01, 0.0), (0.1, 0.0), (0.5, 2.0), (0.01, 4.0)])
def test_q_and_gradients_follow_the_reference_loss_computer(eta, C):
    counts = [190, 10, 40]
    reducer = GroupDROReducer(counts, eta=eta, C=C)
    reference = _SagawaLossComputer(counts, eta, C)
    gen = torch.Generator().manual_seed(0)
    for step in range(25):
        n = 24
        groups = torch.randint(0, 3, (n,), generator=gen)
        if step % 5 == 4:
            groups[groups == 1] = 0  # group 1 absent from some batches: l_1 = 0
        x = torch.rand(n, dtype=torch.float64, generator=gen) * (1 + groups)  # group 2 hardest
        x1 = x.clone().requires_grad_(True)
        x2 = x.clone().requires_grad_(True)
        reducer.set_groups(groups)
        got = reducer(_element_dict(x1), torch.zeros(n, 2, dtype=torch.float64), groups)
        reducer.set_groups(None)
        ref = reference.loss(x2, groups)
        assert_close(reducer.q, reference.adv_probs, rtol=1e-12, atol=1e-15)
        # the values differ by the constant sum_g q_g C / sqrt(n_g) (see the module docstring)
        shift = float((reference.adv_probs * C / torch.tensor(counts).double().sqrt()).sum())
        shift = shift if C > 0 else 0.0
        assert float(got.detach()) == pytest.approx(
            float(ref.detach()) - shift, rel=1e-10, abs=1e-12
        )
        (g1,) = torch.autograd.grad(got, x1)
        (g2,) = torch.autograd.grad(ref, x2)
        assert_close(g1, g2)


def test_log_odds_grow_by_eta_times_the_summed_loss_difference():
    """Statistical property of the exponentiated-gradient update: after T steps,
    log(q_a / q_b) = eta * sum_t (l_a - l_b + C / sqrt(n_a) - C / sqrt(n_b))."""
    eta, C, counts = 0.05, 1.0, [100, 25]
    reducer = GroupDROReducer(counts, eta=eta, C=C)
    gen = torch.Generator().manual_seed(1)
    expected = 0.0
    for _ in range(40):
        groups = torch.tensor([0] * 10 + [1] * 6)
        x = torch.rand(16, dtype=torch.float64, generator=gen)
        x[10:] += 0.3
        reducer.set_groups(groups)
        reducer(_element_dict(x), torch.zeros(16, 2), groups)
        reducer.set_groups(None)
        expected += float(x[10:].mean() - x[:10].mean()) + C / 5 - C / 10
    got = math.log(float(reducer.q[1] / reducer.q[0]))
    assert got == pytest.approx(eta * expected, rel=1e-9)
