"""The suite's command-line options: ``fairmetric bench`` and ``python -m fairmetric.bench``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairmetric.bench.methods import DATASETS, METHODS, REAL_DATASETS
from fairmetric.bench.suite import DEFAULT_DATASETS, DEFAULT_SEEDS, DEFAULT_THREADS, run_suite

__all__ = ["add_arguments", "build_arg_parser", "main", "options_from_args", "run_from_args"]

DESCRIPTION = "The fairness benchmark suite: methods × datasets × seeds in one call, resumable."


def _data_root(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH, got {item!r}")
    return name, path


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the suite's options to ``parser`` (e.g. a ``fairmetric bench`` sub-parser)."""
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides for every cell"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(DEFAULT_DATASETS),
        metavar="NAME",
        help="datasets (default: %(default)s): "
        + "; ".join(f"{n}{f' ({d.note})' if d.note else ''}" for n, d in DATASETS.items()),
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"methods (default: all): {', '.join(METHODS)}; join several with '+' to combine "
        "them (epoch_balanced+parade); 'oracle' trains on attribute-balanced data, showing how "
        "much of the gap is learnable at all",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=list(DEFAULT_SEEDS),
        metavar="K",
        help="training seeds (default: %(default)s); each method is compared with the baseline "
        "of the same seed (same data draw and initialisation), so use at least 5",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        metavar="N",
        help="torch threads while training (default: %(default)s, several times faster than "
        "two for small models on a loaded 2-core machine; 0: torch's own setting)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="suite folder")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs of every cell")
    parser.add_argument(
        "--rho-sweep",
        nargs="+",
        type=float,
        default=None,
        metavar="RHO",
        help="also train PARADE at these ρ values (e.g. 0 0.1 0.3 1 under the default rv "
        "decorrelation, which is scale-free; cross_covariance needs larger ρ, e.g. 1 10 100)",
    )
    parser.add_argument(
        "--data-root",
        action="append",
        type=_data_root,
        default=[],
        metavar="DATASET=PATH",
        help=f"local copy of an on-disk dataset ({', '.join(REAL_DATASETS)}); repeatable",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def build_arg_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with :func:`add_arguments`'s options."""
    return add_arguments(argparse.ArgumentParser(prog="fairmetric bench", description=DESCRIPTION))


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run_suite` keyword arguments from parsed options."""
    return {
        "datasets": args.datasets,
        "methods": args.methods,
        "seeds": args.seeds,
        "out": args.out,
        "overrides": list(args.overrides),
        "rho_sweep": args.rho_sweep,
        "data_roots": dict(args.data_root),
        "epochs": args.epochs,
        "threads": args.threads,
        "progress": not args.no_progress,
    }


def run_from_args(args: argparse.Namespace) -> int:
    """Run the suite from parsed options and print where the tables went."""
    summary = run_suite(**options_from_args(args), log=print)
    for name, entry in summary["datasets"].items():
        print(f"{name}: {entry['files']['md']}")
        if entry["rho_sweep"]:
            print(f"{name}: {entry['rho_sweep']['files']['md']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_arg_parser().parse_args(argv))
