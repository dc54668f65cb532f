"""Embedding fairness audits: per-subgroup metrics with uncertainty, as JSON, Markdown and HTML.

``fairmetric.audit(embedding_set, ...)`` (or ``fairmetric.audit.audit``) returns an
:class:`AuditReport`; ``report.save(folder)`` writes ``report.json``, ``report.md`` and
``report.html``.
"""

import sys
import types

from fairmetric.audit.audit import audit, build_groupings
from fairmetric.audit.frame import Estimate, Grouping, GroupMetric, group_metric_from_samples
from fairmetric.audit.gate import check_conditions, parse_condition
from fairmetric.audit.knn import NeighborIndex, knn_bruteforce
from fairmetric.audit.result import AuditReport
from fairmetric.audit.sources import load_source

__all__ = [
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
    "load_source",
    "parse_condition",
]


class _CallableModule(types.ModuleType):
    """Lets ``fairmetric.audit(...)`` call :func:`audit` while staying the subpackage."""

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
