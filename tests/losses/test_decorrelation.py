"""Tests for fairmetric.losses.decorrelation against loop / numpy references and a training run."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import TripletMarginLoss
from torch.testing import assert_close

from fairmetric.losses.decorrelation import (
    AdversarialDecorrelation,
    CrossCovarianceDecorrelation,
    build_decorrelation,
    cross_covariance_penalty,
    embedding_correlation,
)
from fairmetric.models.heads import MLP, AttributeHead


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def factorial_design() -> torch.Tensor:
    """The 2^3 full factorial design: 8 rows, three independent ±1 factors (population level)."""
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)), dtype=torch.float64)


# ---------------------------------------------------------------- cross-covariance penalty


def cross_cov_loop(e: torch.Tensor, e_s: torch.Tensor) -> float:
    n, d = e.shape
    ds = e_s.shape[1]
    mean_e = [sum(float(e[i, k]) for i in range(n)) / n for k in range(d)]
    mean_s = [sum(float(e_s[i, m]) for i in range(n)) / n for m in range(ds)]
    total = 0.0
    for k in range(d):
        for m in range(ds):
            c = sum((float(e[i, k]) - mean_e[k]) * (float(e_s[i, m]) - mean_s[m]) for i in range(n))
            total += (c / (n - 1)) ** 2
    return total


def test_cross_covariance_penalty_matches_loop_and_numpy_cov():
    e, e_s = rand(9, 4, seed=1), rand(9, 3, seed=2) + 0.5 * rand(9, 4, seed=1)[:, :3]
    got = float(cross_covariance_penalty(e, e_s))
    assert got == pytest.approx(cross_cov_loop(e, e_s), rel=1e-12)
    # np.cov uses the unbiased N - 1 divisor: the cross block of the joint covariance
    joint = np.cov(torch.cat([e, e_s], dim=1).numpy(), rowvar=False)
    assert got == pytest.approx(float((joint[:4, 4:] ** 2).sum()), rel=1e-12)


def test_cross_covariance_penalty_gradcheck():
    e = rand(5, 3, seed=3).requires_grad_(True)
    e_s = rand(5, 2, seed=4).requires_grad_(True)
    assert torch.autograd.gradcheck(cross_covariance_penalty, (e, e_s))


def test_cross_covariance_penalty_zero_for_independent_and_positive_for_correlated():
    f = factorial_design()
    e = torch.stack([f[:, 0], f[:, 1], f[:, 0] * f[:, 1]], dim=1)  # functions of factors 1, 2
    e_s = torch.stack([f[:, 2], 0.5 * f[:, 2] + 1.0], dim=1)  # functions of factor 3 only
    assert float(cross_covariance_penalty(e, e_s)) == pytest.approx(0.0, abs=1e-24)
    # e_s = factor 1 + factor 3: cov(f1, f1 + f3) = sum(f1^2) / (N - 1) = 8/7, all else 0
    correlated = torch.stack([f[:, 0] + f[:, 2], f[:, 2]], dim=1)
    assert float(cross_covariance_penalty(e, correlated)) == pytest.approx((8 / 7) ** 2)


@pytest.mark.parametrize(
    ("e", "e_s", "match"),
    [
        (torch.zeros(4, 3), torch.zeros(5, 2), "same samples"),
        (torch.zeros(4), torch.zeros(4, 2), r"shape \(N, D\)"),
        (torch.zeros(1, 3), torch.zeros(1, 2), "at least 2 rows"),
        (torch.full((4, 3), float("nan")), torch.zeros(4, 2), "NaN"),
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 2), "floating"),
    ],
)
def test_cross_covariance_penalty_validation(e, e_s, match):
    with pytest.raises(ValueError, match=match):
        cross_covariance_penalty(e, e_s)


# ---------------------------------------------------------------- adversarial estimator


def xi_by_hand(dec: AdversarialDecorrelation, s: np.ndarray) -> np.ndarray:
    w1, b1 = dec.xi[0].weight.detach().double().numpy(), dec.xi[0].bias.detach().double().numpy()
    w2, b2 = dec.xi[2].weight.detach().double().numpy(), dec.xi[2].bias.detach().double().numpy()
    return w2 @ np.maximum(w1 @ s + b1, 0.0) + b2


def test_adversarial_decorrelation_value_matches_hand_formula():
    torch.manual_seed(0)
    dec = AdversarialDecorrelation(4, 3, hidden=6).double()
    e, e_s = rand(7, 4, seed=5), rand(7, 3, seed=6)
    got = dec(e, e_s).item()
    total = 0.0
    for i in range(7):
        ei = e[i].numpy() / np.linalg.norm(e[i].numpy())
        si = e_s[i].numpy() / np.linalg.norm(e_s[i].numpy())
        p = xi_by_hand(dec, si)
        p = p / np.linalg.norm(p)
        total += sum((ei[k] * p[k]) ** 2 for k in range(4)) / 4
    assert got == pytest.approx(-total / 7, rel=1e-12)
    assert got < 0


def agreement(dec: AdversarialDecorrelation, e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
    """The squared agreement mean_i mean_k [ê_i ⊙ normalize(ξ(ê^s_i))]_k², no gradient reversal."""
    p = F.normalize(dec.xi(F.normalize(e_s, dim=1)), dim=1)
    return (F.normalize(e, dim=1) * p).pow(2).mean()


def test_adversarial_decorrelation_gradient_signs():
    torch.manual_seed(1)
    dec = AdversarialDecorrelation(4, 3, hidden=8).double()
    e, e_s = rand(16, 4, seed=7).requires_grad_(True), rand(16, 3, seed=8).requires_grad_(True)
    params = list(dec.xi.parameters())
    grads = torch.autograd.grad(dec(e, e_s), [e, e_s, *params])
    g_e, g_s, g_xi = grads[0], grads[1], grads[2:]

    ref = torch.autograd.grad(agreement(dec, e, e_s), [e, e_s, *params])
    # L_dec = -A: the encoders' gradient is reversed, so they receive +dA (descent lowers A) ...
    assert_close(g_e, ref[0])
    assert_close(g_s, ref[1])
    # ... while ξ sits after the reversal and receives the plain dL_dec = -dA (descent raises A)
    for g, r in zip(g_xi, ref[2:]):
        assert_close(g, -r)

    with torch.no_grad():
        before = float(agreement(dec, e, e_s))
        assert float(agreement(dec, e - 0.05 * g_e, e_s)) < before  # fixed ξ sees less agreement
        assert float(agreement(dec, e, e_s - 0.05 * g_s)) < before
        for p, g in zip(params, g_xi):
            p -= 0.05 * g
        assert float(agreement(dec, e, e_s)) > before  # ξ's step predicts e better


def test_adversarial_decorrelation_is_blind_to_coordinate_signs():
    """A measured limitation of the reference estimator: it squares each coordinate product, so
    flipping the signs of e's coordinates per sample (e.g. by attribute) leaves it unchanged."""
    torch.manual_seed(2)
    dec = AdversarialDecorrelation(4, 3, hidden=8).double()
    e, e_s = rand(10, 4, seed=9), rand(10, 3, seed=10)
    signs = torch.where(rand(10, 4, seed=11) > 0, 1.0, -1.0).double()
    assert dec(e * signs, e_s).item() == pytest.approx(dec(e, e_s).item(), rel=1e-12)


