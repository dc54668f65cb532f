"""Aggregation of cells over seeds: per method (or ρ), the mean and spread of every column."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "aggregate"]

#: table columns: key in cell.json → header
COLUMNS: dict[str, str] = {
    "recall@1": "Recall@1",
    "worst_recall@1": "worst-group Recall@1",
    "recall@1_gap": "Recall@1 gap",
    "alignment_gap": "alignment gap",
    "uniformity_gap": "uniformity gap",
    "leakage": "attribute leakage",
    "downstream_accuracy": "downstream accuracy",
    "downstream_gap": "downstream accuracy gap",
}


def _mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.mean(vals), "std": std, "n": len(vals), "values": vals}


def aggregate(cells: Sequence[Mapping[str, Any]], key: str = "method") -> dict[str, Any]:
    """Rows ``{key value: {status, seeds, reason, <column>: {mean, std, n, values}}}`` in order of
    first appearance; ``std`` is the sample standard deviation over seeds (0 for one seed)."""
    rows: dict[str, Any] = {}
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for c in cells:
        grouped.setdefault(str(c[key]), []).append(c)
    for name, members in grouped.items():
        ok = [c for c in members if c.get("status") == "ok"]
        skipped = [c for c in members if c.get("status") != "ok"]
        row: dict[str, Any] = {
            "status": "ok" if ok else "skipped",
            "seeds": [c["seed"] for c in ok],
            "reason": skipped[0].get("reason") if skipped else None,
        }
        for col in COLUMNS:
            row[col] = _mean_std([c.get(col) for c in ok])
        rows[name] = row
    return rows
