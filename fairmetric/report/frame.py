"""The result object of a group-fairness measurement: one metric, overall and per subgroup.

Modelled on fairlearn's ``MetricFrame``: ``overall``, ``by_group``, ``difference()``, ``ratio()``,
``group_min()``/``group_max()``, plus the worst group and seeded bootstrap intervals that are
**stratified within groups** (every replicate keeps every group's size, so small groups never
vanish from a replicate as they can in a plain row bootstrap).

Metrics are computed from per-sample contributions: a group's value is
``T(Σ_i num_i / Σ_i den_i)`` over the group's valid samples, with ``T`` an optional transform
(``log`` for uniformity, whose per-sample sums are passed as logs, ``num_log=True``, and summed
in the log domain). Means of per-query scores (Recall@k, MAP@R) have ``den = 1``; pair
statistics pass each sample's sum over its pairs and its pair count, so the bootstrap resamples
queries and stays a valid ratio estimator.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

__all__ = [
    "DEFAULT_MIN_GROUP_SIZE",
    "Estimate",
    "GroupMetric",
    "GroupStatistic",
    "Grouping",
    "RATIO_NA_REASON",
    "group_metric_from_samples",
    "group_metric_from_statistic",
]

GapMethod = Literal["between_groups", "to_overall"]

#: Default of ``audit(min_group_size=...)`` / ``--min-group-size``: a group whose value rests on
#: fewer samples is reported but kept out of the gap summaries (difference, ratio, worst group,
#: min, max) and so out of ``--fail-if`` gates. Why 10: one sample moves a mean over ``n`` samples
#: by ``1/n``, so below 10 a single query moves Recall@k by more than 0.1, more than any gap a
#: gate looks for; a proportion's 95% interval at ``n = 10`` is still about +-0.3 wide, and the
#: bootstrap of one or two samples gives degenerate intervals (``[v, v]``) that look precise. 10
#: is a floor against such degenerate groups, not a precision guarantee: read the intervals.
DEFAULT_MIN_GROUP_SIZE = 10


def check_min_group_size(min_group_size: object) -> int:
    """``min_group_size`` as an int >= 1, or a ValueError naming the argument."""
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, (int, np.integer)):
        raise ValueError(
            f"min_group_size (--min-group-size) must be an integer >= 1, got {min_group_size!r} "
            f"({type(min_group_size).__name__})"
        )
    if min_group_size < 1:
        raise ValueError(
            f"min_group_size (--min-group-size) must be >= 1 (1 compares every group), "
            f"got {min_group_size}"
        )
    return int(min_group_size)


def small_group_reason(count: int, min_group_size: int) -> str:
    """Why a group is kept out of the gap summaries (recorded in the report)."""
    return (
        f"{count} sample{'s' if count != 1 else ''}, fewer than min_group_size={min_group_size}: "
        "reported, but kept out of difference, ratio, worst group, min and max"
    )


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
        codes: ``(N,)`` non-negative integer group of each sample.
        names: ``names[c]`` is the display name of code ``c`` (one name per code).
    """

    name: str
    codes: np.ndarray
    names: list[str]

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 1 or codes.dtype.kind not in "iu":
            raise ValueError(f"grouping {self.name!r}: codes must be a 1-D integer array")
        if codes.size and codes.min() < 0:
            raise ValueError(f"grouping {self.name!r}: codes must be >= 0 (got {codes.min()})")
        if codes.size and codes.max() >= len(self.names):
            raise ValueError(
                f"grouping {self.name!r}: code {codes.max()} has no name ({len(self.names)} names)"
            )
        counts = Counter(str(v) for v in self.names)
        twice = sorted(v for v, c in counts.items() if c > 1)
        if twice:
            raise ValueError(
                f"grouping {self.name!r}: several groups are named {twice}; a report keys groups "
                "by name, so give each value of the attribute its own name"
            )


#: joins attribute names and group names of an intersectional grouping (``colour×sex``)
INTERSECTION = "×"


