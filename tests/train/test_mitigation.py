"""Data-side mitigation wired into the training loop: configs, groups, reweighting, mining, SMOTE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_metric_learning.reducers import MultipleReducers

import fairmetric.train.hooks.hard_mining as hard_mining_hook
from fairmetric.losses import GroupWeightedReducer
from fairmetric.sampling import EpochBalancedBatchSampler, GroupQuotaBatchSampler
from fairmetric.train import build_data, load_config, train
from fairmetric.train.trainer import build_sampler, build_training_loss, training_groups
from tests.conftest import DIGITS, GAUSSIAN

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
METHODS = ["reweight", "epoch_balanced", "batch_balanced", "hard_mining", "smote"]


def _quiet(cfg, out, **kw):
    return train(cfg, out, progress=False, log=lambda s: None, **kw)


@pytest.mark.parametrize("method", METHODS)
def test_each_shipped_config_trains(tmp_path, method):
    cfg = load_config(CONFIGS / f"colored_digits_{method}.yaml", DIGITS + ["train.epochs=1"])
    active = {
        "reweight": cfg.reducer.name == "group_weighted",
        "epoch_balanced": cfg.sampling.name == "epoch_balanced",
        "batch_balanced": cfg.sampling.name == "batch_balanced",
        "hard_mining": cfg.mitigation.hard_mining.candidates_per_batch is not None,
        "smote": cfg.mitigation.smote.enabled,
    }
    assert [m for m, on in active.items() if on] == [method]
    result = _quiet(cfg, tmp_path / method)
    lines = (tmp_path / method / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]
    assert np.isfinite(result["final"]["loss"])
    if method == "smote":
        assert result["final"]["smote_per_step"] > 0  # synthetic points really joined the loss


def test_training_groups_need_group_attribute():
    cfg = load_config(None, DIGITS + ["mitigation.reweight.enabled=true"])
    train_set = build_data(cfg)["train"]
    with pytest.raises(ValueError, match=r"data.group_attribute.*colour"):
        training_groups(cfg, train_set)
    cfg = load_config(None, DIGITS + ["data.group_attribute=shade", "sampling.name=batch_balanced"])
    with pytest.raises(ValueError, match="shade"):
        training_groups(cfg, train_set)
    plain = load_config(None, DIGITS + ["data.group_attribute=colour"])
    assert training_groups(plain, train_set) is None  # nothing group-aware is on
    on = load_config(None, DIGITS + ["data.group_attribute=colour", "sampling.name=epoch_balanced"])
    np.testing.assert_array_equal(
        training_groups(on, train_set), train_set.attributes[:, train_set.attribute_index("colour")]
    )


@pytest.mark.parametrize(
    "override, match",
    [
        ("sampling.name=balanced", "sampling.name must be one of"),
        ("sampling.mode=sideways", "sampling.mode"),
    ],
)
def test_bad_sampling_names(override, match):
    cfg = load_config(None, DIGITS + ["data.group_attribute=colour", override])
    with pytest.raises(ValueError, match=match):
        training_groups(cfg, build_data(cfg)["train"])


def test_build_sampler_kinds_and_proportions():
    base = DIGITS + ["data.group_attribute=colour"]
    cfg = load_config(
        None,
        base + ["sampling.name=batch_balanced", "sampling.proportions={light: 0.5, dark: 0.5}"],
    )
    train_set = build_data(cfg)["train"]
    groups = training_groups(cfg, train_set)
    sampler = build_sampler(cfg, train_set, groups, batch_size=40, num_batches=4)
    assert isinstance(sampler, GroupQuotaBatchSampler)
    for batch in sampler:
        counts = np.bincount(groups[batch], minlength=2)
        assert counts.tolist() == [20, 20]
    cfg = load_config(None, base + ["sampling.name=epoch_balanced"])
    sampler = build_sampler(cfg, train_set, groups, batch_size=40, num_batches=None)
    assert isinstance(sampler, EpochBalancedBatchSampler)
    bad = load_config(
        None, base + ["sampling.name=batch_balanced", "sampling.proportions={red: 1}"]
    )
    with pytest.raises(ValueError, match=r"'red'.*light, dark"):
        build_sampler(bad, train_set, groups, batch_size=40, num_batches=4)


def test_reweighted_loss_uses_inverse_frequency_weights():
    cfg = load_config(
        None, DIGITS + ["data.group_attribute=colour", "mitigation.reweight.enabled=true"]
    )
    train_set = build_data(cfg)["train"]
    groups = training_groups(cfg, train_set)
    lines = []
    loss_fn = build_training_loss(cfg, train_set, groups, num_classes=5, log=lines.append)
    assert isinstance(loss_fn.reducer, GroupWeightedReducer)
    assert loss_fn.reducer.base == "avg_nonzero"  # TripletMarginLoss reduces with AvgNonZero
    freq = np.bincount(groups) / len(groups)
    w = loss_fn.reducer.weights.numpy()
    np.testing.assert_allclose(w[1] / w[0], freq[0] / freq[1], rtol=1e-5)
    np.testing.assert_allclose((w * freq).sum(), 1.0, rtol=1e-5)
    assert "reweighting by light" in lines[0]

    ms = load_config(
        None,
        DIGITS
        + ["data.group_attribute=colour", "mitigation.reweight.enabled=true"]
        + ["loss.name=ContrastiveLoss", "mitigation.reweight.beta=0.5"],
    )
    loss_fn = build_training_loss(ms, train_set, groups, num_classes=5, log=lambda s: None)
    assert isinstance(loss_fn.reducer, MultipleReducers)
    subs = list(loss_fn.reducer.reducers.values())
    assert subs and all(isinstance(r, GroupWeightedReducer) for r in subs)
    np.testing.assert_allclose(subs[0].weights[1] / subs[0].weights[0], np.sqrt(freq[0] / freq[1]))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["loss.name=ProxyAnchorLoss"], "indexed by class"),
        (["loss.params.reducer={name: MeanReducer}"], "remove loss.params.reducer"),
        (["mitigation.reweight.base=median"], "base must be"),
        (["mitigation.reweight.beta=-1"], "beta"),
    ],
)
def test_reweight_bad_input(overrides, match):
    """Refused when the config is loaded (a range: beta) or when the loss is built."""
    with pytest.raises(ValueError, match=match):
        cfg = load_config(
            None,
            DIGITS
            + ["data.group_attribute=colour", "mitigation.reweight.enabled=true"]
            + overrides,
        )
        train_set = build_data(cfg)["train"]
        groups = training_groups(cfg, train_set)
        build_training_loss(cfg, train_set, groups, num_classes=5, log=lambda s: None)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["mitigation.hard_mining.candidates_per_batch=40"], "B must be smaller than N"),
        (
            [
                "mitigation.hard_mining.candidates_per_batch=80",
                "mitigation.hard_mining.selection=x",
            ],
            "selection",
        ),
        (["mitigation.smote.enabled=true", "mitigation.smote.group_by=attribute"], "class label"),
        (
            ["mitigation.hard_mining.candidates_per_batch=80", "loss.name=ProxyAnchorLoss"],
            "indexed by class",
        ),
    ],
)
def test_train_rejects_bad_mitigation(tmp_path, overrides, match):
    cfg = load_config(None, DIGITS + ["data.group_attribute=colour", "train.epochs=1"] + overrides)
    with pytest.raises(ValueError, match=match):
        _quiet(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_hard_mining_backpropagates_the_hardest(tmp_path, monkeypatch):
    seen = []

    class Recording(hard_mining_hook.HardExampleSelector):
        def __call__(self, losses):
            keep = super().__call__(losses)
            seen.append((losses.clone(), keep.clone()))
            return keep

    monkeypatch.setattr(hard_mining_hook, "HardExampleSelector", Recording)
    cfg = load_config(
        None,
        DIGITS
        + [
            "train.epochs=1",
            "train.m_per_class=16",
            "mitigation.hard_mining.candidates_per_batch=80",
        ],
    )
    _quiet(cfg, tmp_path / "run")
    assert len(seen) == 3  # one selection per step (train.batches_per_epoch=3)
    for losses, keep in seen:
        assert len(losses) == 80 and len(keep) == 40
        assert losses[keep].min() >= losses[np.setdiff1d(np.arange(80), keep.numpy())].max()


def test_resume_is_exact_with_mitigation(tmp_path):
    extra = [
        "data.group_attribute=colour",
        "sampling.name=batch_balanced",
        "mitigation.reweight.enabled=true",
        "mitigation.smote.enabled=true",
        "mitigation.hard_mining.candidates_per_batch=80",
        "mitigation.hard_mining.selection=proportional",
        "train.m_per_class=16",
        "train.batch_size=40",
    ]
    straight = load_config(None, DIGITS + extra + ["train.epochs=2"])
    _quiet(straight, tmp_path / "straight")
    _quiet(load_config(None, DIGITS + extra + ["train.epochs=1"]), tmp_path / "resumed")
    _quiet(straight, tmp_path / "resumed", resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_gaussian_reweighting_trains(tmp_path):
    cfg = load_config(
        None,
        GAUSSIAN
        + ["train.epochs=2", "data.group_attribute=group", "mitigation.reweight.enabled=true"],
    )
    result = _quiet(cfg, tmp_path / "run")
    assert np.isfinite(result["final"]["loss"])


def test_runs_from_before_the_mitigation_keys_still_resume(tmp_path):
    from fairmetric.train.checkpoint import load_checkpoint, save_checkpoint

    cfg = load_config(None, GAUSSIAN + ["train.epochs=1"])
    _quiet(cfg, tmp_path / "run")
    path = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(path)
    for key in ("sampling", "mitigation"):  # a checkpoint written before these sections existed
        del state["config"][key]
    del state["config"]["data"]["group_attribute"]
    state.pop("format", None)  # load_checkpoint's marker; save_checkpoint adds it back
    save_checkpoint(state, path)
    result = _quiet(load_config(None, GAUSSIAN + ["train.epochs=2"]), tmp_path / "run", resume=True)
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2]
