"""`Objective`: the total is the metric loss plus weighted terms, and every part is reported."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import TripletMarginMiner

from fairmetric.losses import Batch, GroupWeightedReducer, Objective, Term


def make_batch(seed: int = 0, n: int = 16) -> Batch:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 6, generator=g, requires_grad=True)
    raw = h @ torch.randn(6, 4, generator=g)
    labels = torch.arange(n) % 4
    colour = (torch.arange(n) % 3 == 0).long()
    return Batch(
        features=h,
        raw=raw,
        embeddings=F.normalize(raw, dim=1),
        labels=labels,
        attributes=torch.stack([colour, labels % 2], dim=1),
        attribute_names=["colour", "parity"],
        groups=colour,
    )


class MeanNorm(Term):
    def forward(self, batch):
        return {"mean_norm": batch.raw.norm(dim=1).mean(), "@rows": torch.tensor(len(batch.raw))}


class Learnable(Term):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, batch):
        return {"scaled": self.scale * batch.embeddings.pow(2).mean()}


def test_total_is_metric_plus_weighted_terms_and_every_part_is_reported():
    batch = make_batch()
    loss = TripletMarginLoss(margin=0.2)
    obj = Objective(
        loss, TripletMarginMiner(margin=0.2), [MeanNorm(weight=0.3), Learnable(weight=2.0)]
    )
    total, parts = obj(batch)
    metric = loss(
        batch.embeddings,
        batch.labels,
        TripletMarginMiner(margin=0.2)(batch.embeddings, batch.labels),
    )
    mean_norm = batch.raw.norm(dim=1).mean()
    scaled = 2.0 * batch.embeddings.pow(2).mean()
    torch.testing.assert_close(total, metric + 0.3 * mean_norm + 2.0 * scaled)
    assert parts == pytest.approx(
        {
            "metric": metric.item(),
            "mean_norm": mean_norm.item(),
            "scaled": scaled.item(),
            "rows": 16.0,
        }
    )
    # diagnostics are reported, not optimised: the gradient equals that of the weighted sum
    (g1,) = torch.autograd.grad(total, batch.features, retain_graph=True)
    (g2,) = torch.autograd.grad(metric + 0.3 * mean_norm + 2.0 * scaled, batch.features)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("normalise", ["active", "all"])
def test_group_aware_reducers_get_the_batch_groups(normalise):
    batch = make_batch()
    weights = torch.tensor([1.0, 5.0])
    reducer = GroupWeightedReducer(weights, base="mean", normalise=normalise)
    total, _ = Objective(TripletMarginLoss(margin=0.2, reducer=reducer))(batch)
    # reference: every triplet's loss weighted by its anchor's group; "all" normalises the
    # weights over every triplet, "active" over the triplets with a non-zero loss and keeps the
    # mean's scale (active share of the triplets)
    e, y, g = batch.embeddings, batch.labels, batch.groups
    num = den = active_den = 0.0
    count = active = 0
    for a in range(len(e)):
        for p in range(len(e)):
            for n in range(len(e)):
                if a != p and y[a] == y[p] and y[a] != y[n]:
                    value = torch.relu((e[a] - e[p]).norm() - (e[a] - e[n]).norm() + 0.2)
                    num = num + weights[g[a]] * value
                    den = den + weights[g[a]]
                    count += 1
                    if value > 0:
                        active += 1
                        active_den = active_den + weights[g[a]]
    assert 0 < active < count  # both normalisations are exercised and differ
    expected = num / den if normalise == "all" else (active / count) * num / active_den
    torch.testing.assert_close(total, expected)


def test_synthetic_rows_join_only_the_metric_loss():
    batch = make_batch()
    batch.extra_embeddings = batch.embeddings[:4] * 0.5
    batch.extra_labels = batch.labels[:4]
    batch.extra_groups = batch.groups[:4]
    loss = TripletMarginLoss(margin=0.2)
    total, parts = Objective(loss, terms=[MeanNorm(weight=1.0)])(batch)
    expected = loss(
        torch.cat([batch.embeddings, batch.extra_embeddings]),
        torch.cat([batch.labels, batch.labels[:4]]),
    )
    assert parts["metric"] == pytest.approx(expected.item())
    assert parts["mean_norm"] == pytest.approx(
        batch.raw.norm(dim=1).mean().item()
    )  # real rows only
    batch.extra_groups = None
    with pytest.raises(ValueError, match="synthetic rows need groups"):
        Objective(loss)(batch)


def test_param_groups_cover_term_parameters_with_their_learning_rates():
    obj = Objective(
        TripletMarginLoss(), terms=[Learnable(weight=1.0, lr=0.5), Learnable(weight=1.0)]
    )
    groups = obj.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [0.5, 1e-3]
    assert [len(g["params"]) for g in groups] == [1, 1]


def test_bad_terms():
    batch = make_batch()

    class Twice(Term):
        def forward(self, batch):
            return {"mean_norm": batch.raw.sum() * 0}

    with pytest.raises(ValueError, match="two objective terms report 'mean_norm'"):
        Objective(TripletMarginLoss(), terms=[MeanNorm(), Twice()])(batch)

    class Broken(Term):
        def forward(self, batch):
            return {"broken": batch.raw.sum() * float("nan")}

    with pytest.raises(FloatingPointError, match="'broken' is nan"):
        Objective(TripletMarginLoss(), terms=[Broken()])(batch)
    with pytest.raises(ValueError, match="weight must be"):
        MeanNorm(weight=-1.0)
    with pytest.raises(ValueError, match="lr must be"):
        MeanNorm(lr=0.0)
    with pytest.raises(ValueError, match="unknown attribute 'shade'"):
        batch.attribute("shade")
