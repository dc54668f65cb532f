"""``--fail-if`` conditions: turn an audit into a gate for CI pipelines.

A condition is ``METRIC.STAT[.ATTRIBUTE] OP NUMBER``, e.g. ``recall@1.difference>0.05`` or
``map@r.worst.colour<0.3``. ``STAT`` is one of ``overall``, ``difference`` (max - min over
groups), ``ratio`` (min / max), ``worst`` (the worst group's value), ``min`` or ``max``, or a
disparity summary the metric carries (a verification audit's ``fmr@1e-3.max_geomean``,
``.gini``, ``.garbe``, ...). Without an
attribute, a per-attribute statistic is checked for every attribute. A condition that holds is a
*violation*; a value that is NA counts as a violation too, so a gate never passes on missing data.
Groups with fewer than the metric's ``min_group_size`` samples take no part in any statistic but
``overall`` (see :class:`~fairmetric.report.frame.GroupMetric`): one tiny group cannot trip a
gate, and when too few groups are left to compare, the NA message says so.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from fairmetric.report.frame import GroupMetric
from fairmetric.report.result import AuditReport

__all__ = ["Condition", "SUMMARY_STATS", "STATS", "check_conditions", "parse_condition"]

_OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
STATS = ("overall", "difference", "ratio", "worst", "min", "max")
#: disparity summaries a metric may carry (a verification audit's FMR / FNMR; the names of
#: fairmetric.audit.verification.summaries)
SUMMARY_STATS = ("max_over_min", "max_geomean", "gini", "garbe", "fdr", "ir")
_PATTERN = re.compile(
    r"^\s*(?P<metric>[^\s.]+)\.(?P<stat>"
    + "|".join((*STATS, *SUMMARY_STATS))
    + r")(?:\.(?P<attribute>[^\s<>=!]+))?"
    r"\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Condition:
    """One parsed ``--fail-if`` condition."""

    text: str
    metric: str
    stat: str
    attribute: str | None
    op: str
    threshold: float


def parse_condition(text: str) -> Condition:
    """Parse ``METRIC.STAT[.ATTRIBUTE] OP NUMBER``; a clear error says what is wrong."""
    m = _PATTERN.match(text)
    if not m:
        raise ValueError(
            f"cannot parse --fail-if {text!r}: expected METRIC.STAT[.ATTRIBUTE] OP NUMBER with "
            f"STAT one of {', '.join(STATS)} (or, for a verification audit's fmr@/fnmr@ "
            f"metrics, one of {', '.join(SUMMARY_STATS)}) and OP one of {', '.join(_OPS)}, e.g. "
            "'recall@1.difference>0.05'"
        )
    return Condition(
        text=text.strip(),
        metric=m["metric"],
        stat=m["stat"],
        attribute=m["attribute"],
        op=m["op"],
        threshold=float(m["value"]),
    )


def _why_na(metric: GroupMetric, attribute: str) -> str:
    """Why a gap is NA when small groups were kept out of it ("" otherwise)."""
    if attribute not in metric.by_group:
        return ""
    excluded = metric.excluded(attribute)
    if not excluded:
        return ""
    listed = ", ".join(f"{g} ({metric.by_group[attribute][g].count})" for g in excluded)
    return (
        f" (groups with fewer than min_group_size={metric.min_group_size} samples are kept out "
        f"of the gaps: {listed}; lower --min-group-size / min_group_size to compare them)"
    )


def check_conditions(report: AuditReport, conditions: list[str]) -> list[str]:
    """Evaluate conditions on a report; returns one message per violation (empty: all pass).

    Raises:
        ValueError: a condition that cannot be parsed, or names an unknown metric or attribute.
    """
    violations = []
    for text in conditions:
        c = parse_condition(text)
        if c.metric not in report.metrics:
            raise ValueError(
                f"--fail-if {c.text!r}: unknown metric {c.metric!r}; the report has: "
                f"{', '.join(report.metrics)}"
            )
        metric = report.metrics[c.metric]
        compare = _OPS[c.op]
        summaries = getattr(metric, "summaries", None) or {}
        if c.stat not in STATS and c.stat not in summaries:
            raise ValueError(
                f"--fail-if {c.text!r}: unknown statistic {c.stat!r} for {c.metric}; valid: "
                + ", ".join([*STATS, *summaries])
            )
        if c.stat in summaries:
            attrs = [c.attribute] if c.attribute else metric.attributes
            for a in attrs:
                if a not in summaries[c.stat]:
                    raise ValueError(
                        f"--fail-if {c.text!r}: {c.metric} has no attribute {a!r}; it has: "
                        + ", ".join(summaries[c.stat])
                    )
            checks = [(a, summaries[c.stat][a].value) for a in attrs]
        elif c.stat == "overall":
            if c.attribute is not None:
                raise ValueError(
                    f"--fail-if {c.text!r}: 'overall' takes no attribute (it covers every "
                    f"sample); use e.g. {c.metric}.worst.{c.attribute} or "
                    f"{c.metric}.min.{c.attribute}"
                )
            checks = [("overall", metric.overall.value)]
        else:
            if not metric.attributes:
                violations.append(f"{c.text}: {c.metric} has no groups, so {c.stat} is NA")
                continue
            attrs = [c.attribute] if c.attribute else metric.attributes
            checks = []
            for a in attrs:
                if c.stat == "difference":
                    value = metric.difference(a)
                elif c.stat == "ratio":
                    value = metric.ratio(a)
                elif c.stat == "worst":
                    w = metric.worst_group(a)
                    value = None if w is None else w[1]
                elif c.stat == "min":
                    value = metric.group_min(a)
                else:
                    value = metric.group_max(a)
                checks.append((a, value))
        for where, value in checks:
            if value is None:
                violations.append(
                    f"{c.text}: {c.metric} {c.stat} for {where} is NA" + _why_na(metric, where)
                )
            elif compare(value, c.threshold):
                violations.append(
                    f"{c.text}: {c.metric} {c.stat} for {where} is {value:.4f} "
                    f"({c.op} {c.threshold:g})"
                )
    return violations
