"""Tests for fairmetric.models.embedder: the Embedder and its export format.

Backbones are timm's tiny ``test_*`` models with ``pretrained=False`` on 16-32 px images, and the
built-in MLP on short vectors. Every expected number is recomputed by hand (standardisation with
the mean/std from timm's own pretrained config, ``W h + b``, ``v / ||v||``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import timm
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from fairmetric.models.embedder import (
    CONFIG_FILE,
    MODEL_FILE,
    Embedder,
    load_embedder,
    save_embedder,
)

# (backbone, input_size): the smallest image each tiny timm model accepts comfortably
TIMM_CASES = [
    ("test_resnet", (3, 16, 16)),
    ("test_vit", (3, 16, 16)),
    ("test_convnext", (3, 32, 32)),
]
MLP_SIZE = (6,)


def make(backbone: str = "test_resnet", input_size=(3, 16, 16), seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return Embedder(backbone=backbone, input_size=input_size, **kwargs)


def inputs(input_size, n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *input_size), generator=g)


def randomize_buffers(model: Embedder) -> Embedder:
    """Move BatchNorm running statistics away from their initial values (so export must keep them)."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(inputs(model.input_size, n=4, seed=7))
    return model.eval()


@pytest.fixture(scope="module")
def resnet() -> Embedder:
    return randomize_buffers(make("test_resnet", (3, 16, 16), embedding_dim=8))


@pytest.fixture(scope="module")
def mlp() -> Embedder:
    return randomize_buffers(
        make("mlp", MLP_SIZE, embedding_dim=5, backbone_kwargs={"hidden": 12, "layers": 2})
    )


# -- forward ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone,input_size", TIMM_CASES + [("mlp", MLP_SIZE)])
def test_forward_shape_norm_and_composition(backbone, input_size):
    for normalize in (True, False):
        model = make(backbone, input_size, embedding_dim=7, normalize=normalize).eval()
        x = inputs(input_size, n=3)
        with torch.no_grad():
            out = model(x)
            h = model.features(x)
            raw = model.project(h)
            composed = model.finalize(raw)
            # the measured feature width is the real width of the backbone output
            direct = model.backbone(model._standardize(x))
        assert out.shape == (3, 7)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()
        assert model.feature_dim == h.shape[1] == direct.shape[1] == model.head.in_features
        torch.testing.assert_close(composed, out, rtol=0, atol=0)
        # project is the linear map W h + b, finalize divides by the row norm (or does nothing)
        torch.testing.assert_close(raw, h @ model.head.weight.T + model.head.bias)
        norms = out.norm(dim=1)
        if normalize:
            torch.testing.assert_close(norms, torch.ones(3), rtol=0, atol=1e-5)
            torch.testing.assert_close(out, raw / raw.norm(dim=1, keepdim=True))
        else:
            torch.testing.assert_close(out, raw, rtol=0, atol=0)
            assert not torch.allclose(norms, torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("backbone", ["test_resnet", "test_efficientnet"])
def test_images_are_standardised_with_the_backbones_mean_and_std(backbone):
    # test_efficientnet carries ImageNet statistics (a different value per channel), so a channel
    # mix-up or a missing division shows
    cfg = timm.models.get_pretrained_cfg(backbone)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    model = make(backbone, (3, 16, 16), embedding_dim=4).eval()
    x = inputs((3, 16, 16), n=2)
    with torch.no_grad():
        expected = model.backbone((x - mean) / std)
        got = model.features(x)
        unstandardised = model.backbone(x)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, unstandardised)
    torch.testing.assert_close(model.input_mean, mean)
    torch.testing.assert_close(model.input_std, std)


def test_mlp_features_are_the_plain_mlp_on_the_raw_vector(mlp):
    x = inputs(MLP_SIZE, n=5)
    with torch.no_grad():
        torch.testing.assert_close(mlp.features(x), mlp.backbone(x), rtol=0, atol=0)
    assert mlp.input_mean.numel() == 0 and mlp.input_std.numel() == 0
    assert mlp.feature_dim == 12


def test_single_channel_images():
    model = make("test_resnet", (1, 16, 16), embedding_dim=6).eval()
    assert model.backbone.conv1[0].weight.shape[1] == 1
    x = inputs((1, 16, 16), n=3)
    with torch.no_grad():
        out = model(x)
        composed = model.finalize(model.project(model.features(x)))
    assert out.shape == (3, 6)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(out, composed, rtol=0, atol=0)


def test_config_describes_the_model():
    model = make("mlp", MLP_SIZE, embedding_dim=3, normalize=False, backbone_kwargs={"hidden": 8})
    cfg = model.config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg == {
        "format": "fairmetric-embedder",
        "backbone": "mlp",
        "embedding_dim": 3,
        "normalize": False,
        "input_size": [6],
        "backbone_kwargs": {"hidden": 8},
        "feature_dim": 8,
    }


# -- construction errors ------------------------------------------------------------------------


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ValueError, match="unknown backbone 'test_resnett'") as info:
        Embedder(backbone="test_resnett", input_size=(3, 16, 16))
    assert "Did you mean" in str(info.value) and "test_resnet" in str(info.value)


