"""Tests for fairmetric.losses.adversarial.AttributeAdversary (DANN)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from fairmetric.losses.adversarial import AttributeAdversary


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CODES = torch.tensor([0, 2, 1, 1, 0, 2, 2, 0])


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("hidden", [None, 16])
def test_encoder_gradient_is_reversed_and_scaled(alpha, hidden):
    torch.manual_seed(0)
    adv = AttributeAdversary(6, 3, alpha=alpha, hidden=hidden).double()
    e = rand(8, 6, seed=1).requires_grad_(True)
    params = list(adv.classifier.parameters())
    loss = adv(e, CODES)
    plain = F.cross_entropy(adv.classifier(e), CODES)
    assert_close(loss, plain)  # the value is the plain cross-entropy
    got = torch.autograd.grad(loss, [e, *params])
    ref = torch.autograd.grad(plain, [e, *params])
    assert_close(got[0], -alpha * ref[0])  # the embedding side: reversed, scaled by alpha
    for g, r in zip(got[1:], ref[1:]):
        assert_close(g, r)  # the classifier: the plain gradient


def test_alpha_is_settable_and_validated():
    adv = AttributeAdversary(4, 2, alpha=1.0)
    adv.alpha = 0.25
    e = torch.randn(5, 4, requires_grad=True)
    codes = torch.tensor([0, 1, 1, 0, 1])
    (g,) = torch.autograd.grad(adv(e, codes), e)
    (ref,) = torch.autograd.grad(F.cross_entropy(adv.classifier(e), codes), e)
    assert_close(g, -0.25 * ref)
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match="alpha"):
            adv.alpha = bad
        with pytest.raises(ValueError, match="alpha"):
            AttributeAdversary(4, 2, alpha=bad)


@pytest.fixture
def single_thread():
    """Tiny models run much faster on one thread on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_adversary_learns_a_linearly_present_attribute(single_thread):
    gen = torch.Generator().manual_seed(0)

    def data(n):
        a = torch.randint(0, 2, (n,), generator=gen)
        e = torch.randn(n, 8, generator=gen)
        e[:, 3] += 1.5 * (2.0 * a - 1.0)  # the attribute is a shift along one direction
        return F.normalize(e, dim=1), a

    e_train, a_train = data(512)
    e_test, a_test = data(512)
    torch.manual_seed(0)
    adv = AttributeAdversary(8, 2)
    before = adv.accuracy(e_test, a_test)
    opt = torch.optim.Adam(adv.parameters(), lr=0.05)
    for _ in range(100):
        loss = adv(e_train, a_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = adv.accuracy(e_test, a_test)
    # a linear classifier can reach the Bayes rate here (about 0.93); chance is 0.5
    assert after > 0.85
    assert after > before + 0.2


@pytest.mark.parametrize(
    ("e", "codes", "match"),
    [
        (torch.zeros(4, 6), torch.tensor([0, 1, 2, 1]), r"\[0, 2\)"),
        (torch.zeros(4, 6), torch.tensor([0, 1, -1, 1]), "unknown attributes"),
        (torch.zeros(4, 6), torch.tensor([0, 1, 1]), r"shape \(4,\)"),
        (torch.zeros(4, 6), torch.tensor([0.0, 1.0, 1.0, 0.0]), "integer"),
        (torch.zeros(4, 5), torch.tensor([0, 1, 1, 0]), "e has 5 columns"),
        (torch.full((4, 6), math.nan), torch.tensor([0, 1, 1, 0]), "NaN"),
    ],
)
def test_validation(e, codes, match):
    adv = AttributeAdversary(6, 2)
    with pytest.raises(ValueError, match=match):
        adv(e, codes)


def test_needs_two_values():
    with pytest.raises(ValueError, match="num_values"):
        AttributeAdversary(6, 1)
