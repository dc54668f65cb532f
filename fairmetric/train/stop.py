"""Stopping a training run cleanly on SIGTERM (what schedulers send first) and Ctrl-C (SIGINT).

While :func:`~fairmetric.train.trainer.train` runs, :class:`StopSignals` replaces the handlers of
SIGINT and SIGTERM with one that only records the request. The trainer asks
:meth:`StopSignals.requested` at each step boundary; when it is true it writes a checkpoint at
that point (the same mid-epoch checkpoint as ``train.checkpoint_every``, so ``--resume`` continues
bit-exactly) and raises :class:`RunInterrupted`. A second signal stops at once, without a new
checkpoint (the previous one stays intact: checkpoints are written atomically). The previous
handlers come back when training ends. Under torchrun the ranks agree (an all-reduce of the
request at each step), so they all stop after the same step.

Handlers can only be installed from the main thread; elsewhere (a training thread) signals keep
their previous behaviour. A signal the process ignores (``SIG_IGN``) stays ignored. DataLoader
worker processes ignore SIGINT (a terminal's Ctrl-C reaches every process of its group: the
training process decides when to stop and shuts its workers down) but keep SIGTERM's default, which
``multiprocessing`` itself uses to end them. A worker killed by SIGTERM (a scheduler that signals
every process) can make the training process fail mid-step; after a stop request that failure
ends the run as :class:`RunInterrupted` too, keeping the last checkpoint.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["RunInterrupted", "StopSignals", "ignore_stop_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint; ``--resume`` continues it.

    A ``KeyboardInterrupt`` (so code that handles Ctrl-C handles SIGTERM too, and ``except
    Exception`` does not swallow it). ``exit_status`` is ``128 + signum`` (130 for SIGINT, 143 for
    SIGTERM), the command line's exit status.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum


def _name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """Records SIGINT / SIGTERM while active (a context manager; see the module docstring).

    Args:
        log: where the "stopping after this step" note goes.
    """

    def __init__(self, log: Callable[[str], None] = print) -> None:
        self.log = log
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker before ignore_stop_signals
            if signum != signal.SIGINT:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        if self.signum is not None:  # the second signal: stop now
            raise RunInterrupted(
                f"training stopped at once by a second {_name(signum)}, without a new "
                "checkpoint; rerun the same command with --resume to continue from the last one "
                "(if one was written)",
                signum,
            )
        self.signum = signum
        try:  # the signal may interrupt a write to the same stream (a reentrant call)
            self.log(
                f"{_name(signum)} received: stopping after the current step with a checkpoint "
                "(send it again to stop at once)"
            )
        except Exception:  # pragma: no cover - the stop itself must not fail
            pass

    def requested(self, ctx: Any = None) -> bool:
        """Whether a stop was requested (under torchrun: on any rank; a collective call)."""
        flag = self.signum is not None
        if ctx is None or not ctx.enabled:
            return flag
        box = torch.tensor([self.signum or 0], dtype=torch.int64, device=ctx.device)
        dist.all_reduce(box, op=dist.ReduceOp.MAX, group=ctx.group)
        # The answer is the reduced value only: a signal that arrives on this rank during the
        # collective is not in the other ranks' answer, so acting on it here would leave them
        # training while this rank stops; the next call carries it to every rank.
        agreed = int(box.item())
        if agreed and self.signum is None:
            self.signum = agreed
        return bool(agreed)

    def interrupted(self, where: str, out: Any) -> RunInterrupted:
        """The exception that ends the run after its checkpoint at ``where`` was written."""
        signum = self.signum or signal.SIGINT
        return RunInterrupted(
            f"training stopped by {_name(signum)} after writing a checkpoint {where} in {out}; "
            "rerun the same command with --resume to continue (train(..., resume=True) from "
            "Python)",
            signum,
        )

    def failed(self, last: str | None, out: Any) -> RunInterrupted:
        """The exception that ends the run when the step failed after a stop request (e.g. a
        DataLoader worker killed by the same SIGTERM): no new checkpoint."""
        signum = self.signum or signal.SIGTERM
        kept = (
            f"the last checkpoint ({last}) in {out} is kept; rerun the same command with --resume "
            "to continue from it"
            if last
            else f"no checkpoint was written yet; start again (remove {out} first)"
        )
        return RunInterrupted(
            f"training stopped by {_name(signum)} before the current step finished; {kept}",
            signum,
        )


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: workers leave Ctrl-C (SIGINT) to the training process and
    die on SIGTERM (``multiprocessing`` ends its daemon workers with it at exit), whatever the
    start method."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