def test_unknown_backbone_without_close_names():
    with pytest.raises(ValueError, match="unknown backbone 'qqzzxxjj'") as info:
        Embedder(backbone="qqzzxxjj", input_size=(3, 16, 16))
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize("input_size", [(3, 16, 16), (4, 4)])
def test_mlp_refuses_image_input_size(input_size):
    with pytest.raises(ValueError, match="'mlp' backbone takes vector inputs"):
        Embedder(backbone="mlp", input_size=input_size)


@pytest.mark.parametrize("input_size", [(16,), (16, 16)])
def test_timm_refuses_vector_input_size(input_size):
    with pytest.raises(ValueError, match="timm backbones take images"):
        Embedder(backbone="test_resnet", input_size=input_size)


@pytest.mark.parametrize("dim", [0, -3, 10**9])
def test_embedding_dim_must_be_positive_and_bounded(dim):
    # checked before the head is allocated (10**9 would take gigabytes)
    with pytest.raises(ValueError, match="embedding_dim must be between 1 and 65536"):
        Embedder(backbone="mlp", input_size=(4,), embedding_dim=dim)


@pytest.mark.parametrize(
    ("backbone", "input_size", "kwargs", "match"),
    [
        ("mlp", (-4,), {}, "input_size must hold integers between 1 and"),
        ("mlp", (0,), {}, "input_size must hold integers between 1 and"),
        ("mlp", (4.5,), {}, "input_size must hold integers"),
        ("test_resnet", (3, -16, 16), {}, "input_size must hold integers between 1 and 4096"),
        ("test_resnet", (3, 10**6, 10**6), {}, "input_size must hold integers between 1 and 4096"),
        ("mlp", (4,), {"hidden": -8}, "hidden .*must be between 1 and 65536"),
        ("mlp", (4,), {"hidden": 10**9}, "hidden .*must be between 1 and 65536"),
        ("mlp", (4,), {"layers": -1}, "layers .*must be between 0 and"),
        ("mlp", (4,), {"hidden": 65536, "layers": 1000}, "weights \\(at most"),
        ("mlp", (2**20,), {"hidden": 65536}, "weights \\(at most"),
        ("test_resnet", (4096, 4096, 4096), {}, "values per input \\(at most"),
    ],
)
def test_sizes_are_checked_before_allocating(backbone, input_size, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Embedder(backbone=backbone, input_size=input_size, backbone_kwargs=kwargs)


def test_missing_pretrained_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights file not found"):
        Embedder(
            backbone="test_resnet",
            input_size=(3, 16, 16),
            pretrained_weights=str(tmp_path / "nope.pth"),
        )
    with pytest.raises(FileNotFoundError, match="pretrained weights file not found"):
        Embedder(backbone="test_resnet", input_size=(3, 16, 16), pretrained_weights=str(tmp_path))


def test_too_small_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match="input_size"):
        Embedder(backbone="test_convnext", input_size=(3, 16, 16))


def test_mlp_refuses_pretrained_weights(tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(1)}, weights)
    with pytest.raises(ValueError, match="pretrained_weights"):
        Embedder(backbone="mlp", input_size=(4,), pretrained_weights=str(weights))


# -- local pretrained weights -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_local_pretrained_weights_are_loaded(tmp_path, fmt):
    torch.manual_seed(123)
    source = timm.create_model("test_resnet", pretrained=False)
    with torch.no_grad():  # make every tensor, buffers included, distinctive
        for t in source.state_dict().values():
            if t.is_floating_point():
                t.uniform_(0.5, 1.5)
    saved = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / f"weights.{fmt}"
    if fmt == "pth":
        torch.save(saved, path)
    else:
        save_file({k: v.contiguous() for k, v in saved.items()}, str(path))

    torch.manual_seed(0)
    model = Embedder(
        backbone="test_resnet",
        input_size=(3, 16, 16),
        embedding_dim=4,
        pretrained_weights=str(path),
    )
    backbone_state = model.backbone.state_dict()
    # the classifier is dropped (num_classes=0), everything else is the file's
    assert set(saved) - set(backbone_state) == {"fc.weight", "fc.bias"}
    assert set(backbone_state) <= set(saved)
    for k, v in backbone_state.items():
        assert torch.equal(v, saved[k]), k
    # the same seed without the file gives different weights, so the file really was used
    torch.manual_seed(0)
    plain = Embedder(backbone="test_resnet", input_size=(3, 16, 16), embedding_dim=4)
    assert not torch.equal(plain.backbone.conv1[0].weight, backbone_state["conv1.0.weight"])


def test_pretrained_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "vit.pth"
    torch.save(timm.create_model("test_vit", pretrained=False).state_dict(), path)
    with pytest.raises(ValueError, match="weights"):
        Embedder(backbone="test_resnet", input_size=(3, 16, 16), pretrained_weights=str(path))


