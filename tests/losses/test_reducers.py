"""Tests for fairmetric.losses.reducers: group weights and the group-weighted PML reducer.

Every loss value is checked against a slow reference that loops over the tuples (or samples) and
computes each element's loss from the embeddings itself, then reduces with explicit weights.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import (
    ArcFaceLoss,
    BaseMetricLossFunction,
    ContrastiveLoss,
    HistogramLoss,
    MultipleLosses,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    TripletMarginLoss,
)
from pytorch_metric_learning.miners import MultiSimilarityMiner, TripletMarginMiner
from pytorch_metric_learning.reducers import DoNothingReducer, MultipleReducers
from pytorch_metric_learning.regularizers import LpRegularizer
from torch.testing import assert_close

from fairmetric.losses.reducers import (
    GroupWeightedReducer,
    anchor_indices,
    batch_groups,
    check_sample_indexed,
    group_weights,
)

# --------------------------------------------------------------------------------------------
# tiny deterministic batch and slow references
# --------------------------------------------------------------------------------------------

N, D = 12, 4
LABELS = torch.arange(N) % 3  # 3 classes x 4 samples
GROUPS = torch.tensor([0, 0, 1, 2, 1, 0, 2, 2, 1, 0, 1, 2])  # not aligned with the labels
# non-uniform, exactly representable in float32 (the reducer stores float32); group 3 is absent
WEIGHTS = torch.tensor([0.5, 2.0, 3.0, 1.0])


def make_emb(seed: int = 0, n: int = N, d: int = D) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def unit(emb: torch.Tensor) -> torch.Tensor:
    return emb / torch.sqrt((emb * emb).sum(dim=1, keepdim=True))


def dist(u: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return torch.sqrt(((u[i] - u[j]) ** 2).sum())


def all_triplets(labels: torch.Tensor) -> list[tuple[int, int, int]]:
    y = labels.tolist()
    n = len(y)
    return [
        (a, p, q)
        for a in range(n)
        for p in range(n)
        for q in range(n)
        if a != p and y[a] == y[p] and y[q] != y[a]
    ]


def triplet_elements(emb, triplets, margin):
    """(anchor, loss) per triplet: relu(d(a,p) - d(a,n) + margin) on L2-normalised embeddings."""
    u = unit(emb)
    return [(a, torch.relu(dist(u, a, p) - dist(u, a, q) + margin)) for a, p, q in triplets]


def contrastive_elements(emb, labels, pos_margin, neg_margin):
    """Two sub-losses over all ordered pairs i != j: relu(d - m_pos) and relu(m_neg - d)."""
    u = unit(emb)
    y = labels.tolist()
    pos, neg = [], []
    for i in range(len(y)):
        for j in range(len(y)):
            if i == j:
                continue
            d = dist(u, i, j)
            if y[i] == y[j]:
                pos.append((i, torch.relu(d - pos_margin)))
            else:
                neg.append((i, torch.relu(neg_margin - d)))
    return pos, neg


def ms_elements(emb, labels, alpha, beta, base, pairs=None):
    """Per-sample multi-similarity loss with cosine similarity s.

    (1/alpha) log(1 + sum_pos exp(-alpha (s - base))) + (1/beta) log(1 + sum_neg exp(beta (s - base)))
    with positives j != i of the same label and negatives of another label (or the mined pairs).
    """
    u = unit(emb)
    y = labels.tolist()
    n = len(y)
    if pairs is None:
        pos = {(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]}
        neg = {(i, j) for i in range(n) for j in range(n) if y[i] != y[j]}
    else:
        a1, p, a2, q = (t.tolist() for t in pairs)
        pos, neg = set(zip(a1, p)), set(zip(a2, q))
    out = []
    for i in range(n):
        sp = torch.zeros((), dtype=emb.dtype)
        sn = torch.zeros((), dtype=emb.dtype)
        for j in range(n):
            s = (u[i] * u[j]).sum()
            if (i, j) in pos:
                sp = sp + torch.exp(-alpha * (s - base))
            if (i, j) in neg:
                sn = sn + torch.exp(beta * (s - base))
        out.append((i, torch.log(1 + sp) / alpha + torch.log(1 + sn) / beta))
    return out


def weighted_reduce(elements, groups, weights, base):
    """(|A| / N) * sum_A w_g(a) * l / sum_A w_g(a) over the active elements A (l > 0), with N the
    number of elements for base='mean' and |A| for base='avg_nonzero'."""
    num, den, n_active = None, 0.0, 0
    for a, loss in elements:
        if not float(loss.detach()) > 0:
            continue
        n_active += 1
        w = float(weights[int(groups[a])])
        num = w * loss if num is None else num + w * loss
        den += w
    if num is None or den == 0:
        return None
    divisor = len(elements) if base == "mean" else n_active
    return num / den * (n_active / divisor)


def value_and_grad(fn, emb):
    e = emb.detach().clone().requires_grad_(True)
    value = fn(e)
    (grad,) = torch.autograd.grad(value, e)
    return value.detach(), grad


def check_against_reference(loss_fn, reference, emb, indices=None, groups=GROUPS):
    """Value and gradient of the group-weighted PML loss equal the reference's."""

    def pml(e):
        with batch_groups(loss_fn, groups):
            return loss_fn(e, LABELS, indices)

    v1, g1 = value_and_grad(pml, emb)
    v2, g2 = value_and_grad(reference, emb)
    assert_close(v1, v2)
    assert_close(g1, g2)
    return v1


