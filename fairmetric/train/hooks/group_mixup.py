r"""Intra-class, cross-group input mixup as the batch hook ``mitigation.group_mixup``.

LISA's *intra-label* selective augmentation (Yao et al., "Improving Out-of-Distribution Robustness
via Selective Augmentation", ICML 2022) for metric learning: before the forward pass, a row
:math:`i` of the batch whose class also appears in another group of the batch is, with probability
``p``, replaced by

.. math:: \tilde x_i = \lambda x_i + (1 - \lambda) x_j, \qquad \lambda \sim
    \mathrm{Beta}(\alpha, \alpha),

with :math:`j` drawn uniformly among the batch's rows of the **same class and another group**. The
label stays the class's (both endpoints are the same identity), so the metric loss sees renderings
in between the groups and learns what the groups share; the row keeps its own attribute codes.
Unlike SMOTE it mixes *across* groups within a class, in input space, so it needs no second
minority member of a class and no synthetic label. It only acts on classes that show two groups in
the batch: pair it with ``sampling.name=class_mixed``, which puts every group of a class in its
batch (under plain m-per-class batches at 95:5 only a few classes per batch qualify). Nothing
happens when every class lies in one group (a per-identity attribute).

The mixes use the batch as drawn (no row is mixed twice), and the draws come from a generator
seeded per ``(seed, epoch, rank)``, checkpointed with the rank's state. ``group_mixup_per_step``
logs the mean number of mixed rows per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fairmetric.bounds import bounded
from fairmetric.errors import SetupError
from fairmetric.train.hooks.base import BatchHook, HookContext, StepInput, register_hook

__all__ = ["GroupMixupConfig", "GroupMixupHook", "group_mixup"]

_STREAM = 0x115A  # separates this hook's per-epoch seed from the other (seed, epoch) streams


def group_mixup(
    x: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    *,
    p: float = 0.5,
    alpha: float = 2.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace rows by mixes with a same-class, other-group row of the batch (see the module).

    Args:
        x: ``(B, ...)`` inputs.
        labels: ``(B,)`` class labels.
        groups: ``(B,)`` group codes.
        p: probability that an eligible row is replaced, in ``[0, 1]``.
        alpha: ``Beta(alpha, alpha)`` parameter of the mixing weight of the row itself, ``> 0``.
        generator: CPU generator for the draws.

    Returns:
        ``(mixed x, mixed (bool B), partner (long B; -1 where not mixed), lambda (B; 1 where not
        mixed))``.
    """
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p!r}")
    if not (math.isfinite(float(alpha)) and float(alpha) > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    b = x.shape[0]
    y, g = labels.detach().cpu(), groups.detach().cpu()
    partners = (y[:, None] == y[None, :]) & (g[:, None] != g[None, :])  # (B, B)
    n_partners = partners.sum(dim=1)
    u = torch.rand((2, b), generator=generator, dtype=torch.float64)
    # torch's Beta takes no generator: numpy's, seeded from the generator (deterministic)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    lam_draw = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=b))
    mixed = (n_partners > 0) & (u[0] < float(p))
    # the k-th partner of row i, k = floor(u1 * n_partners)
    k = torch.minimum((u[1] * n_partners).long(), (n_partners - 1).clamp(min=0))
    order = torch.argsort((~partners).to(torch.int8), dim=1, stable=True)  # partners first
    partner = torch.where(mixed, order[torch.arange(b), k], torch.full((b,), -1))
    lam_out = torch.where(mixed, lam_draw, torch.ones(b, dtype=torch.float64))
    if not bool(mixed.any()):
        return x, mixed, partner, lam_out
    dev = x.device
    idx = torch.where(mixed, partner, torch.arange(b)).to(dev)
    w = lam_out.to(dev, x.dtype).reshape(b, *([1] * (x.ndim - 1)))
    return w * x + (1 - w) * x[idx], mixed, partner, lam_out


@dataclass
class GroupMixupConfig:
    """Intra-class cross-group input mixup (LISA, intra-label): ``p`` the share of eligible rows
    replaced, ``alpha`` the Beta parameter of the mixing weight."""

    enabled: bool = False
    p: float = bounded(0.5, ge=0, le=1)
    alpha: float = bounded(2.0, gt=0)


@register_hook("group_mixup")
class GroupMixupHook(BatchHook):
    """Mixes rows with same-class, other-group rows before the forward pass (see the module)."""

    config_class = GroupMixupConfig
    bench_methods = {
        "group_mixup": [
            "data.group_attribute={attr}",
            "sampling.name=class_mixed",
            "mitigation.group_mixup.enabled=true",
        ]
    }

    @classmethod
    def needs_groups(cls, config: GroupMixupConfig) -> bool:
        return bool(config.enabled)

    @classmethod
    def from_config(cls, config: GroupMixupConfig, context: HookContext) -> GroupMixupHook | None:
        if not config.enabled:
            return None
        if not 0.0 <= float(config.p) <= 1.0:
            raise ValueError(f"mitigation.group_mixup.p must lie in [0, 1], got {config.p!r}")
        if not (math.isfinite(float(config.alpha)) and float(config.alpha) > 0):
            raise ValueError(
                f"mitigation.group_mixup.alpha must be a finite number > 0, got {config.alpha!r}"
            )
        context.log(f"group mixup: p {config.p}, alpha {config.alpha}")
        return cls(config=config, seed=context.seed, rank=context.rank)

    def __init__(self, *, config: GroupMixupConfig, seed: int, rank: int = 0) -> None:
        self.config = config
        self.seed = int(seed)
        self.rank = int(rank)
        self.generator = torch.Generator()
        self._count = 0

    def set_epoch(self, epoch: int) -> None:
        state = np.random.SeedSequence([self.seed, int(epoch), self.rank, _STREAM])
        self.generator.manual_seed(int(state.generate_state(1)[0]))

    def before_forward(self, batch: StepInput) -> StepInput:
        if batch.groups is None:
            raise SetupError(
                "mitigation.group_mixup needs data.group_attribute (the attribute whose groups "
                "are mixed); set it, or turn group_mixup off"
            )
        x, mixed, _, _ = group_mixup(
            batch.x,
            batch.labels,
            batch.groups,
            p=self.config.p,
            alpha=self.config.alpha,
            generator=self.generator,
        )
        self._count = int(mixed.sum())
        return StepInput(x, batch.labels, batch.attributes, batch.groups)

    def after_forward(self, batch: Any) -> dict[str, float]:
        return {"group_mixup_per_step": self._count}

    def rank_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])
