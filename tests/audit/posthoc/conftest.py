"""Tiny deterministic pair sets shared by the post-hoc fix tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class Split:
    x: np.ndarray
    i: np.ndarray
    j: np.ndarray
    scores: np.ndarray
    genuine: np.ndarray
    groups: np.ndarray

    def fit_args(self):
        return self.x, self.i, self.j, self.scores, self.genuine

    def transform_args(self):
        return self.x, self.i, self.j, self.scores


def make_split(
    seed: int,
    *,
    n_ids: int = 30,
    per_id: int = 4,
    dim: int = 8,
    concentration: tuple[float, float] = (1.0, 3.0),
    noise: float = 0.5,
) -> Split:
    """Two groups of identities; group g's identity centres lean towards axis g with weight
    ``concentration[g]``, so group 1 (more concentrated) has higher impostor cosine scores.
    Every pair of rows is a pair; scores are cosine similarities."""
    rng = np.random.default_rng(seed)
    rows, ids, groups = [], [], []
    for g in (0, 1):
        axis = np.zeros(dim)
        axis[g] = 1.0
        for k in range(n_ids):
            c = rng.normal(size=dim)
            c = axis * concentration[g] + c / np.linalg.norm(c)
            c /= np.linalg.norm(c)
            for _ in range(per_id):
                v = c + noise * rng.normal(size=dim) / np.sqrt(dim)
                rows.append(v / np.linalg.norm(v))
                ids.append(g * 10_000 + k)
                groups.append(g)
    x, ids_a, groups_a = np.array(rows), np.array(ids), np.array(groups)
    i, j = np.triu_indices(len(x), 1)
    scores = np.einsum("pd,pd->p", x[i], x[j])
    return Split(x, i, j, scores, ids_a[i] == ids_a[j], groups_a)


@pytest.fixture(scope="session")
def tiny() -> Split:
    """36 rows, 12 identities, 3 groups: every pair (630)."""
    return _tiny()


def _tiny() -> Split:
    rng = np.random.default_rng(7)
    n_ids, per_id, dim = 12, 3, 4
    centres = rng.normal(size=(n_ids, dim))
    x = np.repeat(centres, per_id, axis=0) + 0.6 * rng.normal(size=(n_ids * per_id, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.repeat(np.arange(n_ids), per_id)
    groups = np.repeat(np.arange(n_ids) % 3, per_id)
    i, j = np.triu_indices(len(x), 1)
    scores = np.einsum("pd,pd->p", x[i], x[j])
    return Split(x, i, j, scores, ids[i] == ids[j], groups)


@pytest.fixture(scope="session")
def synthetic() -> tuple[Split, Split]:
    """A calibration and a held-out split (different identities) of the two-group set."""
    return make_split(0), make_split(1)
