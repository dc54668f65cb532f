"""Tests for fairmetric.losses.per_sample_losses against per-anchor loop references."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import (
    ContrastiveLoss,
    HistogramLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
    TripletMarginLoss,
)
from pytorch_metric_learning.miners import TripletMarginMiner
from pytorch_metric_learning.regularizers import LpRegularizer
from torch.testing import assert_close

from fairmetric.losses.per_sample import per_sample_losses
from fairmetric.losses.reducers import GroupWeightedReducer, batch_groups
from tests.losses.test_reducers import (
    GROUPS,
    LABELS,
    WEIGHTS,
    D,
    N,
    ScalarLoss,
    ShiftedElementLoss,
    all_triplets,
    contrastive_elements,
    make_emb,
    ms_elements,
    triplet_elements,
)


def per_anchor_mean(elements, n: int = N) -> torch.Tensor:
    """Mean loss of the elements each sample anchors; 0 for samples anchoring none."""
    out = []
    for i in range(n):
        mine = [loss for a, loss in elements if a == i]
        out.append(torch.stack(mine).mean() if mine else torch.zeros((), dtype=torch.float64))
    return torch.stack(out)


def check(loss_fn, reference, emb, indices=None):
    """Values and the gradient of a weighted sum of the per-sample losses match the reference."""
    probe = torch.linspace(0.5, 2.0, N, dtype=torch.float64)
    e1 = emb.clone().requires_grad_(True)
    got = per_sample_losses(loss_fn, e1, LABELS, indices)
    e2 = emb.clone().requires_grad_(True)
    expected = reference(e2)
    assert got.shape == (N,)
    assert_close(got.detach(), expected.detach())
    (g1,) = torch.autograd.grad((got * probe).sum(), e1)
    (g2,) = torch.autograd.grad((expected * probe).sum(), e2)
    assert_close(g1, g2)
    return got.detach()


def test_triplet_with_miner_tuples():
    emb, margin = make_emb(1), 0.2
    mined = TripletMarginMiner(margin=0.5, type_of_triplets="all")(emb, LABELS)
    triplets = list(zip(*(t.tolist() for t in mined)))
    got = check(
        TripletMarginLoss(margin=margin),
        lambda e: per_anchor_mean(triplet_elements(e, triplets, margin)),
        emb,
        mined,
    )
    # the mean over the anchor's tuples includes its zero-loss tuples
    losses = triplet_elements(emb, triplets, margin)
    assert any(float(loss) == 0 for _, loss in losses)
    assert (got > 0).any()


def test_triplet_samples_anchoring_nothing_get_zero():
    emb, margin = make_emb(2), 0.3
    triplets = [t for t in all_triplets(LABELS) if t[0] in (1, 4, 6)]
    indices = tuple(torch.tensor(x) for x in zip(*triplets))
    got = check(
        TripletMarginLoss(margin=margin),
        lambda e: per_anchor_mean(triplet_elements(e, triplets, margin)),
        emb,
        indices,
    )
    others = [i for i in range(N) if i not in (1, 4, 6)]
    assert torch.all(got[others] == 0) and (got[[1, 4, 6]] > 0).all()


def test_triplet_all_triplets_and_no_triplets():
    emb, margin = make_emb(3), 0.2
    triplets = all_triplets(LABELS)
    check(
        TripletMarginLoss(margin=margin),
        lambda e: per_anchor_mean(triplet_elements(e, triplets, margin)),
        emb,
    )
    got = per_sample_losses(TripletMarginLoss(margin=margin), emb, torch.arange(N))
    assert torch.equal(got, torch.zeros(N, dtype=torch.float64))


def test_contrastive_sums_the_per_anchor_means_of_both_sub_losses():
    emb, pm, nm = make_emb(4), 0.8, 1.0

    def reference(e):
        pos, neg = contrastive_elements(e, LABELS, pm, nm)
        return per_anchor_mean(pos) + per_anchor_mean(neg)

    check(ContrastiveLoss(pos_margin=pm, neg_margin=nm), reference, emb)
    # no positive pairs at all: PML reports the pos sub-loss as a plain 0
    distinct = torch.arange(N)
    _, neg = contrastive_elements(emb, distinct, pm, nm)
    got = per_sample_losses(ContrastiveLoss(pos_margin=pm, neg_margin=nm), emb, distinct)
    assert_close(got, per_anchor_mean(neg))


def test_multi_similarity():
    emb, (alpha, beta, b) = make_emb(5), (2.0, 10.0, 0.5)
    check(
        MultiSimilarityLoss(alpha=alpha, beta=beta, base=b),
        lambda e: per_anchor_mean(ms_elements(e, LABELS, alpha, beta, b)),
        emb,
    )


def test_regulariser_left_out():
    emb, margin = make_emb(6), 0.2
    plain = per_sample_losses(TripletMarginLoss(margin=margin), emb, LABELS)
    reg = TripletMarginLoss(margin=margin, embedding_regularizer=LpRegularizer())
    assert_close(per_sample_losses(reg, emb, LABELS), plain)


def test_reducer_restored_after_use_and_after_errors():
    emb = make_emb(7)
    loss_fn = ContrastiveLoss(pos_margin=0.8, reducer=GroupWeightedReducer(WEIGHTS))
    original = loss_fn.reducer
    with batch_groups(loss_fn, GROUPS):
        before = loss_fn(emb, LABELS)
    per_sample_losses(loss_fn, emb, LABELS)
    assert loss_fn.reducer is original
    with batch_groups(loss_fn, GROUPS):
        assert_close(loss_fn(emb, LABELS), before)
    with pytest.raises(ValueError, match="Number of embeddings must equal"):  # raised by PML
        per_sample_losses(loss_fn, emb, LABELS[:-1])
    assert loss_fn.reducer is original
    scalar = ScalarLoss()
    scalar_reducer = scalar.reducer
    with pytest.raises(ValueError, match="already reduced"):
        per_sample_losses(scalar, emb, LABELS)
    assert scalar.reducer is scalar_reducer


def test_proxy_anchor_raises():
    torch.manual_seed(0)
    loss_fn = ProxyAnchorLoss(num_classes=3, embedding_size=D)
    original = loss_fn.reducer
    with pytest.raises(ValueError, match="ProxyAnchorLoss"):
        per_sample_losses(loss_fn, make_emb(0), LABELS)
    assert loss_fn.reducer is original


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")
def test_histogram_loss_raises():
    with pytest.raises(ValueError, match="already reduced"):
        per_sample_losses(HistogramLoss(n_bins=10), make_emb(0), LABELS)


def test_indices_outside_batch_raise():
    with pytest.raises(ValueError, match="outside the batch"):
        per_sample_losses(ShiftedElementLoss(), make_emb(0), LABELS)