def reducer(base="mean", weights=WEIGHTS):
    return GroupWeightedReducer(weights, base=base)


# --------------------------------------------------------------------------------------------
# group_weights
# --------------------------------------------------------------------------------------------


def ref_group_weights(groups: list[int], beta: float) -> list[float]:
    n = len(groups)
    counts = [sum(1 for x in groups if x == g) for g in range(max(groups) + 1)]
    raw = [(n / c) ** beta if c else 0.0 for c in counts]
    z = sum(c / n * r for c, r in zip(counts, raw))
    return [r / z for r in raw]


TRAIN_GROUPS = [0] * 6 + [1] * 3 + [3] * 1 + [4] * 2  # group 2 absent


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("as_type", [list, np.array, torch.tensor])
def test_group_weights_matches_reference(beta, as_type):
    w = group_weights(as_type(TRAIN_GROUPS), beta=beta)
    assert w.dtype == torch.float32 and w.shape == (5,)
    assert_close(w, torch.tensor(ref_group_weights(TRAIN_GROUPS, beta), dtype=torch.float32))
    assert w[2] == 0  # absent group
    counts = np.bincount(TRAIN_GROUPS)
    freq = counts / counts.sum()
    assert float((freq * w.double().numpy()).sum()) == pytest.approx(1.0, rel=1e-6)
    # the defining ratio w_a / w_b = (freq_b / freq_a) ** beta
    assert float(w[0] / w[3]) == pytest.approx((freq[3] / freq[0]) ** beta, rel=1e-6)


def test_group_weights_beta_one_equalises_group_mass_and_zero_is_uniform():
    counts = np.bincount(TRAIN_GROUPS)
    w1 = group_weights(TRAIN_GROUPS, beta=1.0).double().numpy()
    mass = (counts * w1)[counts > 0]
    assert np.allclose(mass, mass[0])
    w0 = group_weights(TRAIN_GROUPS, beta=0.0)
    assert_close(w0, torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    "groups, beta, match",
    [
        ([], 1.0, "empty"),
        ([0, -1, 2], 1.0, "non-negative"),
        ([0, 1], -0.5, "beta"),
        ([0, 1], float("nan"), "beta"),
        ([0, 1], float("inf"), "beta"),
    ],
)
def test_group_weights_errors(groups, beta, match):
    with pytest.raises(ValueError, match=match):
        group_weights(np.asarray(groups, dtype=np.int64), beta=beta)


# --------------------------------------------------------------------------------------------
# reweighted losses against loop references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["avg_nonzero", "mean"])
def test_triplet_all_triplets(base):
    emb, margin = make_emb(0), 0.2
    triplets = all_triplets(LABELS)
    losses = torch.stack([loss for _, loss in triplet_elements(emb, triplets, margin)])
    assert (losses == 0).any() and (losses > 0).any()  # both kinds, so avg_nonzero matters
    loss_fn = TripletMarginLoss(margin=margin, reducer=reducer(base))
    value = check_against_reference(
        loss_fn,
        lambda e: weighted_reduce(triplet_elements(e, triplets, margin), GROUPS, WEIGHTS, base),
        emb,
    )
    unweighted = weighted_reduce(
        triplet_elements(emb, triplets, margin), GROUPS, torch.ones(4), base
    )
    assert not math.isclose(float(value), float(unweighted), rel_tol=1e-3)


