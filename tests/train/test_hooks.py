"""The built-in batch hooks on their own: built from their configs, state and old layouts."""

from __future__ import annotations

import torch

from fairmetric.losses import Batch
from fairmetric.train.hooks import HardMiningConfig, SmoteConfig, SmoteHook
from fairmetric.train.hooks.hard_mining import HardMiningHook


def test_hooks_are_off_by_default():
    assert HardMiningHook.from_config(HardMiningConfig(), context=None) is None
    assert SmoteHook.from_config(SmoteConfig(), context=None) is None
    assert not SmoteHook.needs_groups(SmoteConfig())
    assert SmoteHook.needs_groups(SmoteConfig(enabled=True))
    assert not SmoteHook.needs_groups(SmoteConfig(enabled=True, group_by="class"))


def _batch(n: int = 12) -> Batch:
    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1)
    labels = torch.arange(n) % 2
    groups = (torch.arange(n) // 2) % 2
    return Batch(e, e, e, labels, groups[:, None], ["group"], groups=groups)


def test_smote_streams_are_per_epoch_and_resumable():
    hook = SmoteHook(config=SmoteConfig(enabled=True, k_neighbors=1, target=2.0), seed=3)
    hook.set_epoch(1)
    a = _batch()
    stats = hook.after_forward(a)
    assert stats == {"smote_per_step": len(a.extra_embeddings)} and stats["smote_per_step"] > 0
    state = hook.shared_state()
    b = _batch()
    hook.after_forward(b)
    hook.set_epoch(1)  # the same epoch again: the same synthetic rows
    c = _batch()
    hook.after_forward(c)
    torch.testing.assert_close(a.extra_embeddings, c.extra_embeddings)
    other = SmoteHook(config=SmoteConfig(enabled=True, k_neighbors=1, target=2.0), seed=3)
    other.load_shared_state(state)  # continue after the first step
    d = _batch()
    other.after_forward(d)
    torch.testing.assert_close(b.extra_embeddings, d.extra_embeddings)


def test_old_checkpoint_layouts_move_under_hooks():
    gen = torch.Generator().manual_seed(1).get_state()
    ckpt = {
        "smote_rng": gen,
        "epoch_state": {"steps": 2, "synthetic": 7},
        "ranks": [{"rng": {}, "selector": gen}, {"rng": {}}],
    }
    SmoteHook.upgrade_checkpoint(ckpt)
    HardMiningHook.upgrade_checkpoint(ckpt)
    assert "smote_rng" not in ckpt and torch.equal(ckpt["hooks"]["smote"]["generator"], gen)
    assert ckpt["epoch_state"] == {"steps": 2, "stats": {"smote_per_step": 7}}
    assert torch.equal(ckpt["ranks"][0]["hooks"]["hard_mining"]["generator"], gen)
    assert "hooks" not in ckpt["ranks"][1]
