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

    def to_pandas(self) -> Any:
        """The estimates as a tidy ``pandas.DataFrame``, one row per value.

        Columns: ``metric``, ``attribute``, ``group``, ``value``, ``ci_low``, ``ci_high``,
        ``count``. Each metric has first its overall row, with ``attribute`` and ``group``
        missing (``None``/NaN: never a group name, so a group called "overall" stays
        distinct), then one row per attribute (and intersection) and group. An undefined value
        is NaN, as are the interval bounds without bootstrap. ``df[df.attribute.isna()]`` are
        the overall rows;
        ``df.pivot(index="group", columns="metric", values="value")`` one attribute's table.

        Raises:
            ImportError: pandas is not installed (with the command that installs it).
        """
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("AuditReport.to_pandas() needs pandas: pip install pandas") from e
        columns = ["metric", "attribute", "group", "value", "ci_low", "ci_high", "count"]
        rows = []
        for name, m in self.metrics.items():
            o = m.overall
            rows.append([name, None, None, o.value, o.ci_low, o.ci_high, o.count])
            for a, groups in m.by_group.items():
                for g, e in groups.items():
                    rows.append([name, a, g, e.value, e.ci_low, e.ci_high, e.count])
        frame = pd.DataFrame(rows, columns=columns)
        for c in ("value", "ci_low", "ci_high"):  # None -> NaN: numeric columns stay numeric
            frame[c] = pd.to_numeric(frame[c]).astype("float64")
        frame["count"] = frame["count"].astype("int64")
        return frame

    def summary(self) -> str:
        """The plain-text summary ``fairmetric audit`` prints (metric × attribute: overall,
        worst group, gap with its interval)."""
        from fairmetric.report.writers import render_summary

        return render_summary(self)

    def _repr_html_(self) -> str:
        """A compact HTML table for Jupyter: metric, overall, worst group, gap [interval]."""
        import html

        from fairmetric.report.writers import _summary_rows

        def e(text: Any) -> str:
            return html.escape(str(text), quote=True)

        meta = self.metadata
        n = meta.get("n", meta.get("n_test"))
        head = (
            f"<p><b>fairmetric report</b>: {e(meta.get('source') or 'embeddings')}, "
            f"{e(n)} samples, bootstrap {e(meta.get('bootstrap'))}; "
            "<code>.to_pandas()</code> for every estimate, <code>.summary()</code> as text</p>"
        )
        header = ["metric", "better", "attribute", "overall", "worst group", "gap (max − min) [CI]"]
        keys = ["metric", "better", "attribute", "overall", "worst", "difference"]
        body = "".join(
            "<tr>" + "".join(f"<td>{e(r[k])}</td>" for k in keys) + "</tr>"
            for r in _summary_rows(self)
        )
        return (
            f"<div>{head}<table><thead><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in header)
            + f"</tr></thead><tbody>{body}</tbody></table></div>"
        )

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict` (written to ``path`` when given). NaN never appears."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            from fairmetric.utils import atomic_write_bytes

            atomic_write_bytes(path, text.encode())
        return text
