"""`fairmetric finetune`: downstream evaluation of a trained model from the command line."""

from __future__ import annotations

import json

import pytest

from fairmetric.cli import main
from fairmetric.train import load_config, train
from tests.conftest import DIGITS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "run"
    train(load_config(None, DIGITS + ["train.epochs=1"]), out, progress=False, log=lambda s: None)
    return out


def test_finetune_writes_a_per_group_report(run_dir, tmp_path, capsys):
    task = tmp_path / "task.yaml"
    task.write_text("classifier: knn\nclassifier_params: {k: 3}\nn_boot: 20\n")
    code = main(
        ["finetune", "--model", str(run_dir), "--task", str(task), "--balance", "attribute"]
        + ["--out", str(tmp_path / "ds"), "--no-progress", "--device", "cpu"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "downstream evaluation of" in out and "accuracy" in out and "colour" in out
    report = json.loads((tmp_path / "ds" / "report.json").read_text())
    meta = report["metadata"]
    assert meta["balance"] == "attribute" and meta["balance_attribute"] == "colour"
    assert meta["dataset"].startswith("colored_digits")  # from the run's own config
    assert "KNN" in json.dumps(meta["classifier"]) or "knn" in json.dumps(meta["classifier"])
    counts = meta["train_counts"]["colour"]
    assert counts["light"] == counts["dark"]  # the downstream training half is colour-balanced
    assert (tmp_path / "ds" / "report.html").read_text().count("fairmetric downstream evaluation")


def test_finetune_flags_override_the_task(run_dir, tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text("classifier: knn\nbalance: attribute\nn_boot: 0\n")
    code = main(
        ["finetune", "--model", str(run_dir), "--task", str(task), "--classifier", "probe"]
        + ["--balance", "none", "--out", str(tmp_path / "ds"), "--no-progress"]
    )
    assert code == 0
    meta = json.loads((tmp_path / "ds" / "report.json").read_text())["metadata"]
    assert meta["balance"] == "none" and meta["n_train"] == meta["n_train_before_balance"]
    assert (
        "probe" in json.dumps(meta["classifier"]).lower()
        or "logistic" in json.dumps(meta["classifier"]).lower()
    )


@pytest.mark.parametrize(
    "task_text, match",
    [("classifer: knn\n", "unknown task key"), ("- 1\n", "mapping of task keys")],
)
def test_finetune_bad_task(run_dir, tmp_path, capsys, task_text, match):
    task = tmp_path / "task.yaml"
    task.write_text(task_text)
    code = main(["finetune", "--model", str(run_dir), "--task", str(task), "--out", str(tmp_path)])
    assert code == 2
    assert match in capsys.readouterr().err


def test_finetune_missing_model(tmp_path, capsys):
    assert main(["finetune", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
