"""Aggregation of cells over seeds: per method (or ρ), the mean and spread of every column, and
the paired change against the same-seed baseline with its t interval.

A fairness claim is a paired, multi-seed measurement: for each seed s the method's value x_s and
the baseline's y_s come from runs that share the seed (data order, initialisation), so the
seed-to-seed noise they share cancels in d_s = x_s − y_s. Over the n seeds where both ran,

    mean = d̄ = (1/n) Σ d_s,   sd = √(Σ (d_s − d̄)² / (n − 1)),
    interval = d̄ ± t_{n−1, (1+level)/2} · sd / √n,

the Student t interval of the mean paired difference (the one ``scipy.stats.ttest_rel`` gives).
It excludes zero exactly when the two-sided paired t-test rejects "no change" at 1 − level.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "LEVEL", "aggregate", "paired_changes", "paired_interval"]

#: table columns: key in cell.json → header
COLUMNS: dict[str, str] = {
    "recall@1": "Recall@1",
    "worst_recall@1": "worst-group Recall@1",
    "recall@1_gap": "Recall@1 gap",
    "alignment_gap": "alignment gap",
    "uniformity_gap": "uniformity gap",
    "leakage": "attribute leakage",
    "max_mean_resultant_length": "max group mean resultant length",
    "min_effective_rank": "min group effective rank",
    "downstream_accuracy": "downstream accuracy",
    "downstream_gap": "downstream accuracy gap",
}

#: the confidence level of the paired intervals
LEVEL = 0.95


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


def paired_interval(differences: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """The mean of paired ``differences`` with its Student t interval (see the module docstring).

    Returns ``{mean, low, high, n, excludes_zero, differences}``; with one difference the
    interval is undefined (``low``, ``high`` and ``excludes_zero`` are None), with none the mean
    is too.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = [float(x) for x in differences]
    n = len(d)
    out: dict[str, Any] = {
        "mean": statistics.mean(d) if d else None,
        "low": None,
        "high": None,
        "n": n,
        "excludes_zero": None,
        "differences": d,
    }
    if n < 2:
        return out
    from scipy.stats import t

    half = float(t.ppf((1.0 + level) / 2.0, n - 1)) * statistics.stdev(d) / math.sqrt(n)
    low, high = out["mean"] - half, out["mean"] + half
    out.update(low=low, high=high, excludes_zero=bool(low > 0.0 or high < 0.0))
    return out


def _relative(change: Mapping[str, Any], base_values: Sequence[float]) -> dict[str, Any]:
    """The change as a share of the baseline's mean over the same seeds: ``relative``,
    ``relative_low`` and ``relative_high`` (the interval's ends divided by that mean, which
    treats the baseline's mean as known), all None when that mean is 0 or absent."""
    base = statistics.mean(base_values) if base_values else 0.0
    out: dict[str, Any] = {"baseline_mean": base if base_values else None}
    for key, src in (("relative", "mean"), ("relative_low", "low"), ("relative_high", "high")):
        value = change.get(src)
        out[key] = None if value is None or base == 0.0 else value / base
    if out["relative_low"] is not None and base < 0:  # dividing by a negative flips the ends
        out["relative_low"], out["relative_high"] = out["relative_high"], out["relative_low"]
    return out


def paired_changes(
    cells: Sequence[Mapping[str, Any]],
    baseline: Sequence[Mapping[str, Any]],
    key: str = "method",
    level: float = LEVEL,
) -> dict[str, Any]:
    """Per ``key`` value, the change of every column against the same-seed ``baseline`` cell.

    Rows ``{name: {status, seeds, <column>: paired_interval(...)}}`` in order of first
    appearance, for every name except the baseline's own; ``seeds`` are those where the cell and
    the baseline cell both ran, and a column pairs only the seeds where both have a value.
    """
    base = {c["seed"]: c for c in baseline if c.get("status") == "ok"}
    base_names = {str(c[key]) for c in baseline if key in c}
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for c in cells:
        if str(c[key]) not in base_names:
            grouped.setdefault(str(c[key]), []).append(c)
    rows: dict[str, Any] = {}
    for name, members in grouped.items():
        pairs = [
            (c, base[c["seed"]]) for c in members if c.get("status") == "ok" and c["seed"] in base
        ]
        row: dict[str, Any] = {
            "status": "ok" if pairs else "skipped",
            "seeds": [c["seed"] for c, _ in pairs],
        }
        for col in COLUMNS:
            diffs = [
                float(c[col]) - float(b[col])
                for c, b in pairs
                if c.get(col) is not None and b.get(col) is not None
            ]
            row[col] = paired_interval(diffs, level)
            base_values = [
                float(b[col]) for c, b in pairs if c.get(col) is not None and b.get(col) is not None
            ]
            row[col].update(_relative(row[col], base_values))
        rows[name] = row
    return rows
