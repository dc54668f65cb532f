"""finetune: a head on frozen embeddings learns; end to end trains a copy of the embedder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairmetric.data import TensorAttributeDataset, make_colored_digits
from fairmetric.downstream import HeadClassifier, finetune, stratified_split
from fairmetric.models import Embedder


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _blobs(n: int, seed: int) -> TensorAttributeDataset:
    """Four well-separated Gaussian classes in 8-D, and an unrelated binary attribute."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.eye(8)[:4]
    y = torch.arange(n) % 4
    x = centres[y] + 0.5 * torch.randn(n, 8, generator=gen)
    group = (torch.arange(n) // 4) % 2
    return TensorAttributeDataset(
        x, labels=y.numpy() + 2, attributes={"group": group.numpy()}, name="blobs"
    )


@pytest.fixture
def mlp_embedder() -> Embedder:
    torch.manual_seed(0)
    return Embedder(
        backbone="mlp", input_size=(8,), embedding_dim=8, backbone_kwargs={"hidden": 32}
    ).eval()


def test_head_mode_learns_an_easy_task_and_leaves_the_embedder_alone(mlp_embedder):
    train_set, test_set = _blobs(200, seed=0), _blobs(100, seed=1)
    before = _snapshot(mlp_embedder)
    result = finetune(
        mlp_embedder, train_set, test_set, mode="head", epochs=30, lr=0.05, device="cpu",
        n_boot=50,
    )  # fmt: skip
    assert result.model is mlp_embedder
    after = mlp_embedder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    accuracy = np.mean(result.predictions == test_set.labels)
    assert accuracy > 0.75  # chance is 0.25
    assert result.history[-1] < result.history[0]
    assert set(result.classes) == {2, 3, 4, 5}
    report = result.report["accuracy"]
    assert report.overall.value == pytest.approx(accuracy)
    assert set(report.by_group["group"]) == {"0", "1"}
    assert result.report.metadata["classifier"] == "finetune (head)"


def test_head_classifier_is_seeded(digit_embeddings):
    xtr, ytr, xte, _ = digit_embeddings
    a = HeadClassifier(epochs=3, seed=4).fit(xtr, ytr)
    b = HeadClassifier(epochs=3, seed=4).fit(xtr, ytr)
    c = HeadClassifier(epochs=3, seed=5).fit(xtr, ytr)
    assert np.array_equal(a.decision_function(xte), b.decision_function(xte))
    assert not np.array_equal(a.decision_function(xte), c.decision_function(xte))


def test_end_to_end_trains_a_copy_of_the_backbone():
    pool = make_colored_digits(split="test", image_size=16, max_shift=2)
    train_idx, test_idx = stratified_split(
        pool.labels, [pool.attribute("colour")], test_fraction=0.5, seed=0
    )
    train_set, test_set = pool.subset(train_idx[::3]), pool.subset(test_idx[::4])
    torch.manual_seed(0)
    model = Embedder(backbone="test_resnet", embedding_dim=16, input_size=(3, 16, 16)).eval()
    before = _snapshot(model)
    result = finetune(
        model, train_set, test_set, mode="end_to_end", epochs=2, batch_size=32,
        backbone_lr=1e-3, device="cpu", n_boot=0,
    )  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    tuned = result.model.state_dict()
    changed = [
        k for k in before if k.startswith("backbone.") and not torch.equal(before[k], tuned[k])
    ]
    weights = [k for k in before if k.startswith("backbone.") and k.endswith("weight")]
    assert set(weights) <= set(changed)
    assert not result.model.training
    assert len(result.history) == 2 and np.isfinite(result.history).all()
    assert result.predictions.shape == (len(test_set),)
    assert set(result.predictions) <= set(range(5, 10))
    assert set(result.report["accuracy"].by_group["colour"]) == {"light", "dark"}
    # predict() of the result is what the report measured
    assert np.array_equal(result.predict(test_set, device="cpu"), result.predictions)


def test_finetune_rejects_bad_requests(mlp_embedder):
    data = _blobs(40, seed=0)
    with pytest.raises(ValueError, match="unknown finetune mode 'full'"):
        finetune(mlp_embedder, data, mode="full")
    with pytest.raises(ValueError, match="single class"):
        finetune(mlp_embedder, data.subset(np.flatnonzero(data.labels == 2)))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        finetune(mlp_embedder, data, epochs=0)
    with pytest.raises(ValueError, match="unknown attribute 'skin'"):
        finetune(mlp_embedder, data, data, attributes=["skin"])
