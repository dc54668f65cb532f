"""Group-metric results and how they are written: the metric frame, the report, writers, plots.

Layer 3 of the package (see ``tests/test_layers.py``): it knows nothing of how embeddings are
measured or trained. :class:`GroupMetric` holds one metric overall, per group and its gaps with
bootstrap intervals; :class:`AuditReport` holds the metrics of one audit or downstream evaluation
and knows no writer; :func:`write_report` writes ``report.json``, ``report.md`` and
``report.html``; :func:`check_conditions` evaluates ``--fail-if`` gates.
"""

from fairmetric.report.frame import Estimate, Grouping, GroupMetric, group_metric_from_samples
from fairmetric.report.gate import check_conditions, parse_condition
from fairmetric.report.result import SCHEMA_VERSION, AuditReport
from fairmetric.report.writers import render_html, render_markdown, render_summary, write_report

__all__ = [
    "SCHEMA_VERSION",
    "AuditReport",
    "Estimate",
    "GroupMetric",
    "Grouping",
    "check_conditions",
    "group_metric_from_samples",
    "parse_condition",
    "render_html",
    "render_markdown",
    "render_summary",
    "write_report",
]