def test_modules_validate_dimensions_and_factory():
    adv = build_decorrelation("adversarial", 4, 3, hidden=8)
    assert isinstance(adv, AdversarialDecorrelation)
    assert adv.xi[0].in_features == 3 and adv.xi[-1].out_features == 4
    cc = build_decorrelation("cross_covariance", 4, 3)
    assert isinstance(cc, CrossCovarianceDecorrelation) and not list(cc.parameters())
    assert build_decorrelation(cc, 4, 3) is cc
    e, e_s = rand(6, 4, seed=12).float(), rand(6, 3, seed=13).float()
    assert_close(cc(e, e_s), cross_covariance_penalty(e, e_s))
    with pytest.raises(ValueError, match="e_s has 2 columns"):
        adv(e, e_s[:, :2])
    with pytest.raises(ValueError, match="e has 3 columns"):
        cc(e[:, :3], e_s)
    with pytest.raises(ValueError, match=r"unknown decorrelation kind 'mine'.*cross_covariance"):
        build_decorrelation("mine", 4, 3)
    with pytest.raises(ValueError, match="target_dim"):
        build_decorrelation("adversarial", 0, 3)


# ---------------------------------------------------------------- RV coefficient


def rv_numpy(x: np.ndarray, y: np.ndarray) -> float:
    s = np.cov(np.concatenate([x, y], axis=1), rowvar=False)
    d = x.shape[1]
    sxx, syy, sxy = s[:d, :d], s[d:, d:], s[:d, d:]
    return float(np.trace(sxy @ sxy.T) / np.sqrt(np.trace(sxx @ sxx) * np.trace(syy @ syy)))


def test_embedding_correlation_matches_numpy_reference():
    e = rand(30, 5, seed=14)
    e_s = 0.7 * e[:, :3] + rand(30, 3, seed=15)
    got = float(embedding_correlation(e, e_s))
    assert got == pytest.approx(rv_numpy(e.numpy(), e_s.numpy()), rel=1e-10)
    assert 0.0 < got < 1.0


