"""Validation shared by the group-balanced samplers: label and group codes, target shares, and the
largest-remainder rounding of shares to whole counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairmetric.sampling.m_per_class import check_sampler_args

__all__: list[str] = []

_MAX_GROUPS = 16
"""Feasibility checks enumerate subsets of groups: 2**G of them."""


# --------------------------------------------------------------------------------------------
# shared validation


def _codes(values: Sequence[Any] | np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to sample")
    uniq, codes = np.unique(arr, return_inverse=True)
    return uniq, codes.reshape(-1)


def _check_common(
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    m: int,
    batch_size: int,
    num_batches: int | None,
    seed: int,
    rank: int,
    world_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Label and group codes, group values and classes per batch; ValueError on bad arguments."""
    _, label_codes = _codes(labels, "labels")
    group_values, group_codes = _codes(groups, "groups")
    if len(group_codes) != len(label_codes):
        raise ValueError(
            f"groups has {len(group_codes)} entries but labels has {len(label_codes)}; give one "
            "group value per sample"
        )
    if len(group_values) > _MAX_GROUPS:
        raise ValueError(
            f"groups has {len(group_values)} distinct values; at most {_MAX_GROUPS} are supported "
            "(merge rare values into an 'other' group)"
        )
    n_classes = int(label_codes.max()) + 1
    k = check_sampler_args(n_classes, m, batch_size, num_batches, seed, rank, world_size)
    return label_codes, group_codes, group_values, k


def _shares(spec: Any, values: np.ndarray, name: str) -> np.ndarray:
    """Normalised positive shares aligned with ``values`` (sorted unique group values).

    ``spec``: ``None`` (uniform), ``{group value: share}`` naming every group, or a sequence of
    shares in the order of the sorted group values.
    """
    present = values.tolist()
    if spec is None:
        return np.full(len(present), 1.0 / len(present))
    if isinstance(spec, Mapping):
        lookup = {v: i for i, v in enumerate(present)}
        unknown = [k for k in spec if k not in lookup]
        if unknown:
            raise ValueError(
                f"{name} names group(s) {unknown} with no samples; the groups present are "
                f"{present}. Drop those keys (a group with no samples cannot be drawn)"
            )
        missing = [v for v in present if v not in spec]
        if missing:
            raise ValueError(
                f"{name} gives no share for group(s) {missing}; give every group present "
                f"({present}) a positive share, or remove those samples from the dataset"
            )
        raw = np.array([float(spec[v]) for v in present])
    else:
        raw = np.asarray(spec, dtype=np.float64).reshape(-1)
        if len(raw) != len(present):
            raise ValueError(
                f"{name} has {len(raw)} shares but there are {len(present)} groups "
                f"{present} (a sequence is aligned with the sorted group values); give "
                f"{len(present)} shares or a dict {{group: share}}"
            )
    if not np.all(np.isfinite(raw)) or np.any(raw < 0):
        raise ValueError(f"{name} shares must be finite and non-negative, got {raw.tolist()}")
    if raw.sum() <= 0:
        raise ValueError(f"{name} shares sum to zero; give every group a positive share")
    if np.any(raw == 0):
        zero = [present[i] for i in np.flatnonzero(raw == 0)]
        raise ValueError(
            f"{name} gives group(s) {zero} a zero share; shares must be positive (to leave a "
            "group out, remove its samples from the dataset)"
        )
    return raw / raw.sum()


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Integers summing to ``total``, each the floor or ceiling of ``total * share``.

    The units left after the floors go to the largest fractional parts (ties: lower group first).
    """
    exact = total * shares
    out = np.floor(exact + 1e-9).astype(np.int64)
    rest = total - int(out.sum())
    if rest > 0:
        frac = np.round(exact - out, 9)  # equal fractions tie exactly despite float error
        out[np.argsort(-frac, kind="stable")[:rest]] += 1
    return out
