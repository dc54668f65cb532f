"""Loss-based hard-example selection as the batch hook ``mitigation.hard_mining``.

Each step the sampler draws ``candidates_per_batch`` samples; the hook scores them without gradient
(per-sample loss of the metric loss, with its miner) and the step trains on the ``train.batch_size``
hardest (see :mod:`fairmetric.sampling.hard_mining`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fairmetric.bounds import bounded
from fairmetric.losses import check_sample_indexed, per_sample_losses
from fairmetric.sampling import HardExampleSelector
from fairmetric.train.hooks.base import BatchHook, HookContext, StepInput, register_hook
from fairmetric.utils import autocast

__all__ = ["HardMiningConfig", "HardMiningHook"]


@dataclass
class HardMiningConfig:
    """Loss-based hard-example selection: score ``candidates_per_batch`` samples, train on the
    ``train.batch_size`` hardest (``selection: top``) or drawn ∝ loss^tau (``proportional``)."""

    candidates_per_batch: int | None = bounded(None, ge=1, le=1_000_000)
    selection: str = "top"
    tau: float = bounded(1.0, gt=0)


@register_hook("hard_mining")
class HardMiningHook(BatchHook):
    """Keeps the hardest ``train.batch_size`` of ``candidates_per_batch`` samples each step.

    Args:
        selector: the :class:`~fairmetric.sampling.HardExampleSelector`.
        context: the model, objective and precision to score the candidates with.
    """

    config_class = HardMiningConfig
    bench_methods = {
        "hard_mining": [
            "mitigation.hard_mining.candidates_per_batch={candidates}",
            "train.m_per_class={m2}",
        ]
    }

    @classmethod
    def from_config(cls, config: HardMiningConfig, context: HookContext) -> HardMiningHook | None:
        if config.candidates_per_batch is None:
            return None
        check_sample_indexed(context.objective.metric_loss, "mitigation.hard_mining")
        selector = HardExampleSelector(
            config.candidates_per_batch,
            context.batch_size,
            selection=config.selection,
            tau=config.tau,
            seed=context.seed + 7919 * context.rank,  # ranks draw independently
        )
        return cls(selector=selector, context=context)

    @classmethod
    def upgrade_checkpoint(cls, checkpoint: dict[str, Any]) -> None:
        for rank in checkpoint.get("ranks") or []:
            if rank.get("selector") is not None:
                rank.setdefault("hooks", {})["hard_mining"] = {"generator": rank.pop("selector")}

    def __init__(self, *, selector: HardExampleSelector, context: HookContext) -> None:
        self.selector = selector
        self.model = context.model
        self.objective = context.objective
        self.precision = context.precision

    def sampler_batch_size(self, batch_size: int) -> int:
        return self.selector.candidates

    def set_epoch(self, epoch: int) -> None:
        self.selector.set_epoch(epoch)

    def before_forward(self, batch: StepInput) -> StepInput:
        loss_fn, miner = self.objective.metric_loss, self.objective.miner
        with torch.no_grad():
            with autocast(batch.x.device, self.precision):  # the model only; losses in float32
                cand = self.model(batch.x)
            cand = cand.float()
            y = batch.labels
            scores = per_sample_losses(
                loss_fn, cand, y, miner(cand, y) if miner is not None else None
            )
        return batch.select(self.selector(scores))

    def rank_state(self) -> dict[str, Any]:
        return {"generator": self.selector.generator.get_state()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None:
            self.selector.generator.set_state(state["generator"])
