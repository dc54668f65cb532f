"""``fairmetric demo``: the end-to-end story on the built-in benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from fairmetric.cli.common import OVERRIDES_HELP, Formatter, check_output

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="baseline vs the recommended method vs PARADE on synthetic identities: train, "
        "audit, probe downstream, compare (about a minute on a CPU)",
        formatter_class=Formatter,
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
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_demo, free_overrides=True)


def _run_demo(args: argparse.Namespace) -> int:
    from fairmetric.demo import run_demo

    check_output(args.out)
    run_demo(args.out, overrides=args.overrides, progress=not args.no_progress)
    return 0
