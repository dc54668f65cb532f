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
    "ListAction",
    "ListType",
    "add_inference_flags",
    "add_list_argument",
    "apply_list_convention",
    "check_output",
    "csv_list",
    "fmr_list",
    "inference_kwargs",
    "int_list",
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
    "  1    a --fail-if condition holds (audit), or a compare gate (--fail-if-less-fair,\n"
    "       --fail-unless-fairer)\n"
    "  2    bad input or usage: one line names the problem and the fix\n"
    "       (FAIRMETRIC_TRACEBACK=1 also prints where it was raised)\n"
    "  3    internal error: a bug; the traceback is printed, please report it\n"
    "  130  interrupted (Ctrl-C)\n"
    "  141  the output pipe closed early (e.g. | head)\n"
    "  143  stopped by SIGTERM (train: after writing a checkpoint that --resume continues)"
)


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with each flag's default, shown once: ``(default: X)`` is added unless the help
    already says what the default is (the word "default") or there is nothing to say (``None``,
    ``False`` of an on/off flag, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], ()):
            return text
        if isinstance(action.default, (list, tuple)) and action.option_strings:  # as typed
            shown = " ".join(str(v) for v in action.default).replace("%", "%%")
            return f"{text} (default: {shown})"
        return super()._get_help_string(action)


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


class ListType:
    """An argparse type for one token of a list flag: ``"1,2,4"`` → ``[1, 2, 4]``.

    Every list flag takes its items space-separated, comma-separated or both
    (``--k 1 2 4 8``, ``--k 1,2,4,8``, ``--k 1,2 4 8``): :class:`ListAction` joins the tokens.

    Args:
        item: converts one item (``int``, ``float``, ``str`` or another argparse type).
        what: what an item is, for the error message (``"integers"``).
        example: a valid value, for the error message.
        message: the whole error message instead (``got '...'`` is appended).
    """

    def __init__(
        self,
        item: Callable[[str], object] = str,
        what: str = "",
        example: str = "",
        *,
        message: str = "",
    ):
        self.item = item
        self.what = what or getattr(item, "__name__", "values")
        self.example = example
        self.message = message

    def __call__(self, text: str) -> list:
        parts = [t.strip() for t in text.split(",")]
        out = []
        for part in parts:
            if not part:
                continue
            try:
                out.append(self.item(part))
            except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
                if self.message:
                    raise argparse.ArgumentTypeError(f"{self.message}; got {text!r}") from None
                hint = f", e.g. {self.example}" if self.example else ""
                detail = f" ({e})" if isinstance(e, argparse.ArgumentTypeError) else ""
                raise argparse.ArgumentTypeError(
                    f"expected {self.what} separated by spaces or commas{hint}; got {part!r}"
                    f"{detail}"
                ) from None
        if not out:
            raise argparse.ArgumentTypeError(
                f"{self.message}; got {text!r}"
                if self.message
                else f"expected {self.what}, got {text!r}"
            )
        return out

    def __repr__(self) -> str:  # argparse names the type in some messages
        return f"list of {self.what}"


class ListAction(argparse._StoreAction):
    """Stores the items of every token of a list flag in one flat list (see :class:`ListType`)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        flat = []
        for value in values if isinstance(values, list) else [values]:
            flat.extend(value if isinstance(value, list) else [value])
        setattr(namespace, self.dest, flat)


def add_list_argument(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    item: Callable[[str], object] = str,
    what: str = "",
    example: str = "",
    **kwargs: object,
) -> argparse.Action:
    """A list flag: ``nargs="+"`` tokens, each space- or comma-separated (see :class:`ListType`)."""
    return p.add_argument(
        *flags,
        nargs="+",
        type=ListType(item, what, example),
        action=ListAction,
        **kwargs,  # type: ignore[arg-type]
    )


def apply_list_convention(parser: argparse.ArgumentParser) -> None:
    """Give every list flag of ``parser`` and its subcommands the one convention: a flag with
    ``nargs="+"`` / ``"*"`` or a :class:`ListType` becomes a :class:`ListAction` whose tokens may
    also be comma-separated (flags defined outside ``fairmetric.cli``, e.g. ``bench``'s, too)."""
    seen: set[int] = set()

    def visit(p: argparse.ArgumentParser) -> None:
        if id(p) in seen:
            return
        seen.add(id(p))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    visit(child)
                continue
            if not action.option_strings or type(action) not in (
                argparse._StoreAction,
                ListAction,
            ):
                continue
            listy = isinstance(action.type, ListType) or action.nargs in ("+", "*")
            if not listy:
                continue
            if not isinstance(action.type, ListType):
                action.type = ListType(action.type or str)  # type: ignore[arg-type]
            if action.nargs not in ("+", "*"):
                action.nargs = "+"
            action.__class__ = ListAction

    visit(parser)


def _fmr_value(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(text)
    return value


#: a list of names: ``a b`` or ``a,b``
csv_list = ListType(str, "names")
#: a list of integers: ``1 2 4`` or ``1,2,4``
int_list = ListType(int, "integers", "1,2,4,8")
#: target false match rates in (0, 1): ``1e-3 1e-4`` or ``1e-3,1e-4``
fmr_list = ListType(
    _fmr_value,
    "numbers in (0, 1)",
    message="--fmr takes comma-separated numbers in (0, 1) (or space-separated), e.g. 1e-3,1e-4",
)