def test_triplet_with_miner_tuples():
    emb, margin = make_emb(1), 0.2
    # a miner margin above the loss margin also yields tuples with zero loss
    mined = TripletMarginMiner(margin=0.5, type_of_triplets="all")(emb, LABELS)
    triplets = list(zip(*(t.tolist() for t in mined)))
    losses = torch.stack([loss for _, loss in triplet_elements(emb, triplets, margin)])
    assert len(triplets) > 10 and (losses == 0).any() and (losses > 0).any()
    loss_fn = TripletMarginLoss(margin=margin, reducer=reducer("avg_nonzero"))
    check_against_reference(
        loss_fn,
        lambda e: weighted_reduce(
            triplet_elements(e, triplets, margin), GROUPS, WEIGHTS, "avg_nonzero"
        ),
        emb,
        indices=mined,
    )


def test_contrastive_two_sub_losses_reduced_separately_then_summed():
    emb, pm, nm = make_emb(2), 0.8, 1.0
    pos, neg = contrastive_elements(emb, LABELS, pm, nm)
    for sub in (pos, neg):
        losses = torch.stack([loss for _, loss in sub])
        assert (losses == 0).any() and (losses > 0).any()
    loss_fn = ContrastiveLoss(pos_margin=pm, neg_margin=nm, reducer=reducer("avg_nonzero"))
    assert isinstance(loss_fn.reducer, MultipleReducers)

    def reference(e):
        p, q = contrastive_elements(e, LABELS, pm, nm)
        return weighted_reduce(p, GROUPS, WEIGHTS, "avg_nonzero") + weighted_reduce(
            q, GROUPS, WEIGHTS, "avg_nonzero"
        )

    check_against_reference(loss_fn, reference, emb)


@pytest.mark.parametrize("base", ["mean", "avg_nonzero"])
def test_multi_similarity_per_sample_elements(base):
    emb, (alpha, beta, b) = make_emb(3), (2.0, 10.0, 0.5)
    loss_fn = MultiSimilarityLoss(alpha=alpha, beta=beta, base=b, reducer=reducer(base))
    value = check_against_reference(
        loss_fn,
        lambda e: weighted_reduce(ms_elements(e, LABELS, alpha, beta, b), GROUPS, WEIGHTS, base),
        emb,
    )
    assert value.ndim == 0  # the (N, 1) element losses did not broadcast


def test_multi_similarity_with_mined_pairs():
    emb, (alpha, beta, b) = make_emb(4), (2.0, 10.0, 0.5)
    a1, p, a2, q = MultiSimilarityMiner(epsilon=0.1)(emb, LABELS)
    # samples 0 and 5 anchor no pair: their element is 0 and still counts in the mean
    keep_pos, keep_neg = (a1 != 0) & (a1 != 5), (a2 != 0) & (a2 != 5)
    pairs = (a1[keep_pos], p[keep_pos], a2[keep_neg], q[keep_neg])
    assert len(pairs[0]) > 0 and len(pairs[2]) > 0
    loss_fn = MultiSimilarityLoss(alpha=alpha, beta=beta, base=b, reducer=reducer("mean"))
    check_against_reference(
        loss_fn,
        lambda e: weighted_reduce(
            ms_elements(e, LABELS, alpha, beta, b, pairs), GROUPS, WEIGHTS, "mean"
        ),
        emb,
        indices=pairs,
    )


@pytest.mark.parametrize("cls", [NormalizedSoftmaxLoss, ArcFaceLoss])
def test_per_sample_classification_loss_matches_weighted_unreduced(cls):
    emb = make_emb(5)
    torch.manual_seed(0)
    loss_fn = cls(num_classes=3, embedding_size=D, reducer=reducer("mean"))
    raw_fn = copy.deepcopy(loss_fn)
    raw_fn.set_reducer(DoNothingReducer())

    def reference(e):
        info = raw_fn(e, LABELS)["loss"]
        assert info["reduction_type"] == "element"
        elements = list(zip(info["indices"].tolist(), info["losses"]))
        assert len(elements) == N
        return weighted_reduce(elements, GROUPS, WEIGHTS, "mean")

    check_against_reference(loss_fn, reference, emb)


