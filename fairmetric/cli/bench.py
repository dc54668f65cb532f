"""``fairmetric bench``: the multi-seed fairness benchmark suite."""

from __future__ import annotations

import argparse

from fairmetric.cli.common import Formatter

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from fairmetric import bench

    p = sub.add_parser(
        "bench",
        help="fairness benchmark suite: methods x datasets x seeds, resumable",
        formatter_class=Formatter,
        description=bench.__doc__,
    )
    bench.add_arguments(p)
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from fairmetric import bench

    return bench.run_from_args(args)
