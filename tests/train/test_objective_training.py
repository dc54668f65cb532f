"""Objective-side methods in the training loop: PARADE, Group DRO, spectral decoupling, DANN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fairmetric.losses import GroupDROReducer, Objective
from fairmetric.models import embed_dataset, load_embedder
from fairmetric.train import build_data, load_config, train
from fairmetric.train.objectives import build_objective, build_training_loss
from fairmetric.train.trainer import build_model, training_groups
from tests.conftest import DIGITS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
METHODS = {
    "parade": ["parade/colour/metric", "parade/colour/decorrelation", "parade/colour/correlation"],
    "group_dro": [],
    "spectral": ["spectral"],
    "adversarial": ["adversary/colour", "adversary/colour/accuracy"],
}


def _quiet(cfg, out, **kw):
    return train(cfg, out, progress=False, log=lambda s: None, **kw)


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", list(METHODS))
def test_each_objective_config_trains_and_logs_its_terms(tmp_path, method):
    cfg = load_config(CONFIGS / f"colored_digits_{method}.yaml", DIGITS + ["train.epochs=1"])
    result = _quiet(cfg, tmp_path / method)
    last = _lines(tmp_path / method)[-1]
    assert np.isfinite(result["final"]["loss"])
    for name in METHODS[method]:
        assert np.isfinite(last["terms"][name]), name
    if method == "group_dro":
        q = last["group_dro"]["q"]
        assert set(q) == {"light", "dark"} and abs(sum(q.values()) - 1) < 1e-9
        assert q["dark"] != q["light"]  # q moved during the epoch
    else:
        assert "metric" in last["terms"]


def test_combined_methods_report_every_term(tmp_path):
    cfg = load_config(
        None,
        DIGITS
        + ["train.epochs=1", "data.group_attribute=colour", "sampling.name=batch_balanced"]
        + ["objective.group_dro.enabled=true", "objective.parade.attributes=[colour]"]
        + ["objective.spectral.coefficient=0.001"],
    )
    _quiet(cfg, tmp_path / "run")
    last = _lines(tmp_path / "run")[-1]
    assert {"metric", "parade/colour/metric", "parade/colour/decorrelation", "spectral"} <= set(
        last["terms"]
    )
    assert set(last["group_dro"]["q"]) == {"light", "dark"}


def test_exported_parade_model_is_the_embedder_only(tmp_path):
    parade = load_config(None, DIGITS + ["train.epochs=1", "objective.parade.attributes=[colour]"])
    baseline = load_config(None, DIGITS + ["train.epochs=1"])
    rp = _quiet(parade, tmp_path / "parade")
    rb = _quiet(baseline, tmp_path / "baseline")
    keys_p = set(load_file(Path(rp["model_dir"]) / "model.safetensors"))
    keys_b = set(load_file(Path(rb["model_dir"]) / "model.safetensors"))
    assert keys_p == keys_b  # same tensors as a baseline model: no attribute head, no ξ
    # the checkpoint still holds the heads (for resuming), the export does not
    state = torch.load(tmp_path / "parade" / "checkpoint.pt", weights_only=True)
    assert any(k.startswith("terms.0.head.") for k in state["objective"])
    assert not any("head.proj" in k or "decorrelation" in k for k in keys_p)
    # it loads and embeds exactly like a baseline model
    model = load_embedder(rp["model_dir"])
    assert type(model) is type(load_embedder(rb["model_dir"]))
    test = build_data(parade)["test"]
    emb = embed_dataset(model, test, device="cpu")
    assert emb.embeddings.shape == (len(test), parade.model.embedding_dim)


def test_resume_is_exact_with_parade_and_group_dro(tmp_path):
    extra = [
        "data.group_attribute=colour",
        "objective.group_dro.enabled=true",
        "objective.parade.attributes=[colour]",
        "objective.parade.xi_lr=0.001",
    ]
    straight = load_config(None, DIGITS + extra + ["train.epochs=2"])
    _quiet(straight, tmp_path / "straight")
    _quiet(load_config(None, DIGITS + extra + ["train.epochs=1"]), tmp_path / "resumed")
    _quiet(straight, tmp_path / "resumed", resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for part in ("model", "objective"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert "metric_loss.reducer.q" in a["objective"]
    assert (
        _lines(tmp_path / "straight")[-1]["group_dro"]
        == _lines(tmp_path / "resumed")[-1]["group_dro"]
    )


def _setup(overrides):
    cfg = load_config(None, DIGITS + overrides)
    train_set = build_data(cfg)["train"]
    groups = training_groups(cfg, train_set)
    loss = build_training_loss(cfg, train_set, groups, num_classes=5, log=lambda s: None)
    model = build_model(cfg, tuple(train_set.input_shape))
    return cfg, train_set, loss, model


def test_build_objective_terms_and_param_groups():
    cfg, train_set, loss, model = _setup(
        ["objective.parade.attributes=[colour]", "objective.parade.xi_lr=0.0005"]
        + ["objective.parade.decorrelation=adversarial"]
        + ["objective.adversary.attribute=colour", "objective.adversary.lr=0.01"]
    )
    obj = build_objective(cfg, train_set, loss, feature_dim=model.feature_dim)
    assert isinstance(obj, Objective) and len(obj.terms) == 2
    groups = obj.param_groups(1e-3)
    lrs = sorted(g["lr"] for g in groups)
    assert lrs == [0.0005, 1e-3, 0.01]  # ξ, the attribute head, the adversary
    covered = {id(p) for g in groups for p in g["params"]}
    assert covered == {id(p) for p in obj.parameters() if p.requires_grad}


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["objective.parade.attributes=[shade]"], r"'shade'.*colour"),
        (["objective.parade.attributes=[colour]", "objective.parade.rho=-1"], "rho"),
        (["objective.parade.attributes=[colour, colour]"], "twice"),
        (
            ["objective.parade.attributes=[colour]", "objective.parade.decorrelation=mine"],
            "adversarial or",
        ),
        (["objective.adversary.attribute=shade"], "shade"),
        (["objective.spectral.coefficient=-0.1"], "coefficient"),
    ],
)
def test_objective_bad_input(overrides, match):
    """Refused when the config is loaded (ranges: rho, coefficient) or when the objective is
    built (names, attributes)."""
    with pytest.raises(ValueError, match=match):
        cfg, train_set, loss, model = _setup(overrides)
        build_objective(cfg, train_set, loss, feature_dim=model.feature_dim)


def test_group_dro_with_a_group_absent_from_training_is_an_error(tmp_path):
    cfg = load_config(
        None,
        DIGITS
        + ["data.params={p_majority: 1.0, copies: 1, max_shift: 2}", "train.epochs=1"]
        + ["data.group_attribute=colour", "objective.group_dro.enabled=true"],
    )
    with pytest.raises(ValueError, match=r"'dark'.*no training samples"):
        _quiet(cfg, tmp_path / "run")


def test_group_dro_and_reweighting_exclude_each_other():
    with pytest.raises(ValueError, match="enable one of them"):
        _setup(
            ["data.group_attribute=colour", "objective.group_dro.enabled=true"]
            + ["mitigation.reweight.enabled=true"]
        )


def test_group_dro_reducer_is_installed_with_training_counts():
    cfg, train_set, loss, _ = _setup(
        ["data.group_attribute=colour", "objective.group_dro.enabled=true"]
    )
    assert isinstance(loss.reducer, GroupDROReducer)
    counts = np.bincount(train_set.attribute("colour"), minlength=2)
    np.testing.assert_array_equal(loss.reducer.group_counts.numpy(), counts)
    assert loss.reducer.base == "avg_nonzero"  # the triplet loss's own reduction
