"""The training loop: it learns, resumes exactly, exports what it trained, and protects runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import torch

from fairmetric.models import embed_dataset, load_embedder
from fairmetric.train import build_data, load_config, train
from fairmetric.train.checkpoint import load_checkpoint
from fairmetric.train.evaluate import evaluate_embeddings
from tests.conftest import DIGITS, GAUSSIAN


def _quiet(cfg, out, **kw):
    return train(cfg, out, progress=False, log=lambda s: None, **kw)


def test_training_improves_recall_over_untrained(tmp_path):
    cfg = load_config(None, GAUSSIAN + ["train.epochs=15"])
    result = _quiet(cfg, tmp_path / "run")
    before = result["history"][0]["metrics"]["recall@1"]["overall"]
    after = result["final"]["metrics"]["recall@1"]["overall"]
    assert result["history"][0]["epoch"] == 0 and result["history"][0]["loss"] is None
    assert after > before + 0.15, (before, after)


def test_run_folder_contents_and_exported_model_matches(tmp_path, digits_cfg):
    out = tmp_path / "run"
    result = _quiet(digits_cfg, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.yaml",
        "metrics.jsonl",
        "model",
        # train.tensorboard=auto: a log when TensorBoard is installed (the test extra installs
        # it; the oldest-versions check does not)
        *(["tensorboard"] if importlib.util.find_spec("tensorboard") else []),
    ]
    assert sorted(p.name for p in (out / "model").iterdir()) == ["config.json", "model.safetensors"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2]
    assert load_config(out / "config.yaml") == digits_cfg
    # the exported model gives the same Recall@1 as the loop measured at the last epoch
    model = load_embedder(result["model_dir"])
    emb = embed_dataset(model, build_data(digits_cfg)["test"], device="cpu")
    assert evaluate_embeddings(emb, [1]) == lines[-1]["metrics"]
    by_group = lines[-1]["metrics"]["recall@1"]["by_group"]["colour"]
    assert set(by_group) == {"light", "dark"}


@pytest.mark.parametrize("overrides", [GAUSSIAN, DIGITS], ids=["mlp", "test_resnet"])
def test_resume_is_exact(tmp_path, overrides):
    straight = load_config(None, overrides + ["train.epochs=2"])
    _quiet(straight, tmp_path / "straight")

    first = load_config(None, overrides + ["train.epochs=1"])
    _quiet(first, tmp_path / "resumed")
    _quiet(straight, tmp_path / "resumed", resume=True)

    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert _untimed(a["history"]) == _untimed(b["history"])


def test_proxy_loss_with_non_contiguous_labels_trains(tmp_path):
    cfg = load_config(
        None,
        GAUSSIAN
        + [
            "train.epochs=3",
            "loss.name=ProxyAnchorLoss",
            "loss.params={}",
            "miner.name=null",
            "optim.loss_lr=0.01",
        ],
    )
    train_labels = build_data(cfg)["train"].labels
    assert np.unique(train_labels).max() >= len(np.unique(train_labels))  # gaps in the codes
    result = _quiet(cfg, tmp_path / "run")
    losses = [h["loss"] for h in result["history"][1:]]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_existing_run_is_protected(tmp_path, gaussian_cfg):
    _quiet(gaussian_cfg, tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        _quiet(gaussian_cfg, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_resume_without_checkpoint(tmp_path, gaussian_cfg):
    with pytest.raises(FileNotFoundError, match="drop --resume"):
        _quiet(gaussian_cfg, tmp_path / "nothing", resume=True)


def test_resume_with_changed_config_names_the_key(tmp_path, gaussian_cfg):
    _quiet(gaussian_cfg, tmp_path / "run")
    changed = dataclasses.replace(
        gaussian_cfg, optim=dataclasses.replace(gaussian_cfg.optim, lr=0.5)
    )
    with pytest.raises(ValueError, match="optim.lr"):
        _quiet(changed, tmp_path / "run", resume=True)


def test_resume_from_corrupt_checkpoint(tmp_path, gaussian_cfg):
    _quiet(gaussian_cfg, tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        _quiet(gaussian_cfg, tmp_path / "run", resume=True)


def test_unknown_eval_attribute(tmp_path):
    cfg = load_config(None, GAUSSIAN + ["data.eval_attributes=[skin]"])
    with pytest.raises(ValueError, match="unknown attribute 'skin'.*group"):
        _quiet(cfg, tmp_path / "run")


def test_zero_epochs_rejected(tmp_path, gaussian_cfg):
    with pytest.raises(ValueError, match="train.epochs must be between 1 and"):
        load_config(None, GAUSSIAN + ["train.epochs=0"])  # when the config is loaded
    cfg = dataclasses.replace(gaussian_cfg, train=dataclasses.replace(gaussian_cfg.train, epochs=0))
    with pytest.raises(ValueError, match="train.epochs"):  # and by train() for a built config
        _quiet(cfg, tmp_path / "run")


def test_impossible_batch_is_a_clear_error(tmp_path):
    cfg = load_config(None, DIGITS + ["train.batch_size=64", "train.m_per_class=8"])
    with pytest.raises(ValueError, match="m × classes does not fit"):
        _quiet(cfg, tmp_path / "run")


def _untimed(history):
    """A history without its wall-clock fields (which differ between runs)."""
    timed = ("seconds", "images_per_second")
    return [{k: v for k, v in h.items() if k not in timed} for h in history]
