"""The ``fairmetric`` command line: ``train``, ``embed``, ``audit``, ``finetune``, ``demo``, ``env``.

Each subcommand is a parser function plus a run function; heavy imports happen inside the run
functions so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from fairmetric import __version__

__all__ = ["main", "build_parser"]

_OVERRIDES_HELP = (
    "config overrides as dotted key=value pairs, values parsed as YAML, e.g. train.epochs=3 "
    "loss.name=MultiSimilarityLoss loss.params.alpha=2 miner.name=null"
)


_EXIT_STATUS = (
    "exit status:\n"
    "  0    ok\n"
    "  1    a --fail-if condition holds (audit)\n"
    "  2    bad input or usage: one line names the problem and the fix\n"
    "       (FAIRMETRIC_TRACEBACK=1 also prints where it was raised)\n"
    "  3    internal error: a bug; the traceback is printed, please report it\n"
    "  130  interrupted (Ctrl-C)\n"
    "  141  the output pipe closed early (e.g. | head)\n"
    "  143  stopped by SIGTERM (train: after writing a checkpoint that --resume continues)"
)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (argparse names the flag in its error)."""
    what = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _check_output(path: Path, flag: str = "--out", *, folder: bool = True) -> None:
    """Refuse an output path that cannot be written before any work is done: a folder below a
    file, a file where a folder is expected (or the reverse), or a place the user may not write.

    The nearest existing folder at or above the path is the one that must be writable (the rest
    is created).
    """
    from fairmetric.errors import UserError

    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; choose a folder (new or existing)")
    if not folder and path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name, e.g. {path / 'emb.npz'}")
    target = path if folder else path.parent
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(
            f"{flag} {path} lies below {existing}, which is a file, not a folder; choose another "
            f"{flag}"
        )
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"{flag} {path}: no permission to write in {existing}; choose a folder you can write "
            "to (or change its permissions)"
        )


# -- train -------------------------------------------------------------------------------------


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an embedding model from a YAML config",
        formatter_class=_Formatter,
        description=(
            "Train an embedding model. The run folder receives config.yaml (resolved config), "
            "checkpoint.pt (after every epoch), metrics.jsonl (Recall@k overall and per "
            "attribute value, per epoch) and model/ (the exported embedder).\n\n"
            "example:\n  fairmetric train --config configs/colored_digits_baseline.yaml "
            "train.epochs=4 --out runs/baseline\n\n"
            "several GPUs (or CPU processes): --nproc N launches torchrun with N processes on this "
            "machine (DistributedDataParallel; train.batch_size is per process). For several "
            "machines run torchrun yourself, e.g. on each node:\n"
            "  torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d "
            "--rdzv_endpoint=HOST:29500 -m fairmetric train --config ... --out RUN\n\n"
            + _EXIT_STATUS
        ),
    )
    p.add_argument(
        "--config",
        type=Path,
        help="YAML experiment config (default: built-in coloured-digits baseline)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help=_OVERRIDES_HELP)
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train with N processes on this machine (one per GPU), launched with torchrun",
    )
    p.set_defaults(run=_run_train, free_overrides=True)


def _run_train(args: argparse.Namespace) -> int:
    from fairmetric.train.config import load_config
    from fairmetric.train.trainer import train

    cfg = load_config(args.config, args.overrides)  # a bad config fails here, before launching
    _check_output(args.out)
    if args.nproc != 1:
        from fairmetric.train.distributed import launch

        argv = ["train", *(["--config", str(args.config)] if args.config else [])]
        argv += [*args.overrides, "--out", str(args.out)]
        argv += ["--resume"] * args.resume + ["--no-progress"] * args.no_progress
        return launch(args.nproc, argv)
    result = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        print(f"run folder: {args.out}  (exported model: {result['model_dir']})")
    return 0


# -- embed -------------------------------------------------------------------------------------

_INFERENCE_KEYS = ("precision", "channels_last", "num_workers")


def _add_inference_flags(
    p: argparse.ArgumentParser, *, what: str = "", config: str = "the config's"
) -> None:
    """``--precision``, ``--num-workers``, ``--channels-last``: unset unless given, so that a
    run's config can supply them (see :func:`_inference_kwargs`)."""
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default=argparse.SUPPRESS,
        help=f"{what}numeric precision of the forward pass: fp32, or autocast to bfloat16 / "
        "float16 (faster on GPUs, embeddings still saved as float32; bf16 needs an Ampere or "
        f"newer GPU) (default: {config} train.precision, else fp32)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"{what}DataLoader worker processes loading samples in parallel, 0: in the main "
        "process; batches are pinned for faster copies with CUDA "
        f"(default: {config} train.num_workers, else 0)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help=f"{what}channels-last (NHWC) memory layout for image models: faster convolutions "
        f"on GPUs, same results (default: {config} train.channels_last, else off)",
    )