def intersect(groupings: list[Grouping]) -> Grouping:
    """The intersection of several groupings: one group per combination that occurs, named by
    joining the member names with :data:`INTERSECTION` (combinations in sorted code order).

    When value names themselves contain :data:`INTERSECTION`, two combinations could join to the
    same name (``"a×b" × "c"`` and ``"a" × "b×c"``); then every combination is named by the
    Python form of its tuple of names instead (``"('a×b', 'c')"``), which is never ambiguous.
    """
    if len(groupings) < 2:
        raise ValueError(f"an intersection needs at least two groupings, got {len(groupings)}")
    sizes = {g.name: len(g.codes) for g in groupings}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"groupings to intersect must cover the same samples; sizes: {sizes}")
    cols = np.stack([np.asarray(g.codes) for g in groupings], axis=1)
    combos, codes = np.unique(cols, axis=0, return_inverse=True)
    parts = [tuple(str(g.names[v]) for g, v in zip(groupings, combo)) for combo in combos]
    names = [INTERSECTION.join(p) for p in parts]
    if len(set(names)) < len(names):
        names = [repr(p) for p in parts]
    return Grouping(INTERSECTION.join(g.name for g in groupings), codes.ravel(), names)


def _difference(values: dict[str, float], overall: float | None, method: GapMethod) -> float | None:
    present = list(values.values())
    if method == "between_groups":
        return max(present) - min(present) if len(present) >= 2 else None
    if method == "to_overall":
        if overall is None or not present:
            return None
        return max(abs(v - overall) for v in present)
    raise ValueError(f"method must be 'between_groups' or 'to_overall', got {method!r}")


#: why a metric whose values can be negative has no ratio gap
RATIO_NA_REASON = "the metric's values can be negative, so a ratio of them has no meaning"


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
            elif v * overall < 0:
                return None
            elif v == 0 or overall == 0:
                ratios.append(0.0)
            else:
                ratios.append(min(v / overall, overall / v))
        return min(ratios)
    raise ValueError(f"method must be 'between_groups' or 'to_overall', got {method!r}")


@dataclass
class GroupMetric:
    """One metric measured overall and for each subgroup of each attribute.

    Gap conventions follow fairlearn's ``MetricFrame``: ``difference("between_groups")`` is
    ``max - min`` over groups, ``difference("to_overall")`` is ``max |group - overall|``;
    ``ratio("between_groups")`` is ``min / max`` (in ``[0, 1]`` for non-negative values), ``ratio("to_overall")`` is
    ``min over groups of min(group/overall, overall/group)``. NA groups are left out, and so are
    groups whose value rests on fewer than ``min_group_size`` samples (``Estimate.count``): they
    stay in ``by_group`` and :meth:`values`, and :meth:`excluded` says why they are not compared.

    Attributes:
        name: metric name, e.g. ``"recall@1"``.
        description: one line on what it measures.
        higher_is_better: decides the worst group.
        overall: the value on all samples.
        by_group: ``{attribute: {group name: Estimate}}``.
        replicates: bootstrap replicates per attribute (``overall`` and each group), kept for
            gap intervals; empty without bootstrap.
        min_group_size: groups with a value but fewer samples (``count``) are left out of
            :meth:`difference`, :meth:`ratio`, :meth:`worst_group`, :meth:`group_min`,
            :meth:`group_max` and :meth:`gap_interval` (1: every defined group takes part).
        ratio_defined: ``False`` for a metric whose values can be negative (a logarithm, a
            score threshold): a ratio of such values means nothing, so :meth:`ratio` and its
            interval are NA (:data:`RATIO_NA_REASON`).
    """

    name: str
    description: str
    higher_is_better: bool
    overall: Estimate
    by_group: dict[str, dict[str, Estimate]]
    replicates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    min_group_size: int = 1
    ratio_defined: bool = True

    def __post_init__(self) -> None:
        self.min_group_size = check_min_group_size(self.min_group_size)

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
        """``{group: value}`` of the groups where the metric is defined (small groups included)."""
        a = self._attribute(attribute)
        return {g: e.value for g, e in self.by_group[a].items() if e.value is not None}

    def excluded(self, attribute: str | None = None) -> dict[str, str]:
        """``{group: reason}`` of the defined groups kept out of the gap summaries (fewer than
        ``min_group_size`` samples)."""
        a = self._attribute(attribute)
        return {
            g: small_group_reason(e.count, self.min_group_size)
            for g, e in self.by_group[a].items()
            if e.value is not None and e.count < self.min_group_size
        }

    def compared_values(self, attribute: str | None = None) -> dict[str, float]:
        """``{group: value}`` of the groups the gap summaries compare: defined, and with at
        least ``min_group_size`` samples."""
        a = self._attribute(attribute)
        return {
            g: e.value
            for g, e in self.by_group[a].items()
            if e.value is not None and e.count >= self.min_group_size
        }

    def difference(
        self, attribute: str | None = None, method: GapMethod = "between_groups"
    ) -> float | None:
        """Largest difference between groups (or to overall); ``None`` if under two groups."""
        return _difference(self.compared_values(attribute), self.overall.value, method)

    def ratio(
        self, attribute: str | None = None, method: GapMethod = "between_groups"
    ) -> float | None:
        """Smallest ratio between groups (or to overall), in ``[0, 1]`` for non-negative values;
        ``None`` for a metric whose values can be negative (``ratio_defined``)."""
        if not self.ratio_defined:
            return None
        return _ratio(self.compared_values(attribute), self.overall.value, method)

    def group_min(self, attribute: str | None = None) -> float | None:
        values = self.compared_values(attribute)
        return min(values.values()) if values else None

    def group_max(self, attribute: str | None = None) -> float | None:
        values = self.compared_values(attribute)
        return max(values.values()) if values else None

    def worst_group(self, attribute: str | None = None) -> tuple[str, float] | None:
        """``(group, value)`` of the worst-served group (lowest if higher is better)."""
        values = self.compared_values(attribute)
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
        if kind not in ("difference", "ratio"):
            raise ValueError(f"kind must be 'difference' or 'ratio', got {kind!r}")
        if method not in ("between_groups", "to_overall"):
            raise ValueError(f"method must be 'between_groups' or 'to_overall', got {method!r}")
        a = self._attribute(attribute)
        reps = self.replicates.get(a)
        if not reps or (kind == "ratio" and not self.ratio_defined):
            return None, None
        fn = _difference if kind == "difference" else _ratio
        groups = list(self.compared_values(a))
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
        difference, ratio, worst, excluded = {}, {}, {}, {}
        for a in self.by_group:
            excluded[a] = self.excluded(a)
            lo, hi = self.gap_interval("difference", a)
            difference[a] = {"value": self.difference(a), "ci_low": lo, "ci_high": hi}
            lo, hi = self.gap_interval("ratio", a)
            ratio[a] = {"value": self.ratio(a), "ci_low": lo, "ci_high": hi}
            if not self.ratio_defined:
                ratio[a]["na_reason"] = RATIO_NA_REASON
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
            "min_group_size": self.min_group_size,
            "excluded_groups": excluded,
        }


