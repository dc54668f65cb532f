"""timm image models: weights required (or ``random_weights``), loaded strictly, and images
preprocessed by the model's own data config."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import timm.data
import torch
from PIL import Image

from fairmetric.cli import main
from fairmetric.errors import UserError
from fairmetric.sources import Columns, load_source
from fairmetric.sources.images import timm_image_model
from tests.sources_images.conftest import save_timm_weights

COLUMNS = ["--path-column", "file", "--label-column", "person", "--attribute-columns", "skin,sex"]
QUIET = ["--bootstrap", "0", "--no-progress", "--no-linear-probe", "--min-group-size", "1"]


def _by_hand(name: str, state: dict, paths: list) -> np.ndarray:
    """The slow reference: a fresh timm model given the state dict by hand, each image through
    timm's own eval transform, one at a time."""
    model = timm.create_model(name, pretrained=False, num_classes=0)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own})
    model.eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    with torch.no_grad():
        rows = [model(transform(Image.open(p).convert("RGB"))[None])[0] for p in paths]
    return torch.stack(rows).numpy()


# -- refusal and random weights -----------------------------------------------------------------
def test_timm_name_without_weights_is_refused(folder, capsys):
    with pytest.raises(
        UserError, match=r"test_resnet.*no weights.*--weights FILE.*--random-weights"
    ):
        load_source("test_resnet", images=folder, images_csv="people.csv")
    assert main(["audit", "test_resnet", "--images", str(folder), *QUIET]) == 2
    err = capsys.readouterr().err
    assert "--random-weights" in err and "Traceback" not in err


def test_weights_and_random_weights_together_are_refused(timm_weights):
    with pytest.raises(UserError, match="either weights .* or random_weights"):
        timm_image_model("test_resnet", weights=timm_weights, random_weights=True)


def test_random_weights_audits_on_purpose(folder):
    emb = load_source(
        "test_resnet",
        random_weights=True,
        images=folder,
        images_csv="people.csv",
        path_column="file",
        columns=Columns(label="person"),
        device="cpu",
    )
    assert emb.metadata["weights"].startswith("random")
    assert emb.dim == timm.create_model("test_resnet", num_classes=0).num_features


# -- weights ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".bin"])
def test_weights_are_the_state_dicts_values(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    state = save_timm_weights(path)
    model = timm_image_model("test_resnet", weights=path).module
    loaded = model.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}  # classifier dropped
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    fresh = timm.create_model("test_resnet", num_classes=0).state_dict()  # the test can fail
    assert any(
        not torch.equal(fresh[k], loaded[k]) for k in loaded if loaded[k].is_floating_point()
    )


def test_wrapped_checkpoint_with_module_prefix(tmp_path):
    state = save_timm_weights(tmp_path / "plain.pth")
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    loaded = timm_image_model("test_resnet", weights=path).module.state_dict()
    torch.testing.assert_close(loaded["conv1.0.weight"], state["conv1.0.weight"], rtol=0, atol=0)


