"""In-training SMOTE as the batch hook ``mitigation.smote``.

After the forward pass, synthetic embeddings interpolated within the (class × group) cells of the
combined batch join the metric loss's batch (see :func:`fairmetric.sampling.smote_batch`); the
mean number per step is logged as ``smote_per_step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fairmetric.bounds import bounded
from fairmetric.losses.objective import Batch
from fairmetric.sampling import smote_batch
from fairmetric.train.hooks.base import BatchHook, HookContext, register_hook

__all__ = ["SmoteConfig", "SmoteHook"]

GROUP_BY = ("class", "class_attribute")
_STREAM = 0x5307  # separates SMOTE's per-epoch seed from the other (seed, epoch) streams


@dataclass
class SmoteConfig:
    """In-training SMOTE: synthetic embeddings interpolated within (class × group) cells of the
    batch are added to the metric loss's batch. ``target``: ``auto`` tops every cell up to the
    reference cell, a number ``r`` to ``ceil(r × reference)``; ``scope``: the reference is the
    largest cell of the same class (``class``: balance the groups within each class) or of the
    batch (``batch``: before issue 13, which over-sampled the majority under m-per-class
    batches, see :func:`~fairmetric.sampling.smote_batch`)."""

    enabled: bool = False
    group_by: str = "class_attribute"
    k_neighbors: int = bounded(3, ge=1, le=1000)
    target: str | float = "auto"
    ratio_mode: str = "uniform"
    scope: str = "class"


@register_hook("smote")
class SmoteHook(BatchHook):
    """Adds SMOTE's synthetic rows to every combined batch (the same on every process).

    Args:
        config: the ``mitigation.smote`` section.
        seed: ``train.seed`` (each epoch's stream is seeded from ``(seed, epoch)``).
        normalize: L2-normalise the synthetic embeddings (as the model's).
    """

    config_class = SmoteConfig
    bench_methods = {"smote": ["data.group_attribute={attr}", "mitigation.smote.enabled=true"]}

    @classmethod
    def needs_groups(cls, config: SmoteConfig) -> bool:
        return config.enabled and config.group_by != "class"

    @classmethod
    def from_config(cls, config: SmoteConfig, context: HookContext) -> SmoteHook | None:
        if not config.enabled:
            return None
        if config.group_by not in GROUP_BY:
            raise ValueError(
                "mitigation.smote.group_by must be class or class_attribute in training "
                f"(synthetic embeddings need a class label), got {config.group_by!r}"
            )
        return cls(config=config, seed=context.seed, normalize=context.normalize)

    @classmethod
    def upgrade_checkpoint(cls, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("smote_rng") is not None:
            hooks = checkpoint.setdefault("hooks", {})
            hooks["smote"] = {"generator": checkpoint.pop("smote_rng")}
        epoch_state = checkpoint.get("epoch_state")
        if epoch_state is not None and "synthetic" in epoch_state:
            epoch_state.setdefault("stats", {})["smote_per_step"] = epoch_state.pop("synthetic")

    def __init__(self, *, config: SmoteConfig, seed: int, normalize: bool = True) -> None:
        self.config = config
        self.seed = int(seed)
        self.normalize = normalize
        self.generator = torch.Generator()  # the same on every rank: SMOTE sees the whole batch

    def set_epoch(self, epoch: int) -> None:
        state = np.random.SeedSequence([self.seed, int(epoch), _STREAM]).generate_state(1)
        self.generator.manual_seed(int(state[0]))

    def after_forward(self, batch: Batch) -> dict[str, float]:
        sm, g = self.config, batch.groups
        s_emb, s_y, s_g = smote_batch(
            batch.embeddings,
            batch.labels,
            g if sm.group_by == "class_attribute" else None,
            k_neighbors=sm.k_neighbors,
            group_by=sm.group_by,
            ratio_mode=sm.ratio_mode,
            target=sm.target,
            generator=self.generator,
            normalize=self.normalize,
            scope=sm.scope,
        )
        batch.extra_embeddings, batch.extra_labels = s_emb, s_y
        if g is not None:
            batch.extra_groups = s_g if s_g is not None else g.new_zeros(len(s_emb))
        return {"smote_per_step": len(s_emb)}

    def shared_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_shared_state(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])
