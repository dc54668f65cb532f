"""Data-side bias mitigation from Python: compare methods on the Gaussian benchmark, then SMOTE.

Run: python examples/mitigation.py [--epochs N] [--out DIR]

Trains the same embedding several times on the Gaussian group-mixture benchmark (vectors, so it
takes seconds on a CPU): the baseline, loss reweighting, epoch-level balanced sampling and
hard-example mining, each switched on with the same ``key=value`` overrides the command line
takes, and prints overall and per-group Recall@1 on unseen classes. Then it rebalances the
training embeddings offline with EmbeddingSMOTE (imbalanced-learn's fit_resample interface).
One seed and a few epochs: the numbers show the mechanics, not a verdict on the methods
(benchmarks/RESULTS.md has measured comparisons).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from fairmetric.models import embed_dataset, load_embedder
from fairmetric.sampling import EmbeddingSMOTE
from fairmetric.train import build_data, load_config, train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "gaussian_baseline.yaml"

METHODS = {
    "baseline": [],
    "reweight": ["data.group_attribute=group", "mitigation.reweight.enabled=true"],
    "epoch_balanced": ["data.group_attribute=group", "sampling.name=epoch_balanced"],
    "hard_mining": ["mitigation.hard_mining.candidates_per_batch=128", "train.m_per_class=8"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the runs (default: temp)"
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fairmetric-mitigation-"))

    print(f"{'method':<16}{'R@1':>7}{'worst':>8}{'gap':>7}")
    for name, overrides in METHODS.items():
        cfg = load_config(CONFIG, [f"train.epochs={args.epochs}", *overrides])
        result = train(cfg, out / name, progress=False, log=lambda line: None)
        r1 = result["final"]["metrics"]["recall@1"]
        worst = min(r1["by_group"]["group"].values())
        print(f"{name:<16}{r1['overall']:>7.3f}{worst:>8.3f}{r1['gap']['group']:>7.3f}")

    # offline SMOTE on the baseline's training embeddings: top the minority group up to the
    # majority's size with points interpolated between same-group nearest neighbours
    cfg = load_config(CONFIG)
    emb = embed_dataset(load_embedder(out / "baseline" / "model"), build_data(cfg)["train"])
    groups = emb.attribute("group")
    smote = EmbeddingSMOTE(k_neighbors=5, group_by="attribute", random_state=0)
    x_res, y_res, g_res = smote.fit_resample(emb.embeddings, emb.labels, groups)
    print(
        f"SMOTE: groups {np.bincount(groups).tolist()} -> {np.bincount(g_res).tolist()}, "
        f"{len(x_res) - len(groups)} synthetic embeddings of dimension {x_res.shape[1]}"
    )
    print(f"runs in {out}")


if __name__ == "__main__":
    main()