def _default_and_equal_weight_losses():
    return [
        (lambda r: TripletMarginLoss(margin=0.2, reducer=r), "avg_nonzero", "triplet"),
        (lambda r: ContrastiveLoss(pos_margin=0.5, reducer=r), "avg_nonzero", "pairs"),
        (lambda r: MultiSimilarityLoss(alpha=2, beta=10, reducer=r), "mean", None),
    ]


@pytest.mark.parametrize("make, base, mine", _default_and_equal_weight_losses())
def test_equal_weights_reproduce_pml_default_reducer(make, base, mine):
    emb = make_emb(6)
    indices = None
    if mine == "triplet":
        indices = TripletMarginMiner(margin=0.5)(emb, LABELS)
    elif mine == "pairs":
        indices = MultiSimilarityMiner(epsilon=0.2)(emb, LABELS)
    default = make(None)
    weighted = make(reducer(base, weights=torch.full((3,), 1.7)))
    v1, g1 = value_and_grad(lambda e: default(e, LABELS, indices), emb)
    with batch_groups(weighted, GROUPS):
        v2, g2 = value_and_grad(lambda e: weighted(e, LABELS, indices), emb)
    assert v1 > 0
    assert_close(v2, v1, rtol=1e-12, atol=1e-12)
    assert_close(g2, g1, rtol=1e-12, atol=1e-12)


def test_weights_scale_invariant_and_zero_weight_drops_group():
    emb, margin = make_emb(7), 0.2
    triplets = all_triplets(LABELS)
    a = TripletMarginLoss(margin=margin, reducer=reducer("avg_nonzero"))
    b = TripletMarginLoss(margin=margin, reducer=reducer("avg_nonzero", WEIGHTS * 8))
    with batch_groups(a, GROUPS), batch_groups(b, GROUPS):
        assert_close(a(emb, LABELS), b(emb, LABELS))
    w0 = torch.tensor([0.0, 1.0, 1.0])
    c = TripletMarginLoss(margin=margin, reducer=reducer("avg_nonzero", w0))
    kept = [(x, loss) for x, loss in triplet_elements(emb, triplets, margin) if GROUPS[x] != 0]
    expected = weighted_reduce(kept, GROUPS, torch.ones(3), "avg_nonzero")
    with batch_groups(c, GROUPS):
        assert_close(c(emb, LABELS), expected)


def test_no_weight_left_gives_zero_loss_with_graph():
    emb = make_emb(8).requires_grad_(True)
    loss_fn = TripletMarginLoss(margin=0.2, reducer=reducer("mean", torch.tensor([0.0, 0, 0, 1])))
    with batch_groups(loss_fn, GROUPS):  # groups 0-2 only, all weight 0
        value = loss_fn(emb, LABELS)
    assert value.item() == 0 and value.requires_grad
    (grad,) = torch.autograd.grad(value, emb)
    assert torch.all(grad == 0)


def test_no_tuples_gives_zero_loss():
    emb = make_emb(9).requires_grad_(True)
    distinct = torch.arange(N)  # no positives: no triplets at all
    loss_fn = TripletMarginLoss(margin=0.2, reducer=reducer("avg_nonzero"))
    with batch_groups(loss_fn, GROUPS):
        value = loss_fn(emb, distinct)
    assert value.item() == 0 and value.requires_grad


def test_group_without_weight_raises():
    loss_fn = TripletMarginLoss(margin=0.2, reducer=reducer("mean", torch.tensor([1.0, 1.0])))
    with batch_groups(loss_fn, GROUPS), pytest.raises(ValueError, match="group code 2 has no"):
        loss_fn(make_emb(0), LABELS)


def test_negative_batch_group_code_raises():
    loss_fn = TripletMarginLoss(margin=0.2, reducer=reducer("mean"))
    groups = GROUPS.clone()
    groups[0] = -1  # e.g. pandas' code for a missing category
    with batch_groups(loss_fn, groups), pytest.raises(ValueError, match="negative group code"):
        loss_fn(make_emb(0), LABELS)


@pytest.mark.parametrize(
    "weights, base",
    [
        ([1.0, -0.5], "mean"),
        ([1.0, float("nan")], "mean"),
        ([1.0, float("inf")], "mean"),
        ([], "mean"),
        ([1.0, 1.0], "sum"),
    ],
)
def test_reducer_construction_errors(weights, base):
    with pytest.raises(ValueError):
        GroupWeightedReducer(torch.tensor(weights), base=base)


