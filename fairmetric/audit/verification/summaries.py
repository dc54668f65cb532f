"""Disparity summaries of per-group verification error rates (METHODS.md §6, docs/methods.md).

Over ``D`` groups with rates ``x_1..x_D`` (FMR or FNMR at one global threshold):

- ``max_over_min`` = max / min;
- ``max_geomean`` = max / geometric mean, where a zero count ``0`` of ``n`` pairs is replaced by
  its one-sided 95% Clopper–Pearson upper bound ``1 − 0.05^(1/n)`` (= ``Beta⁻¹(0.95; 1, n)``),
  so that a group with no observed error does not make the mean 0 (NIST FRVT Part 3);
- ``gini`` = ``(D / (D − 1)) · Σ_i Σ_j |x_i − x_j| / (2 D² · mean(x))`` (ISO/IEC 19795-10's FPD
  for FMR, FND for FNMR; Howard et al. 2022);
- ``garbe`` = ``α·gini(FMR) + (1 − α)·gini(FNMR)`` (Howard et al. 2022);
- ``fdr`` = ``1 − (α·max|FMR_i − FMR_j| + (1 − α)·max|FNMR_i − FNMR_j|)`` (de Freitas Pereira
  & Marcel 2021; 1 is fair);
- ``ir`` = ``(max FMR / min FMR)^α · (max FNMR / min FNMR)^(1 − α)`` (Howard et al. 2022;
  undefined when a minimum is 0).

Each returns ``None`` where it is undefined (fewer than two groups, a zero denominator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "PAIR_SUMMARIES",
    "RATE_SUMMARIES",
    "clopper_pearson_upper",
    "fdr",
    "garbe",
    "gini",
    "inequity_rate",
    "max_geomean",
    "max_over_min",
]

#: summaries of one rate (FMR or FNMR) across groups
RATE_SUMMARIES = ("max_over_min", "max_geomean", "gini")
#: summaries that combine FMR and FNMR at the same threshold
PAIR_SUMMARIES = ("garbe", "fdr", "ir")


def clopper_pearson_upper(errors: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound of a rate with ``errors`` of ``n`` (at ``level``)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if errors >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(level, errors + 1, n - errors))


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def max_over_min(rates: Sequence[float | None]) -> float | None:
    x = _finite(rates)
    if len(x) < 2 or min(x) <= 0:
        return None
    return max(x) / min(x)


def max_geomean(
    rates: Sequence[float | None], errors: Sequence[int], pairs: Sequence[int]
) -> float | None:
    """max / geometric mean, zero counts replaced by their 95% Clopper–Pearson upper bound."""
    x = []
    for r, e, n in zip(rates, errors, pairs):
        if r is None or n <= 0:
            continue
        x.append(clopper_pearson_upper(0, int(n)) if e == 0 else float(r))
    if len(x) < 2:
        return None
    geo = math.exp(sum(math.log(v) for v in x) / len(x))
    return max(x) / geo


def gini(rates: Sequence[float | None]) -> float | None:
    x = np.array(_finite(rates))
    d = len(x)
    if d < 2 or x.mean() <= 0:
        return None
    total = np.abs(x[:, None] - x[None, :]).sum()
    return float(d / (d - 1) * total / (2 * d * d * x.mean()))


def garbe(
    fmr: Sequence[float | None], fnmr: Sequence[float | None], alpha: float = 0.5
) -> float | None:
    a, b = gini(fmr), gini(fnmr)
    if a is None or b is None:
        return None
    return alpha * a + (1 - alpha) * b


def fdr(
    fmr: Sequence[float | None], fnmr: Sequence[float | None], alpha: float = 0.5
) -> float | None:
    a, b = _finite(fmr), _finite(fnmr)
    if len(a) < 2 or len(b) < 2:
        return None
    return 1 - (alpha * (max(a) - min(a)) + (1 - alpha) * (max(b) - min(b)))


def inequity_rate(
    fmr: Sequence[float | None], fnmr: Sequence[float | None], alpha: float = 0.5
) -> float | None:
    a, b = max_over_min(fmr), max_over_min(fnmr)
    if a is None or b is None:
        return None
    return a**alpha * b ** (1 - alpha)
