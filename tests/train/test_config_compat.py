"""Config sections assembled from the plug-in registries, and older spellings still accepted:
``mitigation.reweight`` / ``objective.group_dro`` translate into the ``reducer`` section."""

from __future__ import annotations

import copy
import pickle

import pytest
import yaml

from fairmetric.train.config import (
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from fairmetric.train.state import check_resumable, config_differences

LEGACY_REWEIGHT = """
name: old
data: {group_attribute: colour}
mitigation:
  reweight: {enabled: true, beta: 0.5, base: mean}
"""
LEGACY_DRO = """
name: old
data: {group_attribute: colour}
objective:
  group_dro: {enabled: true, eta: 0.1, C: 1.0}
"""


def _old_layout(cfg: ExperimentConfig) -> dict:
    """``cfg`` as a run folder of the previous layout wrote it (reducers in their own sections)."""
    old = copy.deepcopy(config_to_dict(cfg))
    reducer = old.pop("reducer")
    rw = {"enabled": False, "beta": 1.0, "base": "auto"}
    dro = {"enabled": False, "eta": 0.01, "C": 0.0, "base": "auto"}
    params = {k: v for k, v in reducer.items() if k != "name"}
    if reducer["name"] == "group_weighted":
        rw = {**rw, "enabled": True, **params}
    elif reducer["name"] == "group_dro":
        dro = {**dro, "enabled": True, **params}
    old["mitigation"] = {"reweight": rw, **old["mitigation"]}
    objective = old["objective"]
    old["objective"] = {"parade": objective["parade"], "group_dro": dro, **objective}
    return old


def test_legacy_sections_in_files_become_the_reducer_section(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(LEGACY_REWEIGHT)
    cfg = load_config(path)
    assert (cfg.reducer.name, cfg.reducer.beta, cfg.reducer.base) == ("group_weighted", 0.5, "mean")
    assert "reweight" not in config_to_dict(cfg)["mitigation"]
    path.write_text(LEGACY_DRO)
    cfg = load_config(path)
    assert (cfg.reducer.name, cfg.reducer.eta, cfg.reducer.C) == ("group_dro", 0.1, 1.0)
    assert cfg.reducer.config().eta == 0.1  # the reducer's own typed config
    assert "group_dro" not in config_to_dict(cfg)["objective"]


@pytest.mark.parametrize(
    "legacy, new",
    [
        (["mitigation.reweight.enabled=true"], ["reducer.name=group_weighted"]),
        (
            ["mitigation.reweight.enabled=true", "mitigation.reweight.beta=0.5"],
            ["reducer.name=group_weighted", "reducer.beta=0.5"],
        ),
        (
            ["objective.group_dro.enabled=true", "objective.group_dro.eta=0.5"],
            ["reducer.name=group_dro", "reducer.eta=0.5"],
        ),
        (["objective.group_dro.eta=0.5"], []),  # a disabled reducer's parameter: no effect
        (["mitigation.reweight.enabled=false"], []),
    ],
)
def test_legacy_overrides_equal_the_reducer_overrides(legacy, new):
    assert load_config(None, legacy) == load_config(None, new)


def test_legacy_overrides_update_or_remove_the_reducer_a_file_selects():
    dro = load_config("colored_digits_group_dro", ["objective.group_dro.eta=0.5"])
    assert (dro.reducer.name, dro.reducer.eta) == ("group_dro", 0.5)
    off = load_config("colored_digits_group_dro", ["objective.group_dro.enabled=false"])
    assert off.reducer.name is None
    # switching it off the other way round leaves the selected reducer alone
    kept = load_config("colored_digits_group_dro", ["mitigation.reweight.enabled=false"])
    assert kept.reducer.name == "group_dro"


def test_reducer_name_switch_drops_the_old_parameters():
    cfg = load_config("colored_digits_group_dro", ["reducer.name=group_weighted"])
    assert config_to_dict(cfg)["reducer"] == {
        "name": "group_weighted",
        "beta": 1.0,
        "base": "auto",
        "normalise": "active",
    }
    cfg = load_config("colored_digits_reweight", ["reducer.name=null"])
    assert config_to_dict(cfg)["reducer"] == {"name": None}


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            ["objective.group_dro.enabled=true", "mitigation.reweight.enabled=true"],
            "both set the metric loss's reducer; enable one of them",
        ),
        (["reducer.name=group_dro", "mitigation.reweight.enabled=true"], "enable one of them"),
        (["reducer.name=median"], r"unknown reducer.name 'median'; valid names: group_weighted"),
        (["reducer.name=group_weighted", "reducer.eta=0.1"], "reducer 'group_weighted' takes"),
        (["reducer.beta=0.5"], "reducer.name is null; set reducer.name"),
        (
            ["mitigation.reweight.enabled=maybe"],
            r"mitigation.reweight.enabled: expected true/false",
        ),
        (["mitigation.reweight.gamma=1"], "unknown config key 'mitigation.reweight.gamma'"),
    ],
)
def test_bad_reducer_keys_name_the_key(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config(None, overrides)


def test_unknown_legacy_key_in_a_file(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("objective:\n  group_dro: {enabled: true, step: 1}\n")
    with pytest.raises(ValueError, match=r"'objective.group_dro.step'.*takes enabled, eta, C"):
        load_config(path)


@pytest.mark.parametrize(
    "name", ["colored_digits_baseline", "colored_digits_reweight", "colored_digits_group_dro"]
)
def test_old_run_configs_translate_without_differences(tmp_path, name):
    cfg = load_config(name)
    old = _old_layout(cfg)
    assert "reducer" not in old and "reweight" in old["mitigation"]
    assert config_differences(config_to_dict(config_from_dict(old)), config_to_dict(cfg)) == []
    check_resumable(cfg, {"config": old}, tmp_path)  # no error: the same run


def test_a_changed_reducer_still_blocks_resuming(tmp_path):
    cfg = load_config("colored_digits_group_dro")
    old = _old_layout(load_config("colored_digits_group_dro", ["reducer.eta=0.5"]))
    with pytest.raises(ValueError, match="differs from the checkpoint's in reducer.eta"):
        check_resumable(cfg, {"config": old}, tmp_path)


def test_saved_config_layout(tmp_path):
    """The resolved config keeps its section order; the reducer section comes last."""
    cfg = load_config("colored_digits_parade")
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    sections = [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert sections == [
        "name",
        "data",
        "model",
        "loss",
        "miner",
        "optim",
        "train",
        "sampling",
        "mitigation",
        "objective",
        "reducer",
    ]
    assert list(config_to_dict(cfg)["objective"])[:3] == ["parade", "spectral", "adversary"]
    assert list(config_to_dict(cfg)["mitigation"])[:2] == ["hard_mining", "smote"]


@pytest.mark.parametrize("name", ["colored_digits_group_dro", "colored_digits_parade"])
def test_configs_pickle_and_copy(name):
    """Assembled sections are rebuilt from the registries (a config crosses process borders)."""
    cfg = load_config(name)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert copy.deepcopy(cfg) == cfg
