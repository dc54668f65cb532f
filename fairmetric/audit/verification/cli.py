"""``fairmetric posthoc``: fit a post-hoc score fix on calibration identities of an embedding
set, judge it on the held-out identities (verification audit before and after, calibration per
group) and save it for ``fairmetric audit --verification --score-transform FILE``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "render_comparison", "run_from_args"]

FIXES = ("per_group_threshold", "score_normalisation", "fsn", "faircal")  # POSTHOC_FIXES


def add_arguments(p: argparse.ArgumentParser, fmr_type: Any, positive_int: Any) -> None:
    """The ``posthoc`` options (``fmr_type`` / ``positive_int``: the CLI's argparse types)."""
    p.add_argument("source", help="an EmbeddingSet file (.npz / .safetensors) or run folder")
    p.add_argument("--fix", required=True, choices=FIXES, help="which post-hoc fix to fit")
    p.add_argument(
        "--attribute",
        help="the demographic attribute the fix uses (per_group_threshold, "
        "score_normalisation) and the audit compares (default: the first)",
    )
    p.add_argument(
        "--fmr",
        type=fmr_type,
        default=[1e-3, 1e-4],
        metavar="LIST",
        help="target false match rates of the audits, space- or comma-separated",
    )
    p.add_argument(
        "--target-fmr",
        type=float,
        default=None,
        help="the FMR the fix is fitted at (per_group_threshold, fsn; default: the first --fmr)",
    )
    p.add_argument(
        "--clusters",
        type=positive_int,
        default=None,
        help="k-means clusters (fsn, faircal; default: min(100, rows))",
    )
    p.add_argument(
        "--calibration-fraction",
        type=float,
        default=0.5,
        help="share of the identities the fix is fitted on; the rest judge it",
    )
    p.add_argument("--metric", choices=["cosine", "l2"], default="cosine", help="pair score")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, pairs and bootstrap")
    p.add_argument(
        "--min-group-size",
        type=int,
        default=10,
        metavar="N",
        help="groups with fewer identities are reported but not compared",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for fix.json, before/ and after/ reports and comparison.json",
    )


def _value(metric: Any, attribute: str, group: str | None = None) -> float | None:
    if group is None:
        return metric.overall.value
    est = metric.by_group[attribute].get(group)
    return None if est is None else est.value


def comparison_table(comparison: Any, attribute: str) -> dict[str, Any]:
    """Before/after numbers of a :class:`FixComparison` as a JSON-ready table."""
    out: dict[str, Any] = {
        "fix": comparison.transform.name,
        "attribute": attribute,
        "n_calibration": comparison.n_calibration,
        "n_held_out": comparison.n_held_out,
        "targets": {},
        "calibration": {
            "before": comparison.calibration_before,
            "after": comparison.calibration_after,
        },
    }
    for key in comparison.before.metadata["verification"]["targets"]:
        entry: dict[str, Any] = {}
        for rate in ("fmr", "fnmr"):
            b, a = comparison.before[f"{rate}@{key}"], comparison.after[f"{rate}@{key}"]
            entry[rate] = {
                "overall": [_value(b, attribute), _value(a, attribute)],
                "by_group": {
                    g: [_value(b, attribute, g), _value(a, attribute, g)]
                    for g in b.by_group[attribute]
                },
                "summaries": {
                    s: [b.summaries[s][attribute].value, a.summaries[s][attribute].value]
                    for s in b.summaries
                },
            }
        out["targets"][key] = entry
    return out


def _f(v: float | None) -> str:
    from fairmetric.report.formatting import format_number

    return format_number(v)


def render_comparison(table: dict[str, Any]) -> str:
    """The terminal table: per target, each group's FMR and FNMR and the summaries, before →
    after; then ECE / KS / Brier per group."""
    lines = [
        f"post-hoc fix {table['fix']} by {table['attribute']}: fitted on "
        f"{table['n_calibration']} embeddings, judged on {table['n_held_out']} held-out ones "
        "(other identities)",
    ]
    for key, entry in table["targets"].items():
        lines.append(f"\nat the global threshold for FMR {key}:")
        lines.append(
            f"  {'':24} {'FMR before':>12} {'after':>10} {'FNMR before':>12} {'after':>10}"
        )
        for g in entry["fmr"]["by_group"]:
            fb, fa = entry["fmr"]["by_group"][g]
            nb, na = entry["fnmr"]["by_group"][g]
            lines.append(f"  {g:24} {_f(fb):>12} {_f(fa):>10} {_f(nb):>12} {_f(na):>10}")
        fb, fa = entry["fmr"]["overall"]
        nb, na = entry["fnmr"]["overall"]
        lines.append(f"  {'overall':24} {_f(fb):>12} {_f(fa):>10} {_f(nb):>12} {_f(na):>10}")
        for s in ("max_over_min", "max_geomean", "gini"):
            fb, fa = entry["fmr"]["summaries"][s]
            nb, na = entry["fnmr"]["summaries"][s]
            lines.append(f"  {s:24} {_f(fb):>12} {_f(fa):>10} {_f(nb):>12} {_f(na):>10}")
    cal = table["calibration"]
    lines.append("\ncalibration of P(genuine) on held-out pairs (lower is better):")
    lines.append(f"  {'':24} {'ECE before':>12} {'after':>10} {'KS before':>12} {'after':>10}")
    for g in cal["before"]["by_group"]:
        b, a = cal["before"]["by_group"][g], cal["after"]["by_group"].get(g, {})
        lines.append(
            f"  {g:24} {_f(b.get('ece')):>12} {_f(a.get('ece')):>10} "
            f"{_f(b.get('ks')):>12} {_f(a.get('ks')):>10}"
        )
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace, load_source: Any) -> int:
    """Fit, judge and save the fix (``load_source``: the CLI's source loader)."""
    from fairmetric.audit.verification.fixes import compare_fix
    from fairmetric.report import write_report
    from fairmetric.utils import atomic_write_bytes

    data = load_source(str(args.source))
    attribute = args.attribute or (data.attribute_names[0] if data.attribute_names else None)
    if attribute is None:
        raise ValueError(f"{args.source} has no attribute: a post-hoc fix is judged by group")
    params: dict[str, Any] = {}
    if args.fix in ("per_group_threshold", "fsn"):
        params["target_fmr"] = args.target_fmr if args.target_fmr is not None else args.fmr[0]
    elif args.target_fmr is not None:
        raise ValueError(f"--target-fmr applies to per_group_threshold and fsn, not {args.fix}")
    if args.clusters is not None:
        if args.fix not in ("fsn", "faircal"):
            raise ValueError(f"--clusters applies to fsn and faircal, not {args.fix}")
        params["n_clusters"] = args.clusters
    comparison = compare_fix(
        data,
        args.fix,
        attribute=attribute,
        calibration_fraction=args.calibration_fraction,
        fmr=args.fmr,
        metric=args.metric,
        bootstrap=args.bootstrap,
        seed=args.seed,
        min_group_size=args.min_group_size,
        **params,
    )
    table = comparison_table(comparison, attribute)
    print(render_comparison(table))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    comparison.transform.save(out / "fix.json")
    write_report(comparison.before, out / "before")
    write_report(comparison.after, out / "after")
    atomic_write_bytes(
        out / "comparison.json", (json.dumps(table, indent=1, allow_nan=False) + "\n").encode()
    )
    print(
        f"\nwrote {out / 'fix.json'} (apply it: fairmetric audit SOURCE --verification "
        f"--score-transform {out / 'fix.json'}), {out / 'comparison.json'} and the before/ and "
        "after/ reports"
    )
    return 0
