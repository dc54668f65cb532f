"""TensorBoard logging: the event files hold metrics.jsonl's numbers; auto / true / false."""

from __future__ import annotations

import json
import sys

import pytest

from fairmetric.train import load_config, train
from fairmetric.train.tensorboard import TENSORBOARD_DIR, TensorBoardLogger, flatten_record
from tests.conftest import GAUSSIAN


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def _flat_by_hand(record, prefix=""):
    """The numbers of a record with their key paths, by explicit recursion (the reference)."""
    out = {}
    for key, value in record.items():
        if prefix == "" and key in ("epoch", "world_size"):
            continue
        if isinstance(value, dict):
            out.update(_flat_by_hand(value, prefix + key + "/"))
        elif type(value) in (int, float):
            out[prefix + key] = float(value)
    return out


def test_a_one_epoch_run_writes_the_numbers_of_metrics_jsonl(tmp_path):
    out = tmp_path / "run"
    train(load_config(None, GAUSSIAN + ["train.epochs=1"]), out, progress=False, log=lambda s: 0)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scalars = _scalars(out / TENSORBOARD_DIR)
    expected = {}
    for record in records:
        for tag, value in _flat_by_hand(record).items():
            expected.setdefault(tag, {})[record["epoch"]] = value
    assert set(scalars) == set(expected)
    for tag in ("loss", "metrics/recall@1/overall"):
        assert tag in scalars, sorted(scalars)
    assert any("/by_group/" in t for t in scalars) and any("/gap/" in t for t in scalars)
    for tag, by_step in expected.items():
        assert set(scalars[tag]) == set(by_step), tag
        for step, value in by_step.items():  # TensorBoard stores float32
            assert scalars[tag][step] == pytest.approx(value, rel=1e-6, abs=1e-30), tag
    assert scalars["loss"].keys() == {1}  # the untrained model (epoch 0) has no loss
    assert set(scalars["metrics/recall@1/overall"]) == {0, 1}


def test_false_writes_nothing(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(None, GAUSSIAN + ["train.epochs=1", "train.tensorboard=false"])
    train(cfg, out, progress=False, log=lambda s: 0)
    assert not (out / TENSORBOARD_DIR).exists()


def test_true_without_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ValueError, match=r"pip install 'fairmetric\[tensorboard\]'"):
        TensorBoardLogger(tmp_path, True)
    assert not TensorBoardLogger(tmp_path, "auto").active  # auto: quietly off


def test_bad_setting_is_refused_at_load():
    with pytest.raises(ValueError, match="train.tensorboard must be auto, true or false"):
        load_config(None, GAUSSIAN + ["train.tensorboard=sometimes"])


def test_other_ranks_never_write(tmp_path):
    logger = TensorBoardLogger(tmp_path, True, enabled=False)
    logger.log({"epoch": 1, "loss": 1.0})
    logger.close()
    assert not (tmp_path / TENSORBOARD_DIR).exists()


def test_flatten_skips_nulls_bools_and_bookkeeping():
    record = {"epoch": 2, "world_size": 1, "loss": None, "ok": True, "m": {"a": 1, "b": None}}
    assert dict(flatten_record(record)) == {"m/a": 1.0}
