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


# -- speed settings: precision, channels-last, workers --------------------------------------------


def image_dataset(n: int = 13, size: int = 16) -> TensorAttributeDataset:
    g = torch.Generator().manual_seed(5)
    return TensorAttributeDataset(
        torch.rand(n, 3, size, size, generator=g),
        labels=[i % 3 for i in range(n)],
        attributes={"a": [i % 2 for i in range(n)]},
        name="images",
    )


@pytest.fixture(scope="module")
def resnet() -> Embedder:
    torch.manual_seed(0)
    model = Embedder(backbone="test_resnet", input_size=(3, 16, 16), embedding_dim=6)
    model.train()
    with torch.no_grad():  # BatchNorm statistics away from their initial values
        model(torch.rand(8, 3, 16, 16) * 2)
    return model.eval()


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


class Probe:
    """A forward pre-hook recording what the model sees: autocast state and input layout."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: list[tuple[bool, torch.dtype, bool, bool]] = []
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        (x,) = args
        self.calls.append(
            (
                torch.is_autocast_enabled("cpu"),
                torch.get_autocast_dtype("cpu"),
                x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last),
                torch.is_inference_mode_enabled(),
            )
        )

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def test_fp32_default_is_exactly_the_direct_call(resnet):
    ds = image_dataset()
    with Probe(resnet) as probe:
        default = embed_dataset(resnet, ds, batch_size=4, device="cpu")
    explicit = embed_dataset(resnet, ds, batch_size=4, device="cpu", precision="fp32")
    np.testing.assert_array_equal(default.embeddings, explicit.embeddings)
    np.testing.assert_allclose(default.embeddings, direct(resnet, ds.inputs), rtol=1e-5, atol=1e-6)
    # 13 samples in batches of 4: four forward calls, no autocast, contiguous input, inference
    assert [c[0] for c in probe.calls] == [False] * 4
    assert not any(c[2] for c in probe.calls)
    assert all(c[3] for c in probe.calls)


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_reduced_precision_matches_fp32(resnet, precision, dtype):
    ds = image_dataset()
    ref = embed_dataset(resnet, ds, batch_size=5, device="cpu").embeddings
    with Probe(resnet) as probe:
        emb = embed_dataset(resnet, ds, batch_size=5, device="cpu", precision=precision)
    out = emb.embeddings
    assert out.dtype == np.float32 and out.shape == ref.shape == (13, 6)
    assert probe.calls and all(c[0] and c[1] == dtype for c in probe.calls)
    cos = row_cosine(out, ref)
    assert cos.min() > 0.99, cos
    # the embedder normalises: rows stay unit length up to the low precision's rounding
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=2e-2)
    np.testing.assert_allclose(out, ref, atol=5e-2)
    # autocast really ran: the numbers differ from float32 ones
    assert not np.array_equal(out, ref)
    np.testing.assert_array_equal(emb.labels, ds.labels)


def test_channels_last_matches_contiguous(resnet):
    ds = image_dataset()
    model = Embedder(backbone="test_resnet", input_size=(3, 16, 16), embedding_dim=6)
    model.load_state_dict(resnet.state_dict())  # a copy: the conversion is in place
    ref = embed_dataset(model, ds, batch_size=4, device="cpu").embeddings
    with Probe(model) as probe:
        out = embed_dataset(model, ds, batch_size=4, device="cpu", channels_last=True).embeddings
    assert probe.calls and all(c[2] for c in probe.calls)  # NHWC batches reached the model
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(
        c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs
    )  # documented: the model's 4-D weights are converted in place
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    # combined with bf16 as well
    both = embed_dataset(
        model, ds, batch_size=4, device="cpu", channels_last=True, precision="bf16"
    ).embeddings
    assert row_cosine(both, ref).min() > 0.99


def test_channels_last_leaves_vector_inputs_alone(mlp):
    ds = vector_dataset()
    ref = embed_dataset(mlp, ds, batch_size=4, device="cpu").embeddings
    out = embed_dataset(mlp, ds, batch_size=4, device="cpu", channels_last=True).embeddings
    np.testing.assert_array_equal(out, ref)


def test_workers_give_identical_results(resnet):
    ds = image_dataset(n=9)
    ref = embed_dataset(resnet, ds, batch_size=4, device="cpu", num_workers=0)
    emb = embed_dataset(
        resnet, ds, batch_size=4, device="cpu", num_workers=2, prefetch_factor=1, pin_memory=False
    )
    np.testing.assert_array_equal(emb.embeddings, ref.embeddings)
    np.testing.assert_array_equal(emb.labels, ref.labels)
    np.testing.assert_array_equal(emb.attributes, ref.attributes)


def test_loader_settings(mlp, monkeypatch):
    import fairmetric.models.embed as embed_module

    seen: list[dict] = []
    real = embed_module.DataLoader

    def recording(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "DataLoader", recording)
    ds = vector_dataset()
    embed_dataset(mlp, ds, device="cpu")
    assert seen[-1]["pin_memory"] is False and seen[-1]["num_workers"] == 0  # no CUDA: no pinning
    assert "prefetch_factor" not in seen[-1] and "persistent_workers" not in seen[-1]
    # prefetch_factor is dropped without workers (DataLoader would refuse it)
    embed_dataset(mlp, ds, device="cpu", prefetch_factor=3)
    assert "prefetch_factor" not in seen[-1]
    embed_dataset(mlp, ds, device="cpu", num_workers=1, prefetch_factor=3, pin_memory=False)
    assert seen[-1]["prefetch_factor"] == 3 and seen[-1]["num_workers"] == 1


@pytest.mark.parametrize("precision", ["fp64", "float16", "BF16", ""])
def test_invalid_precision_is_a_clear_error(mlp, precision):
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, fp16"):
        embed_dataset(mlp, vector_dataset(), device="cpu", precision=precision)
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, fp16"):
        embed_tensors(
            mlp, [vector_dataset().inputs], device=torch.device("cpu"), precision=precision
        )


def test_negative_workers_is_an_error(mlp):
    with pytest.raises(ValueError, match="num_workers must be >= 0"):
        embed_dataset(mlp, vector_dataset(), device="cpu", num_workers=-1)


def test_inference_settings_from_a_train_config():
    from fairmetric.models.embed import inference_settings
    from fairmetric.train.config import load_config

    train = load_config(
        None,
        [
            "train.precision=bf16",
            "train.channels_last=true",
            "train.num_workers=3",
            "train.prefetch_factor=4",
        ],
    ).train
    assert inference_settings(train) == {
        "precision": "bf16",
        "channels_last": True,
        "num_workers": 3,
        "pin_memory": None,
        "prefetch_factor": 4,
    }

    class Old:  # a config from before the speed settings existed
        num_workers = 2

    assert inference_settings(Old()) == {
        "precision": "fp32",
        "channels_last": False,
        "num_workers": 2,
        "pin_memory": None,
        "prefetch_factor": None,
    }
