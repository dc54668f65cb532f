"""Face-verification fairness from Python: per-group FMR / FNMR at one global threshold, a gate
on a disparity summary, and a post-hoc fix for a model that cannot be retrained.

The embeddings stand in for a released face model's: 400 identities × 5 images in 32-d; the
identities of group "B" are crowded around one direction, so two different people of group B
look alike to the model more often (the demographic effect NIST FRVT Part 3 measured).

    python examples/verification.py --out runs/verification-example
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fairmetric import EmbeddingSet
from fairmetric.audit.verification import verification_audit
from fairmetric.audit.verification.fixes import compare_fix
from fairmetric.report import check_conditions, write_report


def released_model_embeddings(identities: int, per: int, seed: int = 0) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, 32))
    half = identities // 2
    centres[half:] = 0.8 * rng.normal(size=32) + 0.9 * centres[half:]  # group B: crowded
    x = np.repeat(centres, per, axis=0) + 0.35 * rng.normal(size=(identities * per, 32))
    group = np.repeat(np.array(["A"] * half + ["B"] * (identities - half)), per)
    return EmbeddingSet(
        embeddings=x.astype(np.float32),
        labels=np.repeat(np.arange(identities), per),
        attributes={"group": group},
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/verification-example"))
    p.add_argument("--identities", type=int, default=400)
    p.add_argument("--bootstrap", type=int, default=100)
    args = p.parse_args(argv)
    emb = released_model_embeddings(args.identities, 5)

    report = verification_audit(emb, fmr=[1e-3], bootstrap=args.bootstrap)
    fmr = report["fmr@1e-3"]
    print(f"global threshold at FMR 1e-3: {report['threshold@1e-3'].overall.value:.3f}")
    for g, est in fmr.by_group["group"].items():
        fnmr = report["fnmr@1e-3"].by_group["group"][g].value
        print(
            f"  group {g}: FMR {est.value:.2e} [{est.ci_low:.2e}, {est.ci_high:.2e}], FNMR {fnmr:.3f}"
        )
    geo = fmr.summaries["max_geomean"]["group"]
    print(f"FMR max/geomean: {geo.value:.2f} [{geo.ci_low:.2f}, {geo.ci_high:.2f}]")
    violations = check_conditions(report, ["fmr@1e-3.max_geomean>1.5"])
    print("gate fmr@1e-3.max_geomean>1.5:", "FAIL" if violations else "pass")
    write_report(report, args.out / "audit")

    comparison = compare_fix(emb, "faircal", fmr=[1e-3], bootstrap=0, n_clusters=10)
    before = comparison.before["fmr@1e-3"].summaries["max_geomean"]["group"].value
    after = comparison.after["fmr@1e-3"].summaries["max_geomean"]["group"].value
    print(f"FairCal on held-out identities: FMR max/geomean {before:.2f} -> {after:.2f}")
    comparison.transform.save(args.out / "faircal.json")
    print(f"wrote {args.out / 'audit'} and {args.out / 'faircal.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
