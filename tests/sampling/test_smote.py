"""SMOTE on embeddings: EmbeddingSMOTE (faiss, offline) and smote_batch (torch, in training).

Checked against slow references written with explicit loops and float64 numpy distances, and
against imbalanced-learn's SMOTE for the output counts. pytorch-metric-learning is imported
first, so faiss runs patched by ``faiss.contrib.torch_utils`` as it does in training.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import pytorch_metric_learning.utils.inference  # noqa: F401  (patches faiss, as in training)
import torch
from imblearn.over_sampling import SMOTE

from fairmetric.sampling.smote import EmbeddingSMOTE, smote_batch

# ----------------------------------------------------------------------------- data + references


def make_data(sizes: dict, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows for each ``(class, attribute): size`` cell; Gaussian, so no distance ties."""
    rng = np.random.default_rng(seed)
    y, g = [], []
    for (c, a), size in sizes.items():
        y += [c] * size
        g += [a] * size
    y, g = np.array(y), np.array(g)
    perm = rng.permutation(len(y))  # cells interleaved, not in contiguous blocks
    y, g = y[perm], g[perm]
    x = rng.normal(size=(len(y), d)) + 2.0 * y[:, None]
    return x, y, g


CELLS = {(0, 0): 30, (0, 1): 9, (1, 0): 14, (1, 1): 7, (2, 0): 8, (2, 1): 20}


def cell_of(y: np.ndarray, g: np.ndarray, group_by: str) -> list:
    if group_by == "class":
        return list(y.tolist())
    if group_by == "attribute":
        return list(g.tolist())
    return list(zip(y.tolist(), g.tolist()))


def ref_neighbor_sets(x: np.ndarray, cells: list, k: int) -> list[set[int]]:
    """For every row, the rows that qualify as one of its k nearest same-cell neighbours:
    float64 distances by explicit loops, self excluded by index, ties at the k-th distance
    (within rounding) all admitted."""
    n = len(x)
    out = []
    for i in range(n):
        members = [j for j in range(n) if j != i and cells[j] == cells[i]]
        dist = {j: float(((x[i].astype(np.float64) - x[j]) ** 2).sum()) for j in members}
        if len(members) < k:
            out.append(set())
            continue
        kth = sorted(dist.values())[k - 1]
        out.append({j for j in members if dist[j] <= kth * (1 + 1e-5) + 1e-9})
    return out


