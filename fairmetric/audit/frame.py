"""The result object of a group-fairness measurement: one metric, overall and per subgroup.

Modelled on fairlearn's ``MetricFrame``: ``overall``, ``by_group``, ``difference()``, ``ratio()``,
``group_min()``/``group_max()``, plus the worst group and seeded bootstrap intervals that are
**stratified within groups** (every replicate keeps every group's size, so small groups never
vanish from a replicate as they can in a plain row bootstrap).

Metrics are computed from per-sample contributions: a group's value is
``T(Σ_i num_i / Σ_i den_i)`` over the group's valid samples, with ``T`` an optional transform
(``log`` for uniformity). Means of per-query scores (Recall@k, MAP@R) have ``den = 1``; pair
statistics pass each sample's sum over its pairs and its pair count, so the bootstrap resamples
queries and stays a valid ratio estimator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["Estimate", "GroupMetric", "Grouping", "group_metric_from_samples"]

GapMethod = Literal["between_groups", "to_overall"]


@dataclass(frozen=True)
class Estimate:
    """A value with its sample count and (optional) percentile bootstrap interval.

    ``value`` is ``None`` when the metric is not defined for the group; ``na_reason`` says why.
    """

    value: float | None
    count: int
    ci_low: float | None = None
    ci_high: float | None = None
    na_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "value": self.value,
            "count": self.count,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }
        if self.na_reason is not None:
            d["na_reason"] = self.na_reason
        return d


@dataclass(frozen=True)
class Grouping:
    """The subgroups of one sensitive attribute (or an intersection of several).

    Attributes:
        name: attribute name (``"colour"``; ``"colour×sex"`` for an intersection).
        codes: ``(N,)`` integer group of each sample.
        names: ``names[c]`` is the display name of code ``c``.
    """

    name: str
    codes: np.ndarray
    names: list[str]


def _difference(values: dict[str, float], overall: float | None, method: GapMethod) -> float | None:
    present = list(values.values())
    if method == "between_groups":
        return max(present) - min(present) if len(present) >= 2 else None
    if method == "to_overall":
        if overall is None or not present:
            return None
        return max(abs(v - overall) for v in present)
    raise ValueError(f"method must be 'between_groups' or 'to_overall', got {method!r}")


def _ratio(values: dict[str, float], overall: float | None, method: GapMethod) -> float | None:
    present = list(values.values())
    if method == "between_groups":
        if len(present) < 2:
            return None
        lo, hi = min(present), max(present)
        if hi == 0:
            return 1.0 if lo == 0 else None
        return lo / hi if lo * hi >= 0 else None
    if method == "to_overall":
        if overall is None or not present:
            return None
        ratios = []
        for v in present:
            if v == overall:
                ratios.append(1.0)
            elif v == 0 or overall == 0 or v * overall < 0:
                return None
            else:
                ratios.append(min(v / overall, overall / v))
        return min(ratios)
    raise ValueError(f"method must be 'between_groups' or 'to_overall', got {method!r}")


@dataclass
class GroupMetric:
    """One metric measured overall and for each subgroup of each attribute.

    Gap conventions follow fairlearn's ``MetricFrame``: ``difference("between_groups")`` is
    ``max - min`` over groups, ``difference("to_overall")`` is ``max |group - overall|``;
    ``ratio("between_groups")`` is ``min / max``, ``ratio("to_overall")`` is
    ``min over groups of min(group/overall, overall/group)``. NA groups are left out.

    Attributes:
        name: metric name, e.g. ``"recall@1"``.
        description: one line on what it measures.
        higher_is_better: decides the worst group.
        overall: the value on all samples.
        by_group: ``{attribute: {group name: Estimate}}``.
        replicates: bootstrap replicates per attribute (``overall`` and each group), kept for
            gap intervals; empty without bootstrap.
    """

    name: str
    description: str
    higher_is_better: bool
    overall: Estimate
    by_group: dict[str, dict[str, Estimate]]
    replicates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def attributes(self) -> list[str]:
        return list(self.by_group)

    def _attribute(self, attribute: str | None) -> str:
        if attribute is None:
            if len(self.by_group) != 1:
                raise ValueError(
                    f"{self.name} has several attributes ({', '.join(self.by_group)}): name one"
                )
            return next(iter(self.by_group))
        if attribute not in self.by_group:
            raise ValueError(
                f"{self.name} has no attribute {attribute!r}; it has: "
                f"{', '.join(self.by_group) or '(none)'}"
            )
        return attribute

    def values(self, attribute: str | None = None) -> dict[str, float]:
        """``{group: value}`` of the groups where the metric is defined."""
        a = self._attribute(attribute)
        return {g: e.value for g, e in self.by_group[a].items() if e.value is not None}

    def difference(
        self, attribute: str | None = None, method: GapMethod = "between_groups"
    ) -> float | None:
        """Largest difference between groups (or to overall); ``None`` if under two groups."""
        return _difference(self.values(attribute), self.overall.value, method)

    def ratio(
        self, attribute: str | None = None, method: GapMethod = "between_groups"
    ) -> float | None:
        """Smallest ratio between groups (or to overall), in ``[0, 1]`` for same-sign values."""
        return _ratio(self.values(attribute), self.overall.value, method)

    def group_min(self, attribute: str | None = None) -> float | None:
        values = self.values(attribute)
        return min(values.values()) if values else None

    def group_max(self, attribute: str | None = None) -> float | None:
        values = self.values(attribute)
        return max(values.values()) if values else None

    def worst_group(self, attribute: str | None = None) -> tuple[str, float] | None:
        """``(group, value)`` of the worst-served group (lowest if higher is better)."""
        values = self.values(attribute)
        if not values:
            return None
        pick = min if self.higher_is_better else max
        group = pick(values, key=values.__getitem__)
        return group, values[group]

    def gap_interval(
        self,
        kind: Literal["difference", "ratio"],
        attribute: str | None = None,
        method: GapMethod = "between_groups",
        level: float = 0.95,
    ) -> tuple[float | None, float | None]:
        """Percentile bootstrap interval of a gap (``(None, None)`` without bootstrap)."""
        a = self._attribute(attribute)
        reps = self.replicates.get(a)
        if not reps:
            return None, None
        fn = _difference if kind == "difference" else _ratio
        groups = [g for g, e in self.by_group[a].items() if e.value is not None]
        n_boot = len(reps["__overall__"])
        out = []
        for r in range(n_boot):
            vals = {g: float(reps[g][r]) for g in groups if np.isfinite(reps[g][r])}
            overall = float(reps["__overall__"][r])
            out.append(fn(vals, overall if np.isfinite(overall) else None, method))
        arr = np.array([np.nan if v is None else v for v in out], dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            return None, None
        q = (1 - level) / 2
        return float(np.quantile(arr, q)), float(np.quantile(arr, 1 - q))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ``metrics.<name>`` entry of ``report.json``)."""
        difference, ratio, worst = {}, {}, {}
        for a in self.by_group:
            lo, hi = self.gap_interval("difference", a)
            difference[a] = {"value": self.difference(a), "ci_low": lo, "ci_high": hi}
            lo, hi = self.gap_interval("ratio", a)
            ratio[a] = {"value": self.ratio(a), "ci_low": lo, "ci_high": hi}
            w = self.worst_group(a)
            worst[a] = {"group": w[0], "value": w[1]} if w else None
        return {
            "description": self.description,
            "higher_is_better": self.higher_is_better,
            "overall": self.overall.to_dict(),
            "by_group": {
                a: {g: e.to_dict() for g, e in groups.items()}
                for a, groups in self.by_group.items()
            },
            "difference": difference,
            "ratio": ratio,
            "worst_group": worst,
        }


