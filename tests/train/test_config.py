"""Tests for fairmetric.train.config: YAML configs, overrides, validation and saving."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import timm
import torch
import yaml

from fairmetric.train.config import (
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from fairmetric.train.factories import build_loss, build_miner

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CONFIG_FILES = sorted(CONFIGS.glob("*.yaml"))

# every settable key, spelled out by hand (the error message must list them all)
VALID_KEYS = """
name
data.name data.root data.image_size data.split data.test_fraction data.params data.imbalance
data.eval_attributes data.group_attribute data.augment data.augment_scale
model.backbone model.embedding_dim model.normalize model.pretrained_weights model.backbone_kwargs
loss.name loss.params
miner.name miner.params
optim.lr optim.weight_decay optim.loss_lr
train.epochs train.batch_size train.m_per_class train.batches_per_epoch train.seed train.device
train.num_workers train.eval_batch_size train.recall_k train.min_group_size
train.precision train.channels_last train.compile train.compile_mode train.pin_memory
train.persistent_workers train.prefetch_factor train.checkpoint_every train.sync_batchnorm
train.backend train.log_every train.tensorboard
sampling.name sampling.proportions sampling.mode
mitigation.hard_mining.candidates_per_batch mitigation.hard_mining.selection
mitigation.hard_mining.tau
mitigation.smote.enabled mitigation.smote.group_by mitigation.smote.k_neighbors
mitigation.smote.target mitigation.smote.ratio_mode mitigation.smote.scope
mitigation.group_mixup.enabled mitigation.group_mixup.p mitigation.group_mixup.alpha
objective.parade.attributes objective.parade.attribute_dim objective.parade.loss.name
objective.parade.loss.params objective.parade.miner.name objective.parade.miner.params
objective.parade.weight objective.parade.rho objective.parade.decorrelation
objective.parade.xi_hidden objective.parade.xi_lr objective.parade.detach_features
objective.parade.balance
objective.spectral.coefficient objective.spectral.offsets
objective.adversary.attribute objective.adversary.weight objective.adversary.alpha
objective.adversary.hidden objective.adversary.lr objective.adversary.balanced
reducer.name reducer.beta reducer.base reducer.normalise reducer.eta reducer.C
""".split()


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- files ---------------------------------------------------------------------------------------


def test_defaults_equal_the_colored_digits_baseline_yaml():
    from fairmetric.data.registry import COLORED_DIGITS_DEFAULTS

    from_file = config_to_dict(load_config(CONFIGS / "colored_digits_baseline.yaml"))
    defaults = config_to_dict(ExperimentConfig())
    # data.params starts empty for every dataset; the YAML spells out coloured digits' own
    # defaults, which its builder applies when they are not given
    assert defaults["data"]["params"] == {}
    assert from_file["data"]["params"] == COLORED_DIGITS_DEFAULTS
    from_file["data"]["params"] = {}
    assert from_file == defaults
    assert config_to_dict(load_config()) == defaults
    # the YAML spells the defaults out rather than leaning on them
    raw = yaml.safe_load((CONFIGS / "colored_digits_baseline.yaml").read_text())
    assert set(raw) == {"name", "data", "model", "loss", "miner", "optim", "train"}


def test_another_dataset_does_not_inherit_coloured_digits_params(tmp_path):
    cfg = load_config(write(tmp_path, "data:\n  name: folder\n  root: /somewhere\n"))
    assert cfg.data.params == {}
    assert load_config(None, ["data.name=gaussian"]).data.params == {}


def test_the_default_and_the_spelled_out_coloured_digits_build_the_same_data():
    from fairmetric.train.trainer import build_data

    over = ["data.image_size=16"]
    a = build_data(load_config(None, over))
    b = build_data(load_config(CONFIGS / "colored_digits_baseline.yaml", over))
    for split in ("train", "test"):
        assert len(a[split]) == len(b[split])
        assert (a[split].labels == b[split].labels).all()
        assert torch.equal(a[split][0][0], b[split][0][0])


def test_there_are_config_files():
    assert len(CONFIG_FILES) >= 5


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.stem for p in CONFIG_FILES])
def test_every_shipped_config_loads_and_its_parts_exist(path):
    cfg = load_config(path)
    raw = yaml.safe_load(path.read_text())
    assert cfg.name == raw["name"] == path.stem
    # every value written in the file arrives in the config (numbers compared as numbers)
    resolved = config_to_dict(cfg)

    def check(written, got, prefix):
        for key, value in written.items():
            if isinstance(value, dict) and isinstance(got[key], dict) and key != "params":
                check(value, got[key], f"{prefix}{key}.")
            else:
                assert got[key] == value, f"{prefix}{key}"

    check({k: v for k, v in raw.items() if isinstance(v, dict)}, resolved, "")
    # the named parts exist: a timm model (or mlp), a PML loss and miner that accept the params
    assert cfg.model.backbone == "mlp" or timm.is_model(cfg.model.backbone)
    build_loss(cfg.loss.name, cfg.loss.params, num_classes=10, embedding_size=8)
    build_miner(cfg.miner.name, cfg.miner.params)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path)  # a folder is not a file


def test_shipped_configs_resolve_by_name_from_any_folder(tmp_path, monkeypatch):
    from fairmetric.train.config import CONFIG_DIR, resolve_config_path, shipped_configs

    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the package's own are used
    assert CONFIG_DIR.parent.name == "fairmetric"  # inside the package, so wheels carry them
    assert "colored_digits_baseline" in shipped_configs()
    for spelling in [
        "colored_digits_baseline",
        "colored_digits_baseline.yaml",
        "configs/colored_digits_baseline.yaml",
    ]:
        assert resolve_config_path(spelling) == CONFIG_DIR / "colored_digits_baseline.yaml"
    assert load_config("gaussian_baseline").data.name == "gaussian"
    with pytest.raises(FileNotFoundError, match="colored_digits_baseline"):  # names the choices
        load_config("colored_digits_basline")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config("elsewhere/colored_digits_baseline.yaml")  # a path elsewhere is not a name


def test_invalid_yaml(tmp_path):
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_config(write(tmp_path, "train: {epochs: 3\n"))


@pytest.mark.parametrize("text,kind", [("- 1\n- 2\n", "list"), ("3\n", "int"), ("hi\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    with pytest.raises(ValueError, match=f"must hold a mapping of config sections, got {kind}"):
        load_config(write(tmp_path, text))


def test_empty_file_and_empty_sections_give_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == ExperimentConfig()
    assert load_config(write(tmp_path, "# only a comment\n")) == ExperimentConfig()
    assert load_config(write(tmp_path, "loss:\ntrain: null\n")) == ExperimentConfig()


def test_partial_file_keeps_other_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  epochs: 2\nmodel:\n  embedding_dim: 16\n"))
    expected = ExperimentConfig()
    expected.train.epochs = 2
    expected.model.embedding_dim = 16
    assert cfg == expected


def test_params_mapping_in_a_file_replaces_the_default_one(tmp_path):
    cfg = load_config(write(tmp_path, "data:\n  params: {copies: 3}\n"))
    assert cfg.data.params == {"copies": 3}


def test_file_section_must_be_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="loss: expected a mapping, got 3"):
        load_config(write(tmp_path, "loss: 3\n"))


@pytest.mark.parametrize(
    "text,key",
    [
        ("train:\n  epochs: many\n", "train.epochs"),
        ("model:\n  normalize: 1\n", "model.normalize"),
        ("optim:\n  lr: fast\n", "optim.lr"),
        ("train:\n  recall_k: 1\n", "train.recall_k"),
        ("data:\n  params: [1, 2]\n", "data.params"),
        ("name: 7\n", "name"),
    ],
)
def test_type_errors_in_files_name_the_key(tmp_path, text, key):
    with pytest.raises(ValueError, match=rf"^{key}: expected"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("text", ["trian:\n  epochs: 3\n", "train:\n  epoch: 3\n"])
def test_unknown_keys_in_files_list_the_valid_keys(tmp_path, text):
    with pytest.raises(ValueError, match="unknown config key") as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert message.endswith("valid keys are: " + ", ".join(VALID_KEYS))


def test_unknown_nested_key_is_quoted_whole(tmp_path):
    with pytest.raises(
        ValueError, match="unknown config key 'train.epoch' \\(did you mean 'train.epochs'\\?\\);"
    ):
        load_config(write(tmp_path, "train:\n  epoch: 3\n"))


# -- overrides -----------------------------------------------------------------------------------


def test_overrides_of_nested_keys():
    cfg = load_config(None, ["train.epochs=3", "model.backbone=test_vit", "name=run1"])
    expected = ExperimentConfig(name="run1")
    expected.train.epochs = 3
    expected.model.backbone = "test_vit"
    assert cfg == expected


def test_overrides_apply_on_top_of_a_file(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 2\n  seed: 5\nloss:\n  params: {margin: 0.3}\n")
    cfg = load_config(path, ["train.epochs=7"])
    assert (cfg.train.epochs, cfg.train.seed, cfg.loss.params) == (7, 5, {"margin": 0.3})


def test_params_subkey_overrides_merge_into_the_defaults():
    cfg = load_config(
        None,
        [
            "miner.params.margin=0.5",
            "data.params.copies=3",
            "loss.params.swap=true",
            "model.backbone_kwargs.drop_rate=0.1",
        ],
    )
    assert cfg.miner.params == {"margin": 0.5, "type_of_triplets": "semihard"}
    assert cfg.data.params == {"copies": 3}  # coloured digits' other defaults: its builder's
    assert cfg.loss.params == {"margin": 0.2, "swap": True}
    assert cfg.model.backbone_kwargs == {"drop_rate": 0.1}


def test_params_subkey_override_merges_into_a_files_params(tmp_path):
    path = write(tmp_path, "loss:\n  name: MultiSimilarityLoss\n  params: {alpha: 2, beta: 40}\n")
    cfg = load_config(path, ["loss.params.alpha=3"])
    assert cfg.loss.params == {"alpha": 3, "beta": 40}


def test_imbalance_subkey_override_creates_the_mapping():
    cfg = load_config(None, ["data.imbalance.attribute=colour", "data.imbalance.share=0.1"])
    assert cfg.data.imbalance == {"attribute": "colour", "share": 0.1}


def test_whole_mapping_override_replaces_it():
    cfg = load_config(None, ["loss.params={margin: 0.4}", "data.params={}"])
    assert cfg.loss.params == {"margin": 0.4}
    assert cfg.data.params == {}


def test_override_values_are_parsed_as_yaml():
    cfg = load_config(
        None,
        [
            "train.batches_per_epoch=12",
            "train.recall_k=[1, 2, 4]",
            "model.normalize=false",
            "optim.loss_lr=0.01",
            "data.eval_attributes=[colour]",
            "data.root=",  # empty value: null
            "model.pretrained_weights=null",
            "loss.params.note=hello world",
            "name=a=b",  # only the first '=' splits
            " train.seed = 4",  # spaces around the key and the value
        ],
    )
    assert cfg.train.batches_per_epoch == 12
    assert cfg.train.recall_k == [1, 2, 4]
    assert cfg.model.normalize is False
    assert cfg.optim.loss_lr == 0.01
    assert cfg.data.eval_attributes == ["colour"]
    assert cfg.data.root is None
    assert cfg.model.pretrained_weights is None
    assert cfg.loss.params["note"] == "hello world"
    assert cfg.name == "a=b"
    assert cfg.train.seed == 4


def test_optional_values_can_be_reset_to_null():
    cfg = load_config(None, ["train.batches_per_epoch=5", "miner.name=null"])
    assert cfg.train.batches_per_epoch == 5
    assert cfg.miner.name is None
    assert load_config(None, ["train.batches_per_epoch=null"]).train.batches_per_epoch is None


def test_int_widens_to_float():
    cfg = load_config(None, ["optim.lr=1", "data.test_fraction=0", "optim.loss_lr=2"])
    for value, expected in [
        (cfg.optim.lr, 1.0),
        (cfg.data.test_fraction, 0.0),
        (cfg.optim.loss_lr, 2.0),
    ]:
        assert type(value) is float and value == expected


@pytest.mark.parametrize("how", ["override", "file"])
def test_scientific_notation_floats(tmp_path, how):
    if how == "override":
        cfg = load_config(None, ["optim.lr=1e-3"])
    else:
        cfg = load_config(write(tmp_path, "optim:\n  lr: 1e-3\n"))
    assert cfg.optim.lr == pytest.approx(0.001)


@pytest.mark.parametrize(
    "override,key,what",
    [
        ("train.epochs=abc", "train.epochs", "an integer"),
        ("train.epochs=1.5", "train.epochs", "an integer"),
        ("train.epochs=true", "train.epochs", "an integer"),  # bool is not an int here
        ("optim.lr=true", "optim.lr", "a number"),
        ("optim.lr=[1]", "optim.lr", "a number"),
        ("model.normalize=1", "model.normalize", "true/false"),
        ("model.normalize=yes please", "model.normalize", "true/false"),
        ("data.name=3", "data.name", "a string"),
        ("data.root=3", "data.root", "a string"),
        ("loss.name=null", "loss.name", "a string"),
        ("train.recall_k=1", "train.recall_k", "a list"),
        ("train.recall_k=[1, a]", r"train.recall_k\[1\]", "an integer"),
        ("loss.params=3", "loss.params", "a mapping"),
        ("data.imbalance=[1]", "data.imbalance", "a mapping"),
    ],
)
def test_override_type_errors_name_the_key(override, key, what):
    with pytest.raises(ValueError, match=rf"^{key}: expected {what}, got"):
        load_config(None, [override])


@pytest.mark.parametrize(
    "override", ["train.epoch=3", "trian.epochs=3", "train=3", "train.epochs.x=3", "lr=0.1"]
)
def test_unknown_override_key_lists_the_valid_keys(override):
    key = override.split("=")[0]
    with pytest.raises(ValueError, match=f"unknown config key '{key}'") as info:
        load_config(None, [override])
    assert str(info.value).endswith("valid keys are: " + ", ".join(VALID_KEYS))


def test_override_below_a_non_mapping_param():
    with pytest.raises(ValueError, match="'margin' is not a section"):
        load_config(None, ["loss.params.margin.low=1"])


@pytest.mark.parametrize("override", ["train.epochs", "", "train.epochs:3"])
def test_override_without_equals(override):
    with pytest.raises(ValueError, match="is not of the form key=value"):
        load_config(None, [override])


def test_override_value_that_is_not_yaml():
    with pytest.raises(ValueError, match="cannot parse the value"):
        load_config(None, ["train.recall_k=[1, 2"])


def test_apply_overrides_does_not_modify_its_input():
    data = config_to_dict(ExperimentConfig())
    before = config_to_dict(ExperimentConfig())
    out = apply_overrides(data, ["loss.params.margin=0.9", "train.epochs=1"])
    assert data == before
    assert out["loss"]["params"]["margin"] == 0.9 and out["train"]["epochs"] == 1


@pytest.mark.parametrize("how", ["file", "override"])
def test_switching_the_loss_does_not_inherit_the_old_params(tmp_path, how):
    if how == "file":
        path = write(tmp_path, "loss:\n  name: ContrastiveLoss\nminer:\n  name: BatchHardMiner\n")
        cfg = load_config(path)
    else:
        cfg = load_config(None, ["loss.name=ContrastiveLoss", "miner.name=BatchHardMiner"])
    assert cfg.loss.params == {} and cfg.miner.params == {}


# -- dicts and saving ----------------------------------------------------------------------------


def test_config_from_dict_validates_like_files():
    assert config_from_dict({}) == ExperimentConfig()
    assert config_from_dict(None) == ExperimentConfig()
    with pytest.raises(ValueError, match="config: expected a mapping"):
        config_from_dict([1])
    with pytest.raises(ValueError, match="^optim: expected a mapping"):
        config_from_dict({"optim": "adam"})


def test_default_mutables_are_not_shared():
    a, b = ExperimentConfig(), ExperimentConfig()
    a.loss.params["margin"] = 9.0
    a.train.recall_k.append(5)
    assert b.loss.params == {"margin": 0.2} and b.train.recall_k == [1]


def test_save_then_load_round_trips(tmp_path):
    cfg = load_config(
        CONFIGS / "gaussian_baseline.yaml",
        [
            "data.imbalance={attribute: group, share: 0.1, minority_value: 1}",
            "data.eval_attributes=[group]",
            "optim.loss_lr=0.005",
            "train.recall_k=[1, 4]",
            "train.batches_per_epoch=7",
            "miner.name=null",
            "data.root=/some/where",
        ],
    )
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert path == tmp_path / "run" / "config.yaml"
    loaded = load_config(path)
    assert loaded == cfg
    assert config_to_dict(loaded) == config_to_dict(cfg)
    # plain YAML, sections in declaration order, nothing left behind
    raw = yaml.safe_load(path.read_text())
    assert list(raw) == [f.name for f in dataclasses.fields(ExperimentConfig)]
    assert os.listdir(tmp_path / "run") == ["config.yaml"]


def test_save_overwrites(tmp_path):
    path = tmp_path / "c.yaml"
    save_config(load_config(None, ["train.epochs=1"]), path)
    save_config(load_config(None, ["train.epochs=2"]), str(path))
    assert load_config(path).train.epochs == 2
    assert os.listdir(tmp_path) == ["c.yaml"]
