"""Training-time augmentation: random crops and flips of the training split only, seeded."""

from __future__ import annotations

import random

import pytest
import torch

from fairmetric.data.augment import AugmentedDataset, crop_params
from fairmetric.data.dataset import TensorAttributeDataset
from fairmetric.train import load_config, train
from fairmetric.train.builders import build_data
from fairmetric.train.checkpoint import load_checkpoint
from fairmetric.train.trainer import Trainer
from tests.conftest import DIGITS, GAUSSIAN


def _images(n: int = 6, side: int = 12) -> TensorAttributeDataset:
    g = torch.Generator().manual_seed(0)
    return TensorAttributeDataset(
        torch.rand(n, 3, side, side, generator=g), labels=list(range(n)), attributes=None
    )


def test_each_epoch_crops_differently_and_the_same_seed_repeats():
    data = _images()
    a, b = AugmentedDataset(data, seed=3), AugmentedDataset(data, seed=3)
    first = a.load_input(0)
    assert first.shape == data.load_input(0).shape
    assert not torch.equal(first, data.load_input(0))  # augmented
    assert torch.equal(first, a.load_input(0))  # the same draw within an epoch
    assert torch.equal(first, b.load_input(0))  # the same seed: the same input
    a.set_epoch(1)
    assert not torch.equal(first, a.load_input(0))  # another epoch: another crop
    assert not torch.equal(a.load_input(0), AugmentedDataset(data, seed=4).load_input(0))


def test_crop_params_follow_timms_algorithm():
    """timm's get_params draws from the module-level random; the same draws from a seeded
    random.Random give the same crop as timm's own function."""
    from PIL import Image
    from timm.data.transforms import RandomResizedCropAndInterpolation

    img = Image.new("RGB", (40, 30))
    for seed in range(20):
        random.seed(seed)
        expected = RandomResizedCropAndInterpolation.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
        assert crop_params(random.Random(seed), 40, 30) == expected
    # the whole image when scale and ratio allow only that
    assert crop_params(random.Random(0), 16, 16, (1.0, 1.0), (1.0, 1.0)) == (0, 0, 16, 16)


def test_full_scale_without_flip_is_the_identity_and_flip_one_mirrors():
    data = _images()
    same = AugmentedDataset(data, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)
    assert torch.allclose(same.load_input(2), data.load_input(2), atol=1e-6)
    mirror = AugmentedDataset(data, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0)
    assert torch.allclose(mirror.load_input(2), data.load_input(2).flip(-1), atol=1e-6)


def test_trainer_augments_the_training_split_only(tmp_path):
    cfg = load_config(None, DIGITS + ["train.epochs=1", "data.augment=true"])
    trainer = Trainer(cfg, tmp_path / "run", _single(), progress=False, log=lambda s: 0)
    plain = build_data(cfg)
    assert isinstance(trainer.train_set, AugmentedDataset)
    assert not isinstance(trainer.test_set, AugmentedDataset)
    # the test split loads exactly the unaugmented inputs
    assert torch.equal(trainer.test_set.load_input(0), plain["test"].load_input(0))
    x0 = trainer.train_set.load_input(0)
    assert not torch.equal(x0, plain["train"].load_input(0))
    trainer.train_set.set_epoch(1)
    assert not torch.equal(x0, trainer.train_set.load_input(0))  # two epochs differ
    off = Trainer(
        load_config(None, DIGITS + ["train.epochs=1"]),
        tmp_path / "off",
        _single(),
        progress=False,
        log=lambda s: 0,
    )
    assert not isinstance(off.train_set, AugmentedDataset)  # default: no augmentation


def _single():
    from fairmetric.train.distributed import DistributedContext

    return DistributedContext()  # one process on the CPU


def test_augmented_training_repeats_and_resumes_exactly(tmp_path):
    extra = ["data.augment=true", "data.augment_scale=[0.5, 1.0]"]
    straight = load_config(None, DIGITS + extra + ["train.epochs=2"])
    quiet = {"progress": False, "log": lambda s: 0}
    train(straight, tmp_path / "a", **quiet)
    train(straight, tmp_path / "b", **quiet)
    train(load_config(None, DIGITS + extra + ["train.epochs=1"]), tmp_path / "r", **quiet)
    train(straight, tmp_path / "r", resume=True, **quiet)
    a, b, r = (load_checkpoint(tmp_path / k / "checkpoint.pt")["model"] for k in "abr")
    for key in a:
        assert torch.equal(a[key], b[key]), key  # the same seed: the same augmented batches
        assert torch.equal(a[key], r[key]), key  # resumed: bit-identical
    plain = load_checkpoint_model(tmp_path, DIGITS + ["train.epochs=2"], quiet)
    assert any(not torch.equal(a[k], plain[k]) for k in a)  # augmentation changed training


def test_a_mid_epoch_resume_draws_the_same_crops(tmp_path, monkeypatch):
    """Ctrl-C two steps into epoch 2 (a checkpoint there), --resume: the weights equal a run
    trained straight through."""
    import signal

    from fairmetric.cli import main
    from tests.train.test_run_safety import _signal_at_step

    run = [*DIGITS, "data.augment=true", "train.epochs=2", "--no-progress"]
    assert main(["train", *run, "--out", str(tmp_path / "straight")]) == 0
    _signal_at_step(monkeypatch, 3 + 2, signal.SIGINT)  # DIGITS: 3 steps per epoch
    assert main(["train", *run, "--out", str(tmp_path / "cut")]) == 130
    saved = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert (saved["epoch"], saved["step"]) == (1, 2)
    monkeypatch.undo()
    assert main(["train", *run, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def load_checkpoint_model(tmp_path, overrides, quiet):
    train(load_config(None, overrides), tmp_path / "plain", **quiet)
    return load_checkpoint(tmp_path / "plain" / "checkpoint.pt")["model"]


def test_persistent_workers_see_the_epoch_and_draw_what_the_main_process_draws():
    from torch.utils.data import DataLoader

    data = AugmentedDataset(_images(), seed=1)
    loader = DataLoader(data, batch_size=6, num_workers=1, persistent_workers=True)
    for epoch in (0, 1):
        data.set_epoch(epoch)
        (x, _, _) = next(iter(loader))
        expected = torch.stack([data.load_input(i) for i in range(6)])
        assert torch.equal(x, expected), epoch


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="data.augment_scale must be"):
        load_config(None, ["data.augment_scale=[0.5, 2]"])
    vectors = TensorAttributeDataset(torch.zeros(4, 8), labels=[0, 1, 2, 3], attributes=None)
    with pytest.raises(ValueError, match="applies to image datasets"):
        AugmentedDataset(vectors)
    cfg = load_config(None, GAUSSIAN + ["data.augment=true"])
    with pytest.raises(ValueError, match="set data.augment=false"):
        train(cfg, tmp_path / "run", progress=False, log=lambda s: 0)