def _inference_kwargs(args: argparse.Namespace, train: object | None) -> dict[str, object]:
    """Speed settings for :func:`embed_dataset`: the ``train`` config section's (when given),
    with the flags given on the command line taking precedence."""
    from fairmetric.models.embed import inference_settings

    kwargs: dict[str, object] = inference_settings(train) if train is not None else {}
    kwargs.update({k: getattr(args, k) for k in _INFERENCE_KEYS if hasattr(args, k)})
    return kwargs


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed a data split with a trained model and save an EmbeddingSet",
        formatter_class=_Formatter,
        description=(
            "Embed one split of a dataset with a trained model and save the embeddings with their "
            "labels and attributes (.npz or .safetensors). --model is a run folder (its "
            "config.yaml describes the data) or an exported model folder (then give --config).\n\n"
            "Inference is batched and uses the speed settings of the config's train section "
            "(precision, channels_last, num_workers, pin_memory, prefetch_factor), so a model is "
            "embedded the way it was trained; --precision, --num-workers and --channels-last "
            "override them.\n\n"
            "examples:\n  fairmetric embed --model runs/baseline --split test --out emb.npz\n"
            "  fairmetric embed --model runs/baseline --out emb.npz --precision bf16 "
            "--channels-last --num-workers 8"
        ),
    )
    p.add_argument("--model", type=Path, required=True, help="run folder or exported model folder")
    p.add_argument("--split", default="test", help="which split to embed")
    p.add_argument("--out", type=Path, required=True, help="output file (.npz or .safetensors)")
    p.add_argument(
        "--config",
        type=Path,
        help="experiment config describing the data (default: the run's config.yaml)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help=_OVERRIDES_HELP)
    p.add_argument("--batch-size", type=_positive_int, default=256, help="inference batch size")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _add_inference_flags(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_embed, free_overrides=True)


def _resolve_model_folder(path: Path, config: Path | None) -> tuple[Path, Path]:
    from fairmetric.models.embedder import CONFIG_FILE
    from fairmetric.train.trainer import MODEL_DIR

    if (path / MODEL_DIR / CONFIG_FILE).is_file():
        model_dir = path / MODEL_DIR
        run_config = path / "config.yaml"
        config = config or (run_config if run_config.is_file() else None)
    elif (path / CONFIG_FILE).is_file():
        model_dir = path
    elif not path.exists():
        raise FileNotFoundError(f"--model {path} does not exist")
    else:
        raise FileNotFoundError(
            f"--model {path} is neither a run folder (with {MODEL_DIR}/{CONFIG_FILE}) nor an "
            f"exported model folder (with {CONFIG_FILE})"
        )
    if config is None:
        raise ValueError(f"{path} has no config.yaml describing the data: pass --config")
    return model_dir, config


def _run_embed(args: argparse.Namespace) -> int:
    from fairmetric.models.embed import embed_dataset
    from fairmetric.models.embedder import load_embedder
    from fairmetric.train.config import load_config
    from fairmetric.train.trainer import build_data

    suffix = args.out.suffix
    if suffix not in (".npz", ".safetensors"):
        raise ValueError(f"--out must end in .npz or .safetensors, got {args.out.name!r}")
    _check_output(args.out, folder=False)
    model_dir, config = _resolve_model_folder(args.model, args.config)
    cfg = load_config(config, args.overrides)
    splits = build_data(cfg)
    if args.split not in splits:
        raise ValueError(f"unknown split {args.split!r}; this dataset has: {', '.join(splits)}")
    model = load_embedder(model_dir)
    emb = embed_dataset(
        model,
        splits[args.split],
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
        metadata={"model": str(model_dir), "split": args.split, "config": str(config)},
        **_inference_kwargs(args, cfg.train),
    )
    emb.save(args.out)
    print(f"wrote {len(emb)} embeddings of dimension {emb.dim} to {args.out}")
    return 0


# -- audit -------------------------------------------------------------------------------------


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _fmr_list(text: str) -> list[float]:
    try:
        values = [float(t) for t in _csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fmr takes comma-separated numbers in (0, 1), e.g. 1e-3,1e-4; got {text!r}"
        ) from None
    if not values or not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"--fmr takes comma-separated numbers in (0, 1), e.g. 1e-3,1e-4; got {text!r}"
        )
    return values


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="audit embeddings for subgroup gaps (JSON, Markdown and HTML reports; CI gate)",
        formatter_class=_Formatter,
        description=(
            "Measure how well an embedding space serves each subgroup: Recall@k, MAP@R, intra- "
            "and inter-class alignment, uniformity, spread (mean resultant length, effective rank), neighbourhood homophily and attribute "
            "leakage, per value of each attribute and their intersection, with gaps and "
            "stratified bootstrap intervals, from one faiss k-NN search.\n\n"
            "SOURCE is one of:\n"
            "  emb.npz | emb.safetensors      an EmbeddingSet file (fairmetric embed)\n"
            "  emb.npy --labels labels.csv    a matrix + CSV with header label,<attributes>\n"
            "  runs/NAME                      a fairmetric run or exported model folder\n"
            "  resnet50 [--weights FILE]      a timm model's pooled features (needs --config)\n"
            "  package.module:function        a callable batch -> embeddings (needs --config)\n\n"
            + _EXIT_STATUS
            + "\n\n"
            "examples:\n"
            "  fairmetric audit emb.npz --out audit/\n"
            "  fairmetric audit runs/baseline --fail-if 'recall@1.difference>0.05'\n"
            "  fairmetric audit mypkg.encoders:embed --config configs/celeba_baseline.yaml "
            "--set data.root=/data/celeba"
        ),
    )
    p.add_argument("source", help="what to audit (see above)")
    p.add_argument("--attributes", type=_csv_list, help="comma-separated attributes (default: all)")
    p.add_argument(
        "--k",
        type=lambda s: [int(v) for v in _csv_list(s)],
        default=[1, 2, 4, 8],
        help="Recall@k cut-offs, comma-separated",
    )
    p.add_argument(
        "--homophily-k",
        type=_positive_int,
        default=10,
        metavar="K",
        help="neighbours counted for neighbourhood homophily",
    )
    p.add_argument(
        "--leakage-k",
        type=_positive_int,
        default=10,
        metavar="K",
        help="neighbours voting in the k-NN attribute-leakage probe",
    )
    p.add_argument(
        "--metric",
        choices=["cosine", "l2", "ip"],
        default="cosine",
        help="similarity used for neighbours",
    )
    p.add_argument(
        "--index",
        choices=["auto", "exact", "ivf", "hnsw"],
        default="auto",
        help="faiss index: exact, or approximate for millions of embeddings",
    )
    p.add_argument(
        "--bootstrap", type=int, default=200, help="bootstrap replicates for intervals (0: none)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of bootstrap and sampling")
    p.add_argument("--out", type=Path, help="folder for report.json, report.md, report.html")
    p.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="COND",
        help="exit 1 if COND holds, e.g. 'recall@1.difference>0.05' or "
        "'map@r.worst.colour<0.3' (STAT: overall, difference, ratio, worst, min, max); "
        "repeatable",
    )
    p.add_argument(
        "--min-group-size",
        type=int,
        default=10,  # fairmetric.report.frame.DEFAULT_MIN_GROUP_SIZE (kept out of --help's imports)
        metavar="N",
        help="groups with fewer samples are still reported, but kept out of the gaps "
        "(difference, ratio, worst group, min, max) and so of --fail-if; the report lists them "
        "and why (1: compare every group)",
    )
    v = p.add_argument_group(
        "verification (face-recognition practice: NIST FRVT Part 3, ISO/IEC 19795-10)"
    )
    v.add_argument(
        "--verification",
        action="store_true",
        help="also report per-group FMR and FNMR at one global threshold per target FMR, each "
        "group's own threshold, disparity summaries (max/min, max/geomean, Gini, GARBE, FDR, "
        "IR; gate them with e.g. --fail-if 'fmr@1e-3.max_geomean>2') and cross-group FMR; "
        "labels are the identities; intervals by bootstrap over identities",
    )
    v.add_argument(
        "--fmr",
        type=_fmr_list,
        default=[1e-3, 1e-4],
        metavar="LIST",
        help="target false match rates, comma-separated (default: 1e-3,1e-4)",
    )
    v.add_argument(
        "--genuine-pairs",
        type=_positive_int,
        default=200_000,
        metavar="N",
        help="most genuine pairs scored (all when fewer exist)",
    )
    v.add_argument(
        "--impostor-pairs",
        type=_positive_int,
        default=1_000_000,
        metavar="N",
        help="most impostor pairs over the whole set; the global threshold is set on them",
    )
    v.add_argument(
        "--same-group-pairs",
        type=_positive_int,
        default=200_000,
        metavar="N",
        help="most same-group impostor pairs per group (FMR at 1e-4 wants >= 100000)",
    )
    v.add_argument(
        "--pairs",
        type=Path,
        metavar="FILE",
        help="audit the pairs of a published protocol as given: a CSV with header a,b[,same] "
        "(0-based row indices; same: 1/0), instead of sampling pairs",
    )
    v.add_argument(
        "--hard-impostors",
        type=int,
        default=0,
        metavar="K",
        help="also report hard_fmr@T: each group's FMR among its hard impostor pairs, every "
        "sample with its K most similar other identities of its group (the RFW protocol)",
    )
    v.add_argument(
        "--score-transform",
        type=Path,
        metavar="FILE",
        help="apply a post-hoc fix saved by 'fairmetric posthoc' (fix.json) to every pair's "
        "score before the thresholds are set",
    )
    v.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="weight of FMR against FNMR in GARBE, FDR and IR (0..1)",
    )
    p.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop NaN/Inf rows (and zero rows under cosine) instead of failing",
    )
    p.add_argument(
        "--no-intersectional",
        action="store_true",
        help="skip the intersection of several attributes",
    )
    p.add_argument(
        "--no-linear-probe", action="store_true", help="skip the linear-probe leakage measurement"
    )
    p.add_argument("--threads", type=int, help="faiss threads")
    p.add_argument(
        "--config",
        type=Path,
        help="experiment config whose data section describes the inputs (model sources)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. data.root=/data/celeba; repeatable",
    )
    p.add_argument("--split", default="test", help="data split to embed (model sources)")
    p.add_argument(
        "--gallery",
        help="a separate gallery (an EmbeddingSet file or run folder): every sample of SOURCE "
        "ranks the gallery for the neighbour metrics (query/gallery retrieval); labels and "
        "attribute values are matched by name; with --verification every pair is a sample of "
        "SOURCE (a probe) and a gallery sample, and identification searches the gallery",
    )
    p.add_argument("--labels", type=Path, help="CSV of labels/attributes for a .npy source")
    p.add_argument("--weights", type=Path, help="local weights file for a timm model source")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="inference batch size")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (model sources)")
    _add_inference_flags(p, what="(model sources) ", config="a model folder's config's")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_audit)


