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
    RVDecorrelation,
    balanced_weights,
    build_decorrelation,
    cross_covariance_penalty,
    embedding_correlation,
    rv_penalty,
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
                "resultant": float(e.mean(0).norm()),  # 1: every e_i the same point (collapse)
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


def test_rv_decorrelation_falls_during_training_without_collapse():
    """The measured collapse: the cross-covariance penalty is also lowered by squeezing e into a
    cap (its mean resultant length rises towards 1); the scale-invariant rv penalty removes the
    dependence without it."""
    base = train_parade("cross_covariance", 0.0)
    cc = train_parade("cross_covariance", 10.0)
    rv = train_parade("rv", 1.0)
    assert cc["resultant"] > 0.6 and cc["resultant"] > base["resultant"] + 0.4  # collapse
    assert rv["rv"] < 0.25 * base["rv"]
    assert rv["resultant"] < base["resultant"] + 0.2  # no collapse
    assert rv["term_end"] < 0.05 < rv["term_start"]
    assert rv["recall"] > 0.95


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


# ---------------------------------------------------------------- rv penalty (scale-invariant)


def rv_loop(
    e: torch.Tensor, e_s: torch.Tensor, w: list[float] | None = None
) -> tuple[float, float]:
    """(weighted RV, chance level) with explicit sums over rows and coordinates."""
    # for uniform weights the chance level is sqrt(beta_x beta_y) / (N - 1), checked below
    n, d = e.shape
    ds = e_s.shape[1]
    w = [1.0 / n] * n if w is None else [wi / sum(w) for wi in w]
    x = [[float(e[i, k]) for k in range(d)] for i in range(n)]
    y = [[float(e_s[i, m]) for m in range(ds)] for i in range(n)]
    mx = [sum(w[i] * x[i][k] for i in range(n)) for k in range(d)]
    my = [sum(w[i] * y[i][m] for i in range(n)) for m in range(ds)]
    x = [[x[i][k] - mx[k] for k in range(d)] for i in range(n)]
    y = [[y[i][m] - my[m] for m in range(ds)] for i in range(n)]

    def moment(a, b, p, q):
        return [
            [sum(w[i] * a[i][k] * b[i][m] for i in range(n)) for m in range(q)] for k in range(p)
        ]

    sxy, sxx, syy = moment(x, y, d, ds), moment(x, x, d, d), moment(y, y, ds, ds)

    def sq(m):
        return sum(v * v for row in m for v in row)

    den = np.sqrt(sq(sxx) * sq(syy))
    # chance: E[numerator] when the rows of e_s are paired with e's at random, symmetrised
    ex = [
        [float(e[i, k]) - sum(float(e[j, k]) for j in range(n)) / n for k in range(d)]
        for i in range(n)
    ]
    ey = [
        [float(e_s[i, m]) - sum(float(e_s[j, m]) for j in range(n)) / n for m in range(ds)]
        for i in range(n)
    ]
    m_x = sum(v * v for row in ex for v in row) / n
    m_y = sum(v * v for row in ey for v in row) / n
    spread = sum(
        w[i] ** 2 * (m_y * sum(v * v for v in x[i]) + m_x * sum(v * v for v in y[i]))
        for i in range(n)
    )
    return sq(sxy) / den, n / (n - 1) * 0.5 * spread / den


def test_rv_penalty_matches_loop_reference_with_and_without_weights():
    e = rand(9, 4, seed=30)
    e_s = 0.6 * e[:, :3] + rand(9, 3, seed=31)
    rv, chance = rv_loop(e, e_s)
    assert float(rv_penalty(e, e_s)) == pytest.approx(rv - chance, rel=1e-10)
    sxx, syy = np.cov(e.numpy(), rowvar=False), np.cov(e_s.numpy(), rowvar=False)
    beta_x, beta_y = (np.trace(m) ** 2 / (m**2).sum() for m in (sxx, syy))
    assert chance == pytest.approx(np.sqrt(beta_x * beta_y) / 8, rel=1e-10)  # Josse et al.
    assert float(embedding_correlation(e, e_s)) == pytest.approx(rv, rel=1e-10)
    w = [1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 0.25, 1.0, 2.0]
    rv_w, chance_w = rv_loop(e, e_s, w)
    weights = torch.tensor(w, dtype=torch.float64)
    assert float(rv_penalty(e, e_s, weights)) == pytest.approx(rv_w - chance_w, rel=1e-10)
    assert float(embedding_correlation(e, e_s, weights)) == pytest.approx(rv_w, rel=1e-10)
    assert float(RVDecorrelation(4, 3)(e, e_s, weights)) == pytest.approx(rv_w - chance_w)


def cap(e: torch.Tensor, c: torch.Tensor, scale: float) -> torch.Tensor:
    """Unit embeddings squeezed into a cap around the direction ``c``: their spread times scale."""
    return F.normalize(c + scale * (e - c), dim=1)


