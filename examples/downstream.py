"""Downstream fairness: a linear probe and k-NN on embeddings, with accuracy per colour group.

Run: python examples/downstream.py [--epochs N] [--batches N] [--model RUN] [--bootstrap N]
    [--out DIR]

Trains a small embedding on the coloured-digits benchmark (digits 0-4, 95% "light"; no download)
for a few short epochs, or takes a trained coloured-digits run with ``--model``. Then

1. ``run_downstream`` takes the test split (digits 5-9, never seen by the metric learner), splits
   it into downstream-train and downstream-test halves stratified by digit x colour, balances the
   training half by colour, fits a linear probe of the digit on the frozen embeddings and reports
   its accuracy overall and per colour, with the gap, the worst group and bootstrap intervals
   (report.json, report.md and report.html in ``OUT/downstream``);
2. the same pieces by hand: embed the pool into an ``EmbeddingSet``, fit ``LinearProbe`` and
   ``KNNClassifier`` on the downstream-train rows and turn their predictions into a per-group
   report with ``evaluate_downstream``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fairmetric.downstream import (
    KNNClassifier,
    LinearProbe,
    evaluate_downstream,
    run_downstream,
    stratified_split,
)
from fairmetric.models import embed_dataset, load_embedder
from fairmetric.train import build_data, load_config, train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "colored_digits_baseline.yaml"


def print_accuracy(title: str, report, attribute: str = "colour") -> None:  # noqa: ANN001
    """Overall and per-group accuracy of a downstream report, with the gap and worst group."""
    acc = report["accuracy"]
    print(f"{title}: accuracy {acc.overall.value:.3f}")
    for group, est in acc.by_group[attribute].items():
        ci = "" if est.ci_low is None else f"  [{est.ci_low:.3f}, {est.ci_high:.3f}]"
        print(f"  {attribute}={group:<6} {est.value:.3f}  (n={est.count}){ci}")
    worst, value = acc.worst_group(attribute)
    print(f"  gap (max - min): {acc.difference(attribute):.3f}; worst group: {worst} ({value:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (without --model)")
    parser.add_argument("--batches", type=int, default=10, help="training batches per epoch")
    parser.add_argument(
        "--model", type=Path, default=None, help="a trained coloured-digits run or model folder"
    )
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: temp)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fairmetric-downstream-"))

    # 0. a model: train a small one unless given
    model_dir = args.model
    if model_dir is None:
        overrides = [f"train.epochs={args.epochs}", f"train.batches_per_epoch={args.batches}"]
        cfg = load_config(CONFIG, overrides)
        model_dir = train(cfg, out / "run", progress=False, log=lambda line: None)["model_dir"]
        print(f"trained {args.epochs} epoch(s) of {args.batches} batches: {model_dir}")
    # the pool: the config's test split (digits 5-9, colours balanced)
    pool = build_data(load_config(CONFIG))["test"]

    # 1. the one-call version: probe on colour-balanced downstream-train data, report per colour
    result = run_downstream(
        model_dir,
        data=pool,  # or a dataset name: data="colored_digits", data_params={...}
        classifier="probe",
        balance="attribute",
        balance_attribute="colour",
        n_boot=args.bootstrap,
        out_dir=out / "downstream",
    )
    meta = result.report.metadata
    print(
        f"run_downstream: {meta['n_train']} train (of {meta['n_train_before_balance']} before "
        f"balancing, colours {meta['train_counts']['colour']}) / {meta['n_test']} test"
    )
    print_accuracy("linear probe (run_downstream)", result.report)
    print("wrote " + ", ".join(str(p) for p in result.paths.values()))

    # 2. the pieces by hand, on an EmbeddingSet of the same pool (same split, no balancing)
    model = load_embedder(Path(model_dir))
    emb = embed_dataset(model, pool)
    colour = emb.attribute("colour")
    train_idx, test_idx = stratified_split(emb.labels, [colour], test_fraction=0.5, seed=0)
    names = {"colour": emb.attribute_value_names["colour"]}
    for name, clf in [("LinearProbe", LinearProbe(C=1.0)), ("KNNClassifier", KNNClassifier(k=5))]:
        clf.fit(emb.embeddings[train_idx], emb.labels[train_idx])
        pred = clf.predict(emb.embeddings[test_idx])
        report = evaluate_downstream(
            emb.labels[test_idx],
            pred,
            {"colour": colour[test_idx]},
            group_names=names,
            n_boot=args.bootstrap,
        )
        print_accuracy(f"{name} on the EmbeddingSet", report)


if __name__ == "__main__":
    main()
