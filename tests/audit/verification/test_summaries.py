"""Disparity summaries (METHODS.md §6) on hand-computed examples, and the Clopper–Pearson bound."""

from __future__ import annotations

import math

import pytest
from scipy.stats import beta, binom

from fairmetric.audit.verification import (
    clopper_pearson_upper,
    fdr,
    garbe,
    gini,
    inequity_rate,
    max_geomean,
    max_over_min,
)

FMR = [0.01, 0.02, 0.04]
FNMR = [0.1, 0.1, 0.4]


def test_max_over_min():
    assert max_over_min(FMR) == pytest.approx(0.04 / 0.01)  # = 4
    assert max_over_min([0.3, 0.3]) == 1.0
    assert max_over_min([0.2, None, 0.05]) == pytest.approx(4.0)  # NA groups are skipped


def test_max_geomean_without_zero_counts():
    # geometric mean of 0.01, 0.02, 0.04 = (8e-6)^(1/3) = 0.02; max / geomean = 0.04 / 0.02
    assert max_geomean(FMR, [1, 2, 4], [100, 100, 100]) == pytest.approx(2.0)


def test_max_geomean_replaces_a_zero_count_by_its_clopper_pearson_bound():
    # 0 errors of 100 pairs -> 1 - 0.05^(1/100) = 0.029513...
    x0 = 1 - 0.05 ** (1 / 100)
    assert x0 == pytest.approx(0.0295130, abs=1e-6)
    geo = (x0 * 0.02 * 0.08) ** (1 / 3)
    got = max_geomean([0.0, 0.02, 0.08], [0, 2, 8], [100, 100, 100])
    assert got == pytest.approx(0.08 / geo)
    # a zero-error group with a bound above every rate is itself the max
    y0 = 1 - 0.05 ** (1 / 10)  # 0.2589...
    got = max_geomean([0.0, 0.02], [0, 2], [10, 100])
    assert got == pytest.approx(y0 / math.sqrt(y0 * 0.02))


def test_gini_by_hand():
    # D = 3, mean = 0.07 / 3; sum_i sum_j |x_i - x_j| = 2 (0.01 + 0.03 + 0.02) = 0.12
    # G = (3 / 2) * 0.12 / (2 * 9 * 0.07 / 3) = 0.18 / 0.42 = 3 / 7
    assert gini(FMR) == pytest.approx(3 / 7)
    # FNMR: mean 0.2, sum |.| = 2 (0 + 0.3 + 0.3) = 1.2; G = 1.5 * 1.2 / (18 * 0.2) = 0.5
    assert gini(FNMR) == pytest.approx(0.5)
    # two groups [0, x]: G = 2 * 2x / (2 * 4 * x / 2) = 1 (the maximum)
    assert gini([0.0, 0.3]) == pytest.approx(1.0)
    assert gini([0.2, 0.2, 0.2]) == 0.0
    assert gini([0.01, None, 0.02, 0.04]) == pytest.approx(3 / 7)


def test_garbe_by_hand():
    assert garbe(FMR, FNMR) == pytest.approx(0.5 * 3 / 7 + 0.5 * 0.5)
    assert garbe(FMR, FNMR, alpha=0.25) == pytest.approx(0.25 * 3 / 7 + 0.75 * 0.5)
    assert garbe(FMR, FNMR, alpha=1.0) == pytest.approx(3 / 7)


def test_fdr_by_hand():
    # max |FMR_i - FMR_j| = 0.03, max |FNMR_i - FNMR_j| = 0.3
    assert fdr(FMR, FNMR) == pytest.approx(1 - (0.5 * 0.03 + 0.5 * 0.3))  # 0.835
    assert fdr(FMR, FNMR, alpha=0.9) == pytest.approx(1 - (0.9 * 0.03 + 0.1 * 0.3))
    assert fdr([0.1, 0.1], [0.2, 0.2]) == 1.0  # equal rates: fair


def test_inequity_rate_by_hand():
    # (0.04 / 0.01)^0.5 * (0.2 / 0.1)^0.5 = 2 * sqrt(2)
    assert inequity_rate(FMR, [0.1, 0.2, 0.15]) == pytest.approx(2 * math.sqrt(2))
    # alpha = 0.25: 4^0.25 * 2^0.75 = 2^0.5 * 2^0.75 = 2^1.25
    assert inequity_rate(FMR, [0.1, 0.2], alpha=0.25) == pytest.approx(2**1.25)


def test_na_cases():
    one = [0.02]
    for f in (max_over_min, gini):
        assert f(one) is None and f([]) is None and f([0.1, None]) is None
    assert max_geomean(one, [2], [100]) is None
    assert max_geomean([0.1, None], [1, 0], [10, 0]) is None
    for f in (garbe, fdr, inequity_rate):
        assert f(one, FNMR) is None and f(FMR, one) is None
    # a zero minimum: max/min and IR undefined; Gini of all zeros undefined (mean 0)
    assert max_over_min([0.0, 0.1]) is None
    assert inequity_rate([0.0, 0.1], FNMR) is None and inequity_rate(FMR, [0.1, 0.0]) is None
    assert gini([0.0, 0.0]) is None and garbe([0.0, 0.0], FNMR) is None
    # FDR and max/geomean stay defined with a zero rate
    assert fdr([0.0, 0.1], [0.0, 0.0]) == pytest.approx(1 - 0.5 * 0.1)
    assert max_geomean([0.0, 0.1], [0, 5], [50, 50]) is not None


@pytest.mark.parametrize(("x", "n"), [(0, 1), (0, 10), (0, 1000), (1, 10), (3, 50), (49, 50)])
def test_clopper_pearson_against_scipy(x, n):
    upper = clopper_pearson_upper(x, n)
    assert upper == pytest.approx(beta.ppf(0.95, x + 1, n - x), rel=1e-12)
    # definition: the p at which seeing at most x errors has probability 5%
    assert binom.cdf(x, n, upper) == pytest.approx(0.05, rel=1e-6)
    assert clopper_pearson_upper(x, n, level=0.99) == pytest.approx(
        beta.ppf(0.99, x + 1, n - x), rel=1e-12
    )


@pytest.mark.parametrize("n", [1, 2, 10, 100, 12345])
def test_clopper_pearson_zero_errors_closed_form(n):
    assert clopper_pearson_upper(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-10)


def test_clopper_pearson_edges():
    assert clopper_pearson_upper(5, 5) == 1.0
    with pytest.raises(ValueError, match="n must be positive"):
        clopper_pearson_upper(0, 0)
