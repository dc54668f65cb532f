"""Audit metrics as plug-ins: the registry's order is the report's, and a new metric is one class.

The plug-in below is the example of docs/extend.md, "Adding an audit metric": Precision@k with tie-averaged
credit, fed by the audit's one neighbour search, checked against the enumeration reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit import audit
from fairmetric.audit.metrics import (
    AUDIT_METRICS,
    AuditContext,
    AuditMetric,
    Job,
    register_audit_metric,
)
from fairmetric.neighbors import ties
from fairmetric.neighbors.search import Neighbours
from tests.audit.test_tie_paths import FAST, HK, LK, embedding_set, tie_rows
from tests.neighbors import reference as ref

BUILT_IN = [
    "recall",
    "map_at_r",
    "alignment",
    "uniformity",
    "spread",
    "homophily",
    "leakage_knn",
    "leakage_linear",
]


class PrecisionAtK(AuditMetric):
    """Share of the k nearest neighbours in the query's class (k = 3), tie-averaged."""

    k = 3

    def k_needed(self, ctx: AuditContext) -> int:
        return self.k

    def update(self, ctx: AuditContext, nb: Neighbours) -> None:
        if "precision" not in ctx.cache:
            ctx.cache["precision"] = np.zeros(ctx.n)
        same = (ctx.labels[np.maximum(nb.ids, 0)] == ctx.labels[nb.rows][:, None]) & nb.present
        hits = ties.expected_count(same, nb.start, nb.end, self.k)
        ctx.cache["precision"][nb.rows] = hits / self.k

    def jobs(self, ctx: AuditContext) -> list[Job]:
        return [
            (
                f"precision@{self.k}",
                dict(
                    num=ctx.cache["precision"],
                    higher_is_better=True,
                    description=f"share of the {self.k} nearest neighbours in the query's class",
                ),
            )
        ]


@pytest.fixture(params=[3, 1])
def plugged(request):
    cls = type(f"PrecisionAt{request.param}", (PrecisionAtK,), {"k": request.param})
    register_audit_metric("precision_at_k")(cls)
    yield cls
    AUDIT_METRICS.unregister("precision_at_k")


def test_built_in_metrics_are_registered_in_report_order():
    assert AUDIT_METRICS.names() == BUILT_IN


def test_a_plugged_in_metric_is_computed_from_the_shared_search(plugged):
    x, labels, colour = tie_rows()
    k = plugged.k
    report = audit(embedding_set(x, labels, colour), ks=(1,), homophily_k=HK, leakage_k=LK, **FAST)
    names = list(report.metrics)
    # after the whole-set built-ins, before the per-attribute ones
    assert names.index(f"precision@{k}") == names.index("effective_rank") + 1
    expected = [
        ref.expected_counts(
            x, i, "cosine", k, [lambda r, i=i: sum(1 for j in r if labels[j] == labels[i])]
        )[0]
        / k
        for i in range(len(x))
    ]
    if k == 1:
        assert any(0 < e < 1 for e in expected)  # the tie rule decides somewhere
    m = report[f"precision@{k}"]
    assert m.overall.value == pytest.approx(np.mean(expected), abs=1e-12)
    for g, name in ((0, "light"), (1, "dark")):
        want = np.mean([e for e, c in zip(expected, colour) if c == g])
        assert m.by_group["colour"][name].value == pytest.approx(want, abs=1e-12)


def test_unplugging_restores_the_report(plugged):
    data = embedding_set(*tie_rows())
    with_it = audit(data, ks=(1,), homophily_k=HK, leakage_k=LK, **FAST)
    AUDIT_METRICS.unregister("precision_at_k")
    try:
        without = audit(data, ks=(1,), homophily_k=HK, leakage_k=LK, **FAST)
    finally:
        register_audit_metric("precision_at_k")(plugged)
    assert list(without.metrics) == [n for n in with_it.metrics if not n.startswith("precision@")]
    for name, m in without.metrics.items():
        assert m.overall.value == with_it[name].overall.value


def test_registering_something_else_is_an_error():
    with pytest.raises(ValueError, match="must subclass AuditMetric"):
        register_audit_metric("nope")(object)
    with pytest.raises(ValueError, match="already registered"):
        register_audit_metric("recall")(PrecisionAtK)
