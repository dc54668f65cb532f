"""Run folders written before the plug-in registries still resume, exactly.

Until the registries, a checkpoint kept SMOTE's generator as ``smote_rng``, each rank's
hard-mining generator as ``selector``, the epoch's synthetic-row count as
``epoch_state.synthetic``, and its config switched reducers on in ``mitigation.reweight`` /
``objective.group_dro``. A checkpoint is rewritten into that layout here, then resumed: the result
must equal the uninterrupted run's, bit for bit.
"""

from __future__ import annotations

import pytest
import torch

from fairmetric.train import load_config
from fairmetric.train.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import GAUSSIAN
from tests.train.test_config_compat import _old_layout
from tests.train.test_trainer import _untimed
from tests.train.test_trainer_runtime import _quiet, crash_at_step

EXTRA = [
    "train.batch_size=16",
    "data.group_attribute=group",
    "mitigation.hard_mining.candidates_per_batch=32",
    "mitigation.hard_mining.selection=proportional",
    "mitigation.smote.enabled=true",
    "mitigation.smote.scope=batch",  # under m-per-class batches "class" adds no rows
    "train.epochs=2",
    "train.batches_per_epoch=6",
    "train.checkpoint_every=2",
]


def _to_old_layout(path, cfg) -> dict:
    """Rewrite the checkpoint at ``path`` as the previous version wrote it."""
    state = load_checkpoint(path)
    state.pop("format")
    hooks = state.pop("hooks")
    state["smote_rng"] = hooks["smote"]["generator"]
    for rank in state["ranks"]:
        rank["selector"] = rank.pop("hooks")["hard_mining"]["generator"]
    if "epoch_state" in state:
        stats = state["epoch_state"].pop("stats")
        state["epoch_state"]["synthetic"] = stats["smote_per_step"]
    state["config"] = _old_layout(cfg)
    save_checkpoint(state, path)
    return state


@pytest.mark.parametrize("reducer", ["reducer.name=group_weighted", "reducer.name=group_dro"])
def test_an_old_mid_epoch_checkpoint_resumes_exactly(tmp_path, monkeypatch, reducer):
    cfg = load_config(None, GAUSSIAN + EXTRA + [reducer])
    straight = _quiet(cfg, tmp_path / "straight")

    # epoch 2, step 3: one step after the step-2 checkpoint
    crash_at_step(monkeypatch, cfg, tmp_path / "resumed", 6 + 3)
    path = tmp_path / "resumed" / "checkpoint.pt"
    old = _to_old_layout(path, cfg)
    assert "reducer" not in old["config"] and old["epoch_state"]["synthetic"] > 0

    resumed = _quiet(cfg, tmp_path / "resumed", resume=True)
    assert _untimed(resumed["history"]) == _untimed(straight["history"])
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(path)
    for part in ("model", "objective"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert "smote_rng" not in b and set(b["hooks"]) == {"hard_mining", "smote"}


def test_the_hooks_state_is_in_the_checkpoint(tmp_path):
    cfg = load_config(None, GAUSSIAN + EXTRA + ["train.epochs=1"])
    _quiet(cfg, tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert set(state["hooks"]) == {"hard_mining", "smote"}
    assert torch.is_tensor(state["hooks"]["smote"]["generator"])  # shared by every process
    assert torch.is_tensor(state["ranks"][0]["hooks"]["hard_mining"]["generator"])  # per rank


@pytest.mark.parametrize(
    "overrides, key, old",
    [
        (["mitigation.smote.enabled=true"], "mitigation.smote.scope", "batch"),
        (["objective.parade.attributes=[group]"], "objective.parade.detach_features", False),
        (["objective.parade.attributes=[group]"], "objective.parade.balance", False),
        (["objective.adversary.attribute=group"], "objective.adversary.balanced", False),
        (["reducer.name=group_weighted"], "reducer.normalise", "all"),
    ],
)
def test_a_checkpoint_older_than_a_key_is_not_resumed_with_its_new_default(
    tmp_path, overrides, key, old
):
    """A run saved before issue 13 added ``key`` trained with the old behaviour: resuming it with
    today's default would silently change the method mid-run, so it is refused with the override
    that keeps it; with that override it resumes."""
    from fairmetric.errors import UserError
    from fairmetric.train.config import config_to_dict
    from fairmetric.train.state import check_resumable

    cfg = load_config(None, GAUSSIAN + overrides)
    raw = config_to_dict(cfg)
    *parents, last = key.split(".")
    section = raw
    for part in parents:
        section = section[part]
    del section[last]  # as the older version wrote it
    state = {"config": raw, "epoch": 1}
    with pytest.raises(UserError, match=rf"before {key} existed.*{key}={str(old).lower()}"):
        check_resumable(cfg, state, tmp_path)
    value = str(old).lower()
    check_resumable(load_config(None, GAUSSIAN + overrides + [f"{key}={value}"]), state, tmp_path)
    # a config that never had the method on is unaffected by the missing key
    plain = config_to_dict(load_config(None, GAUSSIAN))
    del plain["mitigation"]["smote"]["scope"], plain["objective"]["parade"]["balance"]
    check_resumable(load_config(None, GAUSSIAN), {"config": plain, "epoch": 1}, tmp_path)
