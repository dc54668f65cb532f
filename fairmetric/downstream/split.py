"""The downstream task's own train/test split, stratified by class × attribute values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["stratified_split"]


def stratified_split(
    labels: Any,
    strata: Sequence[Any] = (),
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into downstream-train and downstream-test, stratified by class × strata.

    Each cell (one class and one value of every column in ``strata``) is shuffled with the seed
    and ``round(test_fraction · n_cell)`` of its rows go to the test side, clamped so that a cell of
    two or more rows has at least one row on each side; a cell of a single row goes to the training
    side. Both sides thus keep the class × attribute proportions up to rounding.

    Args:
        labels: ``(N,)`` class labels.
        strata: further ``(N,)`` columns to stratify by (e.g. every sensitive attribute).
        test_fraction: share of each cell for the test side, in ``(0, 1)``.
        seed: seed of the shuffles.

    Returns:
        ``(train_indices, test_indices)``, each ``int64`` and ascending.
    """
    if isinstance(test_fraction, bool) or not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    n = len(labels)
    columns = [labels]
    for j, col in enumerate(strata):
        col = np.asarray(col)
        if col.shape != (n,):
            raise ValueError(f"strata[{j}] has shape {col.shape}; it needs one value per label")
        columns.append(col)
    if n < 2:
        raise ValueError(f"a train/test split needs at least 2 samples, got {n}")
    codes = np.stack([np.unique(c, return_inverse=True)[1].ravel() for c in columns], axis=1)
    _, cell = np.unique(codes, axis=0, return_inverse=True)
    cell = cell.ravel()
    rng = np.random.default_rng(seed)
    test = np.zeros(n, dtype=bool)
    for c in range(int(cell.max()) + 1):
        rows = rng.permutation(np.flatnonzero(cell == c))
        if len(rows) < 2:
            continue
        n_test = min(max(int(round(test_fraction * len(rows))), 1), len(rows) - 1)
        test[rows[:n_test]] = True
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)
