"""The ``fairmetric`` command line: ``train``, ``embed``, ``audit``, ``posthoc``, ``finetune``,
``bench``, ``demo``, ``env``.

One module per subcommand, each with ``add_parser(sub)`` (its flags and help) and a run function;
heavy imports happen inside the run functions so ``--help`` is instant. :mod:`.common` holds
what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from fairmetric import __version__
from fairmetric.cli import audit, bench, compare, demo, embed, env, finetune, posthoc, train
from fairmetric.cli.common import EXIT_STATUS, Formatter, apply_list_convention

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairmetric",
        formatter_class=Formatter,
        description=(
            "fairmetric: fairness in deep metric learning. Train embedding models, measure how "
            "well their similarity metric serves each subgroup, and export them."
        ),
        epilog="Run 'fairmetric COMMAND --help' for the options of each command.\n"
        "List flags take their items space- or comma-separated in every command:\n"
        "--k 1 2 4 8 or --k 1,2,4,8.\n\n" + EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"fairmetric {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in (train, embed, audit, compare, posthoc, finetune, bench, demo, env):
        command.add_parser(sub)
    for command in sub.choices.values():  # usage errors found after parsing name the command
        command.set_defaults(command_parser=command)
    apply_list_convention(parser)  # every list flag: --k 1 2 4 8 or --k 1,2,4,8
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
