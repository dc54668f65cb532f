"""Tests for fairmetric.losses.spectral against loop references and PML's own logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
    TripletMarginLoss,
)
from torch.testing import assert_close

from fairmetric.losses.spectral import SpectralDecoupling, loss_logits, spectral_decoupling

N, K, C = 6, 4, 3


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


LABELS = torch.tensor([0, 2, 1, 1, 0, 2])


def sd_loop(y: torch.Tensor, gamma_of) -> float:
    """mean over i, k of (y_ik - gamma_of(i, k))^2 with explicit loops."""
    n, k = y.shape
    total = sum((float(y[i, j]) - gamma_of(i, j)) ** 2 for i in range(n) for j in range(k))
    return total / (n * k)


def test_plain_and_scalar_offset_match_loop():
    y = rand(N, K, seed=1)
    assert float(spectral_decoupling(y)) == pytest.approx(sd_loop(y, lambda i, j: 0.0))
    assert float(spectral_decoupling(y, offsets=0.7)) == pytest.approx(sd_loop(y, lambda i, j: 0.7))


def test_per_class_offsets_match_loop():
    y = rand(N, K, seed=2)
    gamma = [0.5, -1.0, 2.0]
    want = sd_loop(y, lambda i, j: gamma[int(LABELS[i])])
    assert float(spectral_decoupling(y, LABELS, gamma)) == pytest.approx(want)
    assert float(spectral_decoupling(y, LABELS, torch.tensor(gamma))) == pytest.approx(want)
    table = rand(C, K, seed=3)  # one offset per class and output
    want2 = sd_loop(y, lambda i, j: float(table[int(LABELS[i]), j]))
    assert float(spectral_decoupling(y, LABELS, table)) == pytest.approx(want2)
    # a single logit per sample (the paper's binary CelebA case)
    y1 = rand(N, seed=4)
    want1 = sd_loop(y1[:, None], lambda i, j: gamma[int(LABELS[i])])
    assert float(spectral_decoupling(y1, LABELS, gamma)) == pytest.approx(want1)


def test_gradient_is_two_residual_over_size():
    y = rand(N, K, seed=5).requires_grad_(True)
    gamma = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    (g,) = torch.autograd.grad(spectral_decoupling(y, LABELS, gamma), y)
    assert_close(g, 2 * (y.detach() - gamma[LABELS][:, None]) / (N * K))


def test_module_multiplies_by_coefficient_and_carries_offsets():
    y = rand(N, K, seed=6)
    sd = SpectralDecoupling(0.1, offsets=[0.5, -1.0, 2.0]).double()
    assert "offsets" in sd.state_dict()
    assert_close(sd(y, LABELS), 0.1 * spectral_decoupling(y, LABELS, [0.5, -1.0, 2.0]))
    assert_close(SpectralDecoupling(2e-5)(y), 2e-5 * y.pow(2).mean())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": None, "offsets": [0.0, 1.0, 2.0]}, "need labels"),
        ({"labels": LABELS, "offsets": [0.0, 1.0]}, r"\[0, 2\)"),
        ({"labels": LABELS[:3], "offsets": [0.0, 1.0, 2.0]}, r"labels must have shape \(6,\)"),
        ({"labels": LABELS.float(), "offsets": [0.0, 1.0, 2.0]}, "integer"),
        ({"labels": LABELS, "offsets": torch.zeros(3, 2)}, r"K = 4"),
        ({"labels": LABELS, "offsets": [0.0, math.nan, 1.0]}, "NaN"),
        ({"labels": LABELS, "offsets": "abc"}, "offsets"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spectral_decoupling(rand(N, K), **kwargs)


def test_output_and_coefficient_validation():
    with pytest.raises(ValueError, match="NaN"):
        spectral_decoupling(torch.full((2, 2), math.inf))
    with pytest.raises(ValueError, match="outputs"):
        spectral_decoupling(torch.zeros(2, 2, 2))
    for bad in (math.nan, math.inf, -0.1):
        with pytest.raises(ValueError, match="coefficient"):
            SpectralDecoupling(bad)


# ---------------------------------------------------------------- logits of PML losses

D = 5


def emb(seed=7):
    return F.normalize(rand(N, D, seed=seed), dim=1)


@pytest.mark.parametrize(
    "loss_fn",
    [
        ArcFaceLoss(C, D, margin=0.0, scale=16),
        CosFaceLoss(C, D, margin=0.0, scale=16),
        NormalizedSoftmaxLoss(C, D, temperature=0.1),
        ProxyNCALoss(C, D, softmax_scale=3.0),
        SoftTripleLoss(C, D, centers_per_class=2, la=20, margin=0.0),
    ],
    ids=lambda f: type(f).__name__,
)
def test_logits_are_the_softmax_input_of_the_loss(loss_fn):
    # at margin 0, the loss is exactly the cross-entropy of its logits
    torch.manual_seed(0)
    e = emb()
    logits = loss_logits(loss_fn, e)
    assert logits.shape == (N, C) and logits.dtype == torch.float64
    assert_close(F.cross_entropy(logits, LABELS), loss_fn(e, LABELS))


@pytest.mark.parametrize(
    "loss_fn",
    [ArcFaceLoss(C, D), CosFaceLoss(C, D), NormalizedSoftmaxLoss(C, D), ProxyAnchorLoss(C, D)],
    ids=lambda f: type(f).__name__,
)
def test_logits_equal_the_loss_get_logits(loss_fn):
    e = emb(seed=8)
    assert_close(loss_logits(loss_fn, e), loss_fn.get_logits(e))


def test_proxy_nca_logits_are_negative_scaled_distances():
    loss_fn = ProxyNCALoss(C, D, softmax_scale=3.0)
    e = emb(seed=9)
    assert_close(loss_logits(loss_fn, e), -3.0 * loss_fn.get_logits(e))


@pytest.mark.parametrize("loss_fn", [TripletMarginLoss(), MultiSimilarityLoss()])
def test_pair_losses_have_no_logits(loss_fn):
    assert loss_logits(loss_fn, emb()) is None
