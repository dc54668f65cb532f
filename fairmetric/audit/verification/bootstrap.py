"""Bootstrap over identities for verification rates (a person's pairs are not independent).

A genuine pair counts as often as its identity is drawn (:func:`unit_counts` / :func:`boot`);
an impostor pair depends on two identities and is weighed by the product of their
multiplicities (:func:`pair_boot`, a two-way cluster bootstrap). :func:`interval` is the
percentile interval of the replicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Counts", "boot", "interval", "pair_boot", "unit_counts"]


def interval(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    q = (1 - level) / 2
    return float(np.quantile(values, q)), float(np.quantile(values, 1 - q))


@dataclass
class Counts:
    """Per-unit (identity within a group) pair counts at every threshold."""

    units: np.ndarray  # (U,) group code of each unit
    n: np.ndarray  # (U,) pairs
    hits: np.ndarray  # (U, T) matches (impostors) or non-matches (genuine)


def unit_counts(owners: np.ndarray, codes: np.ndarray, hits: np.ndarray, n_groups: int) -> Counts:
    """Sum pair counts per (owner identity, group) unit."""
    if len(owners) == 0:
        return Counts(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, hits.shape[1])))
    key = owners.astype(np.int64) * n_groups + codes
    uniq, inv = np.unique(key, return_inverse=True)
    n = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    h = np.stack(
        [np.bincount(inv, weights=hits[:, t], minlength=len(uniq)) for t in range(hits.shape[1])],
        axis=1,
    )
    return Counts(uniq % n_groups, n, h)


def boot(c: Counts, group: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, T)`` rates of ``group`` over identity resamples (NaN: no pairs drawn)."""
    sel = np.flatnonzero(c.units == group)
    out = np.full((n_boot, c.hits.shape[1]), np.nan)
    if sel.size == 0 or n_boot == 0:
        return out
    draws = rng.integers(0, sel.size, size=(n_boot, sel.size))
    n = c.n[sel][draws].sum(axis=1)
    h = c.hits[sel][draws].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return h / n[:, None]


def pair_boot(
    u: np.ndarray, v: np.ndarray, hits: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n_boot, T)`` rates of impostor pairs over identity resamples (NaN: no pair drawn).

    An impostor pair depends on *two* identities, so each replicate draws every identity's
    multiplicity ``w`` (resampling the identities with replacement) and weighs the pair of
    identities ``(u, v)`` by ``w_u · w_v`` (a two-way cluster bootstrap): the rate is
    ``Σ w_u w_v hits / Σ w_u w_v pairs``.
    """
    t = hits.shape[1]
    out = np.full((n_boot, t), np.nan)
    if len(u) == 0 or n_boot == 0:
        return out
    ids, inverse = np.unique(np.concatenate([u, v]), return_inverse=True)
    uu, vv = inverse[: len(u)], inverse[len(u) :]
    key = np.minimum(uu, vv) * len(ids) + np.maximum(uu, vv)  # one entry per identity pair
    cells, inv = np.unique(key, return_inverse=True)
    n = np.bincount(inv, minlength=len(cells)).astype(np.float64)
    h = np.stack([np.bincount(inv, weights=hits[:, k], minlength=len(cells)) for k in range(t)], 1)
    a, b = cells // len(ids), cells % len(ids)
    w = np.stack(
        [
            np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
            for _ in range(n_boot)
        ]
    ).astype(np.float64)  # (n_boot, identities)
    num = np.zeros((n_boot, t))
    den = np.zeros(n_boot)
    step = max(1, (16 << 20) // (8 * n_boot))  # identity pairs per block: ~16 MB of weights
    for s in range(0, len(cells), step):
        ww = w[:, a[s : s + step]] * w[:, b[s : s + step]]
        num += ww @ h[s : s + step]
        den += ww @ n[s : s + step]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den[:, None]
    out[den == 0] = np.nan
    return out
