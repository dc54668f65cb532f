"""Is model B fairer than model A? Paired differences of two audits of the same samples.

Two audits of the same rows (same labels and attributes, same order) with the same ``seed`` and
``bootstrap`` draw the same resamples: the audit's bootstrap is stratified within the groups of
each attribute, and its draws depend only on the seed and the group sizes, never on the
embeddings (:func:`~fairmetric.report.frame.group_metric_from_samples`). Replicate ``r`` of model
A and replicate ``r`` of model B are therefore the same metric on the same resampled rows, and
``B_r - A_r`` is one replicate of a *paired* bootstrap of the difference. Pairing removes the
sample-to-sample noise both models share (which query happens to be hard), so a paired interval
is much narrower than two separate intervals put side by side.

:func:`compare_reports` turns two such :class:`AuditReport` objects into a :class:`Comparison`:
for every metric, the overall difference, every per-group difference and every gap difference
(``gap_B - gap_A``, the gap being ``max - min`` over the compared groups), each with a
percentile interval and a verdict that says whether the interval excludes zero.
:func:`fairmetric.audit.compare.compare` audits two embedding sets and checks they hold the same
samples first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.errors import UserError
from fairmetric.report.frame import GroupMetric
from fairmetric.report.result import AuditReport

__all__ = [
    "COMPARE_SCHEMA_VERSION",
    "Comparison",
    "Difference",
    "MetricComparison",
    "compare_reports",
]

#: version of the ``compare.json`` layout (docs/report_schema.md)
COMPARE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Difference:
    """A quantity of model A and of model B, and ``B - A`` with its paired interval.

    Attributes:
        a: the value of model A (``None`` where undefined).
        b: the value of model B.
        difference: ``b - a`` (``None`` if either is undefined).
        ci_low: lower end of the paired percentile bootstrap interval of ``b - a`` (``None``
            without bootstrap or when no replicate has both values).
        ci_high: upper end.
    """

    a: float | None
    b: float | None
    difference: float | None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def excludes_zero(self) -> bool | None:
        """Whether the interval lies entirely above or below zero (``None``: no interval)."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def sign(self) -> int:
        """``+1`` if the interval lies above zero, ``-1`` below, ``0`` otherwise."""
        if not self.excludes_zero:
            return 0
        return 1 if (self.ci_low or 0) > 0 else -1

    def gap_verdict(self, names: tuple[str, str]) -> str:
        """For a gap difference: which model has the smaller gap, by the paired interval of
        ``gap_B - gap_A`` (``"B fairer"``, ``"A fairer"``, ``"no clear difference"``)."""
        if self.excludes_zero is None:
            return "no interval"
        if self.sign < 0:
            return f"{names[1]} fairer"
        if self.sign > 0:
            return f"{names[0]} fairer"
        return "no clear difference"

    def value_verdict(self, higher_is_better: bool, names: tuple[str, str]) -> str:
        """For a value difference: which model it favours, by the paired interval and the
        metric's direction (``"B better"``, ``"A better"``, ``"no clear difference"``)."""
        if self.excludes_zero is None:
            return "no interval"
        if self.sign == 0:
            return "no clear difference"
        return f"{names[1] if (self.sign > 0) == higher_is_better else names[0]} better"

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "excludes_zero": self.excludes_zero,
        }


