"""Quickstart: train an embedding on a biased benchmark from Python and look at Recall@1 per group.

Run: python examples/quickstart.py [--epochs N] [--out DIR]

Uses the Gaussian group-mixture benchmark (vectors, no images), so it finishes in seconds on a
CPU. Swap `configs/gaussian_baseline.yaml` for `configs/colored_digits_baseline.yaml` to train a
timm backbone on images instead.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fairmetric.models import embed_dataset, load_embedder
from fairmetric.train import build_data, load_config, train
from fairmetric.train.evaluate import recall_by_group

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "gaussian_baseline.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fairmetric-quickstart-"))

    # 1. a typed config from YAML, with overrides exactly like the command line's key=value
    cfg = load_config(CONFIG, [f"train.epochs={args.epochs}"])

    # 2. train: checkpoints, metrics.jsonl and the exported model land in the run folder
    result = train(cfg, out / "run", progress=False, log=lambda line: None)

    # 3. load the exported model (no training state needed) and embed the unseen test classes
    model = load_embedder(result["model_dir"])
    test_set = build_data(cfg)["test"]
    emb = embed_dataset(model, test_set)
    emb.save(out / "test_embeddings.npz")

    # 4. Recall@1 overall and per group, with the gap between groups
    r1 = recall_by_group(emb, [1])["recall@1"]
    untrained = result["history"][0]["metrics"]["recall@1"]
    print(f"Recall@1 overall: untrained {untrained['overall']:.3f} -> trained {r1['overall']:.3f}")
    for group, value in r1["by_group"]["group"].items():
        print(f"  group {group}: {value:.3f}")
    print(f"  gap (max - min): {r1['gap']['group']:.3f}")
    print(f"outputs in {out}")


if __name__ == "__main__":
    main()
