"""The DANN term's class-balanced adversary loss (fairmetric.losses.terms.adversary)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from fairmetric.losses.objective import Batch
from fairmetric.losses.terms.adversary import (
    AdversaryConfig,
    AdversaryTerm,
    balanced_accuracy,
    balanced_cross_entropy,
)


def _loop_reference(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Mean over the values present of each value's mean cross-entropy, with explicit loops."""
    per_value = []
    for v in sorted(set(codes.tolist())):
        terms = []
        for i in range(len(codes)):
            if int(codes[i]) == v:
                terms.append(-torch.log_softmax(logits[i], dim=0)[v])
        per_value.append(sum(terms) / len(terms))
    return sum(per_value) / len(per_value)


@pytest.mark.parametrize("n_values", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_cross_entropy_matches_loop_reference(n_values, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(23, n_values, generator=g, dtype=torch.float64, requires_grad=True)
    # imbalanced codes; with 4 values, value 3 is absent (its weight must not matter)
    codes = (torch.rand(23, generator=g) ** 3 * min(n_values, 3)).long()
    got = balanced_cross_entropy(logits, codes)
    ref = _loop_reference(logits, codes)
    assert_close(got, ref)
    assert_close(torch.autograd.grad(got, logits)[0], torch.autograd.grad(ref, logits)[0])


def test_balanced_equals_plain_mean_when_values_are_equally_frequent():
    logits = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    codes = torch.arange(12) % 3
    assert_close(balanced_cross_entropy(logits, codes), F.cross_entropy(logits, codes))


def _best_constant(loss_fn, codes: torch.Tensor) -> float:
    """The lowest loss a classifier that ignores its input (one logit vector) can reach."""
    bias = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(bias.expand(len(codes), 2), codes)
        loss.backward()
        return loss

    opt.step(closure)
    return float(loss_fn(bias.detach().expand(len(codes), 2), codes))


def test_a_majority_guess_does_not_satisfy_the_balanced_loss():
    """At 95:5 the plain cross-entropy of the best constant answer is H(0.05) ~ 0.199 nats (the
    adversary 'wins' by predicting the majority); the balanced loss of any constant answer is at
    least log 2, reached by the uniform answer, and a confident majority guess scores far above."""
    codes = torch.tensor([0] * 95 + [1] * 5)
    h = -(0.95 * math.log(0.95) + 0.05 * math.log(0.05))
    assert _best_constant(F.cross_entropy, codes) == pytest.approx(h, abs=1e-4)
    assert _best_constant(balanced_cross_entropy, codes) == pytest.approx(math.log(2), abs=1e-4)
    # the calibrated majority guess (the prior) is optimal for the plain loss, poor for the balanced
    majority = torch.tensor([[math.log(0.95), math.log(0.05)]]).expand(100, 2)
    assert float(F.cross_entropy(majority, codes)) == pytest.approx(h, abs=1e-6)
    assert float(balanced_cross_entropy(majority, codes)) > 1.5
    # the diagnostic: plain accuracy 0.95, balanced accuracy chance
    predicted = majority.argmax(dim=1)
    assert float((predicted == codes).float().mean()) == pytest.approx(0.95)
    assert float(balanced_accuracy(predicted, codes)) == pytest.approx(0.5)


def _batch(e: torch.Tensor, codes: torch.Tensor) -> Batch:
    n = len(codes)
    return Batch(
        features=e,
        raw=e,
        embeddings=e,
        labels=torch.zeros(n, dtype=torch.long),
        attributes=codes[:, None],
        attribute_names=["palette"],
    )


def test_term_is_balanced_by_default_and_can_be_turned_off():
    assert AdversaryConfig().balanced is True
    torch.manual_seed(0)
    e = torch.randn(40, 8, requires_grad=True)
    codes = torch.tensor([0] * 36 + [1] * 4)
    balanced = AdversaryTerm("palette", embedding_dim=8, num_values=2)
    plain = AdversaryTerm("palette", embedding_dim=8, num_values=2, balanced=False)
    plain.load_state_dict(balanced.state_dict())
    out_b = balanced(_batch(e, codes))
    out_p = plain(_batch(e, codes))
    logits = balanced.adversary.classifier(e)
    assert_close(out_b["adversary/palette"], _loop_reference(logits, codes))
    assert_close(out_p["adversary/palette"], F.cross_entropy(logits, codes))
    # the embedding still receives the reversed gradient of the balanced loss
    (g,) = torch.autograd.grad(out_b["adversary/palette"], e)
    (ref,) = torch.autograd.grad(_loop_reference(balanced.adversary.classifier(e), codes), e)
    assert_close(g, -ref)
    with pytest.raises(ValueError, match="balanced"):
        AdversaryTerm("palette", embedding_dim=8, num_values=2, balanced="yes")


def test_balanced_adversary_learns_the_minority_where_the_plain_one_guesses_the_majority():
    """Statistical property: on 95:5 data whose attribute is weakly readable from e, the plain
    adversary settles near the majority guess (balanced accuracy ~ chance), the balanced one
    separates the groups."""
    g = torch.Generator().manual_seed(0)
    n = 2000
    codes = (torch.rand(n, generator=g) < 0.05).long()
    e = torch.randn(n, 4, generator=g)
    e[:, 0] += 1.0 * codes  # a weak signal: d' = 1
    results = {}
    for balanced in (False, True):
        torch.manual_seed(0)
        term = AdversaryTerm("palette", embedding_dim=4, num_values=2, balanced=balanced)
        opt = torch.optim.Adam(term.parameters(), lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            term(_batch(e, codes))["adversary/palette"].backward()
            opt.step()
        predicted = term.adversary.classifier(e).argmax(dim=1)
        results[balanced] = float(balanced_accuracy(predicted, codes))
    assert results[False] < 0.6
    assert results[True] > 0.65