def test_missing_corrupt_and_wrong_architecture_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"timm model 'test_resnet' not found: .*nope\.pth"):
        timm_image_model("test_resnet", weights=tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a weights file")
    with pytest.raises(ValueError, match=r"timm model 'test_resnet'.*corrupt\.pth is corrupt"):
        timm_image_model("test_resnet", weights=corrupt)
    vit = tmp_path / "test_vit.safetensors"
    save_timm_weights(vit, "test_vit")
    with pytest.raises(
        ValueError, match=r"timm model 'test_resnet'.*test_vit\.safetensors.*do not fit"
    ):
        timm_image_model("test_resnet", weights=vit)
    with pytest.raises(UserError, match="'resnet_typo' is not a timm model name"):
        timm_image_model("resnet_typo", weights=vit)


# -- preprocessing ------------------------------------------------------------------------------
def test_transform_is_timms_eval_transform_and_a_by_hand_resize_crop_normalise(
    folder, timm_weights
):
    model = timm_image_model("test_resnet", weights=timm_weights)
    cfg = timm.data.resolve_data_config({}, model=timm.create_model("test_resnet"))
    assert model.input_size == cfg["input_size"] == (3, 160, 160)
    image = Image.open(folder / "img" / "3.png").convert("RGB")
    ours = model.transform(image)
    torch.testing.assert_close(ours, timm.data.create_transform(**cfg)(image), rtol=0, atol=0)
    # slow reference: resize the shorter side to 160 / crop_pct, centre-crop 160, scale, normalise
    side = int(160 / cfg["crop_pct"])
    big = np.asarray(image.resize((side, side), Image.BILINEAR), dtype=np.float64) / 255
    top = (side - 160) // 2
    crop = big[top : top + 160, top : top + 160].transpose(2, 0, 1)
    mean, std = np.array(cfg["mean"])[:, None, None], np.array(cfg["std"])[:, None, None]
    np.testing.assert_allclose(ours.numpy(), (crop - mean) / std, atol=1e-5)


def test_folder_embeddings_equal_the_model_by_hand(folder, tmp_path):
    path = tmp_path / "w.safetensors"
    state = save_timm_weights(path)
    emb = load_source(
        "test_resnet",
        weights=path,
        images=folder,
        images_csv=folder / "people.csv",
        path_column="file",
        columns=Columns(label="person", attributes=["skin"]),
        batch_size=5,
        device="cpu",
    )
    paths = [folder / "img" / f"{i}.png" for i in range(12)]
    np.testing.assert_allclose(emb.embeddings, _by_hand("test_resnet", state, paths), atol=1e-5)
    assert list(emb.ids) == [f"img/{i}.png" for i in range(12)]
    assert emb.metadata["weights"] == str(path) and emb.metadata["source"] == "test_resnet"
    assert "CenterCrop" in emb.metadata["preprocess"]
    assert emb.attribute_names == ["skin"] and emb.label_names[0] == "p00"


def test_cli_audits_folder_and_csv_by_column_names(folder, timm_weights, tmp_path, capsys):
    out = tmp_path / "audit"
    argv = ["audit", "test_resnet", "--weights", str(timm_weights), "--images", str(folder)]
    argv += ["--table", "people.csv", *COLUMNS, *QUIET, "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "skin" in text and "sex" in text and "note" not in text
    assert (out / "report.json").is_file()


def test_in_memory_tensors_go_through_the_same_transform(tmp_path):
    """Coloured digits (tensors in [0, 1]) are resized, cropped and normalised as tensors."""
    from fairmetric.data.dataset import TensorAttributeDataset
    from fairmetric.sources.images import preprocess_dataset

    model = timm_image_model("test_resnet", random_weights=True)
    x = torch.rand(4, 3, 16, 16)
    grey = torch.rand(4, 1, 16, 16)
    for inputs in (x, grey):
        data = TensorAttributeDataset(inputs, labels=[0, 0, 1, 1], attributes={"g": [0, 1, 0, 1]})
        ready = preprocess_dataset(data, model).subset([2, 3])
        expected = model.transform(inputs[3].expand(3, 16, 16))
        torch.testing.assert_close(ready[1][0], expected, rtol=0, atol=0)
        assert ready[1][0].shape == (3, 160, 160) and ready.labels.tolist() == [1, 1]
    vectors = TensorAttributeDataset(torch.rand(4, 5), labels=[0, 0, 1, 1])
    with pytest.raises(UserError, match=r"takes images.*shape \(5,\)"):
        preprocess_dataset(vectors, model)


def test_every_split_of_a_config_gets_the_transform(folder):
    """``--split all`` concatenates the splits; each part keeps its kind of preprocessing."""
    from fairmetric.data.dataset import TensorAttributeDataset
    from fairmetric.data.folder import load_folder_csv
    from fairmetric.sources.images import preprocess_dataset
    from fairmetric.sources.models import concat_splits

    model = timm_image_model("test_resnet", random_weights=True)
    files = load_folder_csv(
        folder, csv_file="people.csv", path_column="file", label_column="person"
    )
    tensors = torch.rand(2, 3, 16, 16)
    columns = {"skin": ["dark", "light"], "sex": ["f", "m"], "note": ["n0", "n1"]}
    memory = TensorAttributeDataset(tensors, labels=["p00", "p01"], attributes=columns)
    both = concat_splits({"a": files.subset([4, 5]), "b": memory})
    ready = preprocess_dataset(both, model)
    assert len(ready) == 4 and ready.input_shape == (3, 160, 160)
    image = Image.open(folder / "img" / "5.png").convert("RGB")
    torch.testing.assert_close(ready[1][0], model.transform(image), rtol=0, atol=0)
    torch.testing.assert_close(ready[3][0], model.transform(tensors[1]), rtol=0, atol=0)
