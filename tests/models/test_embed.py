"""Tests for fairmetric.models.embed: datasets to EmbeddingSets, checked against direct calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairmetric.data.dataset import TensorAttributeDataset
from fairmetric.embeddings import EmbeddingSet
from fairmetric.models.embed import embed_dataset, embed_tensors
from fairmetric.models.embedder import Embedder

N = 11  # prime, so no batch size below divides it


def vector_dataset(n: int = N, dim: int = 5) -> TensorAttributeDataset:
    g = torch.Generator().manual_seed(0)
    labels = ["cat", "dog", "eel"] * n
    return TensorAttributeDataset(
        torch.randn(n, dim, generator=g),
        labels=labels[:n],
        attributes={
            "sex": (["f", "m"] * n)[:n],
            "age": [i % 3 for i in range(n)],
        },
        name="toy",
    )


@pytest.fixture(scope="module")
def mlp() -> Embedder:
    torch.manual_seed(0)
    model = Embedder(backbone="mlp", input_size=(5,), embedding_dim=4)
    # BatchNorm running stats away from (0, 1), so train vs eval mode would give other numbers
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 5) * 3 + 1)
    return model


def direct(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(x).numpy()
    model.train(was)
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 4, N, 64])
def test_embeddings_equal_a_direct_call_in_eval_mode(mlp, batch_size):
    ds = vector_dataset()
    expected = direct(mlp, ds.inputs)
    mlp.train()
    emb = embed_dataset(mlp, ds, batch_size=batch_size, device="cpu")
    assert isinstance(emb, EmbeddingSet)
    assert emb.embeddings.shape == (N, 4) and emb.embeddings.dtype == np.float32
    np.testing.assert_allclose(emb.embeddings, expected, rtol=1e-5, atol=1e-6)
    # train-mode BatchNorm would give different numbers: the comparison is meaningful
    with torch.no_grad():
        train_out = mlp(ds.inputs).numpy()
    assert not np.allclose(train_out, expected, atol=1e-3)
    assert mlp.training  # restored
    mlp.eval()


def test_order_and_metadata_are_preserved(mlp):
    ds = vector_dataset()
    # a permuted subset: rows must come back in the subset's order, with its labels
    order = np.array([7, 2, 9, 0, 10, 4])
    sub = ds.subset(order)
    emb = embed_dataset(mlp, sub, batch_size=4, device="cpu", metadata={"split": "test"})
    np.testing.assert_allclose(emb.embeddings, direct(mlp, ds.inputs[order]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(emb.labels, ds.labels[order])
    np.testing.assert_array_equal(emb.attributes, ds.attributes[order])
    assert emb.label_names == ["cat", "dog", "eel"]
    assert emb.attribute_names == ["sex", "age"]
    assert emb.attribute_value_names == {"sex": ["f", "m"], "age": ["0", "1", "2"]}
    assert emb.metadata == {"dataset": "toy", "split": "test"}


def test_training_flag_is_restored_in_both_states(mlp):
    ds = vector_dataset()
    for flag in (True, False):
        mlp.train(flag)
        embed_dataset(mlp, ds, batch_size=5, device="cpu")
        assert mlp.training is flag
        assert all(m.training is flag for m in mlp.modules())
    mlp.eval()


def test_training_flag_is_restored_when_the_model_fails():
    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        embed_dataset(model, vector_dataset(), device="cpu")
    assert model.training


def test_image_embedder():
    torch.manual_seed(0)
    model = Embedder(backbone="test_resnet", input_size=(3, 16, 16), embedding_dim=6)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 3, 16, 16, generator=g)
    ds = TensorAttributeDataset(
        x, labels=[0, 1, 0, 1, 2], attributes=np.zeros((5, 1)), attribute_names=["a"]
    )
    emb = embed_dataset(model, ds, batch_size=2, device="cpu")
    np.testing.assert_allclose(emb.embeddings, direct(model, x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb.embeddings, axis=1), 1.0, atol=1e-5)


def test_empty_dataset_is_an_error(mlp):
    ds = TensorAttributeDataset(torch.zeros(0, 5), labels=np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="nothing to embed"):
        embed_dataset(mlp, ds, device="cpu")


def test_embed_tensors_accepts_bare_tensor_batches(mlp):
    x = vector_dataset().inputs
    batches = [x[:4], x[4:]]
    out = embed_tensors(mlp, batches, device=torch.device("cpu"))
    np.testing.assert_allclose(out, direct(mlp, x), rtol=1e-5, atol=1e-6)
