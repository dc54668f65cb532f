"""Tests for fairmetric.sampling.hard_mining: top-B and loss-proportional selection."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from fairmetric.sampling.hard_mining import HardExampleSelector, select_hard


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ref_top(losses: list[float], k: int) -> list[int]:
    """The k highest losses, ties broken by position."""
    return sorted(range(len(losses)), key=lambda i: (-losses[i], i))[:k]


def within_sd(count: int, draws: int, p: float, sds: float = 4.0) -> bool:
    return abs(count - draws * p) <= sds * math.sqrt(draws * p * (1 - p)) + 1e-9


def draw_counts(losses, k, tau, draws, seed=0) -> Counter:
    g = gen(seed)
    counts: Counter = Counter()
    for _ in range(draws):
        chosen = select_hard(losses, k, selection="proportional", tau=tau, generator=g).tolist()
        assert len(set(chosen)) == k  # without replacement
        counts.update(chosen)
    return counts


# --------------------------------------------------------------------------------------------
# top
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 7, 19])
def test_top_matches_sorted_reference_with_ties(seed, k):
    losses = torch.randint(0, 4, (20,), generator=gen(seed)).float()  # many ties
    got = select_hard(losses, k, selection="top")
    assert got.dtype == torch.long
    assert got.tolist() == ref_top(losses.tolist(), k)


def test_top_explicit_ties_and_ignores_generator():
    losses = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 0.0])
    assert select_hard(losses, 4).tolist() == [1, 2, 4, 3]
    assert select_hard(losses, 4, generator=gen(1)).tolist() == [1, 2, 4, 3]


def test_top_accepts_losses_with_grad():
    losses = torch.tensor([0.1, 0.9, 0.5], requires_grad=True)
    assert select_hard(losses * 2, 2).tolist() == [1, 2]


# --------------------------------------------------------------------------------------------
# proportional
# --------------------------------------------------------------------------------------------


def test_proportional_single_draw_follows_loss_power():
    losses = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0, 0.0, 3.0])
    tau, draws = 1.5, 4000
    counts = draw_counts(losses, 1, tau, draws)
    p = [x**tau for x in losses.tolist()]
    total = sum(p)
    for i, pi in enumerate(p):
        if pi == 0:
            assert counts[i] == 0
        else:
            assert within_sd(counts[i], draws, pi / total), (i, counts[i], draws * pi / total)
    chi2 = sum(
        (counts[i] - draws * pi / total) ** 2 / (draws * pi / total) for i, pi in enumerate(p) if pi
    )
    assert chi2 < 23.5  # chi-square, 4 degrees of freedom, p = 1e-4


def test_proportional_two_draws_are_successive_without_replacement():
    """P(i chosen in 2 successive draws) = p_i + sum_{j != i} p_j p_i / (1 - p_j)."""
    losses = [1.0, 2.0, 3.0, 4.0, 0.0]
    draws = 3000
    counts = draw_counts(torch.tensor(losses), 2, 1.0, draws, seed=1)
    p = [x / sum(losses) for x in losses]
    for i, pi in enumerate(p):
        inclusion = pi + sum(pj * pi / (1 - pj) for j, pj in enumerate(p) if j != i)
        assert within_sd(counts[i], draws, inclusion), (i, counts[i], draws * inclusion)
    assert counts[4] == 0


def test_zero_losses_only_when_positives_exhausted():
    losses = torch.tensor([0.0, 2.0, 0.0, 1.0, 0.0, 3.0])
    positives, zeros = {1, 3, 5}, [0, 2, 4]
    g = gen(2)
    for _ in range(300):
        got = set(select_hard(losses, 2, selection="proportional", generator=g).tolist())
        assert got <= positives
        got = set(select_hard(losses, 3, selection="proportional", generator=g).tolist())
        assert got == positives
    draws = 1500
    counts = draw_counts(losses, 5, 1.0, draws, seed=3)
    for i in positives:
        assert counts[i] == draws
    for i in zeros:  # two of the three zero-loss samples, uniformly
        assert within_sd(counts[i], draws, 2 / 3)


def test_tau_zero_is_uniform_over_positive_losses():
    losses = torch.tensor([5.0, 1.0, 0.1, 0.0, 2.0])
    draws = 4000
    counts = draw_counts(losses, 1, 0.0, draws, seed=4)
    assert counts[3] == 0
    for i in (0, 1, 2, 4):
        assert within_sd(counts[i], draws, 0.25)


def test_large_tau_approaches_top():
    losses = torch.tensor([1.0, 6.0, 2.0, 5.0, 3.0, 4.0])
    g = gen(5)
    for _ in range(50):
        got = select_hard(losses, 2, selection="proportional", tau=200.0, generator=g)
        assert set(got.tolist()) == {1, 3}


def test_large_tau_is_independent_of_the_loss_scale():
    losses = torch.tensor([1.0, 6.0, 2.0, 5.0, 3.0, 4.0]) * 1e-3
    g = gen(5)
    for _ in range(20):
        got = select_hard(losses, 2, selection="proportional", tau=200.0, generator=g)
        assert set(got.tolist()) == {1, 3}


def test_proportional_reproducible_with_seeded_generator():
    losses = torch.rand(30, generator=gen(0)) + 0.01

    def sequence(seed):
        g = gen(seed)
        return [
            select_hard(losses, 5, selection="proportional", generator=g).tolist()
            for _ in range(20)
        ]

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, k, kwargs, match",
    [
        (5, 5, {}, "smaller than N"),
        (5, 6, {}, "smaller than N"),
        (5, 0, {}, "at least 1"),
        (5, -1, {}, "at least 1"),
        (5, 2, {"selection": "random"}, "selection must be one of"),
        (5, 2, {"selection": "proportional", "tau": -0.5}, "tau"),
        (5, 2, {"selection": "proportional", "tau": float("nan")}, "tau"),
        (5, 2, {"selection": "proportional", "tau": float("inf")}, "tau"),
    ],
)
def test_select_hard_argument_errors(n, k, kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_hard(torch.arange(n, dtype=torch.float32) + 1, k, **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("selection", ["top", "proportional"])
def test_select_hard_rejects_non_finite_losses(bad, selection):
    losses = torch.tensor([1.0, bad, 2.0, 0.5])
    with pytest.raises(ValueError, match="NaN or inf"):
        select_hard(losses, 2, selection=selection)


# --------------------------------------------------------------------------------------------
# HardExampleSelector
# --------------------------------------------------------------------------------------------


def selector_draws(sel: HardExampleSelector, losses: torch.Tensor, steps: int = 10) -> list:
    return [sel(losses).tolist() for _ in range(steps)]


def test_selector_set_epoch_reproducible_across_instances_and_differs_between_epochs():
    losses = torch.rand(24, generator=gen(1)) + 0.01
    a = HardExampleSelector(24, 6, selection="proportional", seed=3)
    b = HardExampleSelector(24, 6, selection="proportional", seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    epoch2 = selector_draws(a, losses)
    assert selector_draws(b, losses) == epoch2
    a.set_epoch(3)
    assert selector_draws(a, losses) != epoch2
    a.set_epoch(2)  # resuming an epoch draws the same again
    assert selector_draws(a, losses) == epoch2
    c = HardExampleSelector(24, 6, selection="proportional", seed=4)
    c.set_epoch(2)
    assert selector_draws(c, losses) != epoch2
    # a fresh instance starts at epoch 0
    fresh, zero = (HardExampleSelector(24, 6, selection="proportional", seed=3) for _ in range(2))
    zero.set_epoch(0)
    assert selector_draws(fresh, losses) == selector_draws(zero, losses)


def test_selector_top_and_draws_valid():
    losses = torch.rand(16, generator=gen(2))
    top = HardExampleSelector(16, 4)
    assert top(losses).tolist() == ref_top(losses.tolist(), 4)
    prop = HardExampleSelector(16, 4, selection="proportional", tau=2.0)
    for chosen in selector_draws(prop, losses):
        assert len(set(chosen)) == 4 and all(0 <= i < 16 for i in chosen)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((8, 8), {}),
        ((8, 9), {}),
        ((8, 0), {}),
        ((8, 4), {"selection": "hardest"}),
        ((8, 4), {"selection": "proportional", "tau": -1.0}),
    ],
)
def test_selector_validates_at_construction(args, kwargs):
    with pytest.raises(ValueError):
        HardExampleSelector(*args, **kwargs)
