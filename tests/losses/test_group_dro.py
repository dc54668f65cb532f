"""Tests for fairmetric.losses.group_dro: the Group DRO reducer.

Every step is checked against a hand-written reference: the element losses are computed from the
embeddings with explicit loops (no PML), averaged per anchor group with loops, and the group
weights follow Sagawa et al.'s update q <- q * exp(eta * (l_g + C / sqrt(n_g))), q <- q / sum(q),
written out in Python floats.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import (
    ContrastiveLoss,
    HistogramLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
    TripletMarginLoss,
)
from pytorch_metric_learning.miners import TripletMarginMiner
from pytorch_metric_learning.reducers import MeanReducer
from pytorch_metric_learning.regularizers import LpRegularizer
from torch.testing import assert_close

from fairmetric.losses.group_dro import GroupDROReducer, install_group_dro
from fairmetric.losses.reducers import batch_groups
from tests.losses.test_reducers import (
    contrastive_elements,
    ms_elements,
    triplet_elements,
    value_and_grad,
)

# --------------------------------------------------------------------------------------------
# tiny deterministic stream and hand-written references
# --------------------------------------------------------------------------------------------

N, D, G = 12, 4, 3
LABELS = torch.arange(N) % 3  # 3 classes x 4 samples
GROUPS = torch.tensor([0, 0, 1, 2, 1, 0, 2, 2, 1, 0, 1, 2])  # 4 samples per group, mixed classes
TRAIN_COUNTS = [50, 20, 5]  # training samples per group (for C / sqrt(n_g))
NOISE = [0.25, 0.25, 1.2]  # group 2's samples are far from their class centre: highest loss
HARD = 2


def batch(step: int, groups: torch.Tensor = GROUPS) -> torch.Tensor:
    """Class centre plus group-dependent noise, float64, different for every step."""
    gen = torch.Generator().manual_seed(1000 + step)
    centres = torch.eye(D, dtype=torch.float64)[:3] * 1.5
    noise = torch.randn(N, D, generator=gen, dtype=torch.float64)
    scale = torch.tensor([NOISE[int(g)] for g in groups], dtype=torch.float64)
    return centres[LABELS] + scale[:, None] * noise


def ref_group_losses(sub_losses, groups, base, num_groups=G):
    """l_g = sum over sub-losses of the mean of the elements anchored in g (positive ones only
    for base='avg_nonzero'); 0 when there are none."""
    out = [torch.zeros((), dtype=torch.float64) for _ in range(num_groups)]
    for elements in sub_losses:
        for g in range(num_groups):
            chosen = []
            for a, loss in elements:
                if int(groups[a]) != g:
                    continue
                if base == "avg_nonzero" and not float(loss.detach()) > 0:
                    continue
                chosen.append(loss)
            if chosen:
                total = chosen[0]
                for loss in chosen[1:]:
                    total = total + loss
                out[g] = out[g] + total / len(chosen)
    return out


def ref_update(q, ell, eta, C, counts=TRAIN_COUNTS):
    """Sagawa et al.: q_g * exp(eta * (l_g + C / sqrt(n_g))), renormalised (Python floats)."""
    w = [q[g] * math.exp(eta * (float(ell[g]) + C / math.sqrt(counts[g]))) for g in range(len(q))]
    z = sum(w)
    return [x / z for x in w]


def ref_robust_loss(q, ell):
    total = q[0] * ell[0]
    for g in range(1, len(q)):
        total = total + q[g] * ell[g]
    return total


def call(loss_fn, emb, indices=None, groups=GROUPS, labels=LABELS):
    with batch_groups(loss_fn, groups):
        return loss_fn(emb, labels, indices)


def dro(**kwargs) -> GroupDROReducer:
    return GroupDROReducer(TRAIN_COUNTS, **kwargs)


MARGIN, PM, NM, MS = 0.2, 0.3, 1.0, (2.0, 10.0, 0.5)


def make_case(name):
    """(loss factory, per-step indices, reference sub-losses) for each tested loss."""
    if name == "triplet_mined":
        miner = TripletMarginMiner(margin=0.5, type_of_triplets="all")
        return (
            lambda r: TripletMarginLoss(margin=MARGIN, reducer=r),
            lambda emb: miner(emb, LABELS),
            lambda e, idx: [triplet_elements(e, list(zip(*(t.tolist() for t in idx))), MARGIN)],
        )
    if name == "contrastive":
        return (
            lambda r: ContrastiveLoss(pos_margin=PM, neg_margin=NM, reducer=r),
            lambda emb: None,
            lambda e, idx: list(contrastive_elements(e, LABELS, PM, NM)),
        )
    assert name == "multi_similarity"
    return (
        lambda r: MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=r),
        lambda emb: None,
        lambda e, idx: [ms_elements(e, LABELS, *MS)],
    )


# --------------------------------------------------------------------------------------------
# the update against the hand-written loop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, base, C",
    [
        ("triplet_mined", "avg_nonzero", 0.0),
        ("triplet_mined", "mean", 0.5),
        ("contrastive", "avg_nonzero", 0.0),
        ("multi_similarity", "mean", 0.0),
    ],
)
def test_stream_matches_hand_written_update(name, base, C):
    make_loss, mine, reference = make_case(name)
    eta, steps = 1.0, 4
    reducer = dro(eta=eta, C=C, base=base)
    loss_fn = make_loss(reducer)
    assert loss_fn.reducer is reducer  # PML installed it as is, even with several sub-losses
    q = [1.0 / G] * G
    history = [q[HARD]]
    for step in range(steps):
        emb = batch(step)
        idx = mine(emb)
        subs = reference(emb, idx)
        if base == "avg_nonzero":  # zeros and positives both present: the base matters
            losses = [float(loss) for elements in subs for _, loss in elements]
            assert min(losses) == 0 and max(losses) > 0
        ell = [float(v) for v in ref_group_losses(subs, GROUPS, base)]
        assert ell[HARD] > max(ell[g] for g in range(G) if g != HARD) + 0.05  # clearly highest
        q = ref_update(q, ell, eta, C)

        v1, g1 = value_and_grad(lambda e, idx=idx: call(loss_fn, e, idx), emb)
        v2, g2 = value_and_grad(
            lambda e, idx=idx, q=q: ref_robust_loss(
                q, ref_group_losses(reference(e, idx), GROUPS, base)
            ),
            emb,
        )
        assert_close(reducer.q, torch.tensor(q, dtype=torch.float64), rtol=1e-12, atol=1e-14)
        assert_close(reducer.last_group_loss, torch.tensor(ell, dtype=torch.float64))
        assert_close(v1, v2)
        assert_close(g1, g2)
        history.append(float(reducer.q[HARD]))
    # q moved towards the group with the highest loss at every step
    assert all(b > a for a, b in zip(history, history[1:]))
    assert history[-1] > 0.5 and int(reducer.q.argmax()) == HARD
    assert float(reducer.q.sum()) == pytest.approx(1.0, abs=1e-12)


def test_group_dro_differs_from_the_plain_mean():
    """After a few steps the robust loss is not PML's unweighted loss (q is not uniform)."""
    reducer = dro(eta=1.0, base="mean")
    loss_fn = MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=reducer)
    plain = MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=MeanReducer())
    emb = batch(0)
    first = call(loss_fn, emb)
    # one step from uniform q: already reweighted, by exactly the updated q
    ell = reducer.last_group_loss
    assert_close(first, (reducer.q * ell).sum())
    # uniform q with equal group sizes (4 samples each) would equal PML's plain mean
    assert_close(ell.mean(), plain(emb, LABELS))
    assert float(first) > float(plain(emb, LABELS)) + 1e-3


