"""threshold_at_fmr: the documented rule, a brute force over candidate thresholds, ties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairmetric.audit.posthoc import threshold_at_fmr

from .reference import threshold_loop


def _fmr(s: np.ndarray, tau: float) -> float:
    return float(np.mean(s >= tau))


@pytest.mark.parametrize(
    ("scores", "target", "expected"),
    [
        ([1, 2, 3, 4, 5], 0.2, 5.0),  # k = 1
        ([1, 2, 3, 4, 5], 0.4, 4.0),  # k = 2
        ([1, 2, 3, 4, 5], 0.1, np.nextafter(5.0, np.inf)),  # k = 0: nothing matches
        ([1, 2, 3, 3, 3], 0.4, np.nextafter(3.0, np.inf)),  # ties at v would let 3 > 2 through
        ([1, 2, 3, 3, 3], 0.6, 3.0),  # k = 3: exactly the tied three
        ([3, 3, 3, 3], 0.5, np.nextafter(3.0, np.inf)),  # all tied
    ],
)
def test_hand_examples(scores, target, expected):
    assert threshold_at_fmr(np.array(scores, dtype=float), target) == expected


def test_floor_is_robust_to_rounding():
    # 0.29 * 100 == 28.999999999999996 in floating point: k must still be 29
    s = np.arange(100, dtype=float)
    tau = threshold_at_fmr(s, 0.29)
    assert tau == 71.0 and np.sum(s >= tau) == 29


@pytest.mark.parametrize("seed", range(12))
def test_brute_force_over_candidates(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # few distinct values: many ties
    s = rng.integers(0, int(rng.integers(1, 8)) + 1, size=n).astype(float) / 4
    for target in (0.001, 0.05, 0.1, 0.25, 0.5, 0.9, 1 / 3):
        tau = threshold_at_fmr(s, target)
        assert tau == threshold_loop(s, target)
        assert _fmr(s, tau) <= target + 1e-12
        # brute force: every candidate threshold (each score and the float just above it)
        candidates = [c for v in np.unique(s) for c in (v, np.nextafter(v, np.inf))]
        best = max(
            (np.sum(s >= c) for c in candidates if np.sum(s >= c) <= math.floor(target * n + 1e-9)),
            default=0,
        )
        assert np.sum(s >= tau) == best  # as many matches as the target allows, no more
        # and no lower threshold keeps the FMR within the target
        lower = [c for c in candidates if c < tau and np.sum(s >= c) > np.sum(s >= tau)]
        assert all(_fmr(s, c) > target for c in lower)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.1", True])
def test_target_out_of_range(target):
    with pytest.raises(ValueError, match="target_fmr"):
        threshold_at_fmr(np.array([0.1, 0.2]), target)


def test_bad_scores():
    with pytest.raises(ValueError, match="empty"):
        threshold_at_fmr(np.array([]), 0.1)
    with pytest.raises(ValueError, match="finite.*index 1"):
        threshold_at_fmr(np.array([0.1, np.nan]), 0.1)
    with pytest.raises(ValueError, match="1-D"):
        threshold_at_fmr(np.zeros((2, 2)), 0.1)
