"""The audit-metric plug-in protocol: :class:`AuditMetric`, its :class:`AuditContext` and the
:data:`AUDIT_METRICS` registry that :func:`~fairmetric.audit.audit` loops over.

An audit metric turns what the audit has measured into report entries. ``audit()``:

1. builds one :class:`AuditContext` (the embeddings, the searched vectors, labels, groupings, the
   audit's settings);
2. asks every registered metric how many neighbours it needs (:meth:`AuditMetric.k_needed`) and
   runs **one** neighbour search for the largest (:func:`~fairmetric.neighbors.search.
   iter_neighbours`), feeding every chunk to :attr:`AuditContext.stats` (the shared
   :class:`~fairmetric.audit.metrics.neighbour_stats.NeighbourStats`) and to each metric's
   :meth:`AuditMetric.update`;
3. collects :meth:`AuditMetric.jobs` of every metric in registration order, then, for each
   audited attribute in turn, :meth:`AuditMetric.attribute_jobs` of every metric; each job is a
   report key and the keyword arguments of
   :func:`~fairmetric.report.frame.group_metric_from_samples` (per-sample ``num`` / ``den`` /
   ``valid`` and the texts), so every metric gets the same per-group slicing, bootstrap and
   report rendering.

Adding a metric is one module that subclasses :class:`AuditMetric` and registers it::

    @register_audit_metric("my_metric")
    class MyMetric(AuditMetric): ...

imported before ``audit()`` runs (see docs/extend.md, "Adding an audit metric").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairmetric.embeddings import EmbeddingSet
from fairmetric.neighbors.search import Neighbours
from fairmetric.registry import Registry
from fairmetric.report.frame import Grouping

__all__ = ["AUDIT_METRICS", "AuditContext", "AuditMetric", "Job", "register_audit_metric"]

#: a report key and the keyword arguments of group_metric_from_samples for it
Job = tuple[str, dict[str, Any]]

#: every audit metric, in the order its entries appear in the report
AUDIT_METRICS: Registry[type[AuditMetric]] = Registry("audit metric")

#: the reason given for Recall@k and MAP@R in a group without a valid query
LONE = "no query of this group has another sample of its class"


@dataclass
class AuditContext:
    """What an audit metric may read (and, in :attr:`cache` / :attr:`metadata`, write).

    Attributes:
        data: the audited set (after dropping invalid rows).
        x: the ``(N, D)`` rows the neighbour search used: unit-norm under ``"cosine"``.
        labels: ``(N,)`` class codes.
        attributes: the audited attribute names.
        groupings: one grouping per attribute, then their intersection (if any).
        settings: the audit's arguments (``ks``, ``metric``, ``map_k``, ``homophily_k``,
            ``leakage_k``, ``linear_probe``, ``pair_partners``, ``uniformity_t``, ``seed``).
        stats: the shared neighbour statistics (set once the search has run).
        k_search: neighbours searched per query (set before the search).
        cache: scratch space shared by metrics (e.g. linear probes fitted once).
        metadata: entries metrics add to the report's metadata.
    """

    data: EmbeddingSet
    x: np.ndarray
    labels: np.ndarray
    attributes: list[str]
    groupings: list[Grouping]
    settings: dict[str, Any]
    stats: Any = None
    k_search: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.labels)

    def attribute_grouping(self, attribute: str) -> Grouping:
        return next(g for g in self.groupings if g.name == attribute)


class AuditMetric:
    """Base class of an audit metric: override what applies, the defaults do nothing.

    A metric is constructed with no arguments once per audit; the audit's settings are in the
    context.
    """

    #: the registered name (set by :func:`register_audit_metric`)
    name: str = ""

    def k_needed(self, ctx: AuditContext) -> int:
        """Neighbours per query this metric needs from the shared search (0: none)."""
        return 0

    def update(self, ctx: AuditContext, nb: Neighbours) -> None:
        """Consume one chunk of the neighbour search (float64 order, tie blocks)."""

    def jobs(self, ctx: AuditContext) -> list[Job]:
        """Report entries over all groupings (after the search)."""
        return []

    def attribute_jobs(self, ctx: AuditContext, grouping: Grouping) -> list[Job]:
        """Report entries for one audited attribute (called per attribute, after every
        metric's :meth:`jobs`)."""
        return []


def register_audit_metric(name: str, *, replace: bool = False):
    """Class decorator: register an :class:`AuditMetric` subclass under ``name``."""

    def add(cls: type[AuditMetric]) -> type[AuditMetric]:
        if not (isinstance(cls, type) and issubclass(cls, AuditMetric)):
            raise ValueError(f"an audit metric must subclass AuditMetric, got {cls!r}")
        AUDIT_METRICS.register(name, cls, replace=replace)
        cls.name = name
        return cls

    return add