# --------------------------------------------------------------------------------------------
# hyper-parameters
# --------------------------------------------------------------------------------------------


def test_C_favours_small_groups_as_the_formula_says():
    """With equal group losses (here: no tuples at all, l_g = 0) only C / sqrt(n_g) moves q:
    after k steps log q_g = k eta C / sqrt(n_g) - logsumexp(...)."""
    eta, C, steps = 0.5, 2.0, 3
    reducer = dro(eta=eta, C=C)
    loss_fn = TripletMarginLoss(margin=MARGIN, reducer=reducer)
    distinct = torch.arange(N)  # no positives: no triplets
    for _ in range(steps):
        value = call(loss_fn, batch(0), labels=distinct)
        assert float(value) == 0
    expected = [1.0 / G] * G
    for _ in range(steps):
        expected = ref_update(expected, [0.0] * G, eta, C)
    assert_close(reducer.q, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-14)
    assert reducer.q[2] > reducer.q[1] > reducer.q[0]  # n = 5 < 20 < 50
    logits = [steps * eta * C / math.sqrt(n) for n in TRAIN_COUNTS]
    z = sum(math.exp(x) for x in logits)
    assert_close(reducer.q, torch.tensor([math.exp(x) / z for x in logits], dtype=torch.float64))
    # with C = 0 the same batches leave q uniform
    flat = dro(eta=eta, C=0.0)
    call(TripletMarginLoss(margin=MARGIN, reducer=flat), batch(0), labels=distinct)
    assert torch.equal(flat.q, torch.full((G,), 1.0 / G, dtype=torch.float64))


