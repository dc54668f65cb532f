"""PARADE's effect on the subgroup gap: the same configuration at ρ = 0 and at ρ > 0, over seeds.

    python benchmarks/parade_effect.py --seeds 0 1 2
    python benchmarks/parade_effect.py --seeds 0 1 2 --set objective.parade.rho=30

Trains ``configs/colored_digits_parade.yaml`` (coloured digits at 95:5 colour imbalance) once with
``objective.parade.rho=0`` -- the attribute head is still trained, only the decorrelation is off --
and once with the config's ρ, for every seed, and prints test Recall@1 overall and per colour, the
gap between colour groups, and the relative gap reduction, with mean and standard deviation over
seeds. Finished runs are reused (``--out`` keeps them), so the command can be re-run to add seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairmetric.train import load_config, train  # noqa: E402


def _final(run: Path) -> dict:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def _run(config: Path, overrides: list[str], out: Path) -> dict:
    if (out / "model" / "model.safetensors").is_file():
        return _final(out)
    if out.exists():
        cfg = load_config(out / "config.yaml")
        train(
            cfg, out, resume=(out / "checkpoint.pt").is_file(), progress=False, log=lambda s: None
        )
    else:
        train(load_config(config, overrides), out, progress=False, log=lambda s: None)
    return _final(out)


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=ROOT / "configs" / "colored_digits_parade.yaml"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides for both arms (e.g. objective.parade.rho=30)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "parade_effect")
    parser.add_argument("--attribute", default="colour")
    args = parser.parse_args()

    tag = (
        "_".join(s.replace("objective.parade.", "").replace("=", "") for s in args.set) or "default"
    )
    rows = {"rho=0": [], "parade": []}
    t0 = time.perf_counter()
    for seed in args.seeds:
        for arm, extra in (("rho=0", ["objective.parade.rho=0"]), ("parade", [])):
            overrides = [*args.set, *extra, f"train.seed={seed}"]
            out = args.out / tag / f"{arm.replace('=', '')}_seed{seed}"
            final = _run(args.config, overrides, out)
            r1 = final["metrics"]["recall@1"]
            rows[arm].append(
                {
                    "seed": seed,
                    "overall": r1["overall"],
                    "gap": r1["gap"][args.attribute],
                    "by_group": r1["by_group"][args.attribute],
                    "correlation": (final.get("terms") or {}).get(
                        f"parade/{args.attribute}/correlation"
                    ),
                }
            )
            print(
                f"seed {seed} {arm:<7} R@1 {r1['overall']:.3f}  gap {r1['gap'][args.attribute]:.3f}  "
                + "  ".join(f"{k} {v:.3f}" for k, v in r1["by_group"][args.attribute].items()),
                flush=True,
            )
    cfg = load_config(args.config, args.set)
    p = cfg.objective.parade
    print(
        f"\nconfig {args.config.name} {' '.join(args.set)}: decorrelation {p.decorrelation}, "
        f"rho {p.rho}, seeds {args.seeds}, {time.perf_counter() - t0:.0f} s\n"
    )
    print("| arm | Recall@1 | worst group | gap | correlation (last epoch) |")
    print("|---|---:|---:|---:|---:|")
    for arm, rs in rows.items():
        corr = [r["correlation"] for r in rs if r["correlation"] is not None]
        print(
            f"| {arm} | {_mean_sd([r['overall'] for r in rs])} | "
            f"{_mean_sd([min(r['by_group'].values()) for r in rs])} | {_mean_sd([r['gap'] for r in rs])} | "
            f"{_mean_sd(corr) if corr else 'n/a'} |"
        )
    base = statistics.mean(r["gap"] for r in rows["rho=0"])
    new = statistics.mean(r["gap"] for r in rows["parade"])
    d_overall = statistics.mean(r["overall"] for r in rows["parade"]) - statistics.mean(
        r["overall"] for r in rows["rho=0"]
    )
    per_seed = [1 - b["gap"] / a["gap"] for a, b in zip(rows["rho=0"], rows["parade"])]
    print(
        f"\ngap reduction (mean gaps): {1 - new / base:+.1%} (target >= 40%); per seed: "
        + ", ".join(f"{x:+.0%}" for x in per_seed)
        + f"\noverall Recall@1 change: {100 * d_overall:+.1f} points (target within 3)"
    )
    (args.out / tag).mkdir(parents=True, exist_ok=True)
    (args.out / tag / "summary.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
