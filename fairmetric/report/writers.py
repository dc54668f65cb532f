"""Writers of an :class:`~fairmetric.report.result.AuditReport`: JSON, Markdown and HTML with plots.

``write_report`` writes the three files of an audit folder; ``render_markdown`` and
``render_html`` return the text. The HTML file is self-contained: inline CSS, plots embedded as
base64 PNG data URIs, no script, no external link, so it can be mailed or attached to a ticket.
Every string that comes from the user (source, attribute, group and metric names) is escaped.

Plots come from :mod:`fairmetric.report.plots`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from matplotlib.figure import Figure

from fairmetric.report.formatting import format_interval, format_number
from fairmetric.report.frame import Estimate, GroupMetric
from fairmetric.report.plots import (
    direction,
    figure_to_data_uri,
    plot_group_bars,
    plot_homophily,
    plot_projection,
)
from fairmetric.report.verification_section import verification_blocks
from fairmetric.utils import atomic_write_bytes

if TYPE_CHECKING:
    from fairmetric.report.result import AuditReport

__all__ = [
    "format_interval",
    "format_number",
    "render_html",
    "render_markdown",
    "render_summary",
    "write_report",
]

#: file names inside an audit folder, by kind
FILE_NAMES = {"json": "report.json", "markdown": "report.md", "html": "report.html"}

#: metadata rows shown first, in this order, with their labels; other keys follow under their own
_METADATA_LABELS = {
    "source": "source",
    "n": "samples (N)",
    "dim": "dimension (D)",
    "classes": "classes",
    "metric": "distance",
    "index": "neighbour index",
    "index_choice": "why this index",
    "index_description": "index details",
    "index_params": "index parameters",
    "k": "k",
    "k_search": "neighbours searched",
    "seed": "seed",
    "bootstrap": "bootstrap replicates",
    "attributes": "attributes",
    "groupings": "groupings",
    "homophily_k": "homophily k",
    "leakage_k": "leakage k",
    "leakage_chance": "leakage chance level",
    "pair_partners": "pair partners per sample",
    "uniformity_t": "uniformity t",
    "dropped_invalid": "dropped invalid rows",
    "min_group_size": "min group size (for gaps)",
    "small_groups": "groups below it",
    "fairmetric_version": "fairmetric version",
    "seconds": "seconds",
}

_DASH = "—"

#: marks a group kept out of the gaps in the per-group tables
_NOT_COMPARED = "below min_group_size: not in the gaps"


# ----------------------------------------------------------------------------- formatting


def _format_meta(value: Any) -> str:
    """A metadata value as one line: lists joined by commas, mappings as ``key: value``."""
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(value) if value.is_integer() and abs(value) < 1e6 else format_number(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_meta(v) for v in value) or _DASH
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_format_meta(v)}" for k, v in value.items()) or _DASH
    return str(value)


def _level(report: AuditReport) -> str:
    """The interval coverage as text: ``metadata["level"]`` when recorded, else 95%."""
    level = report.metadata.get("level")
    if isinstance(level, (int, float)) and 0 < level < 1:
        return f"{100 * level:g}%"
    return "95%"


def _metadata_rows(report: AuditReport) -> list[tuple[str, str]]:
    meta = {k: v for k, v in report.metadata.items() if k != "verification"}  # its own section
    keys = [k for k in _METADATA_LABELS if k in meta] + [
        k for k in meta if k not in _METADATA_LABELS
    ]
    return [(_METADATA_LABELS.get(k, k), _format_meta(meta[k])) for k in keys]


def _estimate_cells(est: Estimate) -> tuple[str, str]:
    """(value, interval) cells; an NA estimate shows ``n/a (reason)`` and no interval."""
    if est.value is None:
        reason = f" ({est.na_reason})" if est.na_reason else ""
        return f"n/a{reason}", _DASH
    return format_number(est.value), format_interval(est.ci_low, est.ci_high)


def _gap(
    metric: GroupMetric, kind: Literal["difference", "ratio"], attribute: str
) -> tuple[str, str]:
    """(value, interval) cells of a between-groups gap."""
    if kind == "ratio" and not metric.ratio_defined:
        return "n/a (values can be negative)", _DASH
    value = metric.difference(attribute) if kind == "difference" else metric.ratio(attribute)
    lo, hi = metric.gap_interval(kind, attribute)
    return format_number(value), format_interval(lo, hi)


def _worst(metric: GroupMetric, attribute: str) -> tuple[str | None, str]:
    """(group name or None, ``"group: value"`` cell text without escaping)."""
    worst = metric.worst_group(attribute)
    if worst is None:
        return None, "n/a"
    return worst[0], f"{worst[0]}: {format_number(worst[1])}"


def _excluded_note(report: AuditReport) -> str | None:
    """One sentence naming the groups kept out of the gaps (fewer than ``min_group_size``
    samples), or None when every defined group is compared."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    sizes = set()
    for name, m in report.metrics.items():
        for a in m.by_group:
            for g in m.excluded(a):
                found.setdefault((a, g), {})[name] = m.by_group[a][g].count
                sizes.add(m.min_group_size)
    if not found:
        return None
    items = []
    for (a, g), per_metric in found.items():
        n = max(per_metric.values())
        text = f"{g} ({a}, {n} sample{'s' if n != 1 else ''})"
        with_attribute = [name for name, m in report.metrics.items() if a in m.by_group]
        if len(per_metric) < len(with_attribute):
            text += " in " + ", ".join(per_metric)
        items.append(text)
    size = report.metadata.get("min_group_size") or min(sizes)
    return (
        f"Kept out of difference, ratio and worst group (fewer than min_group_size={size} "
        f"samples; still listed per group): {'; '.join(items)}."
    )