def test_eta_scales_the_log_weight_update():
    """From uniform q, one step gives log q_g - log q_h = eta (l_g - l_h)."""
    emb = batch(0)
    out = {}
    for eta in (0.01, 0.02, 0.4):
        reducer = dro(eta=eta, base="mean")
        call(MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=reducer), emb)
        out[eta] = (reducer.q.log(), reducer.last_group_loss.clone())
    ell = out[0.01][1]
    assert ell[2] - ell[0] > 0.05
    for eta, (log_q, _) in out.items():
        assert_close(log_q - log_q[0], eta * (ell - ell[0]), rtol=1e-9, atol=1e-12)
    assert float(out[0.4][0][2] - out[0.4][0][0]) > 10 * float(out[0.02][0][2] - out[0.02][0][0])


def test_large_eta_does_not_overflow():
    """eta * l far above float64's exp range: the update stays finite (log space)."""
    reducer = dro(eta=5000.0, base="mean")
    loss_fn = MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=reducer)
    emb = batch(0)
    value = call(loss_fn, emb)
    ell = reducer.last_group_loss
    assert float(5000.0 * ell.max()) > 710  # math.exp would overflow: the naive update gives nan
    logits = [5000.0 * float(x) for x in ell]
    m = max(logits)
    z = sum(math.exp(x - m) for x in logits)
    expected = torch.tensor([math.exp(x - m) / z for x in logits], dtype=torch.float64)
    assert torch.isfinite(reducer.q).all() and torch.isfinite(value)
    assert_close(reducer.q, expected, rtol=1e-9, atol=1e-300)
    assert float(reducer.q[HARD]) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# eval mode, checkpoints, absent groups
# --------------------------------------------------------------------------------------------


def test_eval_mode_uses_q_without_updating_it():
    reducer = dro(eta=1.0, base="mean")
    loss_fn = MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=reducer)
    call(loss_fn, batch(0))
    trained = reducer.q.clone()
    assert not torch.allclose(trained, torch.full((G,), 1.0 / G, dtype=torch.float64))
    loss_fn.eval()
    assert not reducer.training
    emb = batch(1)
    q = trained.tolist()
    for _ in range(2):
        v1, g1 = value_and_grad(lambda e: call(loss_fn, e), emb)
        v2, g2 = value_and_grad(
            lambda e: ref_robust_loss(
                q, ref_group_losses([ms_elements(e, LABELS, *MS)], GROUPS, "mean")
            ),
            emb,
        )
        assert torch.equal(reducer.q, trained)
        assert_close(v1, v2)
        assert_close(g1, g2)
    loss_fn.train()
    call(loss_fn, emb)
    assert not torch.equal(reducer.q, trained)


