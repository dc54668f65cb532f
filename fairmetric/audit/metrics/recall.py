"""Recall@k (METHODS.md §1): the share of queries whose ``k`` nearest neighbours include their
class, with tie-averaged credit (:func:`~fairmetric.neighbors.ties.hit_probability`)."""

from __future__ import annotations

import numpy as np

from fairmetric.audit.metrics.base import (
    LONE,
    AuditContext,
    AuditMetric,
    Job,
    register_audit_metric,
)

__all__ = ["RecallMetric"]


@register_audit_metric("recall")
class RecallMetric(AuditMetric):
    """``recall@k`` for every ``k`` of ``ks``; queries alone in their class are not counted."""

    def k_needed(self, ctx: AuditContext) -> int:
        return max(ctx.settings["ks"])

    def jobs(self, ctx: AuditContext) -> list[Job]:
        return [
            (
                f"recall@{k}",
                dict(
                    num=ctx.stats.hits[k].astype(np.float64),
                    valid=ctx.stats.valid,
                    higher_is_better=True,
                    na_reason=LONE,
                    description=f"share of queries whose {k} nearest neighbours include their "
                    "class",
                ),
            )
            for k in ctx.settings["ks"]
        ]
