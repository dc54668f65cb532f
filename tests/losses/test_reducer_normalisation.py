"""GroupWeightedReducer: weights normalised over the elements actually averaged (issue 13)."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import MultiSimilarityLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner
from torch.testing import assert_close

from fairmetric.losses.reducers import GroupWeightedReducer, batch_groups


def _reduce(reducer, losses, groups):
    n = len(losses)
    loss_dict = {
        "loss": {"losses": losses, "indices": torch.arange(n), "reduction_type": "element"}
    }
    reducer.set_groups(groups)
    try:
        return reducer(loss_dict, torch.zeros(n, 2, dtype=losses.dtype), torch.zeros(n))
    finally:
        reducer.set_groups(None)


def _loop(losses, groups, weights, base, normalise):
    """Slow reference with explicit loops."""
    n = len(losses)
    active = [i for i in range(n) if float(losses[i]) > 0]
    if normalise == "all" and base == "mean":
        num = sum(float(weights[groups[i]]) * losses[i] for i in range(n))
        den = sum(float(weights[groups[i]]) for i in range(n))
        return num / den
    num = sum(float(weights[groups[i]]) * losses[i] for i in active)
    den = sum(float(weights[groups[i]]) for i in active)
    divisor = n if base == "mean" else len(active)
    return num / den * len(active) / divisor


@pytest.mark.parametrize("base", ["mean", "avg_nonzero"])
@pytest.mark.parametrize("normalise", ["active", "all"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_reference_with_inactive_elements(base, normalise, seed):
    g = torch.Generator().manual_seed(seed)
    n = 30
    losses = torch.rand(n, generator=g, dtype=torch.float64)
    losses[torch.rand(n, generator=g) < 0.4] = 0.0  # anchors with no mined tuple
    groups = (torch.rand(n, generator=g) < 0.2).long()
    weights = torch.tensor([0.526, 10.0])
    reducer = GroupWeightedReducer(weights, base=base, normalise=normalise)
    got = _reduce(reducer, losses.clone().requires_grad_(True), groups)
    assert_close(got.double(), _loop(losses, groups.tolist(), weights, base, normalise))


def test_inactive_heavy_elements_do_not_rescale_the_loss():
    """The property the fix is for: when every minority anchor is inactive (loss 0), the batch's
    loss is the unweighted one; normalising over all elements shrank it by the minority's share of
    the weight (30 of 62 here: the majority's learning rate about halved, at random)."""
    losses = torch.cat(
        [torch.rand(61, generator=torch.Generator().manual_seed(0)) + 0.1, torch.zeros(3)]
    ).double()
    groups = torch.tensor([0] * 61 + [1] * 3)
    weights = torch.tensor([0.526, 10.0])
    plain = losses.mean()
    active = _reduce(GroupWeightedReducer(weights, base="mean"), losses, groups)
    assert_close(active, plain)
    old = _reduce(GroupWeightedReducer(weights, base="mean", normalise="all"), losses, groups)
    expected_old = float(losses.sum()) * 0.526 / (61 * 0.526 + 30)
    assert float(old) == pytest.approx(expected_old, rel=1e-5)
    assert float(old) < 0.55 * float(plain)


def test_weights_move_mass_between_active_elements_only():
    """Total scale: sum of the active elements' effective weights equals their count, so the loss
    of equal active losses equals the base reducer's whatever the groups' weights."""
    losses = torch.tensor([0.5] * 10 + [0.0] * 6, dtype=torch.float64)
    groups = torch.tensor([0, 1] * 8)
    for w in ([1.0, 1.0], [0.3, 7.0], [5.0, 0.1]):
        got = _reduce(GroupWeightedReducer(torch.tensor(w), base="mean"), losses, groups)
        assert_close(got, losses.mean())


def test_multi_similarity_with_miner_equal_weights_is_pml_mean_reducer():
    torch.manual_seed(3)
    emb = torch.nn.functional.normalize(torch.randn(24, 8, dtype=torch.float64), dim=1)
    labels = torch.arange(24) // 4
    groups = (torch.arange(24) % 7 == 0).long()
    pairs = MultiSimilarityMiner(epsilon=0.1)(emb, labels)
    plain = MultiSimilarityLoss(alpha=2, beta=40, base=0.5)(emb, labels, pairs)
    weighted = MultiSimilarityLoss(
        alpha=2, beta=40, base=0.5, reducer=GroupWeightedReducer(torch.tensor([2.0, 2.0]))
    )
    with batch_groups(weighted, groups):
        assert_close(weighted(emb, labels, pairs), plain)


def test_normalise_is_validated():
    with pytest.raises(ValueError, match="normalise"):
        GroupWeightedReducer(torch.ones(2), normalise="some")
