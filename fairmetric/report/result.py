"""``AuditReport``: everything an audit measured, for people (Markdown, HTML) and machines (JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.report.frame import GroupMetric

__all__ = ["AuditReport", "SCHEMA_VERSION"]

#: version of the ``report.json`` layout (docs/report_schema.md); bumped on incompatible changes
SCHEMA_VERSION = 1


@dataclass
class AuditReport:
    """The result of :func:`fairmetric.audit.audit`.

    Attributes:
        metrics: ``{metric name: GroupMetric}`` in report order (``recall@1``, ``map@r``, ...).
        metadata: JSON-serialisable facts about the run: ``n``, ``dim``, ``k``, ``index``,
            ``metric``, ``seed``, ``bootstrap``, ``level``, ``fairmetric_version``, ``source``,
            ``attributes``, ``groupings``, ... (docs/report_schema.md lists them all).
        projection: for the 2-D plot: ``{"xy": (M, 2) float array, "attributes": {attribute:
            (M,) value names}}`` for a seeded sample of at most a few thousand points, or None.
        homophily: per-query neighbourhood homophily for the distribution plot:
            ``{attribute: {group name: (n_g,) float array}}``, or None.
        verification: a verification audit's pair scores for its plots (per attribute and
            group, genuine and same-group impostor scores; the global thresholds), or None.
    """

    metrics: dict[str, GroupMetric]
    metadata: dict[str, Any]
    projection: dict[str, Any] | None = None
    homophily: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)
    verification: dict[str, Any] | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> GroupMetric:
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}; this report has: {', '.join(self.metrics)}")
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        """The ``report.json`` document."""
        return {
            "schema_version": SCHEMA_VERSION,
            "metadata": self.metadata,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict` (written to ``path`` when given). NaN never appears."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            from fairmetric.utils import atomic_write_bytes

            atomic_write_bytes(path, text.encode())
        return text