def test_q_is_a_buffer_restored_exactly_on_resume():
    def make():
        r = dro(eta=1.0, C=0.3, base="avg_nonzero", group_names=["a", "b", "c"])
        return ContrastiveLoss(pos_margin=PM, neg_margin=NM, reducer=r)

    loss_a = make()
    for step in range(3):
        call(loss_a, batch(step))
    state = loss_a.state_dict()
    assert list(state) == ["reducer.q"]  # only q persists; counts come from the constructor
    assert state["reducer.q"].dtype == torch.float64
    buffer = io.BytesIO()
    torch.save({"loss": state}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["loss"]

    loss_b = make()
    assert torch.equal(loss_b.reducer.q, torch.full((G,), 1.0 / G, dtype=torch.float64))
    loss_b.load_state_dict(loaded)
    assert torch.equal(loss_b.reducer.q, loss_a.reducer.q)
    # the resumed loss continues exactly like the uninterrupted one
    emb = batch(3)
    assert torch.equal(call(loss_b, emb), call(loss_a, emb))
    assert torch.equal(loss_b.reducer.q, loss_a.reducer.q)
    # a checkpoint for another number of groups does not load silently
    other = ContrastiveLoss(reducer=GroupDROReducer([3, 3]))
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load_state_dict(loaded)


def test_group_absent_from_batch_gets_zero_loss():
    """Groups 0 and 1 only: l_2 = 0, so q_2 shrinks relative to the others (reference code)."""
    eta, C = 1.0, 0.2
    groups = torch.tensor([0, 1] * 6)
    reducer = dro(eta=eta, C=C, base="mean")
    loss_fn = MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=reducer)
    q = [1.0 / G] * G
    for step in range(2):
        emb = batch(step, groups)
        ell = ref_group_losses([ms_elements(emb, LABELS, *MS)], groups, "mean")
        assert float(ell[2]) == 0 and float(ell[0]) > 0 and float(ell[1]) > 0
        q = ref_update(q, ell, eta, C)
        v1, g1 = value_and_grad(lambda e, gr=groups: call(loss_fn, e, groups=gr), emb)
        v2, g2 = value_and_grad(
            lambda e, gr=groups, q=q: ref_robust_loss(
                q, ref_group_losses([ms_elements(e, LABELS, *MS)], gr, "mean")
            ),
            emb,
        )
        assert_close(reducer.q, torch.tensor(q, dtype=torch.float64), rtol=1e-12, atol=1e-14)
        assert_close(v1, v2)
        assert_close(g1, g2)
    assert reducer.last_group_loss[2] == 0 and reducer.last_group_count[2] == 0
    assert reducer.q[2] < 1.0 / G


def test_group_in_batch_but_anchoring_no_tuple_gets_zero_loss():
    emb = batch(0)
    a, p, n = TripletMarginMiner(margin=0.5, type_of_triplets="all")(emb, LABELS)
    keep = GROUPS[a] != HARD
    mined = (a[keep], p[keep], n[keep])
    assert len(mined[0]) > 0 and bool((GROUPS[p[keep]] == HARD).any())  # 2 still in tuples
    reducer = dro(eta=1.0, base="avg_nonzero")
    loss_fn = TripletMarginLoss(margin=MARGIN, reducer=reducer)
    triplets = list(zip(*(t.tolist() for t in mined)))
    ell = ref_group_losses([triplet_elements(emb, triplets, MARGIN)], GROUPS, "avg_nonzero")
    q = ref_update([1.0 / G] * G, ell, 1.0, 0.0)
    value = call(loss_fn, emb, mined)
    assert reducer.last_group_loss[HARD] == 0 and float(ell[HARD]) == 0
    assert_close(reducer.q, torch.tensor(q, dtype=torch.float64), rtol=1e-12, atol=1e-14)
    assert_close(value, ref_robust_loss(q, ell))