def _transformed(v: float, transform: Callable[[float], float] | None) -> float | None:
    if transform is not None:
        if v <= 0 and transform is math.log:
            return None
        v = transform(v)
    return float(v) if math.isfinite(v) else None


def _ratio_value(
    num: float, den: float, transform: Callable[[float], float] | None
) -> float | None:
    if den <= 0:
        return None
    return _transformed(num / den, transform)


def _log_shift(lnum: np.ndarray) -> float:
    """The largest finite entry of ``lnum`` (0 when none is): the shift of a log-domain sum."""
    finite = lnum[np.isfinite(lnum)]
    return float(finite.max()) if finite.size else 0.0


def _log_ratio_value(total: float, den: float, shift: float) -> float | None:
    """``log(total · exp(shift) / den)`` for a sum of ``exp(lnum - shift)``, or ``None``."""
    if den <= 0 or not total > 0:
        return None
    v = shift + math.log(total / den)
    return float(v) if math.isfinite(v) else None


def _bootstrap_sums(
    arrays: list[np.ndarray], n_boot: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Replicate sums of each array under one resampling with replacement (chunked).

    All arrays are indexed by the same draws, so quantities computed from them stay paired.
    """
    n = len(arrays[0])
    out = [np.empty(n_boot) for _ in arrays]
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(b, n))
        for a, o in zip(arrays, out):
            o[start : start + b] = a[draws].sum(axis=1)
    return out


def _apply(values: np.ndarray, transform: Callable[[float], float] | None) -> np.ndarray:
    """Element-wise :func:`_transformed`, NaN where the value is undefined."""
    if transform is None:
        return values
    out = [_transformed(float(v), transform) if np.isfinite(v) else None for v in values]
    return np.array([np.nan if v is None else v for v in out], dtype=np.float64)


def group_metric_from_samples(
    name: str,
    *,
    num: np.ndarray | None = None,
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
    group_num: dict[str, np.ndarray] | None = None,
    group_den: dict[str, np.ndarray] | None = None,
    overall_mode: Literal["pooled", "macro"] = "pooled",
    statistic: GroupStatistic | None = None,
    min_group_size: int = 1,
    num_log: bool = False,
) -> GroupMetric:
    """Build a :class:`GroupMetric` from per-sample contributions.

    Args:
        name: metric name.
        num: ``(N,)`` per-sample numerators (of the overall value, and of the group values unless
            ``group_num`` overrides them).
        den: ``(N,)`` per-sample denominators (default 1 each: a plain mean).
        valid: ``(N,)`` which samples count (default all; samples with ``den == 0`` never do).
        groupings: the attributes (and intersections) to slice by.
        higher_is_better: decides the worst group.
        description: one line for reports.
        transform: applied to the ratio of sums (e.g. ``math.log``).
        n_boot: bootstrap replicates (0: no intervals). Resampling is stratified within the groups
            of each grouping, so every replicate keeps each group's size; group and overall
            replicates share the same draws (when ``group_num``/``group_den`` make a group count
            other samples than the overall does, the two sets are resampled separately).
            The overall interval comes from the first grouping's replicates (a plain bootstrap
            when there is no grouping).
        seed: bootstrap seed.
        level: interval coverage.
        na_reason: the reason recorded for groups with fewer than ``min_count`` valid samples.
        min_count: valid samples a group needs for a value.
        group_num: per grouping name, contributions that replace ``num`` for its group values
            (pair statistics: "pairs inside the group" depend on the grouping).
        group_den: likewise for ``den``.
        overall_mode: ``"pooled"`` (ratio of sums over all samples) or ``"macro"`` (mean of the
            group values of the single grouping, e.g. balanced accuracy).
        statistic: a group-level statistic that is not a ratio of per-sample sums (e.g. the
            norm of a group's mean vector): given instead of ``num`` (and of ``den``, ``valid``,
            ``transform``, ``group_num``, ``group_den``, ``min_count``, ``na_reason``), it is
            handed to :func:`group_metric_from_statistic`, which recomputes it on every
            bootstrap resample.
        min_group_size: groups whose value rests on fewer valid samples are reported but kept
            out of the gap summaries (see :class:`GroupMetric`; 1: none is).
        num_log: ``num`` and ``group_num`` hold the natural logs of the per-sample numerators
            (``-inf`` for a zero), and the value is ``log(Σ exp(num) / Σ den)``: ``transform``
            must be ``math.log`` or ``None`` (meaning log). The sums are taken in the log domain
            (each group's sums, values and bootstrap replicates shifted by the largest finite log
            among its valid samples, the overall ones by the largest over all valid samples),
            so they have a value where every ``exp(num)`` would underflow or overflow (e.g.
            uniformity of embeddings far apart). A replicate whose resampled terms are all
            ``-inf`` is NaN, left out of the intervals.
    """
    min_group_size = check_min_group_size(min_group_size)
    if statistic is not None:
        extra = [
            k
            for k, v in dict(
                num=num,
                den=den,
                valid=valid,
                transform=transform,
                group_num=group_num,
                group_den=group_den,
                num_log=num_log or None,
            ).items()
            if v is not None
        ]
        if extra or overall_mode != "pooled" or min_count != 1:
            raise ValueError(
                f"statistic replaces the per-sample contributions; do not also pass "
                f"{extra or ['overall_mode/min_count']}"
            )
        return group_metric_from_statistic(
            name,
            statistic=statistic,
            groupings=groupings,
            higher_is_better=higher_is_better,
            description=description,
            n_boot=n_boot,
            seed=seed,
            level=level,
            min_group_size=min_group_size,
        )
    if num is None:
        raise ValueError("num (per-sample contributions) is required unless statistic is given")
    if num_log:
        if transform is not None and transform is not math.log:
            raise ValueError(
                "num_log=True reports log(Σ exp(num) / Σ den): transform must be math.log or None, "
                f"got {transform!r}"
            )
        transform = math.log
    num = np.asarray(num, dtype=np.float64)
    if num.ndim != 1:
        raise ValueError(f"num must have shape (N,), got {num.shape}")
    n = len(num)
    den = np.ones(n) if den is None else np.asarray(den, dtype=np.float64)
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if den.shape != (n,) or valid.shape != (n,):
        raise ValueError(f"num, den and valid must all have shape ({n},)")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    valid = valid & (den > 0)  # a sample with no pairs contributes nothing
    for g in groupings:
        if g.codes.shape != (n,):
            raise ValueError(f"grouping {g.name!r} has {len(g.codes)} codes for {n} samples")
    if overall_mode not in ("pooled", "macro"):
        raise ValueError(f"overall_mode must be 'pooled' or 'macro', got {overall_mode!r}")
    if overall_mode == "macro" and len(groupings) != 1:
        raise ValueError("overall_mode='macro' needs exactly one grouping")
    group_num = group_num or {}
    group_den = group_den or {}
    unknown = sorted((set(group_num) | set(group_den)) - {g.name for g in groupings})
    if unknown:
        raise ValueError(
            f"group_num/group_den name unknown groupings {unknown}; the groupings are "
            f"{[g.name for g in groupings]}"
        )
    q = (1 - level) / 2
    rng = np.random.default_rng(seed)

    def interval(values: np.ndarray) -> tuple[float | None, float | None]:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None, None
        return float(np.quantile(values, q)), float(np.quantile(values, 1 - q))

    def ratio_reps(rn: np.ndarray, rd: np.ndarray, shift: float = 0.0) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if not num_log:
                return _apply(rn / rd, transform)
            out = np.log(rn / rd) + shift
        out[~np.isfinite(out)] = np.nan
        return out

    def value_of(total: float, den_total: float, shift: float) -> float | None:
        if num_log:
            return _log_ratio_value(total, den_total, shift)
        return _ratio_value(total, den_total, transform)

    # under num_log the sums add exp(num - shift): one shift for every overall sum, another per
    # group for the group's sums (the largest finite log among the valid samples of each)
    o_shift = _log_shift(num[valid]) if num_log else 0.0
    o_num = np.exp(num - o_shift) if num_log else num
    overall_value = value_of(o_num[valid].sum(), den[valid].sum(), o_shift)
    overall_ci: tuple[float | None, float | None] = (None, None)
    by_group: dict[str, dict[str, Estimate]] = {}
    replicates: dict[str, dict[str, np.ndarray]] = {}

    for gi, grouping in enumerate(groupings):
        g_num = np.asarray(group_num.get(grouping.name, num), dtype=np.float64)
        g_den = np.asarray(group_den.get(grouping.name, den), dtype=np.float64)
        if g_num.shape != (n,) or g_den.shape != (n,):
            raise ValueError(f"group_num/group_den of {grouping.name!r} must have shape ({n},)")
        g_valid = valid & (g_den > 0)
        groups: dict[str, Estimate] = {}
        reps: dict[str, np.ndarray] = {}
        tot_num = np.zeros(n_boot)
        tot_den = np.zeros(n_boot)
        for code in np.unique(grouping.codes):
            gname = grouping.names[code]
            sel = (grouping.codes == code) & g_valid
            count = int(sel.sum())
            s_num = g_num[sel]
            shift = _log_shift(s_num) if num_log else 0.0
            if num_log:
                s_num = np.exp(s_num - shift)
            value = value_of(s_num.sum(), g_den[sel].sum(), shift) if count else None
            rep = np.full(n_boot, np.nan)
            overall_sel = (grouping.codes == code) & valid
            if n_boot and np.array_equal(sel, overall_sel):
                # the usual case: one resampling of the group serves group and overall sums
                rn, rd, on, od = _bootstrap_sums(
                    [s_num, g_den[sel], o_num[sel], den[sel]], n_boot, rng
                )
                tot_num += on
                tot_den += od
                rep = ratio_reps(rn, rd, shift)
            elif n_boot:
                # grouping-specific contributions count other samples: resample each set within
                # the group so every replicate keeps both counts exact
                if sel.any():
                    rn, rd = _bootstrap_sums([s_num, g_den[sel]], n_boot, rng)
                    rep = ratio_reps(rn, rd, shift)
                if overall_sel.any():
                    on, od = _bootstrap_sums([o_num[overall_sel], den[overall_sel]], n_boot, rng)
                    tot_num += on
                    tot_den += od
            if count < min_count or value is None:
                groups[gname] = Estimate(None, count, na_reason=na_reason)
                reps[gname] = np.full(n_boot, np.nan)
                continue
            lo, hi = interval(rep) if n_boot else (None, None)
            reps[gname] = rep
            groups[gname] = Estimate(value, count, lo, hi)
        by_group[grouping.name] = groups
        if overall_mode == "macro":
            present = [e.value for e in groups.values() if e.value is not None]
            overall_value = float(np.mean(present)) if present else None
        if n_boot:
            if overall_mode == "macro":
                stacked = np.array([reps[g] for g, e in groups.items() if e.value is not None])
                ov = stacked.mean(axis=0) if stacked.size else np.full(n_boot, np.nan)
            else:
                ov = ratio_reps(tot_num, tot_den, o_shift)
            reps["__overall__"] = ov
            replicates[grouping.name] = reps
            if gi == 0:
                overall_ci = interval(ov)

    if n_boot and not groupings and valid.any():
        rn, rd = _bootstrap_sums([o_num[valid], den[valid]], n_boot, rng)
        overall_ci = interval(ratio_reps(rn, rd, o_shift))
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
        min_group_size=min_group_size,
        ratio_defined=not (num_log or transform is math.log),  # a logarithm can be negative
    )


class GroupStatistic(Protocol):
    """A statistic of a whole group of rows (not a ratio of per-sample sums), recomputed on
    bootstrap resamples by :func:`group_metric_from_statistic`.

    Attributes:
        n: the number of rows (samples) it is defined on.
    """

    n: int

    def __call__(
        self, cells: list[np.ndarray], n_boot: int, seed: int
    ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        """The statistic of each cell and of all cells pooled, with bootstrap replicates.

        Args:
            cells: the row indices of each group (disjoint).
            n_boot: replicates (0: none).
            seed: seed of the resampling.

        Returns:
            ``(values, reasons, replicates)``: ``values`` is ``(len(cells) + 1,)``, the last
            entry the pooled rows of every cell, NaN where undefined; ``reasons`` says why for
            each NaN entry (``None`` elsewhere); ``replicates`` is ``(n_boot, len(cells) + 1)``:
            replicate ``b`` resamples the rows of each cell with replacement, within the cell
            (every cell keeps its size), and its last column pools those same resamples.
        """
        ...


def group_metric_from_statistic(
    name: str,
    *,
    statistic: GroupStatistic,
    groupings: list[Grouping],
    higher_is_better: bool,
    description: str = "",
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    min_group_size: int = 1,
) -> GroupMetric:
    """Build a :class:`GroupMetric` from a group-level :class:`GroupStatistic`.

    Per grouping, the statistic is evaluated on each group and on all groups pooled (the overall
    value), and its bootstrap replicates resample rows within each group and recompute it, so
    the intervals are those of a stratified bootstrap of the statistic itself, and the gap
    intervals (:meth:`GroupMetric.gap_interval`) pair every group's replicate with the overall
    one from the same draws. The overall interval comes from the first grouping's replicates (a
    plain bootstrap of all rows when there is no grouping). Each grouping gets its own seed
    drawn from ``seed``. Groups of fewer than ``min_group_size`` rows are reported but kept out
    of the gap summaries (see :class:`GroupMetric`).
    """
    min_group_size = check_min_group_size(min_group_size)
    n = int(statistic.n)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    for g in groupings:
        if np.asarray(g.codes).shape != (n,):
            raise ValueError(f"grouping {g.name!r} has {len(g.codes)} codes for {n} samples")
    q = (1 - level) / 2
    rng = np.random.default_rng(seed)

    def interval(values: np.ndarray) -> tuple[float | None, float | None]:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None, None
        return float(np.quantile(values, q)), float(np.quantile(values, 1 - q))

    def estimate(value: float, count: int, reason: str | None, reps: np.ndarray) -> Estimate:
        if not np.isfinite(value):
            return Estimate(None, count, na_reason=reason or "not defined for this group")
        lo, hi = interval(reps) if n_boot else (None, None)
        return Estimate(float(value), count, lo, hi)

    by_group: dict[str, dict[str, Estimate]] = {}
    replicates: dict[str, dict[str, np.ndarray]] = {}
    overall: Estimate | None = None
    for grouping in groupings or [Grouping("", np.zeros(n, dtype=np.int64), [""])]:
        codes = np.asarray(grouping.codes)
        present = np.unique(codes)
        cells = [np.flatnonzero(codes == c) for c in present]
        values, reasons, reps = statistic(cells, n_boot, int(rng.integers(2**63)))
        reps = np.asarray(reps, dtype=np.float64).reshape(n_boot, len(cells) + 1)
        if overall is None:
            overall = estimate(values[-1], n, reasons[-1], reps[:, -1])
        if not groupings:
            break
        groups = {}
        rep_map = {}
        for i, code in enumerate(present):
            gname = grouping.names[code]
            groups[gname] = estimate(values[i], len(cells[i]), reasons[i], reps[:, i])
            rep_map[gname] = (
                reps[:, i] if groups[gname].value is not None else np.full(n_boot, np.nan)
            )
        by_group[grouping.name] = groups
        if n_boot:
            rep_map["__overall__"] = reps[:, -1]
            replicates[grouping.name] = rep_map
    assert overall is not None
    return GroupMetric(
        name=name,
        description=description,
        higher_is_better=higher_is_better,
        overall=overall,
        by_group=by_group,
        replicates=replicates,
        min_group_size=min_group_size,
    )