@dataclass
class MetricComparison:
    """One metric of two models: overall, per group and gap differences (``B - A``).

    Attributes:
        name: metric name (``recall@1``).
        description: what it measures.
        higher_is_better: decides which model a per-group or overall difference favours.
        overall: overall values.
        by_group: ``{attribute: {group: Difference}}``.
        gap: ``{attribute: Difference}`` of the between-groups gap (``max - min`` over the
            groups both audits compare); a negative difference is a smaller gap in B.
        groups_compared: ``{attribute: [group, ...]}`` the gaps range over.
        unpaired_reason: why the differences of this metric have no intervals although the
            audits were bootstrapped (their replicates are not paired), or ``None``.
    """

    name: str
    description: str
    higher_is_better: bool
    overall: Difference
    by_group: dict[str, dict[str, Difference]]
    gap: dict[str, Difference]
    groups_compared: dict[str, list[str]] = field(default_factory=dict)
    unpaired_reason: str | None = None

    def to_dict(self, names: tuple[str, str]) -> dict[str, Any]:
        return {
            "description": self.description,
            "higher_is_better": self.higher_is_better,
            "overall": {
                **self.overall.to_dict(),
                "verdict": self.overall.value_verdict(self.higher_is_better, names),
            },
            "by_group": {
                a: {
                    g: {**d.to_dict(), "verdict": d.value_verdict(self.higher_is_better, names)}
                    for g, d in groups.items()
                }
                for a, groups in self.by_group.items()
            },
            "gap": {
                a: {**d.to_dict(), "verdict": d.gap_verdict(names)} for a, d in self.gap.items()
            },
            "groups_compared": self.groups_compared,
            "unpaired_reason": self.unpaired_reason,
        }


