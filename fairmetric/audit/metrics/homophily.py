"""Neighbourhood homophily (METHODS.md §1): among a query's different-class neighbours, the
share with its value of the attribute, over that value's base rate (1: the attribute does not
structure the space); ties: the ratio of expected counts."""

from __future__ import annotations

import numpy as np

from fairmetric.audit.metrics.base import AuditContext, AuditMetric, Job, register_audit_metric
from fairmetric.report.frame import Grouping

__all__ = ["HomophilyMetric"]


@register_audit_metric("homophily")
class HomophilyMetric(AuditMetric):
    """``homophily:<a>`` over the first ``homophily_k`` neighbours."""

    def k_needed(self, ctx: AuditContext) -> int:
        return int(ctx.settings["homophily_k"])

    def attribute_jobs(self, ctx: AuditContext, grouping: Grouping) -> list[Job]:
        a = grouping.name
        h = ctx.stats.homophily[a]
        hk = ctx.settings["homophily_k"]
        return [
            (
                f"homophily:{a}",
                dict(
                    num=np.nan_to_num(h),
                    valid=~np.isnan(h),
                    groupings=[grouping],
                    higher_is_better=False,
                    na_reason="no query of this group has a different-class neighbour",
                    description=f"share of different-class neighbours (of {hk}) with the "
                    f"query's {a}, over its base rate (1: {a} does not structure the space)",
                ),
            )
        ]
