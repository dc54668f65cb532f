"""Tests for fairmetric.train.factories: PML losses and miners by name, checked against PML itself."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import distances, losses, miners, reducers, regularizers

from fairmetric.train.factories import build_loss, build_miner, list_losses, list_miners

NUM_CLASSES, DIM = 4, 8


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(12, DIM, generator=g)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(3)
    return emb, labels


def seeded(factory, seed: int = 0):
    """Construct under a fixed seed, so losses with random parameters (proxies) are comparable."""
    torch.manual_seed(seed)
    return factory()


def assert_same_loss(built, direct, batch) -> None:
    emb, labels = batch
    assert type(built) is type(direct)
    built_params = dict(built.named_parameters())
    direct_params = dict(direct.named_parameters())
    assert list(built_params) == list(direct_params)
    for k in built_params:
        assert torch.equal(built_params[k], direct_params[k]), k
    got, expected = built(emb, labels), direct(emb, labels)
    assert got.item() != 0.0  # a trivially zero loss would prove nothing
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "name,params,direct",
    [
        ("TripletMarginLoss", {"margin": 0.3}, lambda: losses.TripletMarginLoss(margin=0.3)),
        ("TripletMarginLoss", None, lambda: losses.TripletMarginLoss()),
        (
            "ContrastiveLoss",
            {"pos_margin": 0.1, "neg_margin": 0.8},
            lambda: losses.ContrastiveLoss(pos_margin=0.1, neg_margin=0.8),
        ),
        (
            "MultiSimilarityLoss",
            {"alpha": 2, "beta": 40, "base": 0.5},
            lambda: losses.MultiSimilarityLoss(alpha=2, beta=40, base=0.5),
        ),
        (
            "ProxyAnchorLoss",
            {"margin": 0.2},
            lambda: losses.ProxyAnchorLoss(NUM_CLASSES, DIM, margin=0.2),
        ),
        ("ArcFaceLoss", {"scale": 16}, lambda: losses.ArcFaceLoss(NUM_CLASSES, DIM, scale=16)),
    ],
)
def test_loss_by_name_equals_the_pml_loss(batch, name, params, direct):
    built = seeded(lambda: build_loss(name, params, num_classes=NUM_CLASSES, embedding_size=DIM))
    assert_same_loss(built, seeded(direct), batch)


def test_proxy_loss_gets_num_classes_and_embedding_size(batch):
    loss = build_loss("ProxyAnchorLoss", num_classes=7, embedding_size=5)
    assert loss.proxies.shape == (7, 5)
    loss = build_loss("ArcFaceLoss", num_classes=7, embedding_size=5)
    assert loss.W.shape == (5, 7)


def test_explicit_num_classes_wins_over_the_filled_in_one():
    loss = build_loss(
        "ProxyAnchorLoss", {"num_classes": 3, "embedding_size": 2}, num_classes=7, embedding_size=5
    )
    assert loss.proxies.shape == (3, 2)


def test_losses_without_those_arguments_ignore_them():
    loss = build_loss("TripletMarginLoss", {"margin": 0.1}, num_classes=7, embedding_size=5)
    assert isinstance(loss, losses.TripletMarginLoss) and loss.margin == 0.1


def test_proxy_loss_without_sizes_is_a_clear_error():
    with pytest.raises(ValueError, match="bad parameters for loss ProxyAnchorLoss") as info:
        build_loss("ProxyAnchorLoss")
    assert "num_classes" in str(info.value) and "Signature: (self, num_classes" in str(info.value)


@pytest.mark.parametrize(
    "params,direct",
    [
        (
            {"distance": {"name": "LpDistance", "p": 1, "normalize_embeddings": False}},
            lambda: losses.TripletMarginLoss(
                margin=0.5, distance=distances.LpDistance(p=1, normalize_embeddings=False)
            ),
        ),
        (
            {"distance": "CosineSimilarity", "reducer": "SumReducer"},
            lambda: losses.TripletMarginLoss(
                margin=0.5, distance=distances.CosineSimilarity(), reducer=reducers.SumReducer()
            ),
        ),
        (
            {"reducer": {"name": "ThresholdReducer", "low": 0.1}},
            lambda: losses.TripletMarginLoss(
                margin=0.5, reducer=reducers.ThresholdReducer(low=0.1)
            ),
        ),
        (
            # a nested spec inside a nested spec
            {"embedding_regularizer": {"name": "LpRegularizer", "p": 1, "reducer": "SumReducer"}},
            lambda: losses.TripletMarginLoss(
                margin=0.5,
                embedding_regularizer=regularizers.LpRegularizer(
                    p=1, reducer=reducers.SumReducer()
                ),
            ),
        ),
        (
            # a ready object is passed through untouched
            {"distance": distances.DotProductSimilarity()},
            lambda: losses.TripletMarginLoss(margin=0.5, distance=distances.DotProductSimilarity()),
        ),
    ],
    ids=["distance-dict", "strings", "reducer-dict", "nested-nested", "object"],
)
def test_nested_objects(batch, params, direct):
    built = build_loss("TripletMarginLoss", {"margin": 0.5, **params})
    expected = direct()
    assert_same_loss(built, expected, batch)
    assert type(built.distance) is type(expected.distance)
    assert type(built.reducer) is type(expected.reducer)
    if "distance" in params and isinstance(params["distance"], dict):
        assert built.distance.p == 1 and built.distance.normalize_embeddings is False
    if "reducer" in params and isinstance(params["reducer"], dict):
        assert built.reducer.low == 0.1
    if "embedding_regularizer" in params:
        assert built.embedding_regularizer.p == 1
        assert isinstance(built.embedding_regularizer.reducer, reducers.SumReducer)


def test_params_are_not_modified():
    params = {"margin": 0.5, "distance": {"name": "LpDistance", "p": 1}}
    build_loss("TripletMarginLoss", params)
    assert params == {"margin": 0.5, "distance": {"name": "LpDistance", "p": 1}}


@pytest.mark.parametrize(
    "name,params,direct",
    [
        (
            "TripletMarginMiner",
            {"margin": 0.2, "type_of_triplets": "semihard"},
            lambda: miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard"),
        ),
        ("MultiSimilarityMiner", {"epsilon": 0.1}, lambda: miners.MultiSimilarityMiner(0.1)),
        ("BatchHardMiner", None, lambda: miners.BatchHardMiner()),
        (
            "PairMarginMiner",
            {"pos_margin": 0.5, "neg_margin": 0.5, "distance": "CosineSimilarity"},
            lambda: miners.PairMarginMiner(
                pos_margin=0.5, neg_margin=0.5, distance=distances.CosineSimilarity()
            ),
        ),
    ],
)
def test_miner_by_name_equals_the_pml_miner(batch, name, params, direct):
    emb, labels = batch
    built, expected = build_miner(name, params), direct()
    assert type(built) is type(expected)
    got, want = built(emb, labels), expected(emb, labels)
    assert len(got) == len(want) and got[0].numel() > 0
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    # and the mined tuples feed the built loss exactly like the direct one
    loss = build_loss("TripletMarginLoss", {"margin": 0.2})
    if len(got) == 3:
        torch.testing.assert_close(
            loss(emb, labels, got), losses.TripletMarginLoss(margin=0.2)(emb, labels, want)
        )


def test_no_miner():
    assert build_miner(None) is None
    assert build_miner(None, {"margin": 0.1}) is None


def test_lists_hold_only_pml_losses_and_miners():
    names = list_losses()
    assert names == sorted(names)
    assert {"TripletMarginLoss", "ContrastiveLoss", "ProxyAnchorLoss", "ArcFaceLoss"} <= set(names)
    assert not any(n.startswith("Base") for n in names)
    for n in names:
        assert issubclass(getattr(losses, n), losses.BaseMetricLossFunction), n
    mnames = list_miners()
    assert {"TripletMarginMiner", "MultiSimilarityMiner", "BatchHardMiner"} <= set(mnames)
    for n in mnames:
        assert issubclass(getattr(miners, n), miners.BaseMiner), n


def test_unknown_loss_suggests_close_names():
    with pytest.raises(ValueError, match="unknown loss 'TripletMarginLos'") as info:
        build_loss("TripletMarginLoss"[:-1])
    message = str(info.value)
    assert "Did you mean TripletMarginLoss" in message
    assert "Available: " + ", ".join(list_losses()) in message


def test_unknown_loss_without_close_names():
    with pytest.raises(ValueError, match="unknown loss 'qqq'") as info:
        build_loss("qqq")
    assert "Did you mean" not in str(info.value) and "Available: AngularLoss" in str(info.value)


def test_unknown_miner_suggests_close_names():
    with pytest.raises(
        ValueError, match="unknown miner 'BatchHardMinr'. Did you mean BatchHardMiner"
    ):
        build_miner("BatchHardMinr")


def test_a_miner_is_not_a_loss():
    with pytest.raises(ValueError, match="unknown loss 'TripletMarginMiner'"):
        build_loss("TripletMarginMiner")


@pytest.mark.parametrize(
    "params,match",
    [
        ({"distance": "CosineSimilarty"}, "unknown distance 'CosineSimilarty'. Did you mean Cos"),
        ({"reducer": {"name": "MeanReduce"}}, "unknown reducer 'MeanReduce'. Did you mean Mean"),
        ({"reducer": "LpDistance"}, "unknown reducer 'LpDistance'"),  # a distance is no reducer
    ],
)
def test_unknown_nested_names(params, match):
    with pytest.raises(ValueError, match=match):
        build_loss("ContrastiveLoss", params)


@pytest.mark.parametrize("key", ["distance", "reducer", "embedding_regularizer"])
def test_nested_spec_without_name(key):
    with pytest.raises(ValueError, match=f"loss parameter '{key}' needs a 'name'"):
        build_loss("TripletMarginLoss", {key: {"p": 2}})


def test_bad_params_give_the_signature():
    with pytest.raises(ValueError, match="bad parameters for loss TripletMarginLoss") as info:
        build_loss("TripletMarginLoss", {"margn": 0.1})
    message = str(info.value)
    assert "margn" in message
    assert "Signature: (self, margin=0.05, swap=False" in message


def test_bad_miner_params_give_the_signature():
    with pytest.raises(ValueError, match="bad parameters for miner MultiSimilarityMiner") as info:
        build_miner("MultiSimilarityMiner", {"margin": 0.2})
    assert "Signature: (self, epsilon=0.1" in str(info.value)


def test_bad_nested_params_give_the_signature():
    with pytest.raises(ValueError, match="bad parameters for distance LpDistance") as info:
        build_loss("ContrastiveLoss", {"distance": {"name": "LpDistance", "q": 1}})
    assert "Signature:" in str(info.value)
