"""How the loop runs: mid-epoch resume, precision, channels-last, compile, DataLoader settings.

None of these may change *what* is trained beyond float tolerance (workers, layout) or beyond
what the numeric format explains (bf16/fp16), and an interrupted run continues bit-exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairmetric.train import load_config, train
from fairmetric.train.checkpoint import load_checkpoint
from fairmetric.train.trainer import TrainStep
from tests.conftest import DIGITS, GAUSSIAN
from tests.train.test_trainer import _untimed


def _quiet(cfg, out, **kw):
    return train(cfg, out, progress=False, log=lambda s: None, **kw)


def _weights(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.pt")["model"]


MINING_SMOTE = [
    "train.batch_size=16",
    "mitigation.hard_mining.candidates_per_batch=32",
    "mitigation.hard_mining.selection=proportional",
    "data.group_attribute=group",
    "mitigation.smote.enabled=true",
]


class _Crash(RuntimeError):
    pass


def crash_at_step(monkeypatch, cfg, out, step: int) -> None:
    """Train ``cfg`` into ``out`` and crash it at the ``step``-th training step (counted over
    epochs), as a killed process would stop; the trainer is left unpatched afterwards."""
    forward = TrainStep.forward
    calls = {"n": 0}

    def crashing(self, *args):
        calls["n"] += 1
        if calls["n"] == step:
            raise _Crash("simulated crash")
        return forward(self, *args)

    monkeypatch.setattr(TrainStep, "forward", crashing)
    with pytest.raises(_Crash):
        _quiet(cfg, out)
    monkeypatch.setattr(TrainStep, "forward", forward)


@pytest.mark.parametrize("extra", [[], MINING_SMOTE], ids=["plain", "mining_smote"])
def test_mid_epoch_resume_is_exact(tmp_path, monkeypatch, extra):
    overrides = (
        GAUSSIAN
        + extra
        + [
            "train.epochs=2",
            "train.batches_per_epoch=6",
            "train.checkpoint_every=2",
        ]
    )
    cfg = load_config(None, overrides)
    _quiet(cfg, tmp_path / "straight")

    # epoch 2, step 3: one step after the step-2 checkpoint
    crash_at_step(monkeypatch, cfg, tmp_path / "resumed", 6 + 3)
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert (saved["epoch"], saved["step"], saved["global_batches"]) == (1, 2, 2)
    assert saved["epoch_state"]["steps"] == 2

    result = _quiet(cfg, tmp_path / "resumed", resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["history"]
    assert _untimed(result["history"]) == _untimed(straight)
    assert result["history"][-1]["images"] == 6 * load_config(None, overrides).train.batch_size


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(tmp_path, precision):
    base = DIGITS + ["train.epochs=1"]
    fp32 = _quiet(load_config(None, base), tmp_path / "fp32")
    low = _quiet(load_config(None, base + [f"train.precision={precision}"]), tmp_path / precision)
    l32, llow = fp32["final"]["loss"], low["final"]["loss"]
    assert np.isfinite(llow) and llow != l32  # autocast really ran in the lower precision
    assert llow == pytest.approx(l32, rel=0.1)
    scaler = load_checkpoint(tmp_path / precision / "checkpoint.pt")["scaler"]
    assert ("scale" in scaler) == (precision == "fp16")  # only fp16 needs loss scaling


def test_channels_last_and_loader_workers_leave_training_unchanged(tmp_path):
    base = DIGITS + ["train.epochs=1"]
    plain = _quiet(load_config(None, base), tmp_path / "plain")
    fast = _quiet(
        load_config(
            None,
            base
            + [
                "train.channels_last=true",
                "train.num_workers=2",
                "train.prefetch_factor=3",
                "train.persistent_workers=true",
                "train.pin_memory=false",
            ],
        ),
        tmp_path / "fast",
    )
    assert fast["final"]["loss"] == pytest.approx(plain["final"]["loss"], rel=1e-4)
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "fast")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)


def test_compile_trains_the_same_model(tmp_path):
    pytest.importorskip("torch._inductor")
    base = GAUSSIAN + ["train.epochs=1", "train.batches_per_epoch=2"]
    eager = _quiet(load_config(None, base), tmp_path / "eager")
    compiled = _quiet(load_config(None, base + ["train.compile=true"]), tmp_path / "compiled")
    assert compiled["final"]["loss"] == pytest.approx(eager["final"]["loss"], rel=1e-4)
    a, b = _weights(tmp_path / "eager"), _weights(tmp_path / "compiled")
    assert a.keys() == b.keys()  # compiling in place keeps the checkpoint's keys
    # Adam normalises each gradient, so a gradient that is pure rounding noise (a bias followed
    # by BatchNorm has none in exact arithmetic) becomes a step of +lr or -lr whose sign the
    # rounding picks: eager and compiled kernels (which round differently, and differently on
    # AVX2 and AVX-512 CPUs) can then differ by 2 lr per step, 4e-3 after 2 steps. The weights,
    # whose gradients are real, agree far more closely; a miscompiled model would be far off.
    for key in a:
        tight = key.endswith("weight") and a[key].dtype.is_floating_point
        atol = 1e-5 if tight else 2 * 2 * 1e-3
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol, msg=key)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.precision=fp8", "precision must be one of fp32, bf16, fp16"),
        ("train.prefetch_factor=2", "prefetch_factor needs train.num_workers > 0"),
        ("train.log_every=0", "train.log_every must be >= 1"),
        ("train.checkpoint_every=0", "train.checkpoint_every must be >= 1 or null"),
        ("train.backend=mpi", "train.backend must be one of auto, nccl, gloo"),
    ],
)
def test_bad_runtime_settings_are_clear_errors(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):  # out-of-range numbers: when loaded
        _quiet(load_config(None, GAUSSIAN + [override]), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_diverging_loss_stops_before_a_checkpoint_is_written(tmp_path):
    cfg = load_config(
        None,
        GAUSSIAN
        + [
            "train.epochs=1",
            "optim.lr=1e30",
            "loss.name=ContrastiveLoss",
            "miner.name=null",
            "train.log_every=1",
        ],
    )
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        _quiet(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_resume_may_change_how_but_not_what_it_trains(tmp_path):
    cfg = load_config(None, GAUSSIAN + ["train.epochs=1"])
    _quiet(cfg, tmp_path / "run")
    faster = load_config(
        None, GAUSSIAN + ["train.epochs=2", "train.num_workers=1", "train.log_every=5"]
    )
    assert _quiet(faster, tmp_path / "run", resume=True)["final"]["epoch"] == 2
    other = load_config(None, GAUSSIAN + ["train.epochs=3", "optim.lr=0.5"])
    with pytest.raises(ValueError, match="differs from the checkpoint's in optim.lr"):
        _quiet(other, tmp_path / "run", resume=True)


def test_hard_mining_scores_in_float32_under_mixed_precision(tmp_path, monkeypatch):
    import fairmetric.train.hooks.hard_mining as trainer_module

    seen = []
    real = trainer_module.per_sample_losses

    def recording(loss_fn, embeddings, *args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), embeddings.dtype))
        return real(loss_fn, embeddings, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "per_sample_losses", recording)
    cfg = load_config(
        None,
        GAUSSIAN
        + MINING_SMOTE[:3]
        + ["train.epochs=1", "train.batches_per_epoch=2", "train.precision=bf16"],
    )
    result = _quiet(cfg, tmp_path / "run")
    assert np.isfinite(result["final"]["loss"])
    assert seen and all(s == (False, torch.float32) for s in seen)
