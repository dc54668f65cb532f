"""In-loop batch hooks: plug-ins that act on every training batch, around the forward pass.

A hook is a :class:`BatchHook` subclass registered under the name of its config section,
``mitigation.<name>``. It declares its typed config (``config_class``) and how it is built from it
(``from_config(config, context)``, ``None`` when the config leaves it off). The trainer calls every
built hook at fixed points and never names one:

- :meth:`BatchHook.sampler_batch_size` -- how many samples the sampler draws per step;
- :meth:`BatchHook.set_epoch` -- at the start of every epoch (reseed per-epoch random streams);
- :meth:`BatchHook.before_forward` -- on this process's batch, before the training forward pass
  (hard-example selection keeps the hardest candidates);
- :meth:`BatchHook.after_forward` -- on the combined batch of all processes, after the forward
  pass and before the objective (SMOTE adds synthetic embeddings); it returns per-step numbers,
  logged every epoch as their mean per step;
- :meth:`BatchHook.state_log` -- extra entries of the epoch's log line;
- :meth:`BatchHook.shared_state` / :meth:`BatchHook.rank_state` -- what a mid-epoch checkpoint
  keeps so that a resumed run continues exactly (the same on every process / per process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from fairmetric.data.dataset import AttributeDataset
from fairmetric.losses.objective import Batch, Objective
from fairmetric.registry import Registry

__all__ = ["HOOKS", "BatchHook", "HookContext", "StepInput", "register_hook"]

#: ``mitigation.<name>`` → :class:`BatchHook` subclass
HOOKS: Registry[type] = Registry("batch hook")


def register_hook(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Class decorator: register a :class:`BatchHook` as ``mitigation.<name>``."""

    def add(cls: type) -> type:
        import dataclasses

        if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
            raise TypeError(f"batch hook {name!r} ({cls.__name__}) must declare config_class")
        return HOOKS.register(name, cls, replace=replace)

    return add


class StepInput(NamedTuple):
    """One process's batch as the loader yields it, on the device (labels already contiguous)."""

    x: torch.Tensor
    labels: torch.Tensor
    attributes: torch.Tensor
    groups: torch.Tensor | None

    def select(self, keep: torch.Tensor) -> StepInput:
        """The rows ``keep`` of every field."""
        g = self.groups[keep] if self.groups is not None else None
        return StepInput(self.x[keep], self.labels[keep], self.attributes[keep], g)


@dataclass
class HookContext:
    """What a hook may use to build itself.

    Attributes:
        model: the embedder (not wrapped for distributed training).
        objective: the objective (metric loss, miner, terms).
        train_set: the training split.
        groups: group code of every training sample, or ``None``.
        batch_size: ``train.batch_size`` (per process).
        seed: ``train.seed``.
        rank: this process's rank; world_size: the number of processes.
        precision: ``train.precision`` (the model's forward runs under autocast at it).
        normalize: ``model.normalize``.
        log: where to report what was built.
    """

    model: nn.Module
    objective: Objective
    train_set: AttributeDataset
    groups: np.ndarray | None
    batch_size: int
    seed: int
    rank: int = 0
    world_size: int = 1
    precision: str = "fp32"
    normalize: bool = True
    log: Callable[[str], None] = print


class BatchHook:
    """Base class of in-loop batch hooks; every method but :meth:`from_config` is optional."""

    #: the typed config of ``mitigation.<name>`` (a dataclass whose defaults leave the hook off)
    config_class: ClassVar[type]
    #: bench methods this hook defines: ``{method name: config overrides}``
    bench_methods: ClassVar[dict[str, list[str]]] = {}

    @classmethod
    def from_config(cls, config: Any, context: HookContext) -> BatchHook | None:
        """The hook ``config`` asks for, or ``None`` when it is off."""
        raise NotImplementedError(f"{cls.__name__} does not define from_config")

    @classmethod
    def needs_groups(cls, config: Any) -> bool:
        """Whether this config needs ``data.group_attribute`` (the training groups)."""
        return False

    @classmethod
    def upgrade_checkpoint(cls, checkpoint: dict[str, Any]) -> None:
        """Move this hook's state in a checkpoint of an older layout to ``hooks`` (in place)."""

    def sampler_batch_size(self, batch_size: int) -> int:
        """Samples the sampler draws per step when the step trains on ``batch_size``."""
        return batch_size

    def set_epoch(self, epoch: int) -> None:
        """Called at the start of every epoch."""

    def before_forward(self, batch: StepInput) -> StepInput:
        """This process's batch, before the forward pass; returns the batch to train on."""
        return batch

    def after_forward(self, batch: Batch) -> dict[str, float]:
        """The combined batch after the forward pass (change it in place); per-step numbers."""
        return {}

    def state_log(self) -> dict[str, Any]:
        """Extra per-epoch log entries."""
        return {}

    def shared_state(self) -> dict[str, Any]:
        """State that is the same on every process, restored on a mid-epoch resume."""
        return {}

    def load_shared_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`shared_state`."""

    def rank_state(self) -> dict[str, Any]:
        """This process's own state, restored on a mid-epoch resume with as many processes."""
        return {}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`rank_state`."""