def _ratio_value(
    num: float, den: float, transform: Callable[[float], float] | None
) -> float | None:
    if den <= 0:
        return None
    v = num / den
    if transform is not None:
        if v <= 0 and transform is math.log:
            return None
        v = transform(v)
    return float(v) if math.isfinite(v) else None


def _bootstrap_sums(
    num: np.ndarray, den: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replicate sums of ``num`` and ``den`` under resampling with replacement (chunked)."""
    n = len(num)
    out_num = np.empty(n_boot)
    out_den = np.empty(n_boot)
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(b, n))
        out_num[start : start + b] = num[draws].sum(axis=1)
        out_den[start : start + b] = den[draws].sum(axis=1)
    return out_num, out_den


def group_metric_from_samples(
    name: str,
    *,
    num: np.ndarray,
    den: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    groupings: list[Grouping],
    higher_is_better: bool,
    description: str = "",
    transform: Callable[[float], float] | None = None,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    na_reason: str = "no sample of this group qualifies for this metric",
    min_count: int = 1,
) -> GroupMetric:
    """Build a :class:`GroupMetric` from per-sample contributions.

    Args:
        name: metric name.
        num: ``(N,)`` per-sample numerators.
        den: ``(N,)`` per-sample denominators (default 1 each: a plain mean).
        valid: ``(N,)`` which samples count (default all).
        groupings: the attributes (and intersections) to slice by.
        higher_is_better: decides the worst group.
        description: one line for reports.
        transform: applied to the ratio of sums (e.g. ``math.log``).
        n_boot: bootstrap replicates (0: no intervals). Resampling is stratified within the groups
            of each grouping; the overall interval comes from the first grouping's replicates (a
            plain bootstrap when there is no grouping).
        seed: bootstrap seed.
        level: interval coverage.
        na_reason: the reason recorded for groups with fewer than ``min_count`` valid samples.
        min_count: valid samples a group needs for a value.
    """
    num = np.asarray(num, dtype=np.float64)
    n = len(num)
    den = np.ones(n) if den is None else np.asarray(den, dtype=np.float64)
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if den.shape != (n,) or valid.shape != (n,):
        raise ValueError(f"num, den and valid must all have shape ({n},)")
    for g in groupings:
        if g.codes.shape != (n,):
            raise ValueError(f"grouping {g.name!r} has {len(g.codes)} codes for {n} samples")
    q = (1 - level) / 2
    rng = np.random.default_rng(seed)

    def interval(rep_num: np.ndarray, rep_den: np.ndarray) -> tuple[float | None, float | None]:
        with np.errstate(divide="ignore", invalid="ignore"):
            vals = rep_num / rep_den
            if transform is not None:
                vals = np.array([transform(v) if v > 0 else np.nan for v in vals])
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            return None, None
        return float(np.quantile(vals, q)), float(np.quantile(vals, 1 - q))

    v_num, v_den = num[valid], den[valid]
    overall_value = _ratio_value(v_num.sum(), v_den.sum(), transform)
    overall_ci: tuple[float | None, float | None] = (None, None)
    by_group: dict[str, dict[str, Estimate]] = {}
    replicates: dict[str, dict[str, np.ndarray]] = {}

    for gi, grouping in enumerate(groupings):
        groups: dict[str, Estimate] = {}
        reps: dict[str, np.ndarray] = {}
        tot_num = np.zeros(n_boot)
        tot_den = np.zeros(n_boot)
        codes_present = np.unique(grouping.codes)
        for code in codes_present:
            gname = grouping.names[code] if code < len(grouping.names) else str(code)
            member = grouping.codes == code
            sel = member & valid
            count = int(sel.sum())
            value = _ratio_value(num[sel].sum(), den[sel].sum(), transform) if count else None
            if count < min_count or value is None:
                groups[gname] = Estimate(None, count, na_reason=na_reason)
                reps[gname] = np.full(n_boot, np.nan)
                if n_boot and count:
                    rn, rd = _bootstrap_sums(num[sel], den[sel], n_boot, rng)
                    tot_num += rn
                    tot_den += rd
                continue
            lo = hi = None
            if n_boot:
                rn, rd = _bootstrap_sums(num[sel], den[sel], n_boot, rng)
                tot_num += rn
                tot_den += rd
                lo, hi = interval(rn, rd)
                with np.errstate(divide="ignore", invalid="ignore"):
                    rv = rn / rd
                    if transform is not None:
                        rv = np.array([transform(v) if v > 0 else np.nan for v in rv])
                reps[gname] = rv
            groups[gname] = Estimate(value, count, lo, hi)
        by_group[grouping.name] = groups
        if n_boot:
            with np.errstate(divide="ignore", invalid="ignore"):
                ov = tot_num / tot_den
                if transform is not None:
                    ov = np.array([transform(v) if v > 0 else np.nan for v in ov])
            reps["__overall__"] = ov
            replicates[grouping.name] = reps
            if gi == 0:
                overall_ci = interval(tot_num, tot_den)

    if n_boot and not groupings and v_num.size:
        rn, rd = _bootstrap_sums(v_num, v_den, n_boot, rng)
        overall_ci = interval(rn, rd)
    overall = Estimate(
        overall_value,
        int(valid.sum()),
        *overall_ci,
        na_reason=None if overall_value is not None else na_reason,
    )
    return GroupMetric(
        name=name,
        description=description,
        higher_is_better=higher_is_better,
        overall=overall,
        by_group=by_group,
        replicates=replicates,
    )
