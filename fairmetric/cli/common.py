"""What the subcommands share: the help formatter, the exit-status table, argparse types, the
output-path check and the inference flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "EXIT_STATUS",
    "Formatter",
    "INFERENCE_KEYS",
    "OVERRIDES_HELP",
    "add_inference_flags",
    "check_output",
    "csv_list",
    "fmr_list",
    "inference_kwargs",
    "int_at_least",
    "nonnegative_int",
    "positive_int",
]

OVERRIDES_HELP = (
    "config overrides as dotted key=value pairs, values parsed as YAML, e.g. train.epochs=3 "
    "loss.name=MultiSimilarityLoss loss.params.alpha=2 miner.name=null"
)


EXIT_STATUS = (
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


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def int_at_least(low: int) -> Callable[[str], int]:
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


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def check_output(path: Path, flag: str = "--out", *, folder: bool = True) -> None:
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


INFERENCE_KEYS = ("precision", "channels_last", "num_workers")


def add_inference_flags(
    p: argparse.ArgumentParser, *, what: str = "", config: str = "the config's"
) -> None:
    """``--precision``, ``--num-workers``, ``--channels-last``: unset unless given, so that a
    run's config can supply them (see :func:`inference_kwargs`)."""
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


def inference_kwargs(args: argparse.Namespace, train: object | None) -> dict[str, object]:
    """Speed settings for :func:`embed_dataset`: the ``train`` config section's (when given),
    with the flags given on the command line taking precedence."""
    from fairmetric.models.embed import inference_settings

    kwargs: dict[str, object] = inference_settings(train) if train is not None else {}
    kwargs.update({k: getattr(args, k) for k in INFERENCE_KEYS if hasattr(args, k)})
    return kwargs


def csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def fmr_list(text: str) -> list[float]:
    try:
        values = [float(t) for t in csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fmr takes comma-separated numbers in (0, 1), e.g. 1e-3,1e-4; got {text!r}"
        ) from None
    if not values or not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"--fmr takes comma-separated numbers in (0, 1), e.g. 1e-3,1e-4; got {text!r}"
        )
    return values
