"""A cell's config: per-method overrides, derived batch settings, configs found from anywhere."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fairmetric
from fairmetric.bench import (
    DATASETS,
    METHODS,
    REAL_DATASETS,
    Cell,
    cell_config,
    method_overrides,
    run_suite,
)
from fairmetric.train.config import CONFIG_DIR
from tests.conftest import GAUSSIAN

ROOT = Path(__file__).resolve().parents[2]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

# -- configs -------------------------------------------------------------------------------------


def test_cell_configs_per_method():
    digits = {m: cell_config(Cell("colored_digits", m, 3)) for m in METHODS}
    assert digits["smote"].mitigation.smote.enabled and digits["smote"].train.batch_size == 80
    assert digits["parade"].objective.parade.attributes == ["colour"]
    assert digits["baseline"].data.group_attribute is None
    assert all(c.train.seed == 3 for c in digits.values())

    g = {m: cell_config(Cell("gaussian", m, 0), overrides=GAUSSIAN, epochs=2) for m in METHODS}
    assert all(c.train.epochs == 2 and c.data.name == "gaussian" for c in g.values())
    assert g["reweight"].reducer.name == "group_weighted" and g[
        "reweight"
    ].data.group_attribute == ("group")
    assert g["batch_balanced"].sampling.name == "batch_balanced"
    assert g["epoch_balanced"].sampling.name == "epoch_balanced"
    assert g["group_dro"].reducer.name == "group_dro"
    assert g["spectral"].objective.spectral.coefficient > 0
    assert g["adversarial"].objective.adversary.attribute == "group"
    # hard mining scores twice the (overridden) batch with twice the (overridden) m per class
    hm = g["hard_mining"]
    assert (hm.mitigation.hard_mining.candidates_per_batch, hm.train.m_per_class) == (64, 8)
    assert g["baseline"].mitigation.hard_mining.candidates_per_batch is None
    sweep = cell_config(Cell("gaussian", "parade", 0, rho=30.0))
    assert sweep.objective.parade.rho == 30.0

    real = cell_config(Cell("celeba", "reweight", 0), data_roots={"celeba": "/data/celeba"})
    assert real.data.root == "/data/celeba" and real.data.group_attribute == "Male"


def test_method_overrides_fill_attribute_and_batch():
    base = cell_config(Cell("gaussian", "baseline", 0), overrides=GAUSSIAN)
    parade = method_overrides("gaussian", "parade", base)
    assert parade == [o.replace("{attr}", "group") for o in METHODS["parade"]]
    assert parade[0] == "objective.parade.attributes=[group]"
    hm = method_overrides("gaussian", "hard_mining", base)
    assert hm == [
        f"mitigation.hard_mining.candidates_per_batch={2 * base.train.batch_size}",
        f"train.m_per_class={2 * base.train.m_per_class}",
    ]
    with pytest.raises(ValueError, match="unknown method 'dropout'"):
        method_overrides("gaussian", "dropout", base)


# -- configs ship with the package ----------------------------------------------------------------


def test_configs_come_from_the_package():
    package_configs = Path(fairmetric.__file__).resolve().parent / "configs"
    assert CONFIG_DIR == package_configs
    assert inspect.signature(cell_config).parameters["config_dir"].default == CONFIG_DIR
    assert inspect.signature(run_suite).parameters["config_dir"].default == CONFIG_DIR
    for name, spec in DATASETS.items():
        assert (CONFIG_DIR / spec.config).is_file(), name
        if spec.method_configs:
            stem = spec.config.removesuffix("_baseline.yaml")
            for method in spec.method_configs:
                assert (CONFIG_DIR / f"{stem}_{method}.yaml").is_file(), (name, method)


def test_configs_found_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    roots = {name: tmp_path for name in REAL_DATASETS}
    for dataset in DATASETS:
        for method in METHODS:
            if method == "oracle" and not DATASETS[dataset].oracle:
                with pytest.raises(ValueError, match="has no oracle arm"):
                    cell_config(Cell(dataset, method, 1), data_roots=roots)
                continue
            cfg = cell_config(Cell(dataset, method, 1), data_roots=roots)
            assert cfg.train.seed == 1 and cfg.name == f"bench_{dataset}_{method}"


@pytest.mark.slow
def test_wheel_ships_the_configs(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"  # a clean copy: no stale build/ folder can leak into the wheel
    shutil.copytree(ROOT / "fairmetric", src / "fairmetric", ignore=_IGNORE)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["--disable-pip-version-check", "-w", str(tmp_path / "wheel"), str(src)],
        check=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("fairmetric-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"fairmetric/configs/{p.name}" for p in CONFIG_DIR.glob("*.yaml")}
    assert shipped and shipped <= names
    assert {f"fairmetric/bench/{p.name}" for p in (ROOT / "fairmetric/bench").glob("*.py")} <= names
    assert not any(n.startswith("configs/") for n in names)


# -- variants, the oracle and combined methods --------------------------------------------------


def test_identities_variants_and_oracle():
    base = cell_config(Cell("identities_mlp", "baseline", 0))
    assert base.data.name == "identities" and base.model.backbone == "mlp"
    assert base.data.params["p_majority"] == 0.95 and base.data.params["appearance"] == "swap"
    oracle = cell_config(Cell("identities_mlp", "oracle", 0))
    assert oracle.data.params["p_majority"] == 0.5
    # the oracle changes the data, nothing else
    assert {**oracle.data.params, "p_majority": 0.95} == base.data.params
    assert oracle.model == base.model and oracle.loss == base.loss
    person = cell_config(Cell("identities_mlp_person", "oracle", 0))
    assert person.data.params["attribute_level"] == "identity"
    assert person.data.params["p_majority"] == 0.5
    assert cell_config(Cell("identities_null", "baseline", 0)).data.params["appearance"] == "none"
    cnn = cell_config(Cell("identities_intrinsic", "baseline", 0))
    assert cnn.data.params["appearance"] == "low_contrast" and cnn.model.backbone == "test_resnet"


def test_combined_method_applies_both_parts():
    both = cell_config(Cell("identities_mlp", "epoch_balanced+parade", 2))
    assert both.sampling.name == "epoch_balanced" and both.data.group_attribute == "palette"
    assert both.objective.parade.attributes == ["palette"]
    assert both.train.seed == 2 and both.name == "bench_identities_mlp_epoch_balanced_parade"
    # the derived overrides of a part still follow the resolved batch
    hm = cell_config(Cell("identities_mlp", "hard_mining+epoch_balanced", 0))
    assert hm.mitigation.hard_mining.candidates_per_batch == 2 * hm.train.batch_size
    assert hm.sampling.name == "epoch_balanced"
    # a per-method YAML of coloured digits combines with another method's overrides
    digits = cell_config(Cell("colored_digits", "epoch_balanced+parade", 0))
    assert digits.sampling.name == "epoch_balanced" and digits.objective.parade.attributes


@pytest.mark.parametrize(
    "method, match",
    [
        ("epoch_balanced+dropout", "unknown method 'dropout'"),
        ("parade+parade", "names a part twice"),
        ("baseline+parade", "not combinable"),
        ("oracle+parade", "not combinable"),
        ("parade+", "empty part"),
        ("epoch_balanced+batch_balanced", "disagree on sampling.name"),
    ],
)
def test_bad_combinations(method, match):
    with pytest.raises(ValueError, match=match):
        cell_config(Cell("identities_mlp", method, 0))


def test_dataset_without_oracle_is_refused():
    with pytest.raises(ValueError, match="'celeba' has no oracle arm"):
        cell_config(Cell("celeba", "oracle", 0), data_roots={"celeba": "/data"})