def test_shrinking_into_a_cap_fools_cross_covariance_but_not_rv():
    e = F.normalize(rand(64, 16, seed=32), dim=1)
    e_s = F.normalize(e @ rand(16, 8, seed=33) + 0.3 * rand(64, 8, seed=34), dim=1)
    squeezed = cap(e, F.normalize(rand(16, seed=35), dim=0), 0.1)
    assert float(cross_covariance_penalty(squeezed, e_s)) < 0.02 * float(
        cross_covariance_penalty(e, e_s)
    )
    before, after = float(rv_penalty(e, e_s)), float(rv_penalty(squeezed, e_s))
    assert before > 0.3 and after == pytest.approx(before, rel=0.03)
    # an exact isotropic scaling around the mean, and any offset, leave it exactly unchanged
    mean = e.mean(0, keepdim=True)
    assert float(rv_penalty(mean + 0.1 * (e - mean) + 5.0, e_s)) == pytest.approx(before, rel=1e-10)
    assert float(rv_penalty(e, 0.01 * e_s - 2.0)) == pytest.approx(before, rel=1e-10)


def test_rv_penalty_is_zero_in_expectation_for_independent_rows():
    """Averaged over every pairing of the rows (the permutation null), the chance-corrected RV
    is exactly 0: the correction is the exact expectation of the plain RV."""
    e, e_s = rand(6, 3, seed=36), rand(6, 2, seed=37)
    values = [float(rv_penalty(e, e_s[list(p)])) for p in itertools.permutations(range(6))]
    assert np.mean(values) == pytest.approx(0.0, abs=1e-12)
    assert (
        np.mean(
            [
                float(embedding_correlation(e, e_s[list(p)]))
                for p in itertools.permutations(range(6))
            ]
        )
        > 0.1
    )
    # independent random batches: the average over many is 0 within its standard error
    vals = [float(rv_penalty(rand(64, 16, seed=s), rand(64, 8, seed=1000 + s))) for s in range(200)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))


def test_balanced_rv_penalty_is_zero_on_average_for_independent_rows():
    """3 minority rows in 64 under balanced weights: the plain weighted RV of independent unit
    rows is far from 0 (about 0.8); the corrected penalty averages 0."""
    w = balanced_weights(torch.tensor([1] * 3 + [0] * 61), 2, dtype=torch.float64)
    plain, vals = [], []
    for s in range(100):
        e = F.normalize(rand(64, 32, seed=2000 + s), dim=1)
        e_s = F.normalize(rand(64, 16, seed=3000 + s), dim=1)
        plain.append(float(embedding_correlation(e, e_s, w)))
        vals.append(float(rv_penalty(e, e_s, w)))
    assert np.mean(plain) > 0.5
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals)) + 0.01


def test_rv_penalty_is_maximal_for_a_rotation_and_rescaling():
    x = rand(50, 4, seed=38)
    q, _ = torch.linalg.qr(rand(4, 4, seed=39))
    y = -3.0 * x @ q + 1.5
    rv, chance = rv_loop(x, y)
    assert rv == pytest.approx(1.0) and float(embedding_correlation(x, y)) == pytest.approx(1.0)
    assert float(rv_penalty(x, y)) == pytest.approx(1.0 - chance)  # its max at this batch
    assert float(rv_penalty(rand(50, 4, seed=40), y)) < 0.1
    # a constant batch: 0, not NaN
    assert float(rv_penalty(x, torch.ones(50, 2, dtype=torch.float64))) == 0.0
    const = F.normalize(torch.full((50, 8), 0.3), dim=1) + 0.0 * x.float()[:, :1]
    assert float(rv_penalty(x.float(), const)) == 0.0
    # a real but tiny spread is no constant: float32 caps of spread 0.01 and 1e-4 agree
    small, c = F.normalize(x.float(), dim=1), F.normalize(torch.ones(4), dim=0)
    assert float(rv_penalty(cap(small, c, 1e-4), y.float())) == pytest.approx(
        float(rv_penalty(cap(small, c, 1e-2), y.float())), abs=0.01
    )


def test_rv_penalty_gradcheck():
    """The RV part is checked numerically; the chance level is detached, so the penalty's
    gradient is exactly the RV coefficient's."""
    e = rand(7, 3, seed=41).requires_grad_(True)
    e_s = (0.5 * rand(7, 3, seed=41)[:, :2] + rand(7, 2, seed=42)).requires_grad_(True)
    w = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0, 3.0, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(embedding_correlation, (e, e_s))
    assert torch.autograd.gradcheck(lambda a, b: embedding_correlation(a, b, w), (e, e_s))
    assert torch.autograd.gradcheck(lambda a, b: cross_covariance_penalty(a, b, w), (e, e_s))
    for weights in (None, w):
        got = torch.autograd.grad(rv_penalty(e, e_s, weights), (e, e_s))
        ref = torch.autograd.grad(embedding_correlation(e, e_s, weights), (e, e_s))
        for g, r in zip(got, ref):
            assert_close(g, r)