def _run_audit(args: argparse.Namespace) -> int:
    from fairmetric.audit import audit
    from fairmetric.report import check_conditions, parse_condition, render_summary, write_report
    from fairmetric.report.frame import check_min_group_size
    from fairmetric.sources import load_source

    for condition in args.fail_if:  # fail fast on a typo, before any work
        parse_condition(condition)
    check_min_group_size(args.min_group_size)
    if args.out is not None:
        _check_output(args.out)
    progress = not args.no_progress
    data = load_source(
        args.source,
        config=args.config,
        overrides=args.overrides,
        split=args.split,
        labels_csv=args.labels,
        weights=args.weights,
        batch_size=args.batch_size,
        device=args.device,
        progress=progress,
        **_inference_kwargs(args, None),  # unset ones: from a run folder's config
    )
    gallery = None if args.gallery is None else load_source(args.gallery, progress=progress)
    report = audit(
        data,
        attributes=args.attributes,
        ks=args.k,
        homophily_k=args.homophily_k,
        leakage_k=args.leakage_k,
        metric=args.metric,
        index=args.index,
        bootstrap=args.bootstrap,
        seed=args.seed,
        intersectional=not args.no_intersectional,
        linear_probe=not args.no_linear_probe,
        threads=args.threads,
        drop_invalid=args.drop_invalid,
        progress=progress,
        source=str(args.source),
        min_group_size=args.min_group_size,
        gallery=gallery,
    )
    for flag, value in (("--score-transform", args.score_transform), ("--pairs", args.pairs)):
        if value is not None and not args.verification:
            raise ValueError(f"{flag} applies to verification pairs: add --verification")
    if args.verification:
        from fairmetric.audit.verification import add_verification, verification_audit

        if args.metric == "ip":
            raise ValueError(
                "--verification scores pairs by cosine similarity or L2 distance: use --metric "
                "cosine or --metric l2"
            )
        kept = data.drop_invalid()[0] if args.drop_invalid else data
        if gallery is not None and args.drop_invalid:
            gallery = gallery.drop_invalid()[0]
        transform = None
        if args.score_transform is not None:
            from fairmetric.audit.verification.fixes import load_score_transform

            transform = load_score_transform(args.score_transform)
        add_verification(
            report,
            verification_audit(
                kept,
                attributes=args.attributes,
                fmr=args.fmr,
                metric=args.metric,
                genuine_pairs=args.genuine_pairs,
                impostor_pairs=args.impostor_pairs,
                same_group_pairs=args.same_group_pairs,
                alpha=args.alpha,
                bootstrap=args.bootstrap,
                seed=args.seed,
                min_group_size=args.min_group_size,
                score_transform=transform,
                pairs_file=args.pairs,
                hard_impostors=args.hard_impostors,
                gallery=gallery,
            ),
        )
    print(render_summary(report))
    dropped = report.metadata["dropped_invalid"]["count"]
    if dropped:
        print(f"note: dropped {dropped} invalid embedding row(s) (--drop-invalid)")
    if args.out:
        paths = write_report(report, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    else:
        print("(pass --out DIR to write report.json, report.md and report.html)")
    violations = check_conditions(report, args.fail_if)
    for v in violations:
        print(f"FAIL {v}", file=sys.stderr)
    return 1 if violations else 0


# -- posthoc -----------------------------------------------------------------------------------


def _add_posthoc(sub: argparse._SubParsersAction) -> None:
    from fairmetric.audit.verification import cli as posthoc_cli

    p = sub.add_parser(
        "posthoc",
        help="fit a post-hoc score fix for a released model and judge it on held-out identities",
        formatter_class=_Formatter,
        description=(
            "Fix a model that cannot be retrained, at the score level: split SOURCE's "
            "identities into a calibration part and a held-out part, fit the fix on the first "
            "and run the verification audit on the second before and after it (same pairs, "
            "same thresholds rule), with ECE / KS / Brier of P(genuine) per group. OUT gets "
            "fix.json (JSON, no pickle; ship it beside the model and apply it with 'fairmetric "
            "audit SOURCE --verification --score-transform fix.json'), comparison.json and the "
            "before/ and after/ reports.\n\n"
            "fixes: per_group_threshold and score_normalisation use the attribute; fsn "
            "(Terhörst et al. 2020) and faircal (Salvador et al. 2022) use k-means clusters "
            "of the embeddings instead. Formulas: docs/posthoc.md.\n\n"
            + _EXIT_STATUS
            + "\n\nexample:\n"
            "  fairmetric posthoc runs/demo/baseline/test_embeddings.npz --fix faircal --out runs/faircal"
        ),
    )
    posthoc_cli.add_arguments(p, _fmr_list, _positive_int)
    p.set_defaults(run=_run_posthoc)


def _run_posthoc(args: argparse.Namespace) -> int:
    from fairmetric.audit.verification import cli as posthoc_cli
    from fairmetric.sources import load_source

    _check_output(args.out)
    return posthoc_cli.run_from_args(args, lambda source: load_source(source, progress=False))


# -- finetune ----------------------------------------------------------------------------------


#: the keys of a --task file (fairmetric.downstream.task.TASK_KEYS, which a test keeps equal;
#: spelled out here so that --help imports nothing heavy)
_TASK_KEYS = (
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


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fit a downstream classifier on a model's embeddings and report accuracy per group",
        formatter_class=_Formatter,
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
            "--task is an optional YAML file with any of: " + ", ".join(_TASK_KEYS) + ". Without "
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
        "--seed", type=_nonnegative_int, help="seed of the split, balancing and classifier"
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
    _check_output(args.out)
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


# -- bench -------------------------------------------------------------------------------------


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from fairmetric import bench

    p = sub.add_parser(
        "bench",
        help="fairness benchmark suite: methods x datasets x seeds, resumable",
        formatter_class=_Formatter,
        description=bench.__doc__,
    )
    bench.add_arguments(p)
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from fairmetric import bench

    return bench.run_from_args(args)


# -- demo --------------------------------------------------------------------------------------


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="baseline vs the recommended method vs PARADE on synthetic identities: train, "
        "audit, probe downstream, compare (about a minute on a CPU)",
        formatter_class=_Formatter,
        description=(
            "The end-to-end story on the built-in synthetic-identities benchmark (MLP): train a "
            "baseline, the recommended mitigation method and PARADE on a 95:5 palette-imbalanced "
            "training split (the minority palette carries the same identity information, so the "
            "gap is learned), audit each on 100 unseen identities in both palettes, fit a "
            "downstream probe on palette-balanced data on top of each, print the side-by-side "
            "table with 95% bootstrap intervals, and write OUT/compare.html plus, per arm, "
            "OUT/<arm>/{run,audit,downstream}/. Overrides apply to every arm. One seed: "
            "'fairmetric bench' measures the methods over five seeds with paired intervals."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo output folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=_OVERRIDES_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_demo, free_overrides=True)


def _run_demo(args: argparse.Namespace) -> int:
    from fairmetric.demo import run_demo

    _check_output(args.out)
    run_demo(args.out, overrides=args.overrides, progress=not args.no_progress)
    return 0


# -- env ---------------------------------------------------------------------------------------


def _add_env(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "env",
        help="print library versions and available devices",
        formatter_class=_Formatter,
        description=(
            "Print the versions of fairmetric and the libraries it builds on (torch, torchvision, "
            "timm, pytorch-metric-learning, faiss, numpy, scikit-learn, safetensors), the CPU "
            "threads torch uses, the CUDA devices it sees and the GPUs faiss can use. Paste it "
            "into bug reports."
        ),
    )
    p.set_defaults(run=_run_env)


def _run_env(args: argparse.Namespace) -> int:
    from fairmetric.env import environment_report

    print(environment_report())
    return 0


# -- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairmetric",
        formatter_class=_Formatter,
        description=(
            "fairmetric: fairness in deep metric learning. Train embedding models, measure how "
            "well their similarity metric serves each subgroup, and export them."
        ),
        epilog="Run 'fairmetric COMMAND --help' for the options of each command.\n\n"
        + _EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"fairmetric {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (
        _add_train,
        _add_embed,
        _add_audit,
        _add_posthoc,
        _add_finetune,
        _add_bench,
        _add_demo,
        _add_env,
    ):
        add(sub)
    for command in sub.choices.values():  # usage errors found after parsing name the command
        command.set_defaults(command_parser=command)
    return parser


def _where() -> str:
    """`` (rank R)`` under torchrun, where every process reports: name which."""
    rank = os.environ.get("RANK")
    return f" (rank {rank})" if rank not in (None, "") and os.environ.get("WORLD_SIZE") else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see :mod:`fairmetric.errors`)."""
    from fairmetric.errors import (
        EXIT_INTERNAL,
        EXIT_INTERRUPTED,
        EXIT_USER,
        describe_error,
        is_user_error,
    )

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # a usage error exits 2 here (argparse)
    if extra:
        # argparse stops filling the key=value positional after the first flag that follows it:
        # `train --out run --resume train.epochs=4` is meant as an override
        if getattr(args, "free_overrides", False) and all(
            "=" in e and not e.startswith("-") for e in extra
        ):
            args.overrides = [*args.overrides, *extra]
        else:  # the subcommand's own usage line, not the top-level one
            getattr(args, "command_parser", parser).error(
                f"unrecognized arguments: {' '.join(extra)}"
            )
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USER
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader went away (`fairmetric audit ... | head`): not a bug
        try:  # and no second error when Python flushes stdout at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by a closed pipe
    except KeyboardInterrupt as e:  # Ctrl-C; train's RunInterrupted also on SIGTERM (143)
        print(f"fairmetric{_where()}: {str(e) or 'interrupted'}", file=sys.stderr)
        return getattr(e, "exit_status", EXIT_INTERRUPTED)
    except Exception as e:
        if is_user_error(e):
            if os.environ.get("FAIRMETRIC_TRACEBACK"):  # where a user error came from
                traceback.print_exc()
            print(f"fairmetric{_where()}: error: {describe_error(e)}", file=sys.stderr)
            return EXIT_USER
        traceback.print_exc()
        print(
            f"fairmetric{_where()}: internal error ({type(e).__name__}): this is a bug in "
            f"fairmetric {__version__} or a library it uses, not a problem with your input; "
            "please report it with the command, the traceback above and the output of "
            "'fairmetric env'",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