def test_reducer_rejects_several_sub_losses_at_once():
    r = reducer()
    r.set_groups(GROUPS)
    emb = make_emb(0)
    info = {"losses": torch.ones(N), "indices": torch.arange(N), "reduction_type": "element"}
    with pytest.raises(ValueError, match="one sub-loss at a time"):
        r({"a": info, "b": dict(info)}, emb, LABELS)


def test_anchor_indices_table():
    a, p, n = torch.tensor([3, 1]), torch.tensor([4, 5]), torch.tensor([0, 2])
    assert anchor_indices(a, "element") is a
    assert anchor_indices((a, p), "pos_pair") is a
    assert anchor_indices((a, n), "neg_pair") is a
    assert anchor_indices((a, p, n), "triplet") is a
    with pytest.raises(ValueError):
        anchor_indices(None, "already_reduced")


# --------------------------------------------------------------------------------------------
# batch_groups
# --------------------------------------------------------------------------------------------


def test_batch_groups_reaches_copies_inside_multiple_reducers():
    original = reducer("avg_nonzero")
    loss_fn = ContrastiveLoss(reducer=original)
    inner = list(loss_fn.reducer.reducers.values())
    assert len(inner) == 2 and all(isinstance(r, GroupWeightedReducer) for r in inner)
    assert all(r is not original for r in inner)  # PML deep-copied it
    with batch_groups(loss_fn, GROUPS.numpy()):
        for r in inner:
            assert torch.equal(r.groups, GROUPS)
        assert original.groups is None
    assert all(r.groups is None for r in inner)


def test_batch_groups_reaches_single_deep_copy_and_nested_losses():
    original = reducer("avg_nonzero")
    triplet = TripletMarginLoss(reducer=original)
    ms = MultiSimilarityLoss(reducer=original)
    assert triplet.reducer is not original and ms.reducer is not original
    combined = MultipleLosses([triplet, ms])
    with batch_groups(combined, GROUPS):
        assert torch.equal(triplet.reducer.groups, GROUPS)
        assert torch.equal(ms.reducer.groups, GROUPS)
        combined(make_emb(0), LABELS)
    assert triplet.reducer.groups is None and ms.reducer.groups is None


def test_batch_groups_cleared_after_block_and_on_error():
    loss_fn = TripletMarginLoss(margin=0.2, reducer=reducer())
    emb = make_emb(0)
    with batch_groups(loss_fn, GROUPS):
        loss_fn(emb, LABELS)
    assert loss_fn.reducer.groups is None
    with pytest.raises(RuntimeError, match=r"batch_groups\(loss_fn, groups\)"):
        loss_fn(emb, LABELS)
    with pytest.raises(KeyError), batch_groups(loss_fn, GROUPS):
        raise KeyError("boom")
    assert loss_fn.reducer.groups is None


def test_batch_groups_wrong_number_of_groups():
    loss_fn = ContrastiveLoss(reducer=reducer())
    with (
        batch_groups(loss_fn, GROUPS[:-1]),
        pytest.raises(ValueError, match="11 group codes for a batch of 12"),
    ):
        loss_fn(make_emb(0), LABELS)


def test_batch_groups_is_a_no_op_for_plain_losses():
    loss_fn = TripletMarginLoss(margin=0.2)
    emb = make_emb(0)
    expected = loss_fn(emb, LABELS)
    with batch_groups(loss_fn, GROUPS):
        assert_close(loss_fn(emb, LABELS), expected)


# --------------------------------------------------------------------------------------------
# proxy, already-reduced and regularised losses
# --------------------------------------------------------------------------------------------


def test_check_sample_indexed_rejects_proxy_anchor():
    torch.manual_seed(0)
    loss_fn = ProxyAnchorLoss(num_classes=3, embedding_size=D)
    with pytest.raises(ValueError, match=r"my purpose is undefined for ProxyAnchorLoss.*class"):
        check_sample_indexed(loss_fn, "my purpose")
    with pytest.raises(ValueError, match="ProxyAnchorLoss"):  # found inside a wrapper too
        check_sample_indexed(MultipleLosses([TripletMarginLoss(), loss_fn]))


@pytest.mark.parametrize(
    "loss_fn",
    [
        TripletMarginLoss(),
        ContrastiveLoss(),
        MultiSimilarityLoss(),
        NormalizedSoftmaxLoss(num_classes=3, embedding_size=D),
        ArcFaceLoss(num_classes=3, embedding_size=D),
        ProxyNCALoss(num_classes=3, embedding_size=D),
    ],
    ids=lambda m: type(m).__name__,
)
def test_check_sample_indexed_accepts_sample_indexed_losses(loss_fn):
    check_sample_indexed(loss_fn)


