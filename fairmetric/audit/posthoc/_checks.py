"""Validation of the arrays the verification audit hands the fixes: rows, pairs, scores, groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairSet", "check_pairs", "group_label", "pair_groups"]


@dataclass(frozen=True)
class PairSet:
    """Validated inputs of one split.

    Attributes:
        x: ``(N, D)`` float64 rows, or ``None`` when the caller gave none.
        n_rows: ``N``.
        i, j: ``(P,)`` int64 row indices of each pair's two sides.
        scores: ``(P,)`` float64 finite pair scores.
        genuine: ``(P,)`` bool (same identity), or ``None`` (transform).
        groups: ``(N,)`` int64 non-negative group codes, or ``None``.
        names: group names indexed by code (``str(code)`` where none was given).
    """

    x: np.ndarray | None
    n_rows: int
    i: np.ndarray
    j: np.ndarray
    scores: np.ndarray
    genuine: np.ndarray | None
    groups: np.ndarray | None
    names: tuple[str, ...]

    def impostor(self) -> np.ndarray:
        """Bool mask of the impostor pairs."""
        assert self.genuine is not None
        return ~self.genuine


def group_label(code: int, names: Sequence[str]) -> str:
    """``'female' (code 1)`` or ``code 1`` when no name is known."""
    if 0 <= code < len(names):
        return f"'{names[code]}' (code {code})"
    return f"code {code}"


def _check_groups(
    groups: object, n_rows: int, names: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n_rows:
        raise ValueError(
            f"groups must have shape ({n_rows},) (one code per row of x), got {g.shape}"
        )
    if g.size and not np.issubdtype(g.dtype, np.integer):
        if not (
            np.issubdtype(g.dtype, np.floating)
            and np.all(np.isfinite(g))
            and np.all(g == np.round(g))
        ):
            raise ValueError(f"groups must hold non-negative integer codes, got dtype {g.dtype}")
    g = g.astype(np.int64)
    if g.size and g.min() < 0:
        raise ValueError(f"groups must hold non-negative codes, got {int(g.min())}")
    n_codes = int(g.max()) + 1 if g.size else 0
    if names is None:
        out = tuple(str(c) for c in range(n_codes))
    else:
        out = tuple(str(n) for n in names)
        if len(out) < n_codes:
            raise ValueError(
                f"group_names has {len(out)} names but groups uses code {n_codes - 1}: "
                "give one name per code"
            )
    return g, out


def check_pairs(
    x: object,
    i: object,
    j: object,
    scores: object,
    genuine: object = None,
    *,
    groups: object = None,
    group_names: Sequence[str] | None = None,
    need_x: bool = True,
    need_groups: bool = False,
    who: str = "posthoc fix",
) -> PairSet:
    """Check shapes, types and ranges of one split's arrays; a ValueError names the argument."""
    if x is None:
        raise ValueError(f"{who}: x (the (N, D) embeddings the pairs index) is required")
    xa = np.asarray(x)
    if xa.ndim != 2:
        raise ValueError(f"{who}: x must be a 2-D (N, D) array, got shape {xa.shape}")
    if not np.issubdtype(xa.dtype, np.number):
        raise ValueError(f"{who}: x must be numeric, got dtype {xa.dtype}")
    n_rows = int(xa.shape[0])
    if need_x:
        xa = np.asarray(xa, dtype=np.float64)
        if not np.all(np.isfinite(xa)):
            row = int(np.flatnonzero(~np.all(np.isfinite(xa), axis=1))[0])
            raise ValueError(f"{who}: x has a non-finite value in row {row}")
    else:
        xa = None
    arrays = {}
    for key, value in (("i", i), ("j", j)):
        a = np.asarray(value)
        if a.ndim != 1:
            raise ValueError(
                f"{who}: {key} must be 1-D (one row index per pair), got shape {a.shape}"
            )
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{who}: {key} must hold integer row indices, got dtype {a.dtype}")
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= n_rows):
            bad = int(a[(a < 0) | (a >= n_rows)][0])
            raise ValueError(f"{who}: {key} has row index {bad}, outside [0, {n_rows}) (rows of x)")
        arrays[key] = a
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"{who}: scores must be 1-D (one per pair), got shape {s.shape}")
    s = s.astype(np.float64)
    n_pairs = s.shape[0]
    if n_pairs == 0:
        raise ValueError(f"{who}: there are no pairs (scores is empty)")
    for key in ("i", "j"):
        if arrays[key].shape[0] != n_pairs:
            raise ValueError(
                f"{who}: {key} has {arrays[key].shape[0]} entries but scores has {n_pairs}: "
                "i, j, scores (and genuine) must have one entry per pair"
            )
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ValueError(f"{who}: scores must be finite, got {float(s[bad])} at pair {bad}")
    gen = None
    if genuine is not None:
        gen = np.asarray(genuine)
        if gen.ndim != 1 or gen.shape[0] != n_pairs:
            raise ValueError(
                f"{who}: genuine must have shape ({n_pairs},) (one flag per pair), got {gen.shape}"
            )
        if gen.dtype != bool:
            if not (np.issubdtype(gen.dtype, np.integer) and np.all((gen == 0) | (gen == 1))):
                raise ValueError(
                    f"{who}: genuine must be boolean (same identity), got dtype {gen.dtype}"
                )
            gen = gen.astype(bool)
    g = None
    names: tuple[str, ...] = ()
    if groups is not None:
        g, names = _check_groups(groups, n_rows, group_names)
    elif need_groups:
        raise ValueError(f"{who} needs groups: an (N,) array of demographic group codes per row")
    return PairSet(xa, n_rows, arrays["i"], arrays["j"], s, gen, g, names)


def pair_groups(groups: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Per pair: the shared group code of a same-group pair, ``-1`` for a cross-group pair."""
    g = np.asarray(groups, dtype=np.int64)
    gi, gj = g[np.asarray(i)], g[np.asarray(j)]
    return np.where(gi == gj, gi, -1)
