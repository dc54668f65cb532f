"""The audit's metrics, one module per family, registered in :data:`AUDIT_METRICS`.

Registration order is report order: ``recall@k``, ``map@r``, the alignments, ``uniformity``,
the spread (``mean_resultant_length``, ``effective_rank``), then per attribute ``homophily``, ``leakage_knn``, ``leakage_linear``. The per-sample functions
(:func:`alignment_contributions`, :func:`uniformity_contributions`, ...) and
:class:`NeighbourStats` are importable from here as before.
"""

# ruff: noqa: I001  (import order is registration order, which is report order)
from fairmetric.audit.metrics.base import (
    AUDIT_METRICS,
    AuditContext,
    AuditMetric,
    Job,
    register_audit_metric,
)
from fairmetric.audit.metrics.neighbour_stats import NeighbourStats
from fairmetric.audit.metrics.recall import RecallMetric
from fairmetric.audit.metrics.map_at_r import MapAtRMetric
from fairmetric.audit.metrics.alignment import (
    AlignmentMetric,
    alignment_by_grouping,
    alignment_contributions,
)
from fairmetric.audit.metrics.uniformity import (
    UniformityMetric,
    uniformity_by_grouping,
    uniformity_contributions,
)
from fairmetric.audit.metrics.spread import SpreadMetric, SpreadStatistic, group_spread
from fairmetric.audit.metrics.homophily import HomophilyMetric
from fairmetric.audit.metrics.leakage import (
    KNNLeakageMetric,
    LinearLeakageMetric,
    linear_probe_predictions,
    linear_probes,
)

__all__ = [
    "AUDIT_METRICS",
    "AlignmentMetric",
    "AuditContext",
    "AuditMetric",
    "HomophilyMetric",
    "Job",
    "KNNLeakageMetric",
    "LinearLeakageMetric",
    "MapAtRMetric",
    "NeighbourStats",
    "RecallMetric",
    "SpreadMetric",
    "SpreadStatistic",
    "UniformityMetric",
    "alignment_by_grouping",
    "alignment_contributions",
    "group_spread",
    "linear_probe_predictions",
    "linear_probes",
    "register_audit_metric",
    "uniformity_by_grouping",
    "uniformity_contributions",
]
