"""The verification report entries: :class:`VerificationMetric` (a group metric with disparity
summaries) and the builder that collects one rate's group estimates, bootstrap replicates and
error counts, then its summaries (docs/verification.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairmetric.audit.verification.bootstrap import interval as _interval
from fairmetric.audit.verification.summaries import (
    PAIR_SUMMARIES,
    RATE_SUMMARIES,
    fdr,
    garbe,
    gini,
    inequity_rate,
    max_geomean,
    max_over_min,
)
from fairmetric.report.frame import Estimate, GroupMetric

__all__ = ["RateBuilder", "VerificationMetric"]


@dataclass
class VerificationMetric(GroupMetric):
    """A :class:`GroupMetric` with disparity summaries across groups (``--fail-if`` can name
    them: ``fmr@1e-3.max_geomean>2``).

    Attributes:
        summaries: ``{summary: {attribute: Estimate}}``; ``Estimate.count`` is the number of
            groups compared.
    """

    summaries: dict[str, dict[str, Estimate]] = field(default_factory=dict)

    def summary(self, name: str, attribute: str | None = None) -> float | None:
        a = self._attribute(attribute)
        if name not in self.summaries:
            raise ValueError(
                f"{self.name} has no summary {name!r}; it has: {', '.join(self.summaries)}"
            )
        return self.summaries[name][a].value

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["summaries"] = {
            s: {a: e.to_dict() for a, e in per.items()} for s, per in self.summaries.items()
        }
        return d


class RateBuilder:
    """Collects one rate's group estimates, replicates and error counts, then its summaries."""

    def __init__(self, name: str, higher_is_better: bool, level: float) -> None:
        self.name = name
        self.higher_is_better = higher_is_better
        self.level = level
        self.overall = Estimate(None, 0)
        self.overall_reps = np.zeros(0)
        self.by_group: dict[str, dict[str, Estimate]] = {}
        self.reps: dict[str, dict[str, np.ndarray]] = {}
        self.errors: dict[str, dict[str, tuple[int, int]]] = {}
        self.summaries: dict[str, dict[str, Estimate]] = {}

    def add(
        self,
        attribute: str,
        group: str,
        value: float | None,
        count: int,
        reps: np.ndarray,
        *,
        errors: int,
        pairs: int,
        na: str,
    ) -> None:
        if value is None:
            est = Estimate(None, count, na_reason=na)
        else:
            lo, hi = _interval(reps, self.level) if len(reps) else (None, None)
            est = Estimate(value, count, lo, hi)
        self.by_group.setdefault(attribute, {})[group] = est
        self.reps.setdefault(attribute, {})[group] = reps
        self.errors.setdefault(attribute, {})[group] = (errors, pairs)

    def _compared(self, attribute: str, min_group_size: int) -> list[str]:
        return [
            g
            for g, e in self.by_group[attribute].items()
            if e.value is not None and e.count >= min_group_size
        ]

    def summarise(
        self,
        attribute: str,
        other: RateBuilder,
        k: int,
        alpha: float,
        min_group_size: int,
        bootstrap: int,
    ) -> None:
        """Disparity summaries of this rate (FMR) and ``other`` (FNMR) over compared groups."""
        for b in (self, other):
            groups = b._compared(attribute, min_group_size)
            vals = [b.by_group[attribute][g].value for g in groups]
            errs = [b.errors[attribute][g] for g in groups]
            point = {
                "max_over_min": max_over_min(vals),
                "max_geomean": max_geomean(vals, [e for e, _ in errs], [n for _, n in errs]),
                "gini": gini(vals),
            }
            reps = {s: np.full(bootstrap, np.nan) for s in RATE_SUMMARIES}
            for r in range(bootstrap):
                rv = [float(b.reps[attribute][g][r]) for g in groups]
                rv_ok = [v if np.isfinite(v) else None for v in rv]
                for s, fn in (("max_over_min", max_over_min), ("gini", gini)):
                    v = fn(rv_ok)
                    reps[s][r] = np.nan if v is None else v
                # a replicate's zero rate counts as zero errors of the group's pairs
                v = max_geomean(
                    rv_ok,
                    [0 if x == 0 else 1 for x in rv],
                    [n for _, n in errs],
                )
                reps["max_geomean"][r] = np.nan if v is None else v
            for s in RATE_SUMMARIES:
                lo, hi = _interval(reps[s], b.level) if bootstrap else (None, None)
                b.summaries.setdefault(s, {})[attribute] = Estimate(point[s], len(groups), lo, hi)
        groups_f = self._compared(attribute, min_group_size)
        groups_n = other._compared(attribute, min_group_size)
        fm = [self.by_group[attribute][g].value for g in groups_f]
        fn = [other.by_group[attribute][g].value for g in groups_n]
        point = {"garbe": garbe(fm, fn, alpha), "fdr": fdr(fm, fn, alpha)}
        point["ir"] = inequity_rate(fm, fn, alpha)
        reps = {s: np.full(bootstrap, np.nan) for s in PAIR_SUMMARIES}
        funcs = {"garbe": garbe, "fdr": fdr, "ir": inequity_rate}
        for r in range(bootstrap):
            rf = [_fin(self.reps[attribute][g][r]) for g in groups_f]
            rn = [_fin(other.reps[attribute][g][r]) for g in groups_n]
            for s, fn_ in funcs.items():
                v = fn_(rf, rn, alpha)
                reps[s][r] = np.nan if v is None else v
        for s in PAIR_SUMMARIES:
            lo, hi = _interval(reps[s], self.level) if bootstrap else (None, None)
            est = Estimate(point[s], min(len(groups_f), len(groups_n)), lo, hi)
            self.summaries.setdefault(s, {})[attribute] = est
            other.summaries.setdefault(s, {})[attribute] = est

    def build(self, description: str, min_group_size: int) -> VerificationMetric:
        replicates = {}
        for a, per in self.reps.items():
            if per and all(len(v) for v in per.values()):
                replicates[a] = {**per, "__overall__": self.overall_reps}
        return VerificationMetric(
            name=self.name,
            description=description,
            higher_is_better=self.higher_is_better,
            overall=self.overall,
            by_group=self.by_group,
            replicates=replicates,
            min_group_size=min_group_size,
            summaries=self.summaries,
        )


def _fin(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None
