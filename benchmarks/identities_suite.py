"""Issue 13's protocol on the synthetic-identities benchmark, and the checks of its "done when".

    python benchmarks/identities_suite.py --backbone mlp --out runs/issue13      # minutes
    python benchmarks/identities_suite.py --backbone cnn --out runs/issue13      # about an hour
    python benchmarks/identities_suite.py --backbone mlp --out runs/issue13 --report-only

For one backbone (``mlp``: the vector variant, ``identities_mlp*``; ``cnn``: images and timm's
``test_resnet``, ``identities*``) it runs ``fairmetric bench`` (5 seeds, paired) on:

- the benchmark, palette per image: baseline, oracle, the recommended method
  (:data:`fairmetric.demo.RECOMMENDED`), PARADE, and (MLP only) every other method;
- the benchmark, palette per identity (``_person``): baseline, oracle, recommended, PARADE;
- the null control (``_null``): baseline and recommended; the intrinsic control
  (``_intrinsic``): baseline and oracle;
- (MLP only) a PARADE ρ sweep on the per-image benchmark (``--rho-sweep`` overrides its values).

Then it prints the tables' headline rows and checks the issue's criteria, each as PASS or FAIL
with the numbers behind it. Finished cells are reused, so the command resumes and ``--report-only``
re-reads them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairmetric.bench import run_suite  # noqa: E402
from fairmetric.demo import RECOMMENDED  # noqa: E402

PARADE = "parade"
RHOS = (0.1, 0.3)
#: the other methods measured on the MLP (per image)
OTHERS = (
    "epoch_balanced",
    "class_mixed",
    "hard_mining",
    "reweight",
    "group_dro",
    "adversarial",
    "epoch_balanced+parade",
)


def plan(backbone: str, rhos: tuple[float, ...]) -> list[dict[str, Any]]:
    """The suite calls of one backbone: ``run_suite`` keyword arguments."""
    stem = "identities_mlp" if backbone == "mlp" else "identities"
    main = ["baseline", "oracle", RECOMMENDED, PARADE]
    if backbone == "mlp":
        main += [m for m in OTHERS if m not in main]
    return [
        {
            "datasets": [stem],
            "methods": main,
            "rho_sweep": list(rhos) if backbone == "mlp" else None,
        },
        {"datasets": [f"{stem}_person"], "methods": main[:4]},
        {"datasets": [f"{stem}_null"], "methods": ["baseline", RECOMMENDED]},
        {"datasets": [f"{stem}_intrinsic"], "methods": ["baseline", "oracle"]},
    ]


def _table(out: Path, dataset: str, stem: str = "table") -> dict[str, Any]:
    return json.loads((out / dataset / f"{stem}.json").read_text())


def _mean(table: dict[str, Any], row: str, column: str) -> float:
    return table["rows"][row][column]["mean"]


def _change(table: dict[str, Any], row: str, column: str) -> dict[str, Any]:
    return table["paired"]["rows"][row][column]


def _fmt(c: dict[str, Any]) -> str:
    rel = "" if c.get("relative") is None else f" ({c['relative']:+.0%})"
    return f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]{rel}"


def checks(out: Path, backbone: str) -> list[tuple[str, bool, str]]:
    """The issue's criteria on the tables in ``out``: ``(criterion, holds, numbers)``."""
    stem = "identities_mlp" if backbone == "mlp" else "identities"
    tables = {"per image": _table(out, stem)}
    if (out / f"{stem}_person" / "table.json").is_file():
        tables["per identity"] = _table(out, f"{stem}_person")
    main = tables["per image"]
    null, intrinsic = _table(out, f"{stem}_null"), _table(out, f"{stem}_intrinsic")
    found = []
    for name, t in tables.items():
        gap = t["rows"]["baseline"]["recall@1_gap"]
        found.append(
            (
                f"baseline gap clearly above zero ({name})",
                gap["mean"] - 2 * gap["std"] > 0,
                f"{gap['mean']:.3f} ± {gap['std']:.3f} over {gap['n']} seeds",
            )
        )
        o = _change(t, "oracle", "recall@1_gap")
        found.append(
            (
                f"the oracle removes most of the gap ({name})",
                o["relative"] is not None and o["relative"] < -0.5 and o["excludes_zero"],
                _fmt(o),
            )
        )
    n = null["rows"]["baseline"]["recall@1_gap"]
    i = _change(intrinsic, "oracle", "recall@1_gap")
    found.append(
        (
            "the null control shows no gap (per-image gap of the baseline within 0.05)",
            n["mean"] < 0.05,
            f"{n['mean']:.3f} ± {n['std']:.3f}",
        )
    )
    worst = _change(intrinsic, "oracle", "worst_recall@1")
    found.append(
        (
            "balanced data cannot fix the intrinsic control: it keeps most of the gap, or closes "
            "it only by levelling down (the worst group's Recall@1 does not rise)",
            (i["relative"] is not None and i["relative"] > -0.5)
            or not (worst["excludes_zero"] and worst["mean"] > 0),
            f"gap {_fmt(i)}; worst-group Recall@1 {_fmt(worst)}",
        )
    )
    for name, t in tables.items():
        for method in (RECOMMENDED, PARADE):
            if method not in t["paired"]["rows"]:
                continue
            g = _change(t, method, "recall@1_gap")
            r = _change(t, method, "recall@1")
            mrl = _change(t, method, "max_mean_resultant_length")
            d = _change(t, method, "downstream_gap")
            cut = g["relative"] is not None and g["relative"] <= -0.5 and g["excludes_zero"]
            cost = r["mean"] >= -0.02
            collapse = not (mrl["excludes_zero"] and mrl["mean"] > 0)
            down = d["mean"] < 0
            found.append(
                (
                    f"{method} ({name}): gap cut >= 50% (interval excludes 0), <= 2 points of "
                    "Recall@1, no collapse, downstream gap falls",
                    cut and cost and collapse and down,
                    f"gap {_fmt(g)}; Recall@1 {_fmt(r)}; max MRL {_fmt(mrl)}; "
                    f"downstream gap {_fmt(d)}",
                )
            )
    base_down = main["rows"]["baseline"]["downstream_gap"]
    found.append(
        (
            "bias persists downstream: the baseline's balanced-probe gap is above zero",
            base_down["mean"] - 2 * base_down["std"] > 0,
            f"{base_down['mean']:.3f} ± {base_down['std']:.3f}",
        )
    )
    return found