def test_no_tuples_gives_zero_loss_with_graph():
    emb = batch(0).requires_grad_(True)
    reducer = dro(eta=1.0)
    loss_fn = TripletMarginLoss(reducer=reducer)
    value = call(loss_fn, emb, labels=torch.arange(N))  # distinct labels: no triplets at all
    assert torch.equal(reducer.last_group_loss, torch.zeros(G, dtype=torch.float64))
    assert value.item() == 0 and value.requires_grad
    (grad,) = torch.autograd.grad(value, emb)
    assert torch.all(grad == 0)


def test_regulariser_added_unweighted():
    eta, reg_weight = 1.0, 0.3
    reducer = dro(eta=eta, base="avg_nonzero")
    loss_fn = TripletMarginLoss(
        margin=MARGIN,
        embedding_regularizer=LpRegularizer(),
        embedding_reg_weight=reg_weight,
        reducer=reducer,
    )
    assert loss_fn.reducer is reducer  # two sub-losses, still not wrapped
    emb = batch(0)
    triplets = [
        (a, p, n)
        for a in range(N)
        for p in range(N)
        for n in range(N)
        if a != p and LABELS[a] == LABELS[p] and LABELS[n] != LABELS[a]
    ]
    ell = ref_group_losses([triplet_elements(emb, triplets, MARGIN)], GROUPS, "avg_nonzero")
    q = ref_update([1.0 / G] * G, ell, eta, 0.0)  # the regulariser does not enter l_g

    def reference(e):
        main = ref_robust_loss(
            q, ref_group_losses([triplet_elements(e, triplets, MARGIN)], GROUPS, "avg_nonzero")
        )
        norms = [torch.sqrt((e[i] ** 2).sum()) for i in range(N)]
        return main + reg_weight * torch.stack(norms).mean()

    v1, g1 = value_and_grad(lambda e: call(loss_fn, e), emb)
    v2, g2 = value_and_grad(reference, emb)
    assert_close(reducer.q, torch.tensor(q, dtype=torch.float64), rtol=1e-12, atol=1e-14)
    assert_close(v1, v2)
    assert_close(g1, g2)


def test_float32_embeddings_keep_float64_q():
    reducer = dro(eta=1.0)
    loss_fn = MultiSimilarityLoss(alpha=MS[0], beta=MS[1], base=MS[2], reducer=reducer)
    value = call(loss_fn, batch(0).float())
    assert value.dtype == torch.float32 and reducer.q.dtype == torch.float64
    assert_close(value, (reducer.q.float() * reducer.last_group_loss.float()).sum())


# --------------------------------------------------------------------------------------------
# installing, logging
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: TripletMarginLoss(),
        lambda: ContrastiveLoss(),
        lambda: MultiSimilarityLoss(),
        lambda: ContrastiveLoss(embedding_regularizer=LpRegularizer()),
    ],
    ids=["triplet", "contrastive", "ms", "contrastive+reg"],
)
def test_pml_keeps_the_reducer_object(make):
    r = dro()
    loss_fn = make()
    assert install_group_dro(loss_fn, r) is loss_fn and loss_fn.reducer is r
    other = make()
    other.set_reducer(r)
    assert other.reducer is r
    with batch_groups(loss_fn, GROUPS):
        assert torch.equal(r.groups, GROUPS)
    assert r.groups is None


def test_q_dict_and_group_loss_dict_for_logging():
    r = GroupDROReducer(TRAIN_COUNTS, eta=1.0, group_names=["light", "medium", "dark"])
    assert r.q_dict() == pytest.approx({"light": 1 / 3, "medium": 1 / 3, "dark": 1 / 3})
    call(MultiSimilarityLoss(reducer=r), batch(0))
    q = r.q_dict()
    assert list(q) == ["light", "medium", "dark"] and sum(q.values()) == pytest.approx(1.0)
    assert q["dark"] == pytest.approx(float(r.q[2]))
    assert r.group_loss_dict()["dark"] == pytest.approx(float(r.last_group_loss[2]))
    assert list(dro().q_dict()) == ["0", "1", "2"]
    assert "eta=1.0" in repr(r)


