"""ECE, KS and Brier per group against loop references; the global beta calibrator."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit.posthoc import (
    brier_score,
    calibration_by_group,
    ece,
    ks_calibration,
    probability_from_scores,
)


def ece_loop(p, y, bins):
    total = 0.0
    for b in range(bins):
        members = [k for k in range(len(p)) if min(int(p[k] * bins), bins - 1) == b]
        if members:
            mp = sum(p[k] for k in members) / len(members)
            my = sum(y[k] for k in members) / len(members)
            total += len(members) / len(p) * abs(mp - my)
    return total


def ks_loop(p, y):
    order = sorted(range(len(p)), key=lambda k: p[k])
    best, cp, cy = 0.0, 0.0, 0.0
    for pos, k in enumerate(order):
        cp += p[k] / len(p)
        cy += y[k] / len(p)
        last_of_tie = pos == len(order) - 1 or p[order[pos + 1]] != p[k]
        if last_of_tie:
            best = max(best, abs(cp - cy))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_loops(seed):
    rng = np.random.default_rng(seed)
    n = 200
    p = np.round(rng.uniform(size=n), 2)  # ties
    p[:3] = [0.0, 1.0, 1.0]  # edges of the first and last bin
    y = rng.uniform(size=n) < p
    groups = rng.integers(-1, 3, size=n)  # -1: cross-group pairs
    report = calibration_by_group(p, y, groups, ["a", "b", "c"], bins=15)
    for code, name in enumerate("abc"):
        m = groups == code
        got = report.by_group[name]
        assert got["n"] == m.sum()
        assert got["ece"] == pytest.approx(ece_loop(p[m], y[m].astype(float), 15), abs=1e-12)
        assert got["ks"] == pytest.approx(ks_loop(p[m], y[m].astype(float)), abs=1e-12)
        assert got["brier"] == pytest.approx(np.mean([(a - b) ** 2 for a, b in zip(p[m], y[m])]))
    assert report.overall["n"] == n
    assert report.overall["ece"] == pytest.approx(ece_loop(p, y.astype(float), 15), abs=1e-12)
    values = [report.by_group[g]["ks"] for g in "abc"]
    assert report.difference("ks") == pytest.approx(max(values) - min(values))


def test_ks_ignores_order_within_ties():
    p = np.array([0.5, 0.5, 0.5, 0.5])
    assert ks_calibration(p, np.array([1, 1, 0, 0])) == ks_calibration(p, np.array([0, 0, 1, 1]))
    assert ks_calibration(p, np.array([1, 1, 0, 0])) == 0.0


def test_perfect_and_worst():
    y = np.array([0, 1, 0, 1])
    assert ece(y.astype(float), y) == 0 and brier_score(y.astype(float), y) == 0
    assert brier_score(1.0 - y, y) == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        ece(np.array([0.1, 0.2]), np.array([1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ece(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="bins"):
        ece(np.array([0.5]), np.array([1]), bins=0)
    with pytest.raises(ValueError, match="names"):
        calibration_by_group(np.array([0.5]), np.array([1]), np.array([2]), ["a"])


def test_probability_from_scores_is_monotone_and_in_range(tiny):
    to_prob = probability_from_scores(tiny.scores * 7 - 3, tiny.genuine)  # any score scale
    p = to_prob(np.linspace(-20, 20, 101))
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) >= 0)
    calibrated = to_prob(tiny.scores * 7 - 3)
    # a fitted calibrator beats the constant base rate on its own split
    base = np.full_like(calibrated, tiny.genuine.mean())
    assert brier_score(calibrated, tiny.genuine) < brier_score(base, tiny.genuine)
