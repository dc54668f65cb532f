"""Shared fixtures: tiny, fast experiment configs."""

from __future__ import annotations

import pytest

from fairmetric.train.config import ExperimentConfig, load_config

# vectors + MLP: an epoch takes milliseconds
GAUSSIAN = [
    "name=test_gaussian",
    "data.name=gaussian",
    "data.split=class_disjoint",
    "data.params={n_classes: 16, samples_per_class: 12, dim: 8, nuisance_dim: 8}",
    "model.backbone=mlp",
    "model.embedding_dim=8",
    "model.backbone_kwargs={hidden: 32, layers: 2}",
    "train.batch_size=32",
    "train.m_per_class=4",
    "train.device=cpu",
]

# images + timm test_resnet, tiny
DIGITS = [
    "name=test_digits",
    "data.image_size=16",
    "data.params={p_majority: 0.9, copies: 1, max_shift: 2}",
    "model.embedding_dim=16",
    "train.batches_per_epoch=3",
    "train.device=cpu",
]


@pytest.fixture
def gaussian_cfg() -> ExperimentConfig:
    return load_config(None, GAUSSIAN + ["train.epochs=2"])


@pytest.fixture
def digits_cfg() -> ExperimentConfig:
    return load_config(None, DIGITS + ["train.epochs=2"])


@pytest.fixture
def embed_calls(monkeypatch) -> list[dict]:
    """The keyword arguments each ``embed_dataset`` call receives (it still runs)."""
    import fairmetric.models.embed as embed_module

    calls: list[dict] = []
    real = embed_module.embed_dataset

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "embed_dataset", recording)
    return calls


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A run folder (config.yaml + model/) with a tiny test_resnet embedder for DIGITS."""
    import torch

    from fairmetric.models.embedder import Embedder, save_embedder
    from fairmetric.train.config import save_config

    run = tmp_path_factory.mktemp("runs") / "images"
    torch.manual_seed(0)
    model = Embedder(backbone="test_resnet", input_size=(3, 16, 16), embedding_dim=16)
    model.train()
    with torch.no_grad():  # BatchNorm statistics away from their initial values
        model(torch.rand(8, 3, 16, 16) * 2)
    save_embedder(model.eval(), run / "model")
    save_config(load_config(None, DIGITS), run / "config.yaml")
    return run


def crowded_identities(ids: int = 120, per: int = 4, seed: int = 0):
    """An EmbeddingSet of ``ids`` identities x ``per`` samples in 8-d whose group "b" identities
    are crowded around one direction: under cosine its impostors look alike, so its false
    match rate at a global threshold is far above group "a"'s (verification tests)."""
    import numpy as np

    from fairmetric.embeddings import EmbeddingSet

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, 8))
    centres[ids // 2 :] = rng.normal(size=8) + 0.6 * centres[ids // 2 :]
    x = np.repeat(centres, per, axis=0) + 0.3 * rng.normal(size=(ids * per, 8))
    group = np.repeat(np.array(["a"] * (ids // 2) + ["b"] * (ids - ids // 2)), per)
    return EmbeddingSet(
        embeddings=x.astype(np.float32),
        labels=np.repeat(np.arange(ids), per),
        attributes={"g": group},
    )
