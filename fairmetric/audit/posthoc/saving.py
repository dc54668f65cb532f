"""Saving and loading fitted fixes as JSON (no pickle).

The file is ``{"format": "fairmetric.posthoc_fix", "version": 1, "name", "params", "state"}``,
with every array as nested lists; Python's JSON writes floats with ``repr``, so a loaded fix gives
bit-identical scores. Loading checks the format, the version, the fix name and every state field
(missing keys, shapes, NaN) and fails with a ValueError naming the file, the fix and the problem.
"""

from __future__ import annotations

import json
from pathlib import Path

from fairmetric.audit.posthoc.base import PosthocFix
from fairmetric.audit.posthoc.registry import POSTHOC_FIXES
from fairmetric.utils import atomic_write_bytes

__all__ = ["FORMAT", "VERSION", "load_fix", "save_fix"]

FORMAT = "fairmetric.posthoc_fix"
VERSION = 1


def save_fix(fix: PosthocFix, path: str | Path) -> Path:
    """Write a fitted fix to ``path`` (JSON, atomically); returns the path."""
    data = {"format": FORMAT, "version": VERSION, **fix.to_dict()}
    text = json.dumps(data, allow_nan=False, indent=1)
    return atomic_write_bytes(path, (text + "\n").encode())


def load_fix(path: str | Path) -> PosthocFix:
    """Read a fix written by :func:`save_fix`, checking every field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a JSON post-hoc fix file ({exc})") from None
    except _NonFinite as exc:
        raise ValueError(
            f"{path}: holds {exc} (NaN or infinity); re-fit and save the fix"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a post-hoc fix file (expected format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(
            f"{path}: post-hoc fix file version {data.get('version')!r}, this fairmetric reads "
            f"version {VERSION}; re-fit and save the fix"
        )
    name = data.get("name")
    if name not in POSTHOC_FIXES:
        raise ValueError(
            f"{path}: unknown post-hoc fix {name!r}; known fixes: {sorted(POSTHOC_FIXES)}"
        )
    try:
        return POSTHOC_FIXES[name].from_dict(
            {k: v for k, v in data.items() if k not in ("format", "version")}
        )
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


class _NonFinite(Exception):
    pass


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)
