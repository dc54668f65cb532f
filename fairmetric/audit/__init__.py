"""Embedding fairness audits: per-subgroup metrics with uncertainty, as JSON, Markdown and HTML.

``fairmetric.audit(embedding_set, ...)`` (or ``fairmetric.audit.audit``) returns an
:class:`~fairmetric.report.AuditReport`; :func:`fairmetric.report.write_report` writes
``report.json``, ``report.md`` and ``report.html``. The audit measures only: it imports the
embeddings, the neighbour search and the report layer, never training (``fairmetric.sources``
turns files, run folders and models into an ``EmbeddingSet``). Its metrics are plug-ins
registered in :data:`AUDIT_METRICS` (:mod:`fairmetric.audit.metrics`, docs/extend.md, "Adding an audit metric").
"""

import sys
import types

from fairmetric.audit.audit import audit, build_groupings
from fairmetric.audit.metrics import (
    AUDIT_METRICS,
    AuditContext,
    AuditMetric,
    register_audit_metric,
)
from fairmetric.neighbors.index import NeighborIndex, knn_bruteforce
from fairmetric.report.frame import Estimate, Grouping, GroupMetric, group_metric_from_samples
from fairmetric.report.gate import check_conditions, parse_condition
from fairmetric.report.result import AuditReport

__all__ = [
    "AUDIT_METRICS",
    "AuditContext",
    "AuditMetric",
    "AuditReport",
    "Estimate",
    "GroupMetric",
    "Grouping",
    "NeighborIndex",
    "audit",
    "build_groupings",
    "check_conditions",
    "group_metric_from_samples",
    "knn_bruteforce",
    "parse_condition",
    "register_audit_metric",
]


class _CallableModule(types.ModuleType):
    """Lets ``fairmetric.audit(...)`` call :func:`audit` while staying the subpackage."""

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
