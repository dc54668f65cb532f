"""Downstream task files (``fairmetric finetune --task task.yaml``): keys, types and ranges.

A task file is a plain YAML mapping of :func:`~fairmetric.downstream.run_downstream` arguments
(``configs/downstream/*.yaml``). It is read with the safe loader, so a tag such as
``!!python/object/apply:os.system`` is refused (never executed), and every value is checked
here, so a typo fails with the key's name before any model is loaded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["TASK_KEYS", "check_task", "load_task"]

_NONE = type(None)

#: key → (accepted types, what to write, (low, high) inclusive bounds or None)
_FIELDS: dict[str, tuple[tuple[type, ...], str, tuple[float, float] | None]] = {
    "data": ((str,), "a dataset name", None),
    "data_params": ((dict, _NONE), "a mapping", None),
    "root": ((str, _NONE), "a folder", None),
    "image_size": ((int, _NONE), "an integer", (1, 4096)),
    "source_split": ((str,), "a split name", None),
    "test_fraction": ((float, int), "a number", (0, 1)),
    "classifier": ((str,), "a classifier name", None),
    "classifier_params": ((dict, _NONE), "a mapping", None),
    "balance": ((str,), "none, attribute or imbalanced", None),
    "balance_attribute": ((str, _NONE), "an attribute name", None),
    "balance_per_class": ((bool,), "true or false", None),
    "share": ((float, int, _NONE), "a number", (0, 1)),
    "minority_value": ((int, str, _NONE), "a value code or name", None),
    "attributes": ((list, _NONE), "a list of attribute names", None),
    "n_boot": ((int,), "an integer", (0, 10**6)),
    "level": ((float, int), "a number", (0, 1)),
    "min_group_size": ((int,), "an integer", (1, 10**9)),
    "seed": ((int,), "an integer", (0, 2**63 - 1)),
    "batch_size": ((int,), "an integer", (1, 2**20)),
}

#: the keys a task file may hold
TASK_KEYS: tuple[str, ...] = tuple(_FIELDS)


def check_task(task: Any, source: str = "the task") -> dict[str, Any]:
    """``task`` as a dict, or a ``ValueError`` naming the first unknown key, mistyped value or
    value out of range (``source`` starts the message)."""
    if not isinstance(task, dict):
        raise ValueError(f"{source} must hold a mapping of task keys, got {type(task).__name__}")
    unknown = sorted(str(k) for k in task if k not in _FIELDS)
    if unknown:
        raise ValueError(
            f"{source}: unknown task key(s) {', '.join(unknown)}; valid keys are: "
            + ", ".join(TASK_KEYS)
        )
    for key, value in task.items():
        types, what, bounds = _FIELDS[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = bool in types if isinstance(value, bool) else isinstance(value, types)
        if not ok:
            raise ValueError(f"{source}: {key} must be {what}, got {value!r}")
        if bounds is not None and numeric:
            low, high = bounds
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{source}: {key} must be between {low} and {high}, got {value!r}")
        if key == "attributes" and value is not None:
            if not all(isinstance(a, str) for a in value):
                raise ValueError(f"{source}: attributes must be a list of names, got {value!r}")
    return dict(task)


def load_task(path: str | Path) -> dict[str, Any]:
    """Read and check a task file.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not UTF-8, not YAML (or a tag the safe loader refuses), or a bad key or value
            (see :func:`check_task`).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--task {path} is not a file")
    try:
        given = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:  # a syntax error, or a tag (!!python/...) the safe loader refuses
        raise ValueError(
            f"--task {path} is not a plain YAML mapping of task keys "
            f"({' '.join(str(e).split())}); tags such as !!python/... are never executed"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"--task {path} is not a UTF-8 text (YAML) file") from None
    return check_task({} if given is None else given, str(path))
