"""open_clip image towers from a local checkpoint, offline: tiny architectures registered with
``open_clip.add_model_config`` and checkpoints saved from randomly initialised models."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fairmetric.cli import main
from fairmetric.errors import UserError
from fairmetric.sources import Columns, load_source
from fairmetric.sources.clip import open_clip_image_model

open_clip = pytest.importorskip("open_clip")

TEXT = {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}
CONFIGS = {  # a tiny ViT, and a tiny ModifiedResNet (another architecture)
    "fm-tiny-vit": {
        "embed_dim": 8,
        "vision_cfg": {
            "image_size": 16,
            "layers": 1,
            "width": 16,
            "head_width": 8,
            "patch_size": 8,
        },
        "text_cfg": TEXT,
    },
    "fm-tiny-rn": {
        "embed_dim": 8,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
        "text_cfg": TEXT,
    },
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """``{arch: (checkpoint path, the state dict saved)}``, architectures registered."""
    folder = tmp_path_factory.mktemp("open_clip")
    for name, cfg in CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    saved = {}
    for name in CONFIGS:
        torch.manual_seed(0)
        model = open_clip.create_model(name, pretrained=None)
        path = folder / f"{name}_open_clip_pytorch_model.bin"
        torch.save(model.state_dict(), path)
        saved[name] = (path, model.state_dict())
    return saved


def test_image_tower_from_local_checkpoint_offline(checkpoints, folder, no_network):
    path, state = checkpoints["fm-tiny-vit"]
    emb = load_source(
        "open_clip:fm-tiny-vit",
        weights=path,
        images=folder,
        images_csv="people.csv",
        path_column="file",
        columns=Columns(label="person", attributes=["skin"]),
        device="cpu",
    )
    # the slow reference: the same architecture given the checkpoint by hand, open_clip's own
    # eval transform, one image at a time
    model = open_clip.create_model("fm-tiny-vit", pretrained=None)
    model.load_state_dict(state)
    model.eval()
    transform = open_clip.image_transform(16, is_train=False)
    with torch.no_grad():
        rows = [
            model.encode_image(transform(Image.open(folder / "img" / f"{i}.png"))[None])[0]
            for i in range(12)
        ]
    np.testing.assert_allclose(emb.embeddings, torch.stack(rows).numpy(), atol=1e-5)
    assert emb.dim == 8 and emb.metadata["source"] == "open_clip:fm-tiny-vit"
    assert emb.metadata["weights"] == str(path.resolve())
    assert emb.ids[0] == "img/0.png"


def test_cli_open_clip(checkpoints, folder, no_network, capsys):
    path, _ = checkpoints["fm-tiny-vit"]
    argv = ["audit", "open_clip:fm-tiny-vit", "--weights", str(path), "--images", str(folder)]
    argv += ["--table", "people.csv", "--path-column", "file", "--label-column", "person"]
    argv += ["--attribute-columns", "skin", "--bootstrap", "0", "--no-progress"]
    assert main([*argv, "--no-linear-probe", "--min-group-size", "1"]) == 0
    assert "homophily:skin" in capsys.readouterr().out


def test_bad_checkpoints_and_names(checkpoints, tmp_path, no_network):
    path, _ = checkpoints["fm-tiny-vit"]
    with pytest.raises(ValueError, match=r"open_clip:fm-tiny-rn: the checkpoint .*fm-tiny-vit.*"
                       r"does not fit this architecture"):  # fmt: skip
        open_clip_image_model("fm-tiny-rn", weights=path)
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00 not a checkpoint")
    with pytest.raises(
        ValueError, match=r"open_clip:fm-tiny-vit: the checkpoint .*corrupt\.bin is corrupt"
    ):
        open_clip_image_model("fm-tiny-vit", weights=corrupt)
    with pytest.raises(FileNotFoundError, match=r"open_clip:fm-tiny-vit not found: .*missing\.bin"):
        open_clip_image_model("fm-tiny-vit", weights=tmp_path / "missing.bin")
    with pytest.raises(UserError, match="needs its checkpoint: pass --weights FILE"):
        open_clip_image_model("fm-tiny-vit", weights=None)
    with pytest.raises(UserError, match="not an open_clip architecture name"):
        open_clip_image_model("hf-hub:timm/some-model", weights=path)
    with pytest.raises(UserError, match="Hugging Face model .* never downloads"):
        open_clip_image_model("xlm-roberta-base-ViT-B-32", weights=path)
    with pytest.raises(UserError, match="--random-weights applies to timm models"):
        load_source("open_clip:fm-tiny-vit", random_weights=True)


def test_missing_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip raises ImportError
    with pytest.raises(UserError, match=r"pip install 'fairmetric\[clip\]'"):
        open_clip_image_model("ViT-B-32", weights=tmp_path / "w.bin")
