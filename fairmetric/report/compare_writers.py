"""Writers of a :class:`~fairmetric.report.compare.Comparison`: terminal text, Markdown, HTML,
JSON (``compare.json``, ``compare.md``, ``compare.html``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairmetric.report.formatting import DASH, format_interval, format_number

if TYPE_CHECKING:  # compare.Comparison renders itself with these writers
    from fairmetric.report.compare import Comparison, Difference

__all__ = [
    "gap_table_html",
    "render_compare_html",
    "render_compare_markdown",
    "render_compare_text",
    "write_comparison",
]


def _level(c: Comparison) -> str:
    return f"{100 * float(c.metadata.get('level') or 0.95):g}%"


def _delta(d: Difference) -> str:
    if d.difference is None:
        return "n/a"
    ci = format_interval(d.ci_low, d.ci_high)
    return format_number(d.difference) + ("" if ci == DASH else f" {ci}")


def _verdict(m: Any, verdict: str, d: Difference) -> str:
    if d.difference is None:
        return DASH
    return "not paired (see below)" if m.unpaired_reason else verdict


def _unpaired_notes(c: Comparison) -> list[str]:
    return [
        f"No intervals for {name}: {m.unpaired_reason}."
        for name, m in c.metrics.items()
        if m.unpaired_reason
    ]


def _gap_rows(c: Comparison) -> list[list[str]]:
    rows = []
    for name, m in c.metrics.items():
        for a, d in m.gap.items():
            rows.append(
                [
                    name,
                    a,
                    format_number(d.a),
                    format_number(d.b),
                    _delta(d),
                    _verdict(m, d.gap_verdict(c.names), d),
                ]
            )
    return rows


def _overall_rows(c: Comparison) -> list[list[str]]:
    return [
        [
            name,
            "higher" if m.higher_is_better else "lower",
            format_number(m.overall.a),
            format_number(m.overall.b),
            _delta(m.overall),
            _verdict(m, m.overall.value_verdict(m.higher_is_better, c.names), m.overall),
        ]
        for name, m in c.metrics.items()
    ]


def _group_rows(c: Comparison, name: str) -> list[list[str]]:
    m = c.metrics[name]
    return [
        [
            a,
            g,
            format_number(d.a),
            format_number(d.b),
            _delta(d),
            _verdict(m, d.value_verdict(m.higher_is_better, c.names), d),
        ]
        for a, groups in m.by_group.items()
        for g, d in groups.items()
    ]


def _headers(c: Comparison) -> dict[str, list[str]]:
    na, nb = c.names
    ci = f"Δ = {nb} − {na} [{_level(c)} CI]"
    return {
        "gap": ["metric", "attribute", f"gap {na}", f"gap {nb}", ci, "verdict"],
        "overall": ["metric", "better", na, nb, ci, "verdict"],
        "group": ["attribute", "group", na, nb, ci, "verdict"],
    }


def _tally(c: Comparison) -> str:
    na, nb = c.names
    gaps = [d for m in c.metrics.values() for d in m.gap.values() if d.difference is not None]
    if not any(d.excludes_zero is not None for d in gaps):
        return f"{len(gaps)} gaps compared; no intervals (bootstrap 0): nothing can be concluded."
    b_fairer = sum(d.sign < 0 for d in gaps)
    a_fairer = sum(d.sign > 0 for d in gaps)
    return (
        f"Is {nb} fairer than {na}? {nb} has the smaller gap on {b_fairer} of {len(gaps)} gaps "
        f"and {na} on {a_fairer} (the paired interval of gap {nb} − gap {na} excludes 0); "
        f"no clear difference on {len(gaps) - a_fairer - b_fairer}."
    )


def _intro(c: Comparison) -> list[str]:
    meta = c.metadata
    na, nb = c.names
    src = meta.get("sources") or {}
    return [
        f"comparison of {na} ({src.get('a')}) and {nb} ({src.get('b')}): {meta.get('n')} "
        f"samples matched by {meta.get('matched_by', 'row order')}, paired bootstrap "
        f"{meta.get('bootstrap')} (seed {meta.get('seed')})",
        f"Δ = {nb} − {na}, {_level(c)} paired intervals (the same resampled rows for both); "
        "gap = max − min over groups (lower is fairer)",
    ]


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return out


def render_compare_text(c: Comparison) -> str:
    """What ``fairmetric compare`` prints: the gap differences, the overall differences and a
    one-line tally of which model is fairer where."""
    h = _headers(c)
    out = _intro(c) + ["", f"gaps (is {c.names[1]} fairer than {c.names[0]}?)"]
    out += _text_table(h["gap"], _gap_rows(c))
    out += ["", "overall values"]
    out += _text_table(h["overall"], _overall_rows(c))
    out += ["", _tally(c), *_unpaired_notes(c)]
    return "\n".join(out)


def _md(text: Any) -> str:
    s = " ".join(str(text).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*|[]":
        s = s.replace(ch, "\\" + ch)
    return s


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = [
        "| " + " | ".join(_md(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return out


def render_compare_markdown(c: Comparison) -> str:
    """``compare.md``: the gap and overall tables, then every metric's per-group differences."""
    h = _headers(c)
    na, nb = c.names
    out = [f"# Comparison: {_md(na)} vs {_md(nb)}", ""]
    out += [_md(line) for line in _intro(c)] + [""]
    out += [f"## Gaps: is {_md(nb)} fairer than {_md(na)}?", ""]
    out += _md_table(h["gap"], _gap_rows(c)) + ["", _md(_tally(c)), ""]
    out += [f"{_md(note)}\n" for note in _unpaired_notes(c)]
    out += ["## Overall values", ""] + _md_table(h["overall"], _overall_rows(c)) + [""]
    out += ["## Per group", ""]
    for name in c.metrics:
        out += [f"### {_md(name)}", ""] + _md_table(h["group"], _group_rows(c, name)) + [""]
    return "\n".join(out)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(header: list[str], rows: list[list[str]], verdict_col: int | None = None) -> str:
    head = "".join(f"<th>{_e(x)}</th>" for x in header)
    body = []
    for r in rows:
        cls = ""
        if verdict_col is not None and r[verdict_col] not in ("no clear difference", DASH):
            cls = ' class="clear"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{_e(x)}</td>" for x in r) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def gap_table_html(c: Comparison) -> str:
    """The gap differences as one HTML table (a comparison's ``_repr_html_`` in Jupyter)."""
    h = _headers(c)
    intro = "<br>".join(_e(line) for line in _intro(c))
    return (
        f"<div><p>{intro}</p>{_html_table(h['gap'], _gap_rows(c), 5)}<p>{_e(_tally(c))}</p></div>"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left}tr.clear td{background:#eef6ee}details{margin:.3em 0}"
)


