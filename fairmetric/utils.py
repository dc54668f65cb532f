"""Small shared helpers: devices, seeding and atomic file writes."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import torch

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "autocast",
    "check_precision",
    "faiss_threads",
    "PRECISIONS",
    "resolve_device",
    "seed_everything",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is checked and returned."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(
            f"invalid device {device!r} ({e}); use 'auto', 'cpu' or 'cuda[:N]'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'"
        )
    return dev


PRECISIONS = ("fp32", "bf16", "fp16")
"""Numeric precisions of training and inference: float32, or autocast to bfloat16 / float16."""


def check_precision(precision: str, device: torch.device | None = None) -> str:
    """Validate a precision name (``fp32``, ``bf16``, ``fp16``) for ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if (
        precision == "bf16"
        and device is not None
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported()
    ):
        raise ValueError(
            "precision bf16 needs a GPU with bfloat16 support (Ampere or newer); use fp16 "
            "(with loss scaling) or fp32"
        )
    return precision


def autocast(device: torch.device, precision: str = "fp32"):
    """``torch.autocast`` for ``precision`` on ``device`` (a disabled context for ``fp32``).

    Autocast runs matrix multiplications and convolutions in the lower precision and keeps
    numerically sensitive operations in float32; fp16 training also needs a gradient scaler
    (``torch.amp.GradScaler``), bf16 does not.
    """
    check_precision(precision)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    A crash midway leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # mode 0o666 lets the umask decide the permissions, as a plain open() would
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(data))


@contextmanager
def faiss_threads(threads: int | None) -> Iterator[None]:
    """Run faiss with ``threads`` OpenMP threads (``None``: leave as is), restoring them after."""
    if threads is None:
        yield
        return
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)
