"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from fairmetric.utils import atomic_write_bytes

__all__ = ["CHECKPOINT_FILE", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FILE = "checkpoint.pt"
_FORMAT = "fairmetric-checkpoint-v1"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    if "format" in state:
        raise ValueError("checkpoint state must not have a 'format' key (it is the file's marker)")
    buffer = io.BytesIO()
    torch.save({"format": _FORMAT, **state}, buffer)
    try:  # refuse now what load_checkpoint (weights_only=True) could not read back
        torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"checkpoint state holds something a weights-only load cannot read ({str(e)[:200]}); "
            "store tensors, numbers, strings, lists and dicts only"
        ) from None
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated, corrupt, or not a fairmetric checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt file can raise almost any type from the unpickler
        raise ValueError(
            f"checkpoint {path} is corrupt or not a torch checkpoint ({type(e).__name__}: "
            f"{str(e)[:200]}); delete it to start over, or restore a copy"
        ) from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a fairmetric checkpoint (format {_FORMAT!r} expected)")
    return state