def test_runtime_guard_for_class_indexed_elements():
    """Bypassing check_sample_indexed: ProxyAnchorLoss's per-proxy elements (more proxies than
    samples) are caught by the reducer itself."""
    torch.manual_seed(0)
    loss_fn = ProxyAnchorLoss(num_classes=N + 4, embedding_size=D, reducer=reducer())
    with batch_groups(loss_fn, GROUPS), pytest.raises(ValueError, match="outside the batch"):
        loss_fn(make_emb(0), LABELS)


class ShiftedElementLoss(BaseMetricLossFunction):
    """Element losses whose indices do not point into the batch."""

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        n = len(embeddings)
        return {
            "loss": {
                "losses": embeddings.pow(2).sum(dim=1),
                "indices": torch.arange(n) + 1,
                "reduction_type": "element",
            }
        }


class ScalarLoss(BaseMetricLossFunction):
    """Main loss reported already reduced."""

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        return {
            "loss": {
                "losses": embeddings.pow(2).mean(),
                "indices": None,
                "reduction_type": "already_reduced",
            }
        }


def test_runtime_guard_for_indices_outside_batch():
    loss_fn = ShiftedElementLoss(reducer=reducer())
    with batch_groups(loss_fn, GROUPS), pytest.raises(ValueError, match="outside the batch of 12"):
        loss_fn(make_emb(0), LABELS)


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")
@pytest.mark.parametrize(
    "loss_fn", [ScalarLoss(), HistogramLoss(n_bins=10)], ids=["custom", "hist"]
)
def test_already_reduced_main_loss_raises(loss_fn):
    loss_fn.set_reducer(reducer())
    with batch_groups(loss_fn, GROUPS), pytest.raises(ValueError, match="already reduced"):
        loss_fn(make_emb(0), LABELS)


def test_embedding_regulariser_passes_through_unweighted():
    emb, margin, reg_weight = make_emb(10), 0.2, 0.3
    triplets = all_triplets(LABELS)
    loss_fn = TripletMarginLoss(
        margin=margin,
        embedding_regularizer=LpRegularizer(),
        embedding_reg_weight=reg_weight,
        reducer=reducer("avg_nonzero"),
    )

    def reference(e):
        main = weighted_reduce(
            triplet_elements(e, triplets, margin), GROUPS, WEIGHTS, "avg_nonzero"
        )
        norms = [torch.sqrt((e[i] ** 2).sum()) for i in range(N)]
        return main + reg_weight * torch.stack(norms).mean()  # plain mean: no group weights

    check_against_reference(loss_fn, reference, emb)


def test_weight_regulariser_passes_through_unweighted():
    emb = make_emb(11)
    torch.manual_seed(0)
    loss_fn = NormalizedSoftmaxLoss(
        num_classes=3, embedding_size=D, weight_regularizer=LpRegularizer(), reducer=reducer()
    )
    raw_fn = copy.deepcopy(loss_fn)
    raw_fn.set_reducer(DoNothingReducer())

    def reference(e):
        info = raw_fn(e, LABELS)
        main = weighted_reduce(
            list(zip(info["loss"]["indices"].tolist(), info["loss"]["losses"])),
            GROUPS,
            WEIGHTS,
            "mean",
        )
        w = raw_fn.W.detach()
        return main + torch.stack([torch.sqrt((w[:, c] ** 2).sum()) for c in range(3)]).mean()

    check_against_reference(loss_fn, reference, emb)


def test_groups_are_required_even_when_the_batch_has_no_tuples():
    loss_fn = TripletMarginLoss(margin=0.2, reducer=reducer("mean"))
    emb = make_emb(0)
    with pytest.raises(RuntimeError, match="batch_groups"):
        loss_fn(emb, torch.arange(len(emb)))  # all labels distinct: no triplets at all


def test_subclass_of_a_class_indexed_loss_is_rejected():
    from pytorch_metric_learning.losses import ProxyAnchorLoss

    class MyProxyAnchor(ProxyAnchorLoss):
        pass

    with pytest.raises(ValueError, match=r"MyProxyAnchor \(ProxyAnchorLoss\)"):
        check_sample_indexed(MyProxyAnchor(num_classes=3, embedding_size=4))
