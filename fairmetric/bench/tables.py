"""The bench's tables: one row per method (or ρ), written as Markdown, JSON and a PNG figure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairmetric.bench.measure import write_json
from fairmetric.bench.plots import plot_points
from fairmetric.bench.stats import COLUMNS, LEVEL

__all__ = ["markdown_paired", "markdown_table", "write_table"]


def _fmt(stat: Mapping[str, Any]) -> str:
    if stat["mean"] is None:
        return "n/a"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def markdown_table(title: str, rows: Mapping[str, Any], first: str, note: str) -> str:
    """:func:`~fairmetric.bench.stats.aggregate` rows as a Markdown table (mean ± std), headed by
    ``title`` and ``note``; ``first`` names the first column; skipped rows list their reason."""
    lines = [f"# {title}", "", note, ""]
    lines.append(f"| {first} | seeds | " + " | ".join(COLUMNS.values()) + " |")
    lines.append("|---|---:|" + "---:|" * len(COLUMNS))
    skipped = []
    for name, row in rows.items():
        if row["status"] != "ok":
            skipped.append(f"- **{name}**: skipped: {row['reason']}")
            lines.append(f"| {name} | 0 | " + " | ".join("skipped" for _ in COLUMNS) + " |")
            continue
        cells = " | ".join(_fmt(row[c]) for c in COLUMNS)
        lines.append(f"| {name} | {len(row['seeds'])} | {cells} |")
    if skipped:
        lines += ["", *skipped]
    return "\n".join(lines) + "\n"


#: columns whose paired change is also shown as a share of the baseline's value
RELATIVE = ("recall@1_gap", "downstream_gap")


def _fmt_change(stat: Mapping[str, Any], relative: bool = False) -> str:
    if stat["mean"] is None:
        return "n/a"
    if stat["low"] is None:
        return f"{stat['mean']:+.3f} (1 seed)"
    star = " *" if stat["excludes_zero"] else ""
    text = f"{stat['mean']:+.3f} [{stat['low']:+.3f}, {stat['high']:+.3f}]{star}"
    if relative and stat.get("relative") is not None:
        text += f" ({stat['relative']:+.0%})"
    return text


def markdown_paired(paired: Mapping[str, Any], first: str, baseline: str) -> str:
    """:func:`~fairmetric.bench.stats.paired_changes` rows as a Markdown section: per row and
    column, the mean change against the same-seed ``baseline`` with its t interval."""
    lines = [
        f"## Change against the same-seed {baseline}",
        "",
        f"Mean of ({first} − {baseline}) over the seeds where both ran, with its "
        f"{LEVEL:.0%} t interval on the paired differences; * where the interval excludes 0; "
        "the gaps' change also as a share of the baseline's gap (in brackets).",
        "",
        f"| {first} | pairs | " + " | ".join(COLUMNS.values()) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for name, row in paired.items():
        cells = " | ".join(_fmt_change(row[c], c in RELATIVE) for c in COLUMNS)
        lines.append(f"| {name} | {len(row['seeds'])} | {cells} |")
    return "\n".join(lines) + "\n"


def write_table(
    folder: Path,
    stem: str,
    title: str,
    rows: dict[str, Any],
    meta: dict[str, Any],
    first: str,
    paired: dict[str, Any] | None = None,
    baseline: str = "baseline",
) -> dict[str, Path]:
    """Write ``folder/stem.{md,json,png}`` for ``rows`` (and, when given, the ``paired`` changes
    against ``baseline``); returns the three paths."""
    folder.mkdir(parents=True, exist_ok=True)
    note = (
        f"Sensitive attribute `{meta['attribute']}`; mean ± standard deviation over seeds "
        f"{meta['seeds']}. Gaps are max − min over the attribute's groups on the test split "
        "(unseen classes); leakage is the balanced accuracy of a linear probe predicting the "
        "attribute from the embedding; the downstream probe is trained on attribute-balanced data."
    )
    paths = {
        "md": folder / f"{stem}.md",
        "json": folder / f"{stem}.json",
        "png": folder / f"{stem}.png",
    }
    md = markdown_table(title, rows, first, note)
    if paired:
        md += "\n" + markdown_paired(paired, first, baseline)
    paths["md"].write_text(md)
    changes = None if paired is None else {"baseline": baseline, "level": LEVEL, "rows": paired}
    write_json(paths["json"], {**meta, "columns": COLUMNS, "rows": rows, "paired": changes})
    plot_points(paths["png"], rows, title, line=stem == "rho_sweep")
    return paths
