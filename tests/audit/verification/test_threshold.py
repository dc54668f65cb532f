"""`threshold_at_fmr` against a brute-force search over every candidate threshold."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit.verification import threshold_at_fmr


def _fmr(scores: np.ndarray, tau: float) -> float:
    """Realised FMR: share of impostor scores that match (s >= tau), by a plain loop."""
    return sum(1 for s in scores if s >= tau) / len(scores)


def _candidates(scores: np.ndarray) -> list[float]:
    """Every score and the next float above every score."""
    out = {float(s) for s in scores} | {float(np.nextafter(s, np.inf)) for s in scores}
    return sorted(out)


def _kth_largest(scores: np.ndarray, target: float) -> float:
    """The k-th largest score for the largest k with k / n <= target (+inf for k = 0)."""
    n = len(scores)
    k = max(c for c in range(n + 1) if c / n <= target)
    return float("inf") if k == 0 else sorted(scores.tolist(), reverse=True)[k - 1]


def _reference(scores: np.ndarray, target: float) -> float:
    """The documented convention (docs/verification.md): the k-th largest score if at most k
    scores reach it, else the next float above it, i.e. the smallest candidate at or above the
    k-th largest score whose realised FMR is <= target."""
    floor = _kth_largest(scores, target)
    ok = [c for c in _candidates(scores) if _fmr(scores, c) <= target and c >= floor]
    if not ok:  # k = 0: only the next float above the maximum
        return float(np.nextafter(max(scores), np.inf))
    return min(ok)


def _best_fmr(scores: np.ndarray, target: float) -> float:
    """The largest realised FMR <= target over every candidate threshold."""
    return max(_fmr(scores, c) for c in _candidates(scores) if _fmr(scores, c) <= target)


CASES = [
    (np.array([0.1, 0.5, 0.3, 0.9, 0.7]), 0.2),  # k = 1, no ties
    (np.array([0.1, 0.5, 0.3, 0.9, 0.7]), 0.4),  # k = 2
    (np.array([0.1, 0.5, 0.3, 0.9, 0.7]), 0.1),  # k = 0: above the maximum
    (np.array([0.2, 0.8, 0.8, 0.8, 0.1, 0.3]), 0.34),  # k = 2 inside a triple tie at the top
    (np.array([0.2, 0.8, 0.8, 0.5, 0.5, 0.1]), 0.5),  # k = 3 splits a tie at 0.5
    (np.array([0.4] * 7), 0.5),  # all equal: nothing may match
    (np.array([0.4] * 7), 0.99),
    (np.array([-1.0, 1.0]), 0.5),
    (np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]), 0.3),  # k·n exact
    (np.linspace(-1, 1, 100), 0.29),  # 0.29·100 = 28.999999999999996 in float
]


@pytest.mark.parametrize(("scores", "target"), CASES)
def test_matches_brute_force(scores, target):
    tau = threshold_at_fmr(scores, target)
    assert tau == _reference(scores, target)
    realised = _fmr(scores, tau)
    assert realised <= target
    assert realised == _best_fmr(scores, target)  # no candidate reaches a higher FMR <= target


def test_random_sets_with_ties_match_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        scores = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # rounding makes ties
        target = float(rng.choice([0.01, 0.05, 0.1, 0.25, 0.5, 0.9]))
        tau = threshold_at_fmr(scores, target)
        assert tau == _reference(scores, target), (scores, target)
        assert _fmr(scores, tau) == _best_fmr(scores, target)


def test_k_zero_is_next_float_above_max():
    s = np.array([0.3, 0.2, 0.9])
    tau = threshold_at_fmr(s, 1e-3)
    assert tau == np.nextafter(0.9, np.inf) and _fmr(s, tau) == 0


def test_ties_all_fall_below():
    # k = 1 lands on a pair of tied top scores: both must fall below tau (FMR 0, not 2/4)
    s = np.array([0.9, 0.9, 0.1, 0.2])
    tau = threshold_at_fmr(s, 0.25)
    assert tau == np.nextafter(0.9, np.inf) and _fmr(s, tau) == 0


def test_all_equal_scores():
    s = np.full(10, 0.5)
    for target in (1e-3, 0.5, 0.95):
        tau = threshold_at_fmr(s, target)
        assert tau == np.nextafter(0.5, np.inf) and _fmr(s, tau) == 0


def test_untied_kth_score_is_the_threshold():
    # the documented convention: tau sits on the k-th largest score when it is untied (not on
    # the next float above the (k+1)-th largest, which would match the same impostors)
    assert threshold_at_fmr(np.array([0.0, 1.0]), 0.5) == 1.0


def test_order_and_dtype_do_not_matter():
    s = np.random.default_rng(0).normal(size=50)
    t = threshold_at_fmr(s, 0.1)
    assert threshold_at_fmr(s[::-1].copy(), 0.1) == t
    assert threshold_at_fmr(list(s), 0.1) == t


@pytest.mark.parametrize(
    ("scores", "target", "message"),
    [
        (np.array([]), 0.1, "needs at least one impostor pair"),
        (np.array([0.1, np.nan]), 0.1, "must be finite, got nan at index 1"),
        (np.array([0.1, np.inf]), 0.1, "must be finite, got inf at index 1"),
        (np.array([0.1, 0.2]), 0, r"\(0, 1\)"),
        (np.array([0.1, 0.2]), 1, r"\(0, 1\)"),
        (np.array([0.1, 0.2]), -1, r"\(0, 1\)"),
        (np.array([0.1, 0.2]), 1.5, r"\(0, 1\)"),
        (np.array([0.1, 0.2]), True, "must be a number"),
        (np.array([0.1, 0.2]), "x", "must be a number"),
        (np.array([0.1, 0.2]), None, "must be a number"),
        (np.array([0.1, 0.2]), float("nan"), r"\(0, 1\)"),
    ],
)
def test_bad_input(scores, target, message):
    with pytest.raises(ValueError, match=message):
        threshold_at_fmr(scores, target)


@pytest.mark.parametrize(
    ("n", "target"),
    [(10, 1 - 1e-10), (10, 1 - 1e-11), (1000, 0.999999999999), (10, 0.0999999999999)],
)
def test_target_just_below_a_multiple_of_one_over_n(n, target):
    # target·n is within 1e-9 below an integer: the realised FMR must still not exceed it
    # (it was 1.0 > 0.9999999999 and 0.1 > 0.0999999999999 before the fix)
    s = np.arange(float(n))
    tau = threshold_at_fmr(s, target)
    assert _fmr(s, tau) <= target
    assert tau == _reference(s, target)
    assert _fmr(s, tau) == _best_fmr(s, target)


@pytest.mark.parametrize(("n", "target"), [(100, 0.29), (3, 1 / 3), (7, 3 / 7), (100, 0.07)])
def test_target_exactly_a_multiple_of_one_over_n_is_reached(n, target):
    # k / n == target in floating point (although target·n rounds below the integer)
    s = np.arange(float(n))
    assert _fmr(s, threshold_at_fmr(s, target)) == target
