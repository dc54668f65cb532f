"""``fairmetric env``: library versions and devices, for bug reports."""

from __future__ import annotations

import argparse

from fairmetric.cli.common import Formatter

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "env",
        help="print library versions and available devices",
        formatter_class=Formatter,
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
