"""The verification section of a report (per-group FMR / FNMR at the global thresholds, disparity
summaries, cross-group FMR) as format-neutral blocks that the Markdown and HTML writers render.

A block is ``("h3", text)``, ``("note", text)`` or ``("table", header, rows)``; cells are text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairmetric.report.formatting import DASH, format_interval, format_number

if TYPE_CHECKING:
    from fairmetric.report.result import AuditReport

__all__ = ["SUMMARY_TEXT", "verification_blocks"]

#: what each disparity summary means, for the report
SUMMARY_TEXT = {
    "max_over_min": "max / min over groups (1 = equal)",
    "max_geomean": "max / geometric mean; a zero count is replaced by its one-sided 95% "
    "Clopper–Pearson upper bound (NIST FRVT)",
    "gini": "Gini coefficient of the group rates (ISO/IEC 19795-10's FPD for FMR, FND for FNMR; "
    "0 = equal)",
    "garbe": "α·Gini(FMR) + (1 − α)·Gini(FNMR) (Howard et al. 2022; 0 = equal)",
    "fdr": "1 − (α·max|ΔFMR| + (1 − α)·max|ΔFNMR|) (de Freitas Pereira & Marcel; 1 = fair)",
    "ir": "(max/min FMR)^α · (max/min FNMR)^(1 − α) (Howard et al. 2022; 1 = equal)",
}


def _fmt(value: Any) -> str:
    return format_number(value)


def _cell(est: Any) -> str:
    if est is None or est.value is None:
        reason = f" ({est.na_reason})" if est is not None and est.na_reason else ""
        return f"n/a{reason}"
    interval = format_interval(est.ci_low, est.ci_high)
    return _fmt(est.value) + ("" if interval == DASH else f" {interval}")


def verification_blocks(report: AuditReport) -> list[tuple]:
    """The blocks of the verification section; ``[]`` when the report has none."""
    meta = report.metadata.get("verification")
    if not meta:
        return []
    blocks: list[tuple] = []
    pairs = meta["pairs"]

    def described(n: int, available: int, everything: bool) -> str:
        return f"{n} (all)" if everything else f"{n} sampled of {available}"

    blocks.append(
        (
            "note",
            "One global threshold per target FMR, set on all impostor pairs; per group, FMR is "
            "the share of its same-group impostor pairs at or above it and FNMR the share of its "
            "genuine pairs below it (TMR = 1 − FNMR). Intervals: bootstrap over identities "
            "within each group, the threshold held fixed. A group's n counts identities. "
            + (
                f"Pairs as listed in {meta['pairs_file']}: {pairs['genuine']} genuine, "
                f"{pairs['impostor']} impostor."
                if meta.get("pairs_file")
                else f"Genuine pairs: {described(pairs['genuine'], pairs['genuine_available'], pairs['genuine_all'])}; "
                f"impostor pairs: {described(pairs['impostor'], pairs['impostor_available'], pairs['impostor_all'])}."
            )
            + (
                f" Every pair is one of the {meta['gallery']['probes']} probes and one of the "
                f"{meta['gallery']['n']} gallery samples; identification searches the gallery."
                if meta.get("gallery")
                else ""
            ),
        )
    )
    blocks.append(
        (
            "table",
            ["target FMR", "threshold", "realised FMR", "realised / target"],
            [
                [
                    t,
                    _fmt(v["threshold"]),
                    _fmt(v["realised_fmr"]),
                    _fmt(v["realised_over_target"]),
                ]
                for t, v in meta["targets"].items()
            ],
        )
    )
    for t in meta["targets"]:
        fmr = report.metrics.get(f"fmr@{t}")
        fnmr = report.metrics.get(f"fnmr@{t}")
        own = report.metrics.get(f"threshold@{t}")
        if fmr is None or fnmr is None:
            continue
        for a in fmr.by_group:
            by_pairs = pairs["by_group"].get(a, {})
            rows = []
            for g, est in fmr.by_group[a].items():
                f_est = est
                n_est = fnmr.by_group[a].get(g)
                tmr = (
                    _fmt(1 - n_est.value)
                    if n_est is not None and n_est.value is not None
                    else "n/a"
                )
                counts = by_pairs.get(g, {})
                small = " (not compared: too few identities)" if g in fmr.excluded(a) else ""
                rows.append(
                    [
                        g + small,
                        str(counts.get("identities", "")),
                        str(counts.get("genuine", "")),
                        str(counts.get("same_group_impostor", "")),
                        _cell(f_est),
                        _cell(n_est),
                        tmr,
                        _cell(own.by_group[a].get(g)) if own is not None else "",
                    ]
                )
            blocks.append(("h3", f"FMR {t}: error rates by {a}"))
            blocks.append(
                (
                    "table",
                    [
                        "group",
                        "identities",
                        "genuine pairs",
                        "same-group impostors",
                        "FMR",
                        "FNMR",
                        "TMR",
                        "own threshold",
                    ],
                    rows,
                )
            )
            summaries = getattr(fmr, "summaries", {})
            other = getattr(fnmr, "summaries", {})
            srows = []
            for s, text in SUMMARY_TEXT.items():
                if s not in summaries and s not in other:
                    continue
                both = s in ("garbe", "fdr", "ir")
                srows.append(
                    [
                        s,
                        _cell(summaries.get(s, {}).get(a)),
                        "(combined)" if both else _cell(other.get(s, {}).get(a)),
                        text,
                    ]
                )
            blocks.append(
                (
                    "table",
                    [f"disparity by {a}", f"FMR {t}", f"FNMR {t}", "meaning"],
                    srows,
                )
            )
            matrix = meta.get("fmr_matrix", {}).get(t, {}).get(a)
            if matrix and len(matrix["groups"]) > 1:
                blocks.append(
                    (
                        "note",
                        f"Cross-group FMR at the FMR {t} threshold (impostor pairs by the groups "
                        "of their two samples; pairs in brackets).",
                    )
                )
                blocks.append(
                    (
                        "table",
                        [f"{a}", *matrix["groups"]],
                        [
                            [
                                row_name,
                                *(
                                    f"{_fmt(v)} ({n})"
                                    for v, n in zip(matrix["fmr"][r], matrix["pairs"][r])
                                ),
                            ]
                            for r, row_name in enumerate(matrix["groups"])
                        ],
                    )
                )
    for a, res in (meta.get("identification") or {}).items():
        if len(res["groups"]) < 1:
            continue
        blocks.append(("h3", f"Rank-1 identification errors by {a}"))
        blocks.append(
            (
                "note",
                "Share of each group's queries (samples whose identity has another sample) whose "
                "nearest other sample is a wrong identity, split by that identity's group; a row "
                "sums to the group's rank-1 error rate.",
            )
        )
        blocks.append(
            (
                "table",
                [f"query {a}", "queries", "rank-1 error", *(f"wrong: {g}" for g in res["groups"])],
                [
                    [
                        g,
                        str(res["queries"][g]),
                        _fmt(res["rank1_error"][g]),
                        *(_fmt(v) for v in res["matrix"][r]),
                    ]
                    for r, g in enumerate(res["groups"])
                ],
            )
        )
    for w in meta.get("warnings", []):
        blocks.append(("note", "Warning: " + w))
    return blocks
