"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from fairmetric.errors import UserError
from fairmetric.utils import atomic_write_bytes

__all__ = [
    "CHECKPOINT_FILE",
    "check_training_state",
    "load_checkpoint",
    "load_module_state",
    "load_optimizer_state",
    "save_checkpoint",
]

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


# -- validation of a training checkpoint on --resume ----------------------------------------------

_ANOTHER_RUN = (
    "the run folder was probably written by another config or fairmetric version (or the file was "
    "modified); resume with the fairmetric and config that wrote it, or start a new run in "
    "another --out"
)

#: top-level entries of a training checkpoint and their types
_TRAINING_ENTRIES: dict[str, type | tuple[type, ...]] = {
    "epoch": int,
    "config": dict,
    "model": dict,
    "optimizer": dict,
    "history": list,
}


def check_training_state(state: dict[str, Any], path: str | Path) -> None:
    """Raise a :class:`~fairmetric.errors.UserError` naming the entry unless ``state`` has what
    a training checkpoint needs to resume (``epoch``, ``config``, ``model``, ``optimizer``,
    ``history``, and ``objective`` or the older ``loss``), of the right types."""
    for key, tp in _TRAINING_ENTRIES.items():
        value = state.get(key)
        if not isinstance(value, tp) or isinstance(value, bool):
            what = "missing" if key not in state else f"a {type(value).__name__}"
            raise UserError(
                f"cannot resume from {path}: its entry {key!r} is {what}, not a "
                f"{getattr(tp, '__name__', tp)}; {_ANOTHER_RUN}"
            )
    if state["epoch"] < 0:
        raise UserError(f"cannot resume from {path}: epoch {state['epoch']} < 0; {_ANOTHER_RUN}")
    if not isinstance(state.get("objective", state.get("loss")), dict):
        raise UserError(
            f"cannot resume from {path}: the entry 'objective' (the loss's state) is missing or "
            f"not a mapping; {_ANOTHER_RUN}"
        )


def load_module_state(module: nn.Module, state: Any, *, what: str, path: str | Path) -> None:
    """Load the checkpoint entry ``state`` into ``module`` strictly.

    Raises:
        UserError: a missing, unexpected or mis-shaped tensor (named, with both shapes), or an
            entry that is not a state dict; the message says the run folder was likely written
            by another config or version.
    """
    if not isinstance(state, dict):
        raise UserError(
            f"cannot resume from {path}: its {what!r} entry is a {type(state).__name__}, not a "
            f"state dict; {_ANOTHER_RUN}"
        )
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    not_tensor = [k for k in own if k in state and not isinstance(state[k], torch.Tensor)]
    wrong = [
        k
        for k in own
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {_names(unexpected)}")
    if not_tensor:
        problems.append(f"not a tensor: {_names(not_tensor)}")
    if wrong:
        shapes = [
            f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
            for k in wrong[:3]
        ]
        more = f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""
        problems.append(f"wrong shape: {', '.join(shapes)}{more}")
    if problems:
        raise UserError(
            f"cannot resume from {path}: its {what!r} weights do not fit the model this config "
            f"builds ({'; '.join(problems)}); {_ANOTHER_RUN}"
        )
    module.load_state_dict(state)


def _names(keys: list[str], limit: int = 3) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(repr(k) for k in keys[:limit]) + more


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Any, *, path: str | Path) -> None:
    """Load the checkpoint entry ``state`` into ``optimizer``, refusing (with a
    :class:`~fairmetric.errors.UserError`) parameter groups or moment tensors that do not fit."""
    if not isinstance(state, dict):
        raise UserError(
            f"cannot resume from {path}: its 'optimizer' entry is a {type(state).__name__}, not "
            f"a state dict; {_ANOTHER_RUN}"
        )
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise UserError(
            f"cannot resume from {path}: its optimizer state does not fit this run's optimizer "
            f"({type(e).__name__}: {str(e)[:200]}); {_ANOTHER_RUN}"
        ) from None
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.ndim > 0 and value.shape != p.shape:
                    raise UserError(
                        f"cannot resume from {path}: the optimizer's {name!r} has shape "
                        f"{tuple(value.shape)} for a parameter of shape {tuple(p.shape)}; "
                        f"{_ANOTHER_RUN}"
                    )
