"""``embed_images``: any dataset of ``(image, target)`` (torchvision's FakeData, offline), each image
through the model's own transform, labels and attributes as lists or functions of the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset
from torchvision.datasets import FakeData

import fairmetric
from fairmetric.errors import UserError
from fairmetric.sources import embed_images
from fairmetric.sources.images import timm_image_model
from tests.sources_images.conftest import save_timm_weights

N = 10


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "test_resnet.safetensors"
    save_timm_weights(path)
    return timm_image_model("test_resnet", weights=path)


@pytest.fixture(scope="module")
def fake() -> FakeData:
    return FakeData(size=N, image_size=(3, 20, 24), num_classes=3, random_offset=7)


def _by_hand(model, images) -> np.ndarray:
    """The slow reference: the model's transform and forward pass, one image at a time."""
    with torch.no_grad():
        return torch.stack([model.module(model.transform(im)[None])[0] for im in images]).numpy()


def test_fakedata_targets_as_labels_and_attribute_functions(model, fake):
    emb = embed_images(
        model,
        fake,
        attributes={"parity": lambda t: "even" if t % 2 == 0 else "odd", "rank": list(range(N))},
        batch_size=4,
        device="cpu",
    )
    targets = [fake[i][1] for i in range(N)]
    np.testing.assert_allclose(
        emb.embeddings, _by_hand(model, [fake[i][0] for i in range(N)]), atol=1e-5
    )
    assert [emb.label_names[c] for c in emb.labels] == [str(t) for t in targets]
    parity = [emb.attribute_value_names["parity"][c] for c in emb.attributes[:, 0]]
    assert parity == ["even" if t % 2 == 0 else "odd" for t in targets]
    assert emb.attribute_names == ["parity", "rank"]
    assert emb.metadata["source"] == "test_resnet" and emb.metadata["dataset"] == "FakeData"
    report = fairmetric.audit(
        emb, attributes=["parity"], bootstrap=0, min_group_size=1, homophily_k=3, leakage_k=3
    )
    assert "recall@1" in report.metrics


class _Tensors(Dataset):
    """uint8 and float tensors, grey and colour, with tuple targets (as CelebA's)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = [torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8, generator=g)]
        self.images += [torch.rand(12, 12, generator=g), torch.rand(1, 12, 12, generator=g)]
        self.images += [torch.rand(3, 12, 12, generator=g)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], (torch.tensor(i % 2), torch.tensor([i, 1 - i % 2]))


def test_tensor_images_and_tuple_targets(model):
    data = _Tensors()
    emb = embed_images(
        model,
        data,
        labels=lambda t: int(t[0]),
        attributes={"a": lambda t: t[1][1]},
        device="cpu",
    )
    as_float = [
        data.images[0].float() / 255,
        data.images[1][None].expand(3, 12, 12),
        data.images[2].expand(3, 12, 12),
        data.images[3],
    ]
    np.testing.assert_allclose(emb.embeddings, _by_hand(model, as_float), atol=1e-5)
    assert emb.labels.tolist() == [0, 1, 0, 1] and emb.attributes[:, 0].tolist() == [1, 0, 1, 0]
    with pytest.raises(
        UserError, match=r"targets \(e\.g\. tuple .*\) are not class labels: pass labels="
    ):
        embed_images(model, data, device="cpu")


def test_bad_inputs(model, fake):
    with pytest.raises(UserError, match="labels has 3 values but the dataset has 10 samples"):
        embed_images(model, fake, labels=[0, 1, 2])
    with pytest.raises(UserError, match="attribute 'g' must be one value per sample"):
        embed_images(model, fake, attributes={"g": 3})
    with pytest.raises(UserError, match="attribute 'g': the function failed on a target"):
        embed_images(model, fake, attributes={"g": lambda t: t["x"]}, device="cpu")
    with pytest.raises(UserError, match="torch.utils.data.Dataset"):
        embed_images(model, [1, 2, 3])
    transformed = FakeData(size=2, image_size=(3, 8, 8), transform=np.asarray)
    with pytest.raises(UserError, match=r"images of type ndarray .*\(leave out the dataset.s own"):
        embed_images(model, transformed, device="cpu")
    with pytest.raises(UserError, match="weights and random_weights apply to a model name"):
        embed_images(model, fake, random_weights=True)
    with pytest.raises(UserError, match="has no weights"):
        embed_images("test_resnet", fake)


def test_attribute_dataset_keeps_its_columns(model, folder):
    from fairmetric.data.folder import load_folder_csv

    data = load_folder_csv(folder, csv_file="people.csv", path_column="file", label_column="person")
    emb = embed_images(model, data.subset([0, 3, 5]), device="cpu")
    assert list(emb.ids) == ["img/0.png", "img/3.png", "img/5.png"]
    assert emb.attribute_names == ["skin", "sex", "note"]
    from PIL import Image

    images = [Image.open(folder / "img" / f"{i}.png").convert("RGB") for i in (0, 3, 5)]
    np.testing.assert_allclose(emb.embeddings, _by_hand(model, images), atol=1e-5)
    with pytest.raises(UserError, match="carries its labels and attributes"):
        embed_images(model, data, labels=list(range(12)))
