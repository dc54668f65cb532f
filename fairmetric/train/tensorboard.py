"""TensorBoard logging of a training run: the numbers of ``metrics.jsonl``, one step per epoch.

``train.tensorboard`` decides: ``auto`` (the default) logs when ``tensorboard`` is installed,
``true`` requires it (an error names ``pip install 'fairmetric[tensorboard]'``), ``false`` never
logs. The writer lives on rank 0 only and writes event files under ``RUN/tensorboard/``; view
them with ``tensorboard --logdir RUN/tensorboard``.

Every number of an epoch's ``metrics.jsonl`` record is a scalar at step ``epoch`` (0: the
untrained model), tagged by its path in the record with ``/`` between keys: ``loss``,
``metrics/recall@1/overall``, ``metrics/recall@1/by_group/colour/light``,
``metrics/recall@1/difference/colour``, ``images_per_second``, what the plug-ins log, ...
(:func:`flatten_record`). ``null`` values (an NA group, the untrained model's loss) and the
bookkeeping keys ``epoch`` and ``world_size`` are left out. A resumed run appends a new event
file; epochs that a crash made run twice then appear twice (TensorBoard shows the later one).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fairmetric.errors import UserError

__all__ = ["TENSORBOARD_DIR", "TensorBoardLogger", "check_tensorboard_setting", "flatten_record"]

#: the run sub-folder of the event files
TENSORBOARD_DIR = "tensorboard"
#: record keys that are bookkeeping, not measurements
_SKIP = {"epoch", "world_size"}
INSTALL_HINT = "pip install 'fairmetric[tensorboard]'"


def check_tensorboard_setting(value: Any) -> None:
    """Refuse a ``train.tensorboard`` other than ``auto``, ``true`` or ``false``."""
    if value != "auto" and not isinstance(value, bool):
        raise ValueError(f"train.tensorboard must be auto, true or false, got {value!r}")


def flatten_record(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(tag, value)`` of every finite number in a ``metrics.jsonl`` record, depth first."""
    for key, value in record.items():
        if not prefix and key in _SKIP:
            continue
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten_record(value, tag + "/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                yield tag, float(value)


def _writer_class(setting: Any) -> Any:
    """TensorBoard's ``SummaryWriter`` class, ``None`` when it is off or (``auto``) missing."""
    check_tensorboard_setting(setting)
    if setting is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        if setting is True:
            raise UserError(
                f"train.tensorboard=true but TensorBoard is not installed ({e}); install it with "
                f"{INSTALL_HINT}, or set train.tensorboard=auto (log when installed) or false"
            ) from None
        return None
    return SummaryWriter


class TensorBoardLogger:
    """Writes ``metrics.jsonl`` records to TensorBoard (a no-op when it is off or missing).

    Args:
        run_dir: the run folder; events go to ``run_dir/tensorboard``.
        setting: ``train.tensorboard``: ``"auto"``, ``True`` or ``False``.
        enabled: ``False`` on ranks other than 0 (never a writer there).


    The setting is checked (and TensorBoard imported) at construction, so a missing install
    fails before training starts; the writer and its folder are created at the first record.
    """

    def __init__(self, run_dir: str | Path, setting: Any = "auto", *, enabled: bool = True):
        cls = _writer_class(setting)
        self.folder = Path(run_dir) / TENSORBOARD_DIR
        self._cls = cls if enabled else None
        self.writer: Any = None

    @property
    def active(self) -> bool:
        """Whether records are written (TensorBoard on, installed, and this is rank 0)."""
        return self._cls is not None

    def log(self, record: dict[str, Any]) -> None:
        """Write one epoch's record at step ``record["epoch"]`` and flush it to disk."""
        if self._cls is None:
            return
        if self.writer is None:
            self.writer = self._cls(log_dir=str(self.folder))
        step = int(record.get("epoch", 0))
        for tag, value in flatten_record(record):
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
