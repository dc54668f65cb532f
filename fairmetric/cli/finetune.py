"""``fairmetric finetune``: a downstream classifier on top of frozen embeddings, per-group results."""

from __future__ import annotations

import argparse
from pathlib import Path

from fairmetric.cli.common import Formatter, check_output, nonnegative_int

__all__ = ["add_parser"]


#: the keys of a --task file (fairmetric.downstream.task.TASK_KEYS, which a test keeps equal;
#: spelled out here so that --help imports nothing heavy)
TASK_KEYS = (
    "data",
    "data_params",
    "root",
    "image_size",
    "source_split",
    "test_fraction",
    "classifier",
    "classifier_params",
    "balance",
    "balance_attribute",
    "balance_per_class",
    "share",
    "minority_value",
    "attributes",
    "n_boot",
    "level",
    "min_group_size",
    "seed",
    "batch_size",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fit a downstream classifier on a model's embeddings and report accuracy per group",
        formatter_class=Formatter,
        description=(
            "Downstream evaluation of an embedding model. The task: the dataset's test split "
            "(classes the metric learner never saw) is split in half, stratified by class and "
            "attribute values; a classifier of those classes is fitted on one half (optionally "
            "balanced by an attribute) and its accuracy is reported on the other half, overall "
            "and per group, with the gap, the worst group and bootstrap intervals. DIR receives "
            "report.json, report.md and report.html.\n\n"
            "classifiers: probe (logistic regression on frozen embeddings), knn (k-NN vote), "
            "head (a trained head on frozen embeddings), end_to_end (finetune the embedder and a "
            "head).\n\n"
            "--task is an optional YAML file with any of: " + ", ".join(TASK_KEYS) + ". Without "
            "it, a run folder's own data config is used.\n\n"
            "examples:\n"
            "  fairmetric finetune --model runs/baseline --balance attribute --out runs/baseline/downstream\n"
            "  fairmetric finetune --model runs/parade --task configs/downstream/colored_digits_probe.yaml "
            "--out runs/parade/downstream"
        ),
    )
    p.add_argument(
        "--model",
        type=Path,
        required=True,
        help="a training run folder or an exported model folder",
    )
    p.add_argument("--task", type=Path, help="downstream task YAML (see above)")
    p.add_argument(
        "--classifier",
        choices=["probe", "knn", "head", "end_to_end"],
        help="downstream classifier (default: the task's, else probe)",
    )
    p.add_argument(
        "--balance",
        choices=["none", "attribute", "imbalanced"],
        help="how the downstream training half is balanced by --balance-attribute (default: "
        "the task's, else none)",
    )
    p.add_argument("--balance-attribute", help="attribute to balance by (default: the first)")
    p.add_argument(
        "--seed", type=nonnegative_int, help="seed of the split, balancing and classifier"
    )
    p.add_argument(
        "--min-group-size",
        type=int,
        metavar="N",
        help="groups with fewer downstream-test samples are still reported, but kept out of "
        "the gap and the worst group (default: the task's, else 10; 1: compare every group)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_finetune)


def _task_from_run(model: Path) -> dict:
    """The data part of a training run's config, when ``model`` is a run folder."""
    cfg_path = model / "config.yaml"
    if not cfg_path.is_file():
        return {}
    from fairmetric.train.config import load_config

    data = load_config(cfg_path).data
    return {
        "data": data.name,
        "data_params": dict(data.params),
        "root": data.root,
        "image_size": data.image_size,
    }


def _run_finetune(args: argparse.Namespace) -> int:
    from fairmetric.downstream import run_downstream
    from fairmetric.downstream.task import load_task
    from fairmetric.report.frame import check_min_group_size
    from fairmetric.report.writers import render_summary

    if not args.model.exists():
        raise FileNotFoundError(f"--model {args.model} does not exist")
    check_output(args.out)
    task = _task_from_run(args.model)
    if args.task is not None:
        given = load_task(args.task)
        task.update(given)
    for key, value in (
        ("classifier", args.classifier),
        ("balance", args.balance),
        ("balance_attribute", args.balance_attribute),
        ("seed", args.seed),
        ("min_group_size", args.min_group_size),
    ):
        if value is not None:
            task[key] = value
    check_min_group_size(task.get("min_group_size", 10))
    result = run_downstream(
        args.model, **task, device=args.device, out_dir=args.out, progress=not args.no_progress
    )
    print(render_summary(result.report))
    print(f"report: {args.out / 'report.html'}")
    return 0
