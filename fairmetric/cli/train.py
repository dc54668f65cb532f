"""``fairmetric train``: train an embedding model from a YAML config (``--nproc N`` launches torchrun)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fairmetric.cli.common import EXIT_STATUS, OVERRIDES_HELP, Formatter, check_output

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an embedding model from a YAML config",
        formatter_class=Formatter,
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
            + EXIT_STATUS
        ),
    )
    p.add_argument(
        "--config",
        type=Path,
        help="YAML experiment config (default: built-in coloured-digits baseline)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
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
    check_output(args.out)
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