def _summary_row(*cells: str) -> dict[str, str]:
    return dict(zip(_SUMMARY_KEYS, cells))


_SUMMARY_HEADER = [
    "metric",
    "better",
    "attribute",
    "overall",
    "worst group",
    "difference (max − min)",
]
_SUMMARY_KEYS = ["metric", "better", "attribute", "overall", "worst", "difference"]


def _summary_rows(report: AuditReport) -> list[dict[str, str]]:
    """One row per metric × attribute (one per metric when it has no attribute)."""
    rows = []
    for name, m in report.metrics.items():
        overall = format_number(m.overall.value)
        better = "higher" if m.higher_is_better else "lower"
        if not m.by_group:
            rows.append(_summary_row(name, better, _DASH, overall, _DASH, _DASH))
            continue
        for a in m.by_group:
            diff, diff_ci = _gap(m, "difference", a)
            diff_text = diff if diff_ci == _DASH else f"{diff} {diff_ci}"
            rows.append(_summary_row(name, better, a, overall, _worst(m, a)[1], diff_text))
    return rows


def _title(report: AuditReport) -> str:
    return str(report.metadata.get("title") or "fairmetric embedding audit")


def render_summary(report: AuditReport) -> str:
    """A plain-text summary table for the terminal: metric × attribute, overall, worst, gap."""
    header = ["metric", "better", "attribute", "overall", "worst group", "difference [CI]"]
    rows = [[r[k] for k in _SUMMARY_KEYS] for r in _summary_rows(report)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    meta = report.metadata
    if "task" in meta:  # a downstream evaluation (fairmetric.downstream)
        first = (
            f"downstream evaluation of {meta.get('source')}: {meta.get('n_train')} train / "
            f"{meta.get('n_test')} test, balance {meta.get('balance')}"
        )
    else:
        first = (
            f"audit of {meta.get('source') or 'embeddings'}: {meta.get('n')} embeddings, "
            f"dim {meta.get('dim')}, index {meta.get('index')}, bootstrap {meta.get('bootstrap')}"
        )
    out = [
        first,
        line,
        "-" * len(line),
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    note = _excluded_note(report)
    if note:
        out.append(note)
    return "\n".join(out)


# ----------------------------------------------------------------------------- Markdown


def _md(text: Any) -> str:
    """Escape a user string for a Markdown table cell or heading.

    ``<``, ``>`` and ``&`` become entities (every Markdown renderer honours them; not all honour
    ``\\<``), so a name never turns into inline HTML; table and emphasis characters get a backslash.
    """
    s = " ".join(str(text).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*|[]":
        s = s.replace(ch, "\\" + ch)
    return s


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" * len(header)
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(report: AuditReport) -> str:
    """The Markdown report: summary, run metadata, then one section per metric and attribute."""
    ci = f"{_level(report)} CI"
    out = [f"# {_title(report)}", ""]
    source = report.metadata.get("source")
    if source is not None:
        out += [f"Source: {_md(source)}", ""]

    out += ["## Summary", ""]
    out += _md_table(
        _SUMMARY_HEADER,
        (
            [_md(r[k]) if k in ("metric", "attribute", "worst") else r[k] for k in _SUMMARY_KEYS]
            for r in _summary_rows(report)
        ),
        "lllrlr",
    )
    out += [
        "",
        f"Worst group: the lowest value where higher is better, the highest otherwise. "
        f"Intervals are {_level(report)} bootstrap percentile intervals.",
        "",
    ]
    note = _excluded_note(report)
    if note:
        out += [_md(note), ""]
    blocks = verification_blocks(report)
    if blocks:
        out += ["## Verification (NIST FRVT / ISO/IEC 19795-10)", ""]
        for block in blocks:
            if block[0] == "h3":
                out += [f"### {_md(block[1])}", ""]
            elif block[0] == "note":
                out += [_md(block[1]), ""]
            else:
                out += _md_table(block[1], ([_md(c) for c in row] for row in block[2]))
                out.append("")

    for name, m in report.metrics.items():
        out += [f"## {_md(name)}", ""]
        desc = f"{_md(m.description)} " if m.description else ""
        out += [f"{desc}{direction(m).capitalize()}.", ""]
        if not m.by_group:
            value, interval = _estimate_cells(m.overall)
            out += _md_table(
                ["", "n", "value", ci],
                [["**overall**", str(m.overall.count), _md(value), interval]],
                "lrrl",
            )
            out.append("")
        for a, groups in m.by_group.items():
            rows = []
            excluded = m.excluded(a)
            for g, est in groups.items():
                value, interval = _estimate_cells(est)
                if g in excluded:
                    value += f" ({_NOT_COMPARED})"
                rows.append([_md(g), str(est.count), _md(value), interval])
            value, interval = _estimate_cells(m.overall)
            rows.append(["**overall**", str(m.overall.count), _md(value), interval])
            rows.append(["**difference** (max − min)", "", *_gap(m, "difference", a)])
            rows.append(["**ratio** (min / max)", "", *_gap(m, "ratio", a)])
            worst_group, worst_text = _worst(m, a)
            worst_n = str(groups[worst_group].count) if worst_group is not None else ""
            rows.append([f"**worst group** ({direction(m)})", worst_n, _md(worst_text), ""])
            out += [f"### {_md(name)} by {_md(a)}", ""]
            out += _md_table(["group", "n", "value", ci], rows, "lrrl")
            out.append("")
    out += ["## Run details", ""]  # after the results: how they were obtained
    out += _md_table(["", ""], ([label, _md(v)] for label, v in _metadata_rows(report)))
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 960px; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; margin-top: 2.2rem;
     border-bottom: 1px solid #ddd; padding-bottom: .2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.agg td { background: #fafafa; }
tr.worst td { background: #fff3e0; }
tr.small td { color: #777; }
.na { color: #777; }
.note { color: #555; font-size: .9rem; }
img { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
code { background: #f4f4f4; padding: 0 .2rem; }
details.run { margin-top: 2.2rem; } details.run summary { cursor: pointer; font-weight: 600; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(
    header: Sequence[str],
    rows: Iterable[tuple[Sequence[str], str]],
    numeric: Sequence[bool],
) -> list[str]:
    """``rows`` are (already escaped cells, row class); ``numeric`` right-aligns columns."""
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>"]
    out.append("<tbody>")
    for cells, cls in rows:
        tds = "".join(
            f'<td class="num">{c}</td>' if num else f"<td>{c}</td>"
            for c, num in zip(cells, numeric)
        )
        out.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    out += ["</tbody>", "</table>"]
    return out


def _img(fig: Figure, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="{figure_to_data_uri(fig)}">'


def _html_value(est: Estimate) -> str:
    value, _ = _estimate_cells(est)
    return f'<span class="na">{_e(value)}</span>' if est.value is None else _e(value)


def render_html(report: AuditReport) -> str:
    """The self-contained HTML report: the Markdown content plus embedded plots."""
    ci = _e(f"{_level(report)} CI")
    source = report.metadata.get("source")
    body = [f"<h1>{_e(_title(report))}</h1>"]
    if source is not None:
        body.append(f"<p>Source: <code>{_e(source)}</code></p>")

    body.append("<h2>Summary</h2>")
    body += _html_table(
        [_e(h) for h in _SUMMARY_HEADER],
        (([_e(r[k]) for k in _SUMMARY_KEYS], "") for r in _summary_rows(report)),
        [False, False, False, True, False, True],
    )
    body.append(
        '<p class="note">Worst group: the lowest value where higher is better, the highest '
        f"otherwise. Intervals are {_e(_level(report))} bootstrap percentile intervals.</p>"
    )
    note = _excluded_note(report)
    if note:
        body.append(f'<p class="note">{_e(note)}</p>')
    for name, m in report.metrics.items():
        body.append(f"<h2>{_e(name)}</h2>")
        desc = f"{_e(m.description)} " if m.description else ""
        body.append(f"<p>{desc}{_e(direction(m).capitalize())}.</p>")
        overall_row = (
            [
                "<b>overall</b>",
                str(m.overall.count),
                _html_value(m.overall),
                _e(_estimate_cells(m.overall)[1]),
            ],
            "agg",
        )
        if m.by_group:
            body.append(_img(plot_group_bars(m), f"{name} by group"))
        else:
            body += _html_table(["", "n", "value", ci], [overall_row], [False, True, True, False])
        for a, groups in m.by_group.items():
            worst_group, worst_text = _worst(m, a)
            rows: list[tuple[list[str], str]] = []
            excluded = m.excluded(a)
            for g, est in groups.items():
                cls = "worst" if g == worst_group else ""
                _, interval = _estimate_cells(est)
                value = _html_value(est)
                if g in excluded:
                    cls = "small"
                    value += f' <span class="na">({_e(_NOT_COMPARED)})</span>'
                rows.append(([_e(g), str(est.count), value, _e(interval)], cls))
            rows.append(overall_row)
            gaps: tuple[tuple[Literal["difference", "ratio"], str], ...] = (
                ("difference", "max − min"),
                ("ratio", "min / max"),
            )
            for kind, label in gaps:
                value, interval = _gap(m, kind, a)
                rows.append(([f"<b>{kind}</b> ({label})", "", _e(value), _e(interval)], "agg"))
            worst_n = str(groups[worst_group].count) if worst_group is not None else ""
            rows.append(
                (
                    [f"<b>worst group</b> ({_e(direction(m))})", worst_n, _e(worst_text), ""],
                    "agg",
                )
            )
            body.append(f"<h3>{_e(name)} by {_e(a)}</h3>")
            body += _html_table(["group", "n", "value", ci], rows, [False, True, True, False])

    if report.projection is not None:
        body.append("<h2>Embedding projection</h2>")
        n_points = len(np.asarray(report.projection["xy"]))
        method = report.projection.get("method")
        how = f" ({_e(method)})" if method else ""
        body.append(
            f'<p class="note">2-D projection{how} of a seeded sample of {n_points} embeddings, '
            "coloured by group. Groups that form their own regions are separable in the "
            "embedding space.</p>"
        )
        body.append(_img(plot_projection(report.projection), "2-D projection of the embeddings"))

    blocks = verification_blocks(report)
    if blocks:
        body.append("<h2>Verification (NIST FRVT / ISO/IEC 19795-10)</h2>")
        for block in blocks:
            if block[0] == "h3":
                body.append(f"<h3>{_e(block[1])}</h3>")
            elif block[0] == "note":
                body.append(f'<p class="note">{_e(block[1])}</p>')
            else:
                body += _html_table(
                    [_e(h) for h in block[1]],
                    (([_e(c) for c in row], "") for row in block[2]),
                    [False] * len(block[1]),
                )
        body += verification_plots_html(report)

    if report.homophily:
        body.append("<h2>Neighbourhood homophily</h2>")
        body.append(
            '<p class="note">Per query: among its k nearest neighbours of a different class, the '
            "fraction sharing its group, divided by the group's base rate. 1 means the attribute "
            "does not structure the neighbourhoods; above 1, a group's members cluster together."
            "</p>"
        )
        body.append(_img(plot_homophily(report.homophily), "neighbourhood homophily by group"))

    # after the results, collapsed: how they were obtained
    body.append('<details class="run"><summary>Run details</summary>')
    body += _html_table(
        ["", ""], (([_e(k), _e(v)], "") for k, v in _metadata_rows(report)), [False, False]
    )
    body.append("</details>")

    title = _title(report) + (f": {source}" if source is not None else "")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def verification_plots_html(report: AuditReport) -> list[str]:
    """DET curves, score distributions and the cross-group FMR heat map of a verification
    audit (``report.verification`` holds the scores; absent after reading report.json)."""
    from fairmetric.report.verification_plots import (
        det_plot,
        fmr_heatmap,
        identification_error_heatmap,
        roc_det_curves,
        roc_plot,
        score_distribution_plot,
    )

    plots = report.verification
    meta = report.metadata.get("verification") or {}
    if not plots or not meta:
        return []
    targets = meta["targets"]
    first = next(iter(targets))
    tau = targets[first]["threshold"]
    body = []
    for a, by_group in plots["scores"].items():
        body.append(f"<h3>Curves by {_e(a)}</h3>")
        curves = {
            g: roc_det_curves(gen, imp, keep_thresholds=[tau]) for g, (gen, imp) in by_group.items()
        }
        body.append(
            f'<p class="note">Per group: genuine pairs against its same-group impostors; dotted '
            f"lines at the target FMRs, markers at the global threshold for FMR {_e(first)}.</p>"
        )
        fmrs = [v["fmr"] for v in targets.values()]
        for plot, kind in ((det_plot, "DET"), (roc_plot, "ROC")):
            figure = plot(curves, title=f"{kind} by {a}", target_fmrs=fmrs, threshold=tau)
            body.append(_img(figure, f"{kind} curves by {a}"))
        body.append(
            _img(
                score_distribution_plot(by_group, threshold=tau, title=f"Scores by {a}"),
                f"genuine and impostor score distributions by {a}",
            )
        )
        matrix = meta.get("fmr_matrix", {}).get(first, {}).get(a)
        if matrix and len(matrix["groups"]) > 1:
            values = np.array(
                [[np.nan if v is None else v for v in row] for row in matrix["fmr"]], dtype=float
            )
            body.append(
                _img(
                    fmr_heatmap(
                        values,
                        matrix["groups"],
                        matrix["groups"],
                        title=f"cross-group FMR at {first} ({a})",
                    ),
                    f"cross-group FMR by {a}",
                )
            )
    for a, res in (meta.get("identification") or {}).items():
        if len(res["groups"]) > 1:
            values = np.array(
                [[np.nan if v is None else v for v in row] for row in res["matrix"]], dtype=float
            )
            body.append(
                _img(
                    identification_error_heatmap(
                        values,
                        res["groups"],
                        res["groups"],
                        title=f"rank-1 identification errors ({a})",
                    ),
                    f"rank-1 identification errors by {a}",
                )
            )
    return body


# ----------------------------------------------------------------------------- files


def write_report(report: AuditReport, directory: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``directory``.

    The folder is created if needed. Everything is rendered before the first file is written and
    each file is replaced atomically, so a failure never leaves a truncated file.

    Returns:
        ``{"json": path, "markdown": path, "html": path}``.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory {str(directory)!r} is an existing file; pass a folder path")
    json_text = report.to_json()  # fails first, and fast, on what JSON cannot hold (NaN)
    markdown = render_markdown(report)
    page = render_html(report)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / name for kind, name in FILE_NAMES.items()}
    atomic_write_bytes(paths["json"], json_text.encode("utf-8"))
    atomic_write_bytes(paths["markdown"], markdown.encode("utf-8"))
    atomic_write_bytes(paths["html"], page.encode("utf-8"))
    return paths
