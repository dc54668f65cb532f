"""In-batch SMOTE balances the groups *within each class* (scope="class", issue 13)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from fairmetric.sampling import MPerClassBatchSampler
from fairmetric.sampling.class_mixed import ClassMixedBatchSampler
from fairmetric.sampling.smote_batch import smote_batch


def _batch(cells: dict, d: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    y, g = [], []
    for (c, a), n in cells.items():
        y += [c] * n
        g += [a] * n
    e = torch.tensor(rng.standard_normal((len(y), d)), dtype=torch.float64)
    return e, torch.tensor(y), torch.tensor(g)


def _reference_counts(cells: dict, target) -> dict:
    """Loop reference: each (class, group) cell with >= 2 members is topped up to the largest
    cell of its own class (times r, rounded up)."""
    out = {}
    for (c, a), n in cells.items():
        largest = max(m for (cc, _), m in cells.items() if cc == c)
        goal = largest if target == "auto" else math.ceil(round(target * largest, 9))
        out[(c, a)] = n if n < 2 else max(n, goal)
    return out


CELLS = {(0, 0): 3, (0, 1): 1, (1, 0): 2, (1, 1): 2, (2, 0): 4, (3, 0): 1, (3, 1): 3, (4, 1): 4}


@pytest.mark.parametrize("target", ["auto", 0.5, 1.5, 2.0])
def test_class_scope_matches_loop_reference(target):
    e, y, g = _batch(CELLS)
    syn, syn_y, syn_g, prov = smote_batch(
        e, y, g, target=target, generator=torch.Generator().manual_seed(0), return_provenance=True
    )
    total = Counter(zip(torch.cat([y, syn_y]).tolist(), torch.cat([g, syn_g]).tolist()))
    assert dict(total) == _reference_counts(CELLS, target)
    # every synthetic row interpolates two members of its own (class, group) cell
    base, nbr = prov["base"], prov["neighbor"]
    assert (y[base] == y[nbr]).all() and (g[base] == g[nbr]).all() and (base != nbr).all()
    lam = prov["lambdas"][:, None]
    assert torch.allclose(syn, e[base] + lam * (e[nbr] - e[base]))


def test_batch_scope_is_the_old_behaviour():
    e, y, g = _batch(CELLS)
    _, syn_y, syn_g = smote_batch(e, y, g, scope="batch")
    total = Counter(zip(torch.cat([y, syn_y]).tolist(), torch.cat([g, syn_g]).tolist()))
    assert dict(total) == {k: (n if n < 2 else 4) for k, n in CELLS.items()}
    with pytest.raises(ValueError, match="scope"):
        smote_batch(e, y, g, scope="epoch")


def _synthetic_per_group(sampler, labels, groups):
    made = Counter()
    for b in sampler:
        b = np.array(b)
        e = torch.randn(len(b), 4, generator=torch.Generator().manual_seed(len(made)))
        _, _, sg = smote_batch(e, torch.as_tensor(labels[b]), torch.as_tensor(groups[b]))
        made.update(sg.tolist())
    return made


def test_under_m_per_class_batches_smote_makes_no_majority_rows():
    """Statistical property at 95:5 (200 classes of 10, m = 4): the old batch scope made mostly
    majority rows (it topped up the m - 1 majority rows of every class whose minority member was
    drawn); the class scope makes none. Minority rows need a class showing two minority members
    *and* more majority members than that: with m = 4 a class's slots are (3, 1) or (2, 2), so
    nothing is made; with m = 8 and the class_mixed sampler (which shows up to m / 2 of a class's
    minority members) classes with two or three minority images get synthetic ones."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(200), 10)
    groups = np.zeros(2000, dtype=np.int64)
    groups[rng.permutation(2000)[:100]] = 1
    plain = MPerClassBatchSampler(labels, m=4, batch_size=64, seed=0)
    old = Counter()
    for b in plain:
        b = np.array(b)
        e = torch.randn(len(b), 4)
        _, _, sg = smote_batch(
            e, torch.as_tensor(labels[b]), torch.as_tensor(groups[b]), scope="batch"
        )
        old.update(sg.tolist())
    assert old[0] > 3 * old[1]
    new_plain = _synthetic_per_group(plain, labels, groups)
    assert new_plain[0] == 0 and new_plain[1] <= old[1]
    assert new_plain[1] == 0  # m = 4: no class has room for it
    mixed4 = ClassMixedBatchSampler(labels, groups, m=4, batch_size=64, seed=0)
    assert sum(_synthetic_per_group(mixed4, labels, groups).values()) == 0
    mixed8 = ClassMixedBatchSampler(labels, groups, m=8, batch_size=64, seed=0)
    new_mixed = _synthetic_per_group(mixed8, labels, groups)
    assert new_mixed[0] == 0 and new_mixed[1] > 0
