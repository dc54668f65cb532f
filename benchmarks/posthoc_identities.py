"""Post-hoc score fixes on the built-in synthetic identities: do they lower the FMR disparity of a
released model on identities they were not fitted on? A paired, five-seed measurement.

For each seed: train the MLP baseline of ``identities_mlp_baseline`` (the demo's config; training
images 95% majority palette), embed its 100 unseen test identities (50:50 palettes), split those
identities in half (calibration / held-out, stratified by palette, seeded), fit each fix on the
calibration half and run the verification audit on the held-out half before and after it. The
change (after − before) of each quantity is paired by seed; the table gives its mean over seeds
with a 95% t interval and says whether the interval excludes zero.

    .venv/bin/python benchmarks/posthoc_identities.py                  # run, write the JSON
    .venv/bin/python benchmarks/posthoc_identities.py --report-only    # print from the JSON
    .venv/bin/python benchmarks/posthoc_identities.py --update-readme  # rewrite the README block

The JSON (``benchmarks/results/issue15/posthoc.json``) records the command, the platform and every
per-seed number; ``tests/test_results.py`` checks that the README's block is this script's
rendering of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/issue15/posthoc.json"
README = ROOT / "README.md"
README_MARK = (
    "<!-- checked by tests/test_results.py: benchmarks/posthoc_identities.py --report-only -->"
)
FIXES = {
    "per_group_threshold": {"target_fmr": 1e-2},
    "score_normalisation": {},
    "fsn": {"target_fmr": 1e-2, "n_clusters": 20},
    "faircal": {"n_clusters": 20},
}
TARGETS = ("1e-2", "1e-3")
CONFIG = "identities_mlp_baseline"
ATTRIBUTE = "palette"


def measure(seed: int) -> dict[str, Any]:
    """One seed: train, embed the test split, judge every fix on held-out identities."""
    from fairmetric.audit.verification.fixes import compare_fix
    from fairmetric.models.embed import embed_dataset
    from fairmetric.models.embedder import load_embedder
    from fairmetric.train import load_config
    from fairmetric.train.trainer import build_data, train

    cfg = load_config(CONFIG, [f"train.seed={seed}", "train.device=cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, Path(tmp) / "run", progress=False, log=lambda s: None)
        model = load_embedder(result["model_dir"])
        emb = embed_dataset(model, build_data(cfg)["test"], device="cpu")
    out: dict[str, Any] = {"seed": seed, "n": len(emb), "fixes": {}}
    for fix, params in FIXES.items():
        c = compare_fix(
            emb, fix, attribute=ATTRIBUTE, fmr=[1e-2, 1e-3], bootstrap=0, seed=seed, **params
        )
        entry: dict[str, Any] = {}
        for t in TARGETS:
            entry[t] = {}
            for when, report in (("before", c.before), ("after", c.after)):
                fmr, fnmr = report[f"fmr@{t}"], report[f"fnmr@{t}"]
                entry[t][when] = {
                    "fmr_by_group": fmr.values(ATTRIBUTE),
                    "fmr_max_geomean": fmr.summaries["max_geomean"][ATTRIBUTE].value,
                    "fmr_gini": fmr.summaries["gini"][ATTRIBUTE].value,
                    "fnmr": fnmr.overall.value,
                }
        entry["ece_by_group"] = {
            "before": {g: v["ece"] for g, v in c.calibration_before["by_group"].items()},
            "after": {g: v["ece"] for g, v in c.calibration_after["by_group"].items()},
        }
        out["fixes"][fix] = entry
    return out


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired changes (after − before) over seeds, per fix and target."""
    from fairmetric.bench.stats import paired_interval

    table: dict[str, Any] = {}
    for fix in FIXES:
        table[fix] = {}
        for t in TARGETS:
            rows = {}
            for key in ("fmr_max_geomean", "fmr_gini", "fnmr"):
                before = [s["fixes"][fix][t]["before"][key] for s in seeds]
                after = [s["fixes"][fix][t]["after"][key] for s in seeds]
                if any(v is None for v in before + after):
                    rows[key] = {"before_mean": None, "after_mean": None, "change": None}
                    continue
                change = paired_interval([a - b for a, b in zip(after, before)])
                rows[key] = {
                    "before_mean": sum(before) / len(before),
                    "after_mean": sum(after) / len(after),
                    "change": {k: change[k] for k in ("mean", "low", "high", "excludes_zero")},
                }
            table[fix][t] = rows
    return table


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def render(doc: dict[str, Any]) -> str:
    """The README block: per fix, the held-out FMR max/geomean and FNMR before → after at each
    target, with the paired change's 95% interval (``*``: it excludes zero)."""
    lines = [
        f"post-hoc fixes, held-out identities, {len(doc['seeds'])} seeds (mean before -> after; "
        "change [95% t interval], * excludes 0)",
        f"{'fix':<20} {'FMR':>5}  {'FMR max/geomean':<34} FNMR",
    ]
    for fix, per in doc["summary"].items():
        for t, rows in per.items():
            cells = []
            for key, digits in (("fmr_max_geomean", 2), ("fnmr", 3)):
                r = rows[key]
                ch = r["change"]
                if ch is None:
                    cells.append("n/a")
                    continue
                star = "*" if ch["excludes_zero"] else " "
                cells.append(
                    f"{_f(r['before_mean'], digits)} -> {_f(r['after_mean'], digits)} "
                    f"[{_f(ch['low'], digits)}, {_f(ch['high'], digits)}]{star}"
                )
            lines.append(f"{fix:<20} {t:>5}  {cells[0]:<34} {cells[1]:<30}".rstrip())
    return "\n".join(lines) + "\n"


def readme_span(text: str) -> tuple[int, int]:
    """Offsets of the body of the README's post-hoc block (the fenced block after the mark)."""
    i = text.find(README_MARK)
    if i < 0:
        raise ValueError(f"README has no {README_MARK!r}")
    start = text.index("```text\n", i) + len("```text\n")
    end = text.index("```", start)
    return start, end


def render_readme(text: str, doc: dict[str, Any] | None = None) -> str:
    doc = doc if doc is not None else json.loads(RESULTS.read_text())
    start, end = readme_span(text)
    return text[:start] + render(doc) + text[end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--report-only", action="store_true", help="print the table from the JSON")
    p.add_argument("--update-readme", action="store_true", help="rewrite the README block")
    args = p.parse_args(argv)
    if args.update_readme:
        README.write_text(render_readme(README.read_text()))
        print(f"README post-hoc block rewritten from {RESULTS}")
        return 0
    if not args.report_only:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)
        t0 = time.perf_counter()
        seeds = []
        for seed in args.seeds:
            seeds.append(measure(seed))
            print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        doc = {
            "command": "python benchmarks/posthoc_identities.py --seeds "
            + " ".join(map(str, args.seeds)),
            "platform": f"{platform.platform()}, Python {platform.python_version()}, torch "
            f"{torch.__version__}, CPU kernels {torch.backends.cpu.get_cpu_capability()}",
            "config": CONFIG,
            "fixes": FIXES,
            "seconds": round(time.perf_counter() - t0, 1),
            "seeds": seeds,
        }
        doc["summary"] = summarise(seeds)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(render(json.loads(RESULTS.read_text())), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