def test_corrupt_pretrained_weights_file(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(bytes(range(256)) * 2)
    with pytest.raises(ValueError, match="junk.pth"):
        Embedder(backbone="test_resnet", input_size=(3, 16, 16), pretrained_weights=str(path))


# -- export and loading -------------------------------------------------------------------------


def assert_same_model(a: Embedder, b: Embedder) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k
    assert a.config() == b.config()
    x = inputs(a.input_size, n=3, seed=11)
    a.eval()
    assert not b.training
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("which", ["resnet", "mlp"])
def test_save_load_round_trip_is_exact(tmp_path, request, which):
    model = request.getfixturevalue(which)
    out = save_embedder(model, tmp_path / "export" / "model", extra={"run": "r1", "epoch": 3})
    assert out == tmp_path / "export" / "model"
    assert sorted(os.listdir(out)) == sorted([CONFIG_FILE, MODEL_FILE])
    loaded = load_embedder(out)
    assert isinstance(loaded, Embedder)
    assert_same_model(model, loaded)
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["extra"] == {"run": "r1", "epoch": 3}
    assert {k: v for k, v in config.items() if k != "extra"} == model.config()


def test_save_load_round_trip_unnormalised(tmp_path):
    model = make("mlp", (3,), embedding_dim=2, normalize=False)
    loaded = load_embedder(save_embedder(model, tmp_path), map_location=torch.device("cpu"))
    assert loaded.normalize is False
    assert_same_model(model, loaded)


def test_save_overwrites_and_leaves_only_the_two_files(tmp_path, resnet):
    other = make("test_resnet", (3, 16, 16), seed=5, embedding_dim=8)
    save_embedder(other, tmp_path)
    save_embedder(resnet, tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([CONFIG_FILE, MODEL_FILE])
    assert "extra" not in json.loads((tmp_path / CONFIG_FILE).read_text())
    assert_same_model(resnet, load_embedder(tmp_path))


def test_save_refuses_a_non_embedder(tmp_path):
    with pytest.raises(TypeError, match="expects an Embedder, got Linear"):
        save_embedder(nn.Linear(2, 2), tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.fixture
def exported(tmp_path, mlp) -> Path:
    return save_embedder(mlp, tmp_path / "model")


def test_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        load_embedder(tmp_path / "nope")


@pytest.mark.parametrize("missing", [CONFIG_FILE, MODEL_FILE])
def test_load_missing_file(exported, missing):
    (exported / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"{missing} not found"):
        load_embedder(exported)


@pytest.mark.parametrize("text", ["{not json", "", '{"format": "fairmetric-embedder",'])
def test_load_corrupt_config(exported, text):
    (exported / CONFIG_FILE).write_text(text)
    with pytest.raises(ValueError, match="not valid JSON"):
        load_embedder(exported)


def test_load_non_utf8_config(exported):
    (exported / CONFIG_FILE).write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ValueError, match="config.json"):
        load_embedder(exported)


@pytest.mark.parametrize(
    "config",
    [
        [1, 2],
        "fairmetric-embedder",
        {"backbone": "mlp", "embedding_dim": 5},  # no format marker
        {"format": "something-else", "backbone": "mlp"},
    ],
)
def test_load_config_with_wrong_format(exported, config):
    (exported / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a fairmetric embedder config"):
        load_embedder(exported)


@pytest.mark.parametrize(
    "edit", [{"embedding_dim": None}, {"embedding_dim": "five"}, {"input_size": None}]
)
def test_load_config_with_missing_or_bad_keys(exported, edit):
    config = json.loads((exported / CONFIG_FILE).read_text())
    for k, v in edit.items():
        if v is None:
            del config[k]
        else:
            config[k] = v
    (exported / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json"):
        load_embedder(exported)


@pytest.mark.parametrize("cut", ["half", "header", "empty", "random"])
def test_load_corrupt_weights(exported, cut):
    path = exported / MODEL_FILE
    data = path.read_bytes()
    corrupt = {
        "half": data[: len(data) // 2],
        "header": data[:5],
        "empty": b"",
        "random": bytes((i * 37 + 11) % 256 for i in range(600)),
    }[cut]
    path.write_bytes(corrupt)
    with pytest.raises(ValueError, match="corrupt or not a safetensors file"):
        load_embedder(exported)


def test_load_weights_with_missing_tensors(exported):
    path = exported / MODEL_FILE
    state = load_file(str(path))
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(path))
    with pytest.raises(ValueError, match="does not match the architecture") as info:
        load_embedder(exported)
    assert "head.bias" in str(info.value) and "extra.weight" in str(info.value)


@pytest.mark.parametrize("case", ["resnet-into-mlp", "mlp-into-resnet", "other-embedding-dim"])
def test_load_weights_of_another_architecture(tmp_path, resnet, mlp, case):
    wider = make("mlp", MLP_SIZE, embedding_dim=9, backbone_kwargs={"hidden": 12, "layers": 2})
    target, source = {
        "resnet-into-mlp": (mlp, resnet),
        "mlp-into-resnet": (resnet, mlp),
        "other-embedding-dim": (mlp, wider),
    }[case]
    save_embedder(target, tmp_path / "a")
    save_embedder(source, tmp_path / "b")
    shutil.copy(tmp_path / "b" / MODEL_FILE, tmp_path / "a" / MODEL_FILE)
    with pytest.raises(ValueError, match="does not match"):
        load_embedder(tmp_path / "a")