@dataclass
class Comparison:
    """The result of :func:`compare_reports` / :func:`fairmetric.compare`.

    Attributes:
        names: display names of model A and model B.
        metrics: ``{metric: MetricComparison}`` for the metrics both audits measured.
        metadata: ``n``, ``bootstrap``, ``seed``, ``level``, ``attributes``, ``sources``,
            ``unit`` (what a replicate resamples), ``matched_by``, ``only_in_a``/``only_in_b``.
        report_a: model A's audit (its own intervals, for reference).
        report_b: model B's audit.
    """

    names: tuple[str, str]
    metrics: dict[str, MetricComparison]
    metadata: dict[str, Any]
    report_a: AuditReport | None = field(default=None, repr=False)
    report_b: AuditReport | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> MetricComparison:
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}; this comparison has: {', '.join(self.metrics)}")
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        """The ``compare.json`` document (docs/report_schema.md)."""
        return {
            "schema_version": COMPARE_SCHEMA_VERSION,
            "names": {"a": self.names[0], "b": self.names[1]},
            "metadata": self.metadata,
            "metrics": {name: m.to_dict(self.names) for name, m in self.metrics.items()},
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict` (written to ``path`` when given). NaN never appears."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            from fairmetric.utils import atomic_write_bytes

            atomic_write_bytes(path, text.encode())
        return text

    def summary(self) -> str:
        """The text ``fairmetric compare`` prints."""
        from fairmetric.report.compare_writers import render_compare_text

        return render_compare_text(self)

    def _repr_html_(self) -> str:
        from fairmetric.report.compare_writers import gap_table_html

        return gap_table_html(self)


def _interval(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    q = (1 - level) / 2
    return float(np.quantile(values, q)), float(np.quantile(values, 1 - q))


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(b) - float(a)


def _gap_replicates(reps: dict[str, np.ndarray], groups: list[str], n_boot: int) -> np.ndarray:
    """``max - min`` over ``groups`` of each replicate (NaN where fewer than two are finite)."""
    if len(groups) < 2 or n_boot == 0:
        return np.full(n_boot, np.nan)
    stacked = np.stack([np.asarray(reps[g], dtype=np.float64) for g in groups])  # (G, B)
    finite = np.isfinite(stacked)
    hi = np.where(finite, stacked, -np.inf).max(axis=0)
    lo = np.where(finite, stacked, np.inf).min(axis=0)
    out = hi - lo
    out[finite.sum(axis=0) < 2] = np.nan
    return out


#: metrics whose samples count or not depending on the embeddings (a query without a
#: different-class neighbour among its first k has no homophily), not only on labels and groups
EMBEDDING_DEPENDENT_SAMPLES = ("homophily:",)


def _unpaired(
    ma: GroupMetric,
    mb: GroupMetric,
    attributes: list[str],
    group_sizes: dict[str, dict[str, int]] | None,
) -> str | None:
    """Why the two audits' replicates of one metric are not paired, or None when they are.

    The audit resamples, within each group, the samples that count for the metric. The draws
    are the same for both audits when the same samples count in every group: guaranteed when
    which samples count depends only on the labels and groups (then equal counts are the same
    samples), and, for :data:`EMBEDDING_DEPENDENT_SAMPLES`, only when every sample of every
    group counts in both (``group_sizes`` known and every count equal to its group's size).
    """
    if ma.overall.count != mb.overall.count:
        return (
            f"the two models leave different samples out of {ma.name} ({ma.overall.count} vs "
            f"{mb.overall.count} count), so their bootstrap draws differ"
        )
    for a in attributes:
        ca = {g: e.count for g, e in ma.by_group[a].items()}
        cb = {g: e.count for g, e in mb.by_group[a].items()}
        if ca != cb:
            diff = sorted(g for g in set(ca) | set(cb) if ca.get(g) != cb.get(g))
            return (
                f"the groups {diff[:5]} of {a!r} count different numbers of samples for "
                f"{ma.name} in the two audits ({[ca.get(g) for g in diff[:5]]} vs "
                f"{[cb.get(g) for g in diff[:5]]}), so their bootstrap draws differ"
            )
    if ma.name.startswith(EMBEDDING_DEPENDENT_SAMPLES):
        complete = group_sizes is not None and all(
            a in group_sizes
            and all(e.count == group_sizes[a].get(g) for g, e in ma.by_group[a].items())
            for a in attributes
        )
        if not complete:
            return (
                f"which samples count for {ma.name} depends on the embeddings (a query with no "
                "different-class neighbour among its first k has none), and some samples do "
                "not count: the two models may leave out different ones, so the replicates are "
                "not paired"
            )
    return None


def compare_metric(
    ma: GroupMetric,
    mb: GroupMetric,
    level: float = 0.95,
    group_sizes: dict[str, dict[str, int]] | None = None,
) -> MetricComparison:
    """Paired differences of one metric measured by two audits with the same bootstrap draws.

    Replicate ``r`` of each group, of the overall value (the first attribute's, as the audit
    reports it) and of each gap is taken from both audits; the interval of a difference is the
    percentile interval of ``B_r - A_r`` over the replicates where both are defined. When the
    replicates are not paired (the two audits count different samples for this metric, see
    :func:`_unpaired`), the differences get no interval and ``unpaired_reason`` says why.
    """
    attributes = [a for a in ma.by_group if a in mb.by_group]
    reason = _unpaired(ma, mb, attributes, group_sizes)
    by_group: dict[str, dict[str, Difference]] = {}
    gaps: dict[str, Difference] = {}
    compared: dict[str, list[str]] = {}
    overall_ci: tuple[float | None, float | None] = (None, None)
    for i, a in enumerate(attributes):
        ra, rb = ma.replicates.get(a), mb.replicates.get(a)
        paired = bool(ra) and bool(rb) and reason is None
        if paired:
            assert ra is not None and rb is not None
            if len(ra["__overall__"]) != len(rb["__overall__"]):
                raise UserError(
                    f"{ma.name}: audit A has {len(ra['__overall__'])} bootstrap replicates, "
                    f"audit B {len(rb['__overall__'])}: audit both with the same --bootstrap "
                    "and --seed"
                )
        groups: dict[str, Difference] = {}
        for g, ea in ma.by_group[a].items():
            eb = mb.by_group[a][g]
            lo = hi = None
            if paired and ea.value is not None and eb.value is not None:
                lo, hi = _interval(np.asarray(rb[g]) - np.asarray(ra[g]), level)
            groups[g] = Difference(ea.value, eb.value, _sub(ea.value, eb.value), lo, hi)
        by_group[a] = groups
        va, vb = ma.compared_values(a), mb.compared_values(a)
        common = [g for g in va if g in vb]
        compared[a] = common
        gap_a = max(va[g] for g in common) - min(va[g] for g in common) if len(common) > 1 else None
        gap_b = max(vb[g] for g in common) - min(vb[g] for g in common) if len(common) > 1 else None
        lo = hi = None
        if paired and gap_a is not None and gap_b is not None:
            n_boot = len(ra["__overall__"])
            lo, hi = _interval(
                _gap_replicates(rb, common, n_boot) - _gap_replicates(ra, common, n_boot), level
            )
        gaps[a] = Difference(gap_a, gap_b, _sub(gap_a, gap_b), lo, hi)
        if i == 0 and paired and ma.overall.value is not None and mb.overall.value is not None:
            overall_ci = _interval(
                np.asarray(rb["__overall__"]) - np.asarray(ra["__overall__"]), level
            )
    overall = Difference(
        ma.overall.value, mb.overall.value, _sub(ma.overall.value, mb.overall.value), *overall_ci
    )
    return MetricComparison(
        name=ma.name,
        description=ma.description,
        higher_is_better=ma.higher_is_better,
        overall=overall,
        by_group=by_group,
        gap=gaps,
        groups_compared=compared,
        unpaired_reason=reason if ma.replicates and mb.replicates else None,
    )


def compare_reports(
    report_a: AuditReport,
    report_b: AuditReport,
    *,
    names: tuple[str, str] = ("A", "B"),
    metadata: dict[str, Any] | None = None,
    group_sizes: dict[str, dict[str, int]] | None = None,
) -> Comparison:
    """Paired differences (``B - A``) of two audits of the same samples.

    The audits must have been made on the same rows, in the same order, with the same
    ``seed`` and ``bootstrap`` (so that their replicates resample the same rows); this checks
    the seed, the replicate count and the sample count, but cannot see the rows themselves:
    :func:`fairmetric.compare` also checks the labels and attributes. A metric whose two audits
    count different samples in some group (or may, see :data:`EMBEDDING_DEPENDENT_SAMPLES`)
    gets differences without intervals and its ``unpaired_reason``.

    Args:
        report_a: the audit of model A (the reference).
        report_b: the audit of model B.
        names: display names of A and B.
        metadata: extra facts recorded in the result's metadata.
        group_sizes: ``{grouping: {group: samples}}`` of the audited set, when known: then a
            metric whose counted samples depend on the embeddings (homophily) is paired when
            every sample counts in both audits.

    Returns:
        A :class:`Comparison` of every metric both audits measured.

    Raises:
        UserError: the audits differ in seed, bootstrap or sample count.
    """
    if len(names) != 2 or names[0] == names[1] or not all(str(n).strip() for n in names):
        raise UserError(f"names must be two different non-empty names, got {names!r}")
    names = (str(names[0]), str(names[1]))
    ma, mb = report_a.metadata, report_b.metadata
    for key, flag in (("seed", "--seed"), ("bootstrap", "--bootstrap"), ("n", "samples")):
        if ma.get(key) != mb.get(key):
            raise UserError(
                f"the audits differ in {key} ({ma.get(key)} vs {mb.get(key)}): a paired "
                f"comparison needs both audited on the same samples with the same {flag}"
                if key != "n"
                else f"audit A has {ma.get(key)} samples, audit B {mb.get(key)}: a paired "
                "comparison needs both audited on the same samples"
            )
    level = float(ma.get("level") or 0.95)
    metrics: dict[str, MetricComparison] = {}
    for name, m in report_a.metrics.items():
        if name in report_b.metrics:
            metrics[name] = compare_metric(m, report_b.metrics[name], level, group_sizes)
    meta = {
        "n": ma.get("n"),
        "bootstrap": ma.get("bootstrap"),
        "seed": ma.get("seed"),
        "level": level,
        "attributes": ma.get("attributes"),
        "groupings": ma.get("groupings"),
        "sources": {"a": ma.get("source"), "b": mb.get("source")},
        "unit": "samples: each replicate resamples the rows of every group with replacement "
        "(stratified within the groups of each attribute), the same rows for both models",
        "gap": "max - min over the groups both audits compare (min_group_size and above)",
        "only_in_a": [n for n in report_a.metrics if n not in report_b.metrics],
        "only_in_b": [n for n in report_b.metrics if n not in report_a.metrics],
        "unpaired": {n: m.unpaired_reason for n, m in metrics.items() if m.unpaired_reason},
        **(metadata or {}),
    }
    from fairmetric import __version__

    meta["fairmetric_version"] = __version__
    return Comparison(
        names=names, metrics=metrics, metadata=meta, report_a=report_a, report_b=report_b
    )