def test_from_groups_counts_the_training_set():
    r = GroupDROReducer.from_groups(np.array([0, 0, 2, 1, 2, 2]), eta=0.1)
    assert r.group_counts.tolist() == [2.0, 1.0, 3.0] and r.eta == 0.1
    with pytest.raises(ValueError, match="group 1 has no training samples"):
        GroupDROReducer.from_groups([0, 0, 2])
    with pytest.raises(ValueError, match="group 3 has no training samples"):
        GroupDROReducer.from_groups([0, 1, 2], num_groups=4)
    assert GroupDROReducer.from_groups(torch.tensor([1.0, 0.0, 1.0])).group_counts.tolist() == [
        1.0,
        2.0,
    ]
    for bad in ([0, -1], [0.5, 1.0], [0.0, float("nan")]):
        with pytest.raises(ValueError, match="non-negative integers"):
            GroupDROReducer.from_groups(bad)


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------


def test_absent_training_group_is_named_with_a_fix():
    with pytest.raises(ValueError) as info:
        GroupDROReducer([10, 0, 4], group_names=["light", "dark", "other"])
    msg = str(info.value)
    assert "'dark' (code 1)" in msg and "drop that group" in msg and "another group" in msg
    with pytest.raises(ValueError, match=r"group 1 has no training samples \(count 0\)"):
        GroupDROReducer([10, 0, 4])


@pytest.mark.parametrize(
    "counts, kwargs, match",
    [
        ([], {}, "non-empty 1-D"),
        ([[1, 2]], {}, "non-empty 1-D"),
        ([3, -1], {}, "non-negative"),
        ([3, float("nan")], {}, "finite"),
        ([3, 4], {"eta": 0.0}, "eta"),
        ([3, 4], {"eta": -0.1}, "eta"),
        ([3, 4], {"eta": float("nan")}, "eta"),
        ([3, 4], {"eta": float("inf")}, "eta"),
        ([3, 4], {"eta": "big"}, "eta"),
        ([3, 4], {"C": -1.0}, "C must be"),
        ([3, 4], {"C": float("nan")}, "C must be"),
        ([3, 4], {"C": float("inf")}, "C must be"),
        ([3, 4], {"base": "sum"}, "base"),
        ([3, 4], {"group_names": ["a"]}, "1 group_names for 2"),
    ],
)
def test_construction_errors(counts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GroupDROReducer(counts, **kwargs)


def test_groups_not_set_wrong_length_negative_or_unknown():
    loss_fn = ContrastiveLoss(reducer=dro())
    emb = batch(0)
    with pytest.raises(RuntimeError, match=r"batch_groups\(loss_fn, groups\)"):
        loss_fn(emb, LABELS)
    with pytest.raises(ValueError, match="11 group codes for a batch of 12"):
        call(loss_fn, emb, groups=GROUPS[:-1])
    bad = GROUPS.clone()
    bad[0] = -1
    with pytest.raises(ValueError, match="negative group code"):
        call(loss_fn, emb, groups=bad)
    bad[0] = 3
    with pytest.raises(ValueError, match="group code 3 in the batch"):
        call(loss_fn, emb, groups=bad)
    # no update happened on any failed call
    assert torch.equal(loss_fn.reducer.q, torch.full((G,), 1.0 / G, dtype=torch.float64))


def test_class_indexed_and_already_reduced_losses_are_rejected():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"Group DRO is undefined for ProxyAnchorLoss"):
        install_group_dro(ProxyAnchorLoss(num_classes=3, embedding_size=D), dro())
    with pytest.raises(TypeError, match="GroupDROReducer"):
        install_group_dro(TripletMarginLoss(), MeanReducer())
    loss_fn = install_group_dro(HistogramLoss(n_bins=10), dro())
    with pytest.raises(ValueError, match="already reduced"):
        call(loss_fn, batch(0).float())