# ---------------------------------------------------------------- group-balanced statistics


def test_balanced_weights_give_every_value_equal_weight():
    codes = torch.tensor([0, 0, 0, 0, 1, 2, 2, 0])
    w = balanced_weights(codes, 4, dtype=torch.float64)  # value 3 absent: G = 3 values present
    assert float(w.sum()) == pytest.approx(1.0)
    for g in (0, 1, 2):
        assert float(w[codes == g].sum()) == pytest.approx(1 / 3)
    assert_close(balanced_weights(codes, dtype=torch.float64), w)  # num_values read from codes
    # one value in the batch: the documented fallback is uniform weights, never NaN
    assert_close(balanced_weights(torch.zeros(5, dtype=torch.long)), torch.full((5,), 0.2))


def cross_cov_weighted_loop(e: torch.Tensor, e_s: torch.Tensor, w: list[float]) -> float:
    n, d = e.shape
    ds = e_s.shape[1]
    w = [wi / sum(w) for wi in w]
    mx = [sum(w[i] * float(e[i, k]) for i in range(n)) for k in range(d)]
    my = [sum(w[i] * float(e_s[i, m]) for i in range(n)) for m in range(ds)]
    total = 0.0
    for k in range(d):
        for m in range(ds):
            c = sum(w[i] * (float(e[i, k]) - mx[k]) * (float(e_s[i, m]) - my[m]) for i in range(n))
            total += c * c
    return total


def test_weighted_estimators_match_loop_references():
    e, e_s = rand(8, 3, seed=43), rand(8, 2, seed=44) + 0.4 * rand(8, 3, seed=43)[:, :2]
    codes = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    w = balanced_weights(codes, 2, dtype=torch.float64)
    assert float(cross_covariance_penalty(e, e_s, w)) == pytest.approx(
        cross_cov_weighted_loop(e, e_s, w.tolist()), rel=1e-12
    )
    torch.manual_seed(3)
    dec = AdversarialDecorrelation(3, 2, hidden=5).double()
    total = 0.0
    for i in range(8):
        ei = e[i].numpy() / np.linalg.norm(e[i].numpy())
        si = e_s[i].numpy() / np.linalg.norm(e_s[i].numpy())
        p = xi_by_hand(dec, si)
        p = p / np.linalg.norm(p)
        total += float(w[i]) * sum((ei[k] * p[k]) ** 2 for k in range(3)) / 3
    assert dec(e, e_s, w).item() == pytest.approx(-total, rel=1e-12)


def duplicate_minority(e, e_s, codes, k):
    rows = torch.cat([torch.arange(len(codes))] + [torch.nonzero(codes == 1)[:, 0]] * (k - 1))
    return e[rows], e_s[rows], codes[rows]


def test_balanced_statistics_ignore_duplicated_minority_rows():
    """Duplicating the minority's rows k times changes the unweighted statistics but not the
    balanced ones (each group's weighted mean is the same)."""
    codes = torch.tensor([0] * 12 + [1] * 3)
    e = rand(15, 4, seed=45) + 2.0 * codes[:, None]
    e_s = 0.5 * e[:, :3] + rand(15, 3, seed=46)
    d_e, d_s, d_codes = duplicate_minority(e, e_s, codes, 4)
    w, d_w = (
        balanced_weights(codes, 2, dtype=torch.float64),
        balanced_weights(d_codes, 2, dtype=torch.float64),
    )
    torch.manual_seed(4)
    adv = AdversarialDecorrelation(4, 3, hidden=8).double()
    with torch.no_grad():
        for fn in (cross_covariance_penalty, embedding_correlation, adv):
            assert float(fn(d_e, d_s, d_w)) == pytest.approx(float(fn(e, e_s, w)), rel=1e-10)
            assert float(fn(d_e, d_s)) != pytest.approx(float(fn(e, e_s)), rel=1e-3)
    # the rv penalty's RV part is unchanged; its chance level follows the number of rows
    # (duplicates look like more samples), which is the one part that moves
    rv, chance = rv_loop(e, e_s, w.tolist())
    d_rv, d_chance = rv_loop(d_e, d_s, d_w.tolist())
    assert d_rv == pytest.approx(rv, rel=1e-10)
    assert float(rv_penalty(d_e, d_s, d_w)) == pytest.approx(rv - d_chance, rel=1e-10)


def test_weights_are_validated():
    e, e_s = rand(4, 3, seed=47), rand(4, 2, seed=48)
    with pytest.raises(ValueError, match=r"weights must be a tensor of shape \(4,\)"):
        rv_penalty(e, e_s, torch.ones(3))
    with pytest.raises(ValueError, match="finite and >= 0"):
        rv_penalty(e, e_s, torch.tensor([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="not all be 0"):
        cross_covariance_penalty(e, e_s, torch.zeros(4))