def on_some_segment(point: np.ndarray, x: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    """Smallest distance from ``point`` to any segment ``[x_i, x_j]`` of ``pairs``."""
    best = math.inf
    for i, j in pairs:
        a, b = x[i].astype(np.float64), x[j].astype(np.float64)
        seg = b - a
        t = 0.0 if not seg.any() else float(np.clip((point - a) @ seg / (seg @ seg), 0, 1))
        best = min(best, float(np.linalg.norm(point - (a + t * seg))))
    return best


def counts(keys: list) -> Counter:
    return Counter(keys)


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("group_by", ["class", "attribute", "class_attribute"])
@pytest.mark.parametrize("ratio_mode", ["uniform", "midpoint"])
def test_synthetic_points_lie_on_segments_to_exact_same_cell_neighbours(group_by, ratio_mode):
    x, y, g = make_data(CELLS)
    k = 3
    sm = EmbeddingSMOTE(k_neighbors=k, ratio_mode=ratio_mode, group_by=group_by, random_state=1)
    x_res, y_res, g_res = sm.fit_resample(x, y, g)
    n = len(x)
    syn = x_res[n:]
    assert len(syn) > 0
    cells = cell_of(y, g, group_by)
    allowed = ref_neighbor_sets(x.astype(np.float32), cells, k)
    x32 = x.astype(np.float32)
    base, nbr, lam = sm.base_indices_, sm.neighbor_indices_, sm.lambdas_
    assert len(base) == len(nbr) == len(lam) == len(syn)
    for s in range(len(syn)):
        b, j = int(base[s]), int(nbr[s])
        assert j != b
        assert cells[j] == cells[b]
        assert j in allowed[b], f"synthetic {s}: {j} is not among the {k} nearest of {b}"
        np.testing.assert_allclose(syn[s], x32[b] + lam[s] * (x32[j] - x32[b]), atol=1e-6)
    # labels and groups are the base's
    np.testing.assert_array_equal(y_res[n:], y[base])
    np.testing.assert_array_equal(g_res[n:], g[base])
    assert ((lam >= 0) & (lam <= 1)).all()
    if ratio_mode == "midpoint":
        assert (lam == 0.5).all()
        np.testing.assert_allclose(syn, (x32[base] + x32[nbr]) / 2, atol=1e-6)
    else:
        assert len(np.unique(lam)) == len(lam)  # really drawn, not constant
    # independent of the provenance: each synthetic point lies on a segment from some member of
    # its (base's) cell to one of that member's exact k nearest same-cell neighbours
    syn_cells = cell_of(y_res[n:], g_res[n:], group_by)
    for s in range(0, len(syn), 3):
        pairs = [(i, j) for i in range(n) if cells[i] == syn_cells[s] for j in allowed[i]]
        assert on_some_segment(syn[s].astype(np.float64), x32, pairs) < 1e-5


def test_exact_duplicates_are_neighbours_and_self_is_excluded_by_index():
    rng = np.random.default_rng(3)
    dup = np.tile(rng.normal(size=(1, 4)), (8, 1))  # 8 identical rows: more than k + 1
    x = np.vstack([rng.normal(size=(40, 4)) + 5, dup, dup[:1] + 0.5, dup[:1] - 0.5])
    y = np.array([0] * 40 + [1] * 10)
    sm = EmbeddingSMOTE(k_neighbors=3, random_state=0)
    x_res, _, _ = sm.fit_resample(x, y)
    base, nbr = sm.base_indices_, sm.neighbor_indices_
    assert (base != nbr).all()
    from_dup = base < 48  # bases that are one of the duplicates
    assert from_dup.any()
    # a duplicate's 3 nearest neighbours are other copies (distance 0): the point itself again
    assert ((nbr[from_dup] >= 40) & (nbr[from_dup] < 48)).all()
    np.testing.assert_array_equal(
        x_res[len(x) :][from_dup], np.tile(dup[:1].astype(np.float32), (from_dup.sum(), 1))
    )


def tie_cell(order: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Class 1: a base at the origin, two rows at distance 1 and four copies of one row at
    distance 2; class 0: 4000 far rows. Returns ``(x, y, row of the base)`` in ``order``."""
    cell = np.array([[0, 0], [1, 0], [-1, 0], [0, 2], [0, 2], [0, 2], [0, 2]], dtype=np.float32)
    far = np.random.default_rng(0).normal(size=(4000, 2)).astype(np.float32) + 50
    x = np.vstack([cell, far])[order]
    y = np.array([1] * 7 + [0] * 4000)[order]
    return x, y, int(np.flatnonzero(order == 0)[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_tie_block_at_the_kth_neighbour_shares_its_slot(seed):
    # k = 3: the base's two rows at distance 1 fill two slots; the third slot falls in a block
    # of four tied copies, each taking it with probability 1/4 (the tie rule): each copy is
    # picked with probability 1/12, each near row with 1/3, whatever the order of the rows
    order = np.arange(4007) if seed == 0 else np.random.default_rng(seed).permutation(4007)
    x, y, b = tie_cell(order)
    sm = EmbeddingSMOTE(k_neighbors=3, random_state=seed)
    sm.fit_resample(x, y)
    from_b = sm.neighbor_indices_[sm.base_indices_ == b]
    picked = Counter(order[from_b].tolist())  # back to the rows of the unpermuted cell
    total = len(from_b)
    assert total > 400 and set(picked) == {1, 2, 3, 4, 5, 6}
    for row, p in {1: 1 / 3, 2: 1 / 3, 3: 1 / 12, 4: 1 / 12, 5: 1 / 12, 6: 1 / 12}.items():
        sd = math.sqrt(p * (1 - p) / total)
        assert abs(picked[row] / total - p) < 4.5 * sd, (row, picked[row], total)


def test_only_distinct_bases_are_searched():
    x, y, _ = make_data({(0, 0): 200, (1, 0): 40})
    sm = EmbeddingSMOTE(k_neighbors=5, random_state=0)
    sm.fit_resample(x, y)
    # 160 bases drawn from 40 rows: all 40 are used, each searched once
    assert sm.n_neighbor_queries_ == len(np.unique(sm.base_indices_)) <= 40
    sm = EmbeddingSMOTE(k_neighbors=5, sampling_strategy={1: 45}, random_state=0)
    sm.fit_resample(x, y)
    assert sm.n_neighbor_queries_ == len(np.unique(sm.base_indices_)) <= 5


# ----------------------------------------------------------------------------- counts


def test_auto_balances_every_cell_to_the_largest():
    x, y, g = make_data(CELLS)
    _, y_res, g_res = EmbeddingSMOTE(
        k_neighbors=3, group_by="class_attribute", random_state=0
    ).fit_resample(x, y, g)
    got = counts(cell_of(y_res, g_res, "class_attribute"))
    assert got == {cell: 30 for cell in CELLS}


def test_dict_strategy_with_cell_tuples_and_unlisted_cells_unchanged():
    x, y, g = make_data(CELLS)
    target = {(1, 1): 25, (0, 1): 9, (2, 0): 12}
    sm = EmbeddingSMOTE(k_neighbors=3, sampling_strategy=target, group_by="class_attribute")
    _, y_res, g_res = sm.fit_resample(x, y, g)
    got = counts(cell_of(y_res, g_res, "class_attribute"))
    assert got == {**CELLS, **target}
    assert sm.sampling_strategy_ == {(0, 1): 0, (1, 1): 18, (2, 0): 4}


def test_dict_strategy_can_leave_out_a_cell_too_small_to_interpolate():
    x, y, g = make_data({(0, 0): 20, (0, 1): 1, (1, 0): 6})
    sm = EmbeddingSMOTE(k_neighbors=3, sampling_strategy={(1, 0): 20}, group_by="class_attribute")
    _, y_res, g_res = sm.fit_resample(x, y, g)
    assert counts(cell_of(y_res, g_res, "class_attribute")) == {(0, 0): 20, (0, 1): 1, (1, 0): 20}


def test_attribute_cells_with_string_values():
    x, y, g = make_data(CELLS)
    g = np.where(g == 0, "light", "dark")
    _, _, g_res = EmbeddingSMOTE(
        k_neighbors=4, group_by="attribute", sampling_strategy="minority", random_state=0
    ).fit_resample(x, y, g)
    assert counts(g_res.tolist()) == {"light": 52, "dark": 52}


def test_float_strategy_binary():
    x, y, _ = make_data({(0, 0): 50, (1, 0): 12})
    _, y_res, _ = EmbeddingSMOTE(k_neighbors=3, sampling_strategy=0.6).fit_resample(x, y)
    assert counts(y_res.tolist()) == {0: 50, 1: 30}


IMBLEARN_CASES = [
    # (class sizes, strategy); ties between the largest / smallest classes on purpose
    ([12, 30, 30, 7, 12], "auto"),
    ([12, 30, 30, 7, 12], "not majority"),
    ([12, 30, 30, 7, 7], "minority"),
    ([12, 30, 30, 7, 7], "not minority"),
    ([12, 30, 30, 7, 12], "all"),
    ([12, 30, 9], {0: 20, 2: 33}),
    ([41, 13], 0.7),
    ([41, 13], 1.0),
]


@pytest.mark.parametrize(("sizes", "strategy"), IMBLEARN_CASES)
def test_per_class_counts_equal_imbalanced_learn(sizes, strategy):
    x, y, _ = make_data({(c, 0): s for c, s in enumerate(sizes)}, seed=len(sizes))
    labels = np.array(["a", "b", "c", "d", "e"])[y]  # non-integer labels, sorted order matters
    if isinstance(strategy, dict):
        strategy = {labels[y == c][0]: v for c, v in strategy.items()}
    _, ref = SMOTE(sampling_strategy=strategy, k_neighbors=4, random_state=0).fit_resample(
        x, labels
    )
    x_res, y_res, g_res = EmbeddingSMOTE(
        k_neighbors=4, sampling_strategy=strategy, random_state=0
    ).fit_resample(x, labels)
    assert counts(y_res.tolist()) == counts(ref.tolist())
    assert g_res is None
    # imbalanced-learn's order too: originals, then synthetic rows class by class (sorted)
    np.testing.assert_array_equal(y_res, ref)


def test_originals_preserved_in_front_and_dtypes():
    x, y, g = make_data(CELLS)  # float64 input
    sm = EmbeddingSMOTE(k_neighbors=3, group_by="class_attribute", random_state=0)
    x_res, y_res, g_res = sm.fit_resample(x, y, g)
    n = len(x)
    assert x_res.dtype == np.float32
    np.testing.assert_array_equal(x_res[:n], x.astype(np.float32))
    np.testing.assert_array_equal(y_res[:n], y)
    np.testing.assert_array_equal(g_res[:n], g)
    np.testing.assert_array_equal(sm.sample_indices_, np.arange(n))
    assert y_res.dtype == y.dtype and g_res.dtype == g.dtype
    assert len(x_res) == len(y_res) == len(g_res) == n + len(sm.base_indices_)


def test_groups_are_carried_along_with_group_by_class():
    x, y, g = make_data(CELLS)
    sm = EmbeddingSMOTE(k_neighbors=3, random_state=0)
    _, y_res, g_res = sm.fit_resample(x, y, g)
    np.testing.assert_array_equal(g_res[len(x) :], g[sm.base_indices_])
    assert counts(y_res.tolist()) == {0: 39, 1: 39, 2: 39}


# ----------------------------------------------------------------------------- determinism, faiss


def test_reproducible_under_random_state_and_seeds_differ():
    x, y, g = make_data(CELLS)

    def run(seed):
        return EmbeddingSMOTE(k_neighbors=3, random_state=seed, group_by="class_attribute")

    a = run(7).fit_resample(x, y, g)
    b = run(7).fit_resample(x, y, g)
    c = run(8).fit_resample(x, y, g)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert a[0].shape == c[0].shape
    assert not np.array_equal(a[0], c[0])
    # the thread count does not change the result
    one = EmbeddingSMOTE(k_neighbors=3, random_state=7, group_by="class_attribute", n_threads=1)
    np.testing.assert_array_equal(one.fit_resample(x, y, g)[0], a[0])


def test_faiss_patched_by_pml_and_tensor_input():
    assert "faiss.contrib.torch_utils" in sys.modules
    x, y, _ = make_data(CELLS)
    sm = EmbeddingSMOTE(k_neighbors=3, random_state=5)
    ref = sm.fit_resample(x.astype(np.float32), y)
    got = EmbeddingSMOTE(k_neighbors=3, random_state=5).fit_resample(
        torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    )
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


UNPATCHED = """
import sys, numpy as np
from fairmetric.sampling.smote import EmbeddingSMOTE
assert "faiss.contrib.torch_utils" not in sys.modules
x = np.load(sys.argv[1])["x"]; y = np.load(sys.argv[1])["y"]
out = EmbeddingSMOTE(k_neighbors=3, random_state=5).fit_resample(x, y)[0]
np.save(sys.argv[2], out)
"""


def test_same_result_with_unpatched_faiss(tmp_path):
    x, y, _ = make_data(CELLS)
    np.savez(tmp_path / "in.npz", x=x, y=y)
    subprocess.run(
        [sys.executable, "-c", UNPATCHED, str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
        check=True,
        timeout=120,
    )
    ref = EmbeddingSMOTE(k_neighbors=3, random_state=5).fit_resample(x, y)[0]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)


# ----------------------------------------------------------------------------- bad input


def _xy(n=12):
    x, y, g = make_data({(0, 0): n - 4, (1, 1): 4})
    return x, y, g


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_x(bad):
    x, y, _ = _xy()
    x[3, 1] = bad
    with pytest.raises(ValueError, match=r"X has 1 row\(s\) with NaN or inf.*rows \[3\].*drop"):
        EmbeddingSMOTE(k_neighbors=2).fit_resample(x, y)


def test_x_not_2d():
    x, y, _ = _xy()
    with pytest.raises(ValueError, match="X must be a 2-D array.*got shape \\(12,\\)"):
        EmbeddingSMOTE(k_neighbors=2).fit_resample(x[:, 0], y)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        EmbeddingSMOTE(k_neighbors=2).fit_resample(x[None], y)


def test_length_mismatches():
    x, y, g = _xy()
    with pytest.raises(ValueError, match="y has 11 entries but X has 12 rows"):
        EmbeddingSMOTE(k_neighbors=2).fit_resample(x, y[:-1])
    with pytest.raises(ValueError, match="groups has 13 entries but X has 12 rows"):
        EmbeddingSMOTE(k_neighbors=2, group_by="attribute").fit_resample(x, y, np.r_[g, 0])
    with pytest.raises(ValueError, match="y must be 1-D.*ravel"):
        EmbeddingSMOTE(k_neighbors=2).fit_resample(x, y[:, None])


@pytest.mark.parametrize("group_by", ["attribute", "class_attribute"])
def test_groups_missing(group_by):
    x, y, _ = _xy()
    with pytest.raises(ValueError, match=f"group_by='{group_by}' needs the sensitive attribute"):
        EmbeddingSMOTE(k_neighbors=2, group_by=group_by).fit_resample(x, y)


def test_unknown_options():
    with pytest.raises(ValueError, match="unknown group_by 'subgroup'.*'class_attribute'"):
        EmbeddingSMOTE(group_by="subgroup")
    with pytest.raises(ValueError, match="unknown ratio_mode 'mean'.*'midpoint'"):
        EmbeddingSMOTE(ratio_mode="mean")
    x, y, _ = _xy()
    with pytest.raises(ValueError, match="unknown sampling_strategy 'balanced'.*'not minority'"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy="balanced").fit_resample(x, y)
    with pytest.raises(ValueError, match="'majority' is an under-sampling target"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy="majority").fit_resample(x, y)
    with pytest.raises(ValueError, match="sampling_strategy must be one of"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy=[1]).fit_resample(x, y)


@pytest.mark.parametrize("k", [0, -1])
def test_k_neighbors_below_one(k):
    with pytest.raises(ValueError, match=f"k_neighbors must be >= 1, got {k}"):
        EmbeddingSMOTE(k_neighbors=k)


def test_k_neighbors_not_an_integer():
    with pytest.raises(ValueError, match="k_neighbors must be an integer, got 2.5"):
        EmbeddingSMOTE(k_neighbors=2.5)


def test_cell_too_small_for_k():
    x, y, g = make_data({(0, 0): 20, (1, 0): 3, (1, 1): 9})
    with pytest.raises(
        ValueError,
        match=r"k_neighbors=3 needs at least 4 members.*cell \(1, 0\) has 3 member\(s\) and "
        r"needs 17 synthetic row\(s\).*lower k_neighbors to 2 or less, or leave such cells out "
        r"with a dict sampling_strategy",
    ):
        EmbeddingSMOTE(k_neighbors=3, group_by="class_attribute").fit_resample(x, y, g)
    # lowering k as suggested works
    EmbeddingSMOTE(k_neighbors=2, group_by="class_attribute").fit_resample(x, y, g)


def test_single_member_cell_cannot_be_interpolated():
    x, y, _ = make_data({(0, 0): 10, (1, 0): 1})
    with pytest.raises(
        ValueError, match=r"class 1 has 1 member.*single member cannot be interpolated at all"
    ):
        EmbeddingSMOTE(k_neighbors=1).fit_resample(x, y)


def test_bad_strategy_values():
    x, y, _ = make_data({(0, 0): 20, (1, 0): 8, (2, 0): 6})
    with pytest.raises(ValueError, match=r"sampling_strategy\[1\] = 5 is below the class's"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy={1: 5}).fit_resample(x, y)
    with pytest.raises(ValueError, match="key 7, which is not a class present in the data"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy={7: 30}).fit_resample(x, y)
    with pytest.raises(ValueError, match="must be an integer target count"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy={1: 9.5}).fit_resample(x, y)
    with pytest.raises(ValueError, match="needs exactly two classes"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy=0.5).fit_resample(x, y)
    xb, yb = x[y < 2], y[y < 2]
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy=1.5).fit_resample(xb, yb)
    with pytest.raises(ValueError, match="below its current size 8.*at least 0.4"):
        EmbeddingSMOTE(k_neighbors=2, sampling_strategy=0.3).fit_resample(xb, yb)
    with pytest.raises(ValueError, match="only one class"):
        EmbeddingSMOTE(k_neighbors=2).fit_resample(x[y == 0], y[y == 0])
    with pytest.raises(ValueError, match=r"keys are the \(class, attribute\) tuple"):
        EmbeddingSMOTE(
            k_neighbors=2, group_by="class_attribute", sampling_strategy={1: 30}
        ).fit_resample(x, y, np.zeros_like(y))


# ----------------------------------------------------------------------------- smote_batch


def batch(sizes: dict, d: int = 6, seed: int = 0, grad: bool = False):
    x, y, g = make_data(sizes, d=d, seed=seed)
    e = torch.tensor(x, dtype=torch.float32, requires_grad=grad)
    return e, torch.from_numpy(y), torch.from_numpy(g)


BATCH_CELLS = {(0, 0): 10, (0, 1): 3, (1, 0): 6, (1, 1): 2, (2, 0): 1, (3, 1): 8}


@pytest.mark.parametrize("group_by", ["class", "class_attribute"])
def test_batch_neighbours_within_cell_and_on_segment(group_by):
    e, y, g = batch(BATCH_CELLS)
    k = 3
    gen = torch.Generator().manual_seed(0)
    syn, syn_y, syn_g, prov = smote_batch(
        e, y, g, k_neighbors=k, group_by=group_by, generator=gen, return_provenance=True
    )
    cells = cell_of(y.numpy(), g.numpy(), group_by)
    x = e.detach().numpy()
    base, nbr, lam = prov["base"].numpy(), prov["neighbor"].numpy(), prov["lambdas"].numpy()
    assert len(base) == len(syn) > 0
    refs: dict[int, list[set[int]]] = {}
    for s in range(len(syn)):
        b, j = int(base[s]), int(nbr[s])
        members = [i for i in range(len(x)) if i != b and cells[i] == cells[b]]
        # fewer than k other members: all of them are the neighbours
        kk = min(k, len(members))
        if kk not in refs:
            refs[kk] = ref_neighbor_sets(x, cells, kk)
        allowed = refs[kk][b]
        assert j != b and cells[j] == cells[b] and j in allowed
        np.testing.assert_allclose(
            syn[s].detach().numpy(), x[b] + lam[s] * (x[j] - x[b]), atol=1e-6
        )
    np.testing.assert_array_equal(syn_y.numpy(), y.numpy()[base])
    np.testing.assert_array_equal(syn_g.numpy(), g.numpy()[base])
    assert ((lam >= 0) & (lam <= 1)).all()


def test_batch_small_cell_uses_all_other_members():
    e, y, g = batch({(0, 0): 12, (1, 0): 2, (2, 0): 3})
    _, _, _, prov = smote_batch(
        e,
        y,
        g,
        k_neighbors=5,
        group_by="class",
        target=3.0,  # 36 rows per class: every base is drawn many times
        generator=torch.Generator().manual_seed(1),
        return_provenance=True,
    )
    base, nbr = prov["base"].tolist(), prov["neighbor"].tolist()
    for c in (1, 2):  # 2 and 3 members, fewer than k + 1 = 6
        members = set(torch.nonzero(y == c).ravel().tolist())
        used = {b: {j for bb, j in zip(base, nbr) if bb == b} for b in members}
        for b, js in used.items():
            assert js == members - {b}, (c, b, js)  # all other members, nothing else


def test_batch_counts_auto_and_float():
    e, y, g = batch(BATCH_CELLS)
    for target, goal in [("auto", 10), (0.5, 5), (0.35, 4), (1.5, 15)]:
        syn, syn_y, syn_g = smote_batch(
            e, y, g, target=target, generator=torch.Generator().manual_seed(0), scope="batch"
        )
        total = counts(
            cell_of(torch.cat([y, syn_y]).numpy(), torch.cat([g, syn_g]).numpy(), "class_attribute")
        )
        for cell, size in BATCH_CELLS.items():
            want = size if size < 2 else max(size, goal)  # one-member cells skipped
            assert total[cell] == want, (target, cell)
    # group_by="class": cells are classes (0: 13, 1: 8, 2: 1, 3: 8)
    _, syn_y, syn_g = smote_batch(e, y, None, group_by="class")
    assert syn_g is None
    assert counts(torch.cat([y, syn_y]).tolist()) == {0: 13, 1: 13, 2: 1, 3: 13}


def test_batch_gradient_flows_into_both_endpoints():
    e, y, g = batch({(0, 0): 8, (0, 1): 4, (1, 0): 5}, grad=True)
    syn, _, _, prov = smote_batch(
        e, y, g, generator=torch.Generator().manual_seed(2), return_provenance=True
    )
    assert syn.requires_grad and len(syn) > 0
    for s in range(len(syn)):
        (grad,) = torch.autograd.grad(syn[s].sum(), e, retain_graph=True)
        b, j, lam = int(prov["base"][s]), int(prov["neighbor"][s]), float(prov["lambdas"][s])
        expected = torch.zeros_like(e)
        expected[b] = 1 - lam
        expected[j] = lam
        torch.testing.assert_close(grad, expected, atol=1e-6, rtol=0)


def test_batch_empty_output():
    e, y, g = batch({(0, 0): 4, (1, 0): 4, (1, 1): 4})  # already balanced
    syn, syn_y, syn_g = smote_batch(e, y, g)
    assert syn.shape == (0, 6) and syn_y.shape == (0,) and syn_g.shape == (0,)
    assert syn.dtype == e.dtype and syn_y.dtype == y.dtype
    e, y, g = batch({(0, 0): 1, (1, 0): 1, (2, 1): 1})  # nothing to interpolate with
    syn, syn_y, syn_g = smote_batch(e, y, None, group_by="class")
    assert syn.shape == (0, 6) and syn_y.shape == (0,) and syn_g is None


def test_batch_rejects_attribute_cells_and_bad_options():
    e, y, g = batch(BATCH_CELLS)
    with pytest.raises(ValueError, match="group_by='attribute'.*needs a class label"):
        smote_batch(e, y, g, group_by="attribute")
    with pytest.raises(ValueError, match="group_by='class_attribute' needs groups"):
        smote_batch(e, y, None)
    with pytest.raises(ValueError, match="k_neighbors must be >= 1"):
        smote_batch(e, y, g, k_neighbors=0)
    with pytest.raises(ValueError, match="target must be 'auto' or a positive float"):
        smote_batch(e, y, g, target=0.0)
    with pytest.raises(ValueError, match="unknown target 'max'"):
        smote_batch(e, y, g, target="max")
    with pytest.raises(ValueError, match="labels must have shape"):
        smote_batch(e, y[:-1], g)


def test_batch_midpoint_normalize_and_reproducible():
    e, y, g = batch(BATCH_CELLS)
    e = torch.nn.functional.normalize(e, dim=1)

    def run(seed, **kw):
        return smote_batch(e, y, g, generator=torch.Generator().manual_seed(seed), **kw)

    raw = run(4)
    again = run(4)
    other = run(5)
    torch.testing.assert_close(raw[0], again[0], rtol=0, atol=0)
    assert not torch.equal(raw[0], other[0])
    normed = run(4, normalize=True)
    torch.testing.assert_close(normed[0].norm(dim=1), torch.ones(len(normed[0])))
    assert (raw[0].norm(dim=1) < 1 - 1e-4).any()  # interpolation leaves the sphere...
    torch.testing.assert_close(normed[0], torch.nn.functional.normalize(raw[0], dim=1))
    mid = run(4, ratio_mode="midpoint", return_provenance=True)
    assert (mid[3]["lambdas"] == 0.5).all()
    torch.testing.assert_close(mid[0], (e[mid[3]["base"]] + e[mid[3]["neighbor"]]) / 2)
