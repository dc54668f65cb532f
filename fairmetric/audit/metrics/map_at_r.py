"""MAP@R (METHODS.md §1, PML's ``mean_average_precision_at_r``), with the exact expected average
precision under random tie order (:func:`~fairmetric.neighbors.ties.expected_average_precision`)."""

from __future__ import annotations

from fairmetric.audit.metrics.base import (
    LONE,
    AuditContext,
    AuditMetric,
    Job,
    register_audit_metric,
)

__all__ = ["MapAtRMetric"]


@register_audit_metric("map_at_r")
class MapAtRMetric(AuditMetric):
    """``map@r`` over the first ``map_k`` neighbours (ranks beyond count as misses)."""

    def k_needed(self, ctx: AuditContext) -> int:
        return int(ctx.settings["map_k"])

    def jobs(self, ctx: AuditContext) -> list[Job]:
        return [
            (
                "map@r",
                dict(
                    num=ctx.stats.ap,
                    valid=ctx.stats.valid,
                    higher_is_better=True,
                    na_reason=LONE,
                    description="mean average precision at R (PML's MAP@R, ranks up to "
                    f"{ctx.k_search})",
                ),
            )
        ]
