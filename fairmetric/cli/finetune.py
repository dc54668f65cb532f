"""``fairmetric finetune``: a downstream classifier on top of frozen embeddings, per-group results."""

from __future__ import annotations

import argparse
from pathlib import Path

from fairmetric.cli.common import Formatter, add_list_argument, check_output, nonnegative_int

__all__ = ["add_parser"]


#: run_downstream's keys that need a model and a dataset (not used with an embedding file)
MODEL_KEYS = ("data", "data_params", "root", "image_size", "source_split", "batch_size")
#: built-in classifiers (others: a dotted scikit-learn-style class name)
BUILTIN = ("probe", "knn", "head", "end_to_end")

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
        help="fit a downstream classifier (built-in or any scikit-learn estimator) on a model's or "
        "an embedding file's embeddings and report accuracy, balanced accuracy and macro-F1 per "
        "group",
        formatter_class=Formatter,
        description=(
            "Downstream evaluation of embeddings. SOURCE is an embedding file (.npz / "
            ".safetensors written by 'fairmetric embed' or EmbeddingSet.save) or a training run / "
            "exported model folder (also accepted as --model). Its samples are split into a "
            "downstream-train and a downstream-test part (--test-fraction), stratified by class "
            "and attribute values and seeded; a classifier of the classes is fitted on the "
            "training part (optionally balanced by an attribute) and its accuracy, balanced "
            "accuracy and macro-F1 are reported on the test part, overall and per group, with "
            "the gap, the worst group and bootstrap intervals. For a model, the samples are its "
            "dataset's test split (classes the metric learner never saw). --out receives "
            "report.json, report.md and report.html.\n\n"
            "classifiers: probe (logistic regression on frozen embeddings), knn (k-NN vote), "
            "any scikit-learn-style class by its dotted name (e.g. "
            "sklearn.linear_model.LogisticRegression, sklearn.svm.LinearSVC) with "
            "--classifier-params as JSON; for a model also head (a trained head on frozen "
            "embeddings) and end_to_end (finetune the embedder and a head).\n\n"
            "--task is an optional YAML file with any of: " + ", ".join(TASK_KEYS) + ". Without "
            "it, a run folder's own data config is used; flags override it.\n\n"
            "examples:\n"
            "  fairmetric finetune emb.npz --classifier sklearn.svm.LinearSVC "
            "--classifier-params '{\"C\": 0.5}' --out downstream/\n"
            "  fairmetric finetune runs/baseline --balance attribute --out runs/baseline/downstream\n"
            "  fairmetric finetune --model runs/parade --task configs/downstream/colored_digits_probe.yaml "
            "--out runs/parade/downstream"
        ),
    )
    p.add_argument(
        "source",
        nargs="?",
        type=Path,
        help="an embedding file (.npz / .safetensors) or a run / exported model folder",
    )
    p.add_argument(
        "--model",
        type=Path,
        help="a training run folder or an exported model folder (the same as SOURCE)",
    )
    p.add_argument("--task", type=Path, help="downstream task YAML (see above)")
    p.add_argument(
        "--classifier",
        metavar="NAME",
        help="probe, knn, head, end_to_end, or a dotted class name such as "
        "sklearn.linear_model.LogisticRegression (default: the task's, else probe)",
    )
    p.add_argument(
        "--classifier-params",
        metavar="JSON",
        help="keyword arguments of the classifier as a JSON object, e.g. '{\"C\": 0.5}'",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        metavar="F",
        help="share of each class x attribute cell held out for testing (default: the task's, "
        "else 0.5)",
    )
    add_list_argument(
        p,
        "--attributes",
        metavar="NAME",
        what="attribute names",
        help="attributes to report by, space- or comma-separated (default: all)",
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
        "--n-boot",
        type=nonnegative_int,
        metavar="N",
        help="bootstrap replicates for the intervals, 0: none (default: the task's, else 200)",
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


def _classifier_params(text: str) -> dict:
    """``--classifier-params`` as a dict, or a UserError naming the flag."""
    import json

    from fairmetric.errors import UserError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(
            f"--classifier-params {text!r} is not JSON ({e.msg}); write a JSON object, e.g. "
            '\'{"C": 0.5, "max_iter": 200}\''
        ) from None
    if not isinstance(value, dict):
        raise UserError(
            f"--classifier-params must be a JSON object of keyword arguments, got {text!r}; e.g. "
            "'{\"C\": 0.5}'"
        )
    return value


def _source(args: argparse.Namespace) -> Path:
    from fairmetric.errors import UserError

    if args.source is not None and args.model is not None:
        raise UserError("give SOURCE or --model, not both")
    source = args.source if args.source is not None else args.model
    if source is None:
        raise UserError(
            "nothing to evaluate: give an embedding file or a run folder, e.g. "
            "'fairmetric finetune emb.npz --out downstream/'"
        )
    if not source.exists():
        flag = "--model" if args.model is not None else "SOURCE"
        raise FileNotFoundError(f"{flag} {source} does not exist")
    return source


def _run_finetune(args: argparse.Namespace) -> int:
    from fairmetric.downstream import is_embedding_file, run_downstream, run_on_embeddings
    from fairmetric.downstream.task import load_task
    from fairmetric.errors import UserError
    from fairmetric.report.frame import check_min_group_size
    from fairmetric.report.writers import render_summary

    source = _source(args)
    embeddings = source.is_file() and is_embedding_file(source)
    if source.is_file() and not embeddings:
        raise UserError(
            f"{source} is neither an embedding file (.npz / .safetensors) nor a folder; give an "
            "embedding file, a training run folder or an exported model folder"
        )
    check_output(args.out)
    params = None if args.classifier_params is None else _classifier_params(args.classifier_params)
    task = {} if embeddings else _task_from_run(source)
    if args.task is not None:
        task.update(load_task(args.task))
    for key, value in (
        ("classifier", args.classifier),
        ("classifier_params", params),
        ("test_fraction", args.test_fraction),
        ("attributes", args.attributes),
        ("balance", args.balance),
        ("balance_attribute", args.balance_attribute),
        ("seed", args.seed),
        ("n_boot", args.n_boot),
        ("min_group_size", args.min_group_size),
    ):
        if value is not None:
            task[key] = value
    check_min_group_size(task.get("min_group_size", 10))
    if embeddings:
        model_keys = sorted(k for k in MODEL_KEYS if k in task)
        if model_keys:
            raise UserError(
                f"--task sets {', '.join(model_keys)}, which apply to a model and its dataset, "
                f"not to the embedding file {source}; leave them out"
            )
        result = run_on_embeddings(source, **task, out_dir=args.out)
    else:
        result = run_downstream(
            source, **task, device=args.device, out_dir=args.out, progress=not args.no_progress
        )
    print(render_summary(result.report))
    print(f"report: {args.out / 'report.html'}")
    return 0