def test_embedding_correlation_extremes():
    f = factorial_design()
    e = torch.stack([f[:, 0], f[:, 1], f[:, 0] * f[:, 1]], dim=1)
    assert float(embedding_correlation(e, f[:, 2:])) == pytest.approx(0.0, abs=1e-24)
    # independent random data: near 0 (bias ~ sqrt(D Ds) / N)
    assert float(embedding_correlation(rand(20000, 4, seed=16), rand(20000, 3, seed=17))) < 2e-3
    # a rescaled isometry plus an offset: exactly 1
    x = rand(50, 3, seed=18)
    q, _ = torch.linalg.qr(rand(5, 3, seed=19))  # 5x3, orthonormal columns
    assert float(embedding_correlation(x, -2.0 * x @ q.T + 3.0)) == pytest.approx(1.0)
    # a general (non-isometric) linear map: strong but below 1 — the RV is not affine-invariant
    general = float(
        embedding_correlation(x, x @ torch.diag(torch.tensor([5.0, 1.0, 0.2]).double()))
    )
    assert 0.3 < general < 1.0
    assert float(embedding_correlation(x, torch.ones(50, 2, dtype=torch.float64))) == 0.0


# ---------------------------------------------------------------- training on entangled data

N_CLASSES, DIM = 8, 16


def entangled_data(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Vectors whose attribute (class parity, constant within a class as skin tone within an
    identity) shifts every input coordinate, mixed with the class signal by a rotation."""
    fixed = torch.Generator().manual_seed(123)
    class_means = torch.randn(N_CLASSES, DIM, generator=fixed)
    attribute_shift = 2.0 * torch.randn(2, DIM, generator=fixed)
    mix, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=fixed))
    y = torch.randint(0, N_CLASSES, (n,), generator=gen)
    a = y % 2
    x = (class_means[y] + attribute_shift[a] + 0.3 * torch.randn(n, DIM, generator=gen)) @ mix
    return x, y, a


@functools.cache
def train_parade(kind: str, rho: float, steps: int = 200, seed: int = 0) -> dict[str, float]:
    """Shared trunk, target head (triplet on classes), attribute head (triplet on the attribute),
    ``rho`` × decorrelation; returns held-out measurements."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(seed)
        x, y, a = entangled_data(2048, gen)
        x_test, y_test, _ = entangled_data(512, gen)
        torch.manual_seed(seed)
        trunk = torch.nn.Sequential(MLP(DIM, 32, layers=1), torch.nn.ReLU())
        target_head, attribute_head = AttributeHead(32, 8), AttributeHead(32, 4)
        dec = build_decorrelation(kind, 8, 4, hidden=32)
        encoder = [*trunk.parameters(), *target_head.parameters(), *attribute_head.parameters()]
        opt = torch.optim.Adam([{"params": encoder}, {"params": list(dec.parameters())}], lr=3e-3)
        metric = TripletMarginLoss(margin=0.2)
        terms = []
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,), generator=gen)
            h = trunk(x[idx])
            e, e_s = target_head(h), attribute_head(h)
            term = dec(e, e_s)
            loss = metric(e, y[idx]) + metric(e_s, a[idx]) + rho * term
            opt.zero_grad()
            loss.backward()
            opt.step()
            terms.append(term.item())
        with torch.no_grad():
            h = trunk(x_test)
            e, e_s = target_head(h), attribute_head(h)
            sim = e @ e.T
            sim.fill_diagonal_(-2.0)
            recall = float((y_test[sim.argmax(dim=1)] == y_test).float().mean())
            k = steps // 10
            return {
                "rv": float(embedding_correlation(e, e_s)),
                "recall": recall,
                "term_start": float(np.mean(terms[:k])),
                "term_end": float(np.mean(terms[-k:])),
            }
    finally:
        torch.set_num_threads(threads)


def test_cross_covariance_decorrelation_falls_during_training():
    base = train_parade("cross_covariance", 0.0)
    dec = train_parade("cross_covariance", 10.0)
    assert base["rv"] > 0.3  # the setup is entangled: without ρ, e and e_s stay correlated
    assert dec["rv"] < 0.25 * base["rv"]
    assert dec["term_end"] < 0.25 * dec["term_start"]
    assert base["recall"] > 0.95 and dec["recall"] > 0.95  # the target metric is kept


@pytest.mark.xfail(
    strict=True,
    reason="measured: PARADE's reference (DiVA) estimator does not lower the linear dependence "
    "(RV) of e and e_s here; it squares coordinate products, so the attribute can stay in e "
    "(e.g. in coordinate signs). If this starts passing, the estimator's behaviour changed.",
)
def test_adversarial_decorrelation_falls_during_training():
    base = train_parade("cross_covariance", 0.0)
    dec = train_parade("adversarial", 10.0)
    assert dec["rv"] < 0.5 * base["rv"]