def render_compare_html(c: Comparison) -> str:
    """``compare.html``: self-contained; rows whose interval excludes zero are shaded."""
    h = _headers(c)
    na, nb = c.names
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>fairmetric compare: {_e(na)} vs '
        f"{_e(nb)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(na)} vs {_e(nb)}</h1>",
        "<p>" + "<br>".join(_e(line) for line in _intro(c)) + "</p>",
        f"<h2>Gaps: is {_e(nb)} fairer than {_e(na)}?</h2>",
        _html_table(h["gap"], _gap_rows(c), 5),
        f"<p>{_e(_tally(c))}</p>",
        *(f"<p>{_e(note)}</p>" for note in _unpaired_notes(c)),
        "<h2>Overall values</h2>",
        _html_table(h["overall"], _overall_rows(c), 5),
        "<h2>Per group</h2>",
    ]
    for name, m in c.metrics.items():
        parts.append(
            f"<details><summary>{_e(name)}: {_e(m.description)}</summary>"
            f"{_html_table(h['group'], _group_rows(c, name), 5)}</details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_comparison(c: Comparison, directory: str | Path) -> dict[str, Path]:
    """Write ``compare.json``, ``compare.md`` and ``compare.html`` into ``directory``."""
    from fairmetric.utils import atomic_write_bytes

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "compare.json",
        "markdown": out / "compare.md",
        "html": out / "compare.html",
    }
    c.to_json(paths["json"])
    atomic_write_bytes(paths["markdown"], render_compare_markdown(c).encode())
    atomic_write_bytes(paths["html"], render_compare_html(c).encode())
    return paths
