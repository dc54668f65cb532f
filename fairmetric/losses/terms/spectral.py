"""Spectral decoupling (Pezeshki et al. 2021) as the fairness term ``objective.spectral``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from fairmetric.bounds import bounded
from fairmetric.losses.objective import Batch, Term
from fairmetric.losses.registry import ObjectiveContext, register_term
from fairmetric.losses.spectral import loss_logits, spectral_decoupling

__all__ = ["SpectralConfig", "SpectralDecouplingTerm"]


@dataclass
class SpectralConfig:
    """Spectral decoupling ``coefficient · mean((ŷ − γ)²)`` (0: off); ``offsets``: γ per class,
    or one number."""

    coefficient: float = bounded(0.0, ge=0)
    offsets: float | list[float] | None = None


@register_term("spectral")
class SpectralDecouplingTerm(Term):
    """Spectral decoupling, ``coefficient · mean((ŷ − γ)²)``, reported as ``spectral``.

    ``ŷ`` are the metric loss's class logits when it has them (classification / proxy losses),
    otherwise the pre-normalisation target embedding. ``offsets`` are per-class ``γ_c`` (or one
    number for all classes).
    """

    config_class = SpectralConfig
    bench_methods = {"spectral": ["objective.spectral.coefficient=0.01"]}

    @classmethod
    def from_config(
        cls, config: SpectralConfig, context: ObjectiveContext
    ) -> list[SpectralDecouplingTerm]:
        """The term when ``coefficient > 0``, on the metric loss's logits where it has them."""
        if config.coefficient < 0:
            raise ValueError(
                f"objective.spectral.coefficient must be >= 0, got {config.coefficient}"
            )
        if config.coefficient == 0:
            return []
        return [cls(config.coefficient, metric_loss=context.metric_loss, offsets=config.offsets)]

    def __init__(
        self,
        coefficient: float,
        *,
        metric_loss: nn.Module | None = None,
        offsets: float | list[float] | None = None,
    ) -> None:
        super().__init__(weight=coefficient)
        self.metric_loss_ref = [metric_loss]  # a list: not registered as a submodule twice
        self.offsets = offsets

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss = self.metric_loss_ref[0]
        logits = loss_logits(loss, batch.embeddings) if loss is not None else None
        outputs = logits if logits is not None else batch.raw
        return {"spectral": spectral_decoupling(outputs, batch.labels, self.offsets)}
