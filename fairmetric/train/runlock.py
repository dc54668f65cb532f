"""One training process per run folder, and no temp files left over from a killed one.

:class:`RunLock` holds an OS advisory lock (``flock``) on ``<run>/.fairmetric-train.lock`` while a
process trains into the folder. The operating system releases the lock when the process ends, however it
ends (``kill -9`` included), so a crashed run never leaves a stale lock behind: the file may stay,
but only a live process can hold its lock. The file holds the owner's process id for the message
a second process gets. The lock is only as good as ``flock`` on the file system (local file
systems and NFS on Linux honour it); on systems without ``fcntl`` (Windows) it is a no-op.

:func:`remove_stale_temp_files` deletes what :func:`fairmetric.utils.atomic_write` leaves behind
when its process is killed mid-write (``.checkpoint.pt.3f9a0c1b2d4e.tmp``): only the trainer's
own files, and only to be called while holding the lock, so no live writer's file is touched.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import IO

from fairmetric.errors import UserError

__all__ = ["LOCK_FILE", "RunFolderInUse", "RunLock", "remove_stale_temp_files"]

LOCK_FILE = ".fairmetric-train.lock"

# the files the trainer writes with atomic_write, by folder (relative to the run folder)
_TRAINER_FILES = {
    ".": ("checkpoint.pt", "metrics.jsonl", "config.yaml"),
    "model": ("model.safetensors", "config.json"),
}
# atomic_write's temporary name: ".{name}.{12 hex digits}.tmp"
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")


class RunFolderInUse(UserError):
    """Another process trains into the run folder (a ``ValueError``; the command line exits with
    status 2)."""


class RunLock:
    """An exclusive, non-blocking lock on the run folder ``out`` (created if missing).

    Use as a context manager, or :meth:`acquire` and :meth:`release`::

        with RunLock(out):
            ...  # train into out

    Raises:
        RunFolderInUse: another live process holds the lock (at once, without waiting).
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self._file: IO[str] | None = None
        self._created = False

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks, no protection
            return self
        if self._file is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self._created = not self.out.exists()
        while True:
            self.out.mkdir(parents=True, exist_ok=True)
            try:
                f = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
            except FileNotFoundError:  # a failed run's empty folder was removed just now
                continue
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                owner = f.read().strip()
                f.close()
                raise RunFolderInUse(self._in_use_message(owner)) from None
            except BaseException:
                f.close()
                raise
            # the previous owner may have deleted the file between our open and our lock: then
            # we locked a file nobody else will open; start again with the one at the path now
            try:
                same = os.path.samestat(os.fstat(f.fileno()), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {socket.gethostname()}\n")
        f.flush()
        self._file = f
        return self

    def _in_use_message(self, owner: str) -> str:
        pid, _, host = owner.partition(" ")
        who = f"process {pid}" if pid.isdigit() else "another process"
        if host and host != socket.gethostname():
            who += f" on {host}"
        return (
            f"run folder {self.out} is in use by {who} (lock file {self.path}); wait for it to "
            "finish or choose another --out"
        )

    def release(self) -> None:
        """Delete the lock file and release the lock (unlinking first, while still holding it, so
        that no process can lock the old file after the next owner created a new one). A run
        folder the lock created and nothing else filled (a run that failed at once) goes too."""
        f, self._file = self._file, None
        if f is None:
            return
        try:
            self.path.unlink(missing_ok=True)
            if self._created and not any(self.out.iterdir()):
                try:
                    self.out.rmdir()
                except OSError:  # another process started to use it
                    pass
        finally:
            f.close()  # closing the last descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temp_files(out: str | Path) -> list[Path]:
    """Delete the temporary files that a killed writer of the trainer's files left in the run
    folder ``out`` (call only while holding its :class:`RunLock`); returns what was removed."""
    out = Path(out)
    removed = []
    for sub, names in _TRAINER_FILES.items():
        folder = out / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            m = _TEMP.match(path.name)
            if m and m["name"] in names and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return sorted(removed)
