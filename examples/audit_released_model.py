"""Audit a "released" embedding model for subgroup gaps through a ``module:function`` encoder.

Run: python examples/audit_released_model.py [--model RUN] [--bootstrap N] [--out DIR]

The encoder is ``my_encoder:embed`` (examples/my_encoder.py): any function mapping a batch of
inputs to embeddings, the way to audit a network fairmetric did not train. fairmetric embeds the
test split of the coloured-digits benchmark (digits 5-9, colours balanced; no download) with it,
runs the audit (Recall@k, MAP@R, alignment, uniformity, homophily and attribute leakage per colour
group, with bootstrap intervals), prints the per-group summary and writes report.json, report.md
and report.html. Without ``--model`` the "released" network has seeded random weights; pass a
fairmetric run folder (e.g. from examples/quickstart.py with the coloured-digits config, or
``fairmetric train``) to audit a trained one. The command-line equivalent is

    PYTHONPATH=examples fairmetric audit my_encoder:embed \
        --config configs/colored_digits_baseline.yaml --out DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import fairmetric
from fairmetric.report import write_report
from fairmetric.report.writers import render_summary
from fairmetric.sources import load_source

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "colored_digits_baseline.yaml"
ENCODER = "my_encoder:embed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="run or model folder to audit (default: random)"
    )
    parser.add_argument("--config", type=Path, default=CONFIG, help="config describing the data")
    parser.add_argument("--split", default="test", help="which split of the data to embed")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: temp)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fairmetric-audit-"))

    # 1. make the encoder importable as module:function (fairmetric audit imports it by name)
    sys.path.insert(0, str(HERE))
    if args.model is not None:
        os.environ["MY_ENCODER_MODEL"] = str(args.model)

    # 2. the same resolution `fairmetric audit my_encoder:embed --config ...` does: build the
    #    config's data split and embed it batch by batch with the function
    emb = load_source(ENCODER, config=args.config, split=args.split)
    print(f"embedded {len(emb)} samples of the {args.split} split with {ENCODER}: dim {emb.dim}")

    # 3. audit every attribute (here: colour) and print the per-group summary
    report = fairmetric.audit(emb, ks=(1, 4), bootstrap=args.bootstrap, source=ENCODER)
    print(render_summary(report))
    r1 = report["recall@1"]
    group, value = r1.worst_group("colour")
    print(
        f"recall@1 gap between colours: {r1.difference('colour'):.3f} (worst: {group} {value:.3f})"
    )

    # 4. report.json (machine-readable), report.md and a self-contained report.html
    paths = write_report(report, out)
    print("wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
