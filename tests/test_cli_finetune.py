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


def test_finetune_min_group_size_keeps_small_groups_out_of_the_gap(run_dir, tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text("classifier: knn\nn_boot: 0\nmin_group_size: 1\n")
    base = ["finetune", "--model", str(run_dir), "--task", str(task), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "all")]) == 0
    every = json.loads((tmp_path / "all" / "report.json").read_text())
    counts = every["metrics"]["accuracy"]["by_group"]["colour"]
    sizes = sorted(e["count"] for e in counts.values())
    assert every["metadata"]["min_group_size"] == 1
    # one above the smallest colour group: it is still reported, but out of the gap
    flag = str(sizes[0] + 1)
    assert main([*base, "--min-group-size", flag, "--out", str(tmp_path / "some")]) == 0
    some = json.loads((tmp_path / "some" / "report.json").read_text())
    assert some["metadata"]["min_group_size"] == sizes[0] + 1  # the flag beats the task
    acc = some["metrics"]["accuracy"]
    assert acc["by_group"]["colour"] == counts  # the values are unchanged
    assert list(acc["excluded_groups"]["colour"]) == [
        g for g, e in counts.items() if e["count"] == sizes[0]
    ]
    assert every["metrics"]["accuracy"]["excluded_groups"]["colour"] == {}
    assert every["metrics"]["accuracy"]["difference"]["colour"]["value"] is not None
    assert acc["difference"]["colour"]["value"] is None  # one colour left: no gap


@pytest.mark.parametrize("value", ["0", "-3"])
def test_finetune_bad_min_group_size_exits_2(run_dir, tmp_path, capsys, value):
    argv = ["finetune", "--model", str(run_dir), "--out", str(tmp_path / "ds")]
    assert main([*argv, "--min-group-size", value]) == 2
    err = capsys.readouterr().err
    assert "min_group_size (--min-group-size) must be >= 1" in err and "Traceback" not in err
