"""Write your own fairness term: a "centroid gap" pulling the per-colour embedding means together.

Run: python examples/custom_term.py [--epochs N] [--batches N] [--weight W] [--out DIR]

A fairness term is a :class:`fairmetric.losses.Term`: its ``forward`` gets the training step's
:class:`~fairmetric.losses.Batch` (backbone features, raw and normalised embeddings, labels,
sensitive attributes) and returns ``{name: unweighted scalar}``; the objective adds
``weight_of(name) x value`` to the PML metric loss and reports every part. Entries whose name
starts with ``"@"`` are diagnostics: logged, never optimised.

Registering the term (``@register_term("centroid_gap")``, with its typed config and
``from_config``) is all it takes to make it part of fairmetric: the config key
``objective.centroid_gap.attribute=colour`` turns it on, the real trainer (``train()``, the same
as ``fairmetric train``) builds and trains it, every part is logged per epoch under ``terms`` in
``metrics.jsonl``, and ``fairmetric bench`` can run it as the method ``centroid_gap``. This
script trains the coloured-digits embedding (digits 0-4, 95% "light"; no download) with it,
prints every term per epoch, then Recall@1 per colour on the unseen digits 5-9. Run it again with
``--weight 0`` to train without the term. See docs/extend.md.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from fairmetric.bounds import bounded
from fairmetric.losses import Batch, ObjectiveContext, Term, register_term
from fairmetric.models import embed_dataset, load_embedder
from fairmetric.train import build_data, load_config, train
from fairmetric.train.evaluate import recall_by_group


@dataclass
class CentroidGapConfig:
    """``objective.centroid_gap``: the attribute whose group centroids are pulled together
    (``null``: off) and the term's weight."""

    attribute: str | None = None
    weight: float = bounded(1.0, ge=0)  # range-checked when the config is loaded


@register_term("centroid_gap", replace=True)  # replace: the script may be imported twice
class CentroidGap(Term):
    """Pull the per-group embedding means of ``attribute`` together.

    Value: the variance of the group centroids around their mean, summed over dimensions (0 when
    every group has the same centroid). A batch with a single group contributes 0. Diagnostics:
    ``@groups_in_batch`` and ``@centroid_distance`` (largest distance between two centroids).
    """

    config_class = CentroidGapConfig
    bench_methods = {"centroid_gap": ["objective.centroid_gap.attribute={attr}"]}

    @classmethod
    def from_config(cls, config: CentroidGapConfig, context: ObjectiveContext) -> list[Term]:
        if config.attribute is None:
            return []
        context.check_attribute(config.attribute, "objective.centroid_gap.attribute")
        return [cls(config.attribute, weight=config.weight)]

    def __init__(self, attribute: str, weight: float = 1.0) -> None:
        super().__init__(weight=weight)
        self.attribute = attribute

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        g = batch.attribute(self.attribute)
        means = torch.stack([batch.embeddings[g == v].mean(0) for v in g.unique()])
        if len(means) < 2:  # nothing to pull together; keep the graph for backward
            gap = batch.embeddings.sum() * 0.0
            distance = torch.zeros(())
        else:
            gap = means.var(0, unbiased=False).sum()
            distance = torch.cdist(means, means).max()
        return {
            "centroid_gap": gap,
            "@groups_in_batch": torch.tensor(float(len(means))),
            "@centroid_distance": distance.detach(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8, help="batches per epoch")
    parser.add_argument("--weight", type=float, default=1.0, help="weight of the centroid gap")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: temp)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fairmetric-custom-term-"))

    # the shipped baseline plus our term, switched on by its own config keys
    cfg = load_config(
        "colored_digits_baseline",
        [
            "name=custom_term",
            f"train.epochs={args.epochs}",
            f"train.batches_per_epoch={args.batches}",
            "objective.centroid_gap.attribute=colour",
            f"objective.centroid_gap.weight={args.weight}",
        ],
    )
    result = train(cfg, out / "run", progress=False, log=lambda _line: None)
    for record in result["history"][1:]:
        parts = {"total": record["loss"], **record["terms"]}
        print(f"epoch {record['epoch']}: " + "  ".join(f"{k} {v:.4f}" for k, v in parts.items()))

    # how the colours fare on unseen digits, from the exported model
    model = load_embedder(result["model_dir"])
    emb = embed_dataset(model, build_data(cfg)["test"])
    emb.save(out / "test_embeddings.npz")
    r1 = recall_by_group(emb, [1])["recall@1"]
    per_group = ", ".join(f"{g} {v:.3f}" for g, v in r1["by_group"]["colour"].items())
    print(f"test Recall@1 {r1['overall']:.3f} ({per_group}); gap {r1['gap']['colour']:.3f}")
    print(f"run folder {out / 'run'}; embeddings in {out / 'test_embeddings.npz'}")


if __name__ == "__main__":
    main()
