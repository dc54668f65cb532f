"""One training step: the forward pass as one module (what DDP wraps), and the epoch's running sums."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from fairmetric.losses import Batch, Objective
from fairmetric.models.embedder import Embedder
from fairmetric.train.distributed import DistributedContext, gather_batch
from fairmetric.train.hooks import BatchHook
from fairmetric.utils import autocast

__all__ = ["EpochTotals", "TrainStep", "forward_batch"]


def forward_batch(
    model: Embedder,
    x: torch.Tensor,
    labels: torch.Tensor,
    attributes: torch.Tensor,
    attribute_names: list[str],
    groups: torch.Tensor | None,
    *,
    precision: str = "fp32",
) -> Batch:
    """Run the embedder on a batch, keeping the features and raw embedding the terms need.

    The backbone and head run under autocast at ``precision``; what the objective sees is float32.
    """
    with autocast(x.device, precision):
        h = model.features(x)
        raw = model.project(h)
    h, raw = h.float(), raw.float()
    return Batch(
        features=h,
        raw=raw,
        embeddings=model.finalize(raw),
        labels=labels,
        attributes=attributes,
        attribute_names=attribute_names,
        groups=groups,
    )


class TrainStep(nn.Module):
    """The forward pass of one training step, as one module (what DDP wraps).

    Embeds this process's batch (:func:`forward_batch`), gathers the combined batch of all
    processes (:func:`~fairmetric.train.distributed.gather_batch`; a no-op in one process), runs
    every hook's :meth:`~fairmetric.train.hooks.BatchHook.after_forward` on it (SMOTE adds its
    synthetic rows there), and returns the objective's ``(loss, parts)`` with the parts as
    detached tensors, plus the hooks' per-step numbers (``{name: value}``).
    """

    def __init__(
        self,
        model: Embedder,
        objective: Objective,
        *,
        attribute_names: list[str],
        ctx: DistributedContext | None = None,
        precision: str = "fp32",
        hooks: Sequence[BatchHook] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.attribute_names = attribute_names
        self.ctx = ctx or DistributedContext()
        self.precision = precision
        self.hooks = list(hooks)

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        attributes: torch.Tensor,
        groups: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
        batch = forward_batch(
            self.model,
            x,
            labels,
            attributes,
            self.attribute_names,
            groups,
            precision=self.precision,
        )
        batch = gather_batch(batch, self.ctx, features=len(self.objective.terms) > 0)
        stats: dict[str, float] = {}
        for hook in self.hooks:
            stats.update(hook.after_forward(batch))
        loss, parts = self.objective(batch, sync=False)
        return loss, parts, stats


class EpochTotals:
    """Per-epoch sums of the loss, its parts and the hooks' per-step numbers, kept on the device
    (no per-step host sync); :meth:`state` is what a mid-epoch checkpoint keeps."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.loss: Any = float(state.get("loss", 0.0))
        self.parts: dict[str, Any] = dict(state.get("parts", {}))
        self.steps = int(state.get("steps", 0))
        self.stats: dict[str, Any] = dict(state.get("stats", {}))
        self.images = int(state.get("images", 0))
        self.seconds = float(state.get("seconds", 0.0))

    def add(
        self,
        loss: torch.Tensor,
        parts: dict[str, torch.Tensor],
        stats: dict[str, float],
        n: int,
    ) -> None:
        self.loss = self.loss + loss.detach()
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0.0) + value
        for name, value in stats.items():
            self.stats[name] = self.stats.get(name, 0) + value
        self.steps += 1
        self.images += int(n)

    def check_finite(self, epoch: int | None = None) -> None:
        """Raise when the loss or a term went NaN/inf since the epoch began (one host sync);
        ``epoch`` (0-based) is named in the message as the log counts it (from 1)."""
        if math.isfinite(float(self.loss)):
            return
        bad = [k for k, v in self.parts.items() if not math.isfinite(float(v))]
        which = "this epoch" if epoch is None else f"epoch {epoch + 1}"
        raise FloatingPointError(
            f"the training loss became {float(self.loss)} within the first {self.steps} steps of "
            f"{which} (non-finite term: {', '.join(bad) or 'total'}); lower the learning rate "
            "(optim.lr) or that term's weight, or train in fp32 (train.precision=fp32)"
        )

    def mean_loss(self) -> float:
        return float(self.loss) / max(self.steps, 1)

    def log_entries(self) -> dict[str, Any]:
        """The epoch's log entries: ``terms`` (mean per step of every part, when there is more
        than the metric loss) and the mean per step of every hook number."""
        steps = max(self.steps, 1)
        out: dict[str, Any] = {}
        if len(self.parts) > 1:  # the metric loss and at least one fairness term
            out["terms"] = {k: float(v) / steps for k, v in self.parts.items()}
        for name, value in self.stats.items():
            out[name] = value / steps
        return out

    def state(self) -> dict[str, Any]:
        return {
            "loss": float(self.loss),
            "parts": {k: float(v) for k, v in self.parts.items()},
            "steps": self.steps,
            "stats": dict(self.stats),
            "images": self.images,
            "seconds": self.seconds,
        }
