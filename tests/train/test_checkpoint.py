"""Tests for fairmetric.train.checkpoint: exact round trips, safe loading, atomic writes."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import fairmetric.utils
from fairmetric.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint

FORMAT = "fairmetric-checkpoint-v1"


def sample_state() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "epoch": 3,
        "best": 0.875,
        "name": "run-1",
        "nothing": None,
        "model": OrderedDict(
            [
                ("w", torch.randn(3, 4, generator=g)),
                ("b", torch.randn(4, generator=g).double()),
                ("steps", torch.tensor(17, dtype=torch.int64)),
                ("mask", torch.tensor([True, False])),
                ("half", torch.randn(2, generator=g).half()),
            ]
        ),
        "optim": {"state": {0: {"exp_avg": torch.zeros(3, 4)}}, "param_groups": [{"lr": 1e-3}]},
        "history": [1, 2.5, "three", [4, {"five": torch.ones(1)}], (6, 7)],
        "rng": torch.get_rng_state(),
    }


def assert_equal(a, b, where: str = "state") -> None:
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
        assert b.device.type == "cpu", where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name != CHECKPOINT_FILE]


def test_round_trip_is_exact(tmp_path):
    state = sample_state()
    path = save_checkpoint(state, tmp_path / "run" / CHECKPOINT_FILE)
    assert path == tmp_path / "run" / CHECKPOINT_FILE
    loaded = load_checkpoint(path)
    assert loaded.pop("format") == FORMAT
    assert_equal(state, loaded)
    assert temp_files(tmp_path / "run") == []


def test_save_overwrites(tmp_path):
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint({"epoch": 1}, path)
    save_checkpoint({"epoch": 2, "x": torch.ones(2)}, str(path))
    loaded = load_checkpoint(str(path))
    assert loaded["epoch"] == 2 and "x" in loaded
    assert temp_files(tmp_path) == []


def test_load_uses_weights_only(tmp_path, monkeypatch):
    path = save_checkpoint({"epoch": 1}, tmp_path / CHECKPOINT_FILE)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path)
    assert calls and all(c.get("weights_only") is True for c in calls)


class _Opener:
    """Unpickling this calls ``open(marker, "w")``: arbitrary code that leaves a trace."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _Plain:
    pass


@pytest.mark.parametrize("payload", ["code", "object", "module"])
def test_arbitrary_pickled_objects_are_rejected(tmp_path, payload):
    marker = tmp_path / "pwned"
    obj = {"code": _Opener(marker), "object": _Plain(), "module": torch.nn.Linear(2, 2)}[payload]
    path = tmp_path / CHECKPOINT_FILE
    torch.save({"format": FORMAT, "epoch": 1, "x": obj}, path)  # plain torch.save, full pickle
    with pytest.raises(ValueError, match="corrupt or not a torch checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_raw_pickle_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(pickle.dumps({"format": FORMAT, "x": _Opener(marker)}))
    with pytest.raises(ValueError, match="corrupt or not a torch checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path)  # a folder


@pytest.mark.parametrize("cut", [0, 1, 10, 100, "half", -1, -30])
def test_truncated_file(tmp_path, cut):
    path = save_checkpoint(sample_state(), tmp_path / CHECKPOINT_FILE)
    data = path.read_bytes()
    end = len(data) // 2 if cut == "half" else cut
    path.write_bytes(data[:end])
    with pytest.raises(ValueError, match="is corrupt or not a torch checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes(tmp_path, seed):
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="is corrupt or not a torch checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("text", ["epoch: 3\n", "h6:trnp}]q(3( [:59v"])
def test_text_file(tmp_path, text):
    path = tmp_path / CHECKPOINT_FILE
    path.write_text(text)
    with pytest.raises(ValueError, match="is corrupt or not a torch checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [
        {"model": {"w": torch.ones(2)}, "epoch": 1},
        {"format": "fairmetric-checkpoint-v0", "epoch": 1},
        [1, 2, 3],
        torch.ones(3),
    ],
    ids=["no-marker", "other-version", "list", "tensor"],
)
def test_valid_torch_file_without_the_marker(tmp_path, content):
    path = tmp_path / CHECKPOINT_FILE
    torch.save(content, path)
    with pytest.raises(ValueError, match="is not a fairmetric checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("fail_in", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, fail_in):
    path = save_checkpoint({"epoch": 1, "w": torch.arange(4)}, tmp_path / CHECKPOINT_FILE)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    if fail_in == "write":
        # the payload is half written when the failure hits
        real = fairmetric.utils.atomic_write

        def half_then_fail(target, write):
            def partial(f):
                f.write(b"PK\x03\x04 half a checkpoint")
                raise OSError("disk full")

            return real(target, partial)

        monkeypatch.setattr("fairmetric.utils.atomic_write", half_then_fail)
    elif fail_in == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    else:
        monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2, "w": torch.arange(8)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("state", [{"a": np.ones(2)}, {"format": "mine"}], ids=["numpy", "format"])
def test_save_refuses_what_load_cannot_read(tmp_path, state):
    path = tmp_path / CHECKPOINT_FILE
    try:
        save_checkpoint(state, path)
    except ValueError:
        return
    load_checkpoint(path)