#: the columns of the summary: key in the tables → header
SUMMARY = {
    "recall@1_gap": "Recall@1 gap",
    "recall@1": "Recall@1",
    "max_mean_resultant_length": "max group MRL",
    "downstream_gap": "downstream gap",
}


def _short(c: dict[str, Any]) -> str:
    if c.get("low") is None:
        return "n/a"
    star = "*" if c["excludes_zero"] else " "
    rel = f" {c['relative']:+4.0%}" if c.get("relative") is not None else ""
    return f"{c['mean']:+.3f} [{c['low']:+.2f}, {c['high']:+.2f}]{star}{rel}"


def summary(out: Path, backbone: str) -> str:
    """Per dataset of the backbone: the baseline's values (mean ± sd over seeds) and every
    other arm's paired change against it (95% t interval, * where it excludes 0; the gaps'
    change also as a share of the baseline's)."""
    stem = "identities_mlp" if backbone == "mlp" else "identities"
    lines = []
    for suffix in ("", "_person", "_null", "_intrinsic"):
        dataset = f"{stem}{suffix}"
        if not (out / dataset / "table.json").is_file():
            continue
        t = _table(out, dataset)
        seeds = t["rows"]["baseline"]["recall@1"]["n"]
        lines.append(f"{dataset} ({seeds} seeds)")
        lines.append(f"{'':<22}" + "".join(f"{h:>29}" for h in SUMMARY.values()))
        base = t["rows"]["baseline"]
        values = [f"{base[k]['mean']:.3f} ± {base[k]['std']:.3f}" for k in SUMMARY]
        cells = "".join(f"{v:>29}" for v in values)
        lines.append(f"{'baseline':<22}{cells}")
        for arm, row in (t["paired"] or {}).get("rows", {}).items():
            lines.append(f"{arm:<22}" + "".join(f"{_short(row[k]):>29}" for k in SUMMARY))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


#: the committed tables the README's result blocks are rendered from
RESULTS = ROOT / "benchmarks" / "results" / "issue13"
README = ROOT / "README.md"
#: the comment that precedes each of the README's result blocks (MLP first, then CNN)
README_MARK = (
    "<!-- checked by tests/test_results.py: benchmarks/identities_suite.py --report-only on "
    "benchmarks/results/issue13 -->"
)


def readme_blocks(text: str) -> list[tuple[int, int]]:
    """The (start, end) offsets of the bodies of the README's result blocks, in order."""
    found = []
    at = 0
    while (i := text.find(README_MARK, at)) >= 0:
        body = text.index("```text\n", i) + len("```text\n")
        end = text.index("```", body)
        found.append((body, end))
        at = end
    return found


def render_readme(text: str, results: Path = RESULTS) -> str:
    """``text`` with its result blocks rewritten from the tables in ``results``."""
    spans = readme_blocks(text)
    if len(spans) != 2:
        raise ValueError(
            f"README should have 2 result blocks after {README_MARK!r}, found {len(spans)}"
        )
    bodies = [summary(results, "mlp"), summary(results, "cnn")]
    for (start, end), body in reversed(list(zip(spans, bodies, strict=True))):
        text = text[:start] + body + text[end:]
    return text


def _cells_only(line: str) -> None:
    if "/seed" in line:  # a finished cell, not a training epoch
        print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", choices=("mlp", "cnn"), default="mlp")
    parser.add_argument("--out", type=Path, default=Path("runs/issue13"))
    parser.add_argument("--rho-sweep", nargs="+", type=float, default=list(RHOS))
    parser.add_argument("--report-only", action="store_true", help="read the finished tables")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help=f"rewrite the README's result blocks from the tables in {RESULTS.relative_to(ROOT)}",
    )
    args = parser.parse_args(argv)
    if args.update_readme:
        README.write_text(render_readme(README.read_text()))
        print(f"README result blocks rewritten from {RESULTS}")
        return 0
    if not args.report_only:
        for kw in plan(args.backbone, tuple(args.rho_sweep)):
            run_suite(out=args.out, **kw, log=_cells_only, progress=False)
    print(summary(args.out, args.backbone))
    print(f"# {args.backbone}: the checks of issue 13\n")
    failed = 0
    for criterion, holds, numbers in checks(args.out, args.backbone):
        print(f"- {'PASS' if holds else 'FAIL'}: {criterion}: {numbers}")
        failed += not holds
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
