"""Aggregation over seeds and the paired change against the same-seed baseline, checked against
slow references: explicit loops, tabulated t quantiles and scipy's paired t-test."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from fairmetric.bench.stats import COLUMNS, aggregate, paired_changes, paired_interval


def _reference_interval(d: list[float], level: float) -> tuple[float, float, float]:
    """Mean and t interval of paired differences, with explicit loops."""
    n = len(d)
    total = 0.0
    for x in d:
        total += x
    mean = total / n
    squares = 0.0
    for x in d:
        squares += (x - mean) ** 2
    sd = math.sqrt(squares / (n - 1))
    q = sps.t.ppf((1 + level) / 2, n - 1)
    return mean, mean - q * sd / math.sqrt(n), mean + q * sd / math.sqrt(n)


def _cell(method: str, seed: int, value: float | None, status: str = "ok") -> dict:
    return {"method": method, "seed": seed, "status": status, **dict.fromkeys(COLUMNS, value)}


# -- the interval ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("diffs", "quantile"),
    [([0.0, 2.0], 12.706204736), ([1.0, 2.0, 3.0], 4.302652730), ([1, 2, 3, 4, 5], 2.776445105)],
)
def test_interval_uses_the_tabulated_t_quantile(diffs, quantile):
    got = paired_interval(diffs)
    mean = statistics.mean(diffs)
    half = quantile * statistics.stdev(diffs) / math.sqrt(len(diffs))
    assert got["mean"] == pytest.approx(mean, abs=1e-12)
    assert got["low"] == pytest.approx(mean - half, rel=1e-8)
    assert got["high"] == pytest.approx(mean + half, rel=1e-8)
    assert got["n"] == len(diffs) and got["differences"] == [float(x) for x in diffs]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1, 1), st.floats(-1, 1)).filter(lambda p: p[0] != p[1]),
        min_size=2,
        max_size=8,
    ),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_interval_matches_loops_and_scipy_paired_t_test(pairs, level):
    x = [p[0] for p in pairs]
    y = [p[1] for p in pairs]
    d = [a - b for a, b in pairs]
    got = paired_interval(d, level)
    mean, low, high = _reference_interval(d, level)
    assert got["mean"] == pytest.approx(mean, abs=1e-12)
    assert got["low"] == pytest.approx(low, abs=1e-9)
    assert got["high"] == pytest.approx(high, abs=1e-9)
    if np.std(d) > 1e-6:  # scipy's t-test of the same pairs
        test = sps.ttest_rel(x, y)
        ci = test.confidence_interval(level)
        assert (got["low"], got["high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
        if abs(test.pvalue - (1 - level)) > 1e-9:
            assert got["excludes_zero"] is bool(test.pvalue < 1 - level)


def test_interval_excludes_zero_only_when_it_does():
    assert paired_interval([0.10, 0.11, 0.12])["excludes_zero"] is True
    assert paired_interval([-0.10, -0.11, -0.12])["excludes_zero"] is True
    assert paired_interval([-0.1, 0.05, 0.1])["excludes_zero"] is False
    same = paired_interval([0.2, 0.2])  # no spread: a zero-width interval
    assert (same["low"], same["high"], same["excludes_zero"]) == (0.2, 0.2, True)


def test_interval_of_one_or_no_pair():
    one = paired_interval([0.3])
    assert (one["mean"], one["low"], one["high"], one["excludes_zero"]) == (0.3, None, None, None)
    none = paired_interval([])
    assert (none["mean"], none["n"], none["excludes_zero"]) == (None, 0, None)


@pytest.mark.parametrize("level", [0.0, 1.0, 95])
def test_bad_level(level):
    with pytest.raises(ValueError, match="level"):
        paired_interval([1.0, 2.0], level)


# -- pairing by seed ------------------------------------------------------------------------------


def test_changes_pair_cells_by_seed():
    base = [_cell("baseline", 0, 0.5), _cell("baseline", 1, 0.6), _cell("baseline", 2, 0.7)]
    cells = [
        *base,
        _cell("a", 2, 0.9),  # listed out of seed order
        _cell("a", 0, 0.4),
        _cell("a", 1, 0.8),
        _cell("b", 0, 0.1),
        _cell("b", 1, None, status="skipped"),  # only seeds where both ran are paired
        _cell("b", 2, 0.2),
        _cell("c", 0, None, status="skipped"),
    ]
    rows = paired_changes(cells, base)
    assert list(rows) == ["a", "b", "c"]  # not the baseline against itself
    a = rows["a"]
    assert a["status"] == "ok" and a["seeds"] == [2, 0, 1]
    want = _reference_interval([0.9 - 0.7, 0.4 - 0.5, 0.8 - 0.6], 0.95)
    for col in COLUMNS:
        assert (a[col]["mean"], a[col]["low"], a[col]["high"]) == pytest.approx(want, abs=1e-12)
    b = rows["b"]
    assert b["seeds"] == [0, 2]
    assert b["recall@1"]["differences"] == pytest.approx([0.1 - 0.5, 0.2 - 0.7])
    assert rows["c"]["status"] == "skipped" and rows["c"]["recall@1"]["n"] == 0


def test_changes_skip_missing_values_and_absent_baseline_seeds():
    base = [_cell("baseline", 0, 0.5), {**_cell("baseline", 1, 0.6), "leakage": None}]
    cells = [_cell("a", 0, 0.7), _cell("a", 1, 0.9), _cell("a", 5, 0.1)]  # seed 5: no baseline
    row = paired_changes(cells, base)["a"]
    assert row["seeds"] == [0, 1]
    assert row["recall@1"]["differences"] == pytest.approx([0.2, 0.3])
    assert row["leakage"]["differences"] == pytest.approx([0.2])
    assert row["leakage"]["low"] is None


def test_changes_of_a_sweep_against_the_method_baseline():
    base = [_cell("baseline", 0, 0.5), _cell("baseline", 1, 0.5)]
    sweep = [
        {**_cell("parade", s, 0.5 + r), "rho_label": f"rho={r:g}"} for r in (0, 1) for s in (0, 1)
    ]
    rows = paired_changes(sweep, base, key="rho_label")
    assert list(rows) == ["rho=0", "rho=1"]
    assert rows["rho=1"]["recall@1"]["mean"] == pytest.approx(1.0)
    assert rows["rho=0"]["recall@1"]["excludes_zero"] is False


# -- mean and spread ------------------------------------------------------------------------------


def test_aggregate_is_mean_and_sample_std():
    cells = [_cell("a", 0, 0.1), _cell("a", 1, 0.4), _cell("b", 0, 0.3)]
    rows = aggregate(cells)
    assert rows["a"]["recall@1"] == {
        "mean": pytest.approx(0.25),
        "std": pytest.approx(statistics.stdev([0.1, 0.4])),
        "n": 2,
        "values": [0.1, 0.4],
    }
    assert rows["b"]["recall@1"]["std"] == 0.0


def test_relative_change_is_the_change_over_the_baseline_mean():
    base = [_cell("baseline", 0, 0.4), _cell("baseline", 1, 0.6)]
    cells = [_cell("a", 0, 0.1), _cell("a", 1, 0.5)]
    col = paired_changes(cells, base)["a"]["recall@1_gap"]
    mean_base = statistics.mean([0.4, 0.6])
    assert col["baseline_mean"] == pytest.approx(mean_base)
    assert col["relative"] == pytest.approx(col["mean"] / mean_base)
    assert col["relative_low"] == pytest.approx(col["low"] / mean_base)
    assert col["relative_high"] == pytest.approx(col["high"] / mean_base)
    zero = paired_changes(cells, [_cell("baseline", 0, 0.0), _cell("baseline", 1, 0.0)])
    assert zero["a"]["recall@1_gap"]["relative"] is None  # no share of a zero baseline
