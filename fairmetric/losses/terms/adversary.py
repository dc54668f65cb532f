"""Adversarial attribute removal (DANN) as the fairness term ``objective.adversary``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fairmetric.losses.adversarial import AttributeAdversary
from fairmetric.losses.objective import Batch, Term
from fairmetric.losses.registry import ObjectiveContext, register_term

__all__ = ["AdversaryConfig", "AdversaryTerm"]


@dataclass
class AdversaryConfig:
    """DANN: an attribute classifier on the embedding behind gradient reversal (scale ``alpha``);
    ``attribute: null`` is off. ``hidden``: MLP width (null: linear)."""

    attribute: str | None = None
    weight: float = 1.0
    alpha: float = 1.0
    hidden: int | None = None
    lr: float | None = None


@register_term("adversary")
class AdversaryTerm(Term):
    """DANN: cross-entropy of an attribute classifier on ``e`` behind gradient reversal (``alpha``).

    Reports ``adversary/<attr>`` (the classifier's loss; the embedding receives its reversed
    gradient) and the diagnostic ``adversary/<attr>/accuracy``.
    """

    config_class = AdversaryConfig
    bench_methods = {
        "adversarial": ["objective.adversary.attribute={attr}", "objective.adversary.hidden=64"]
    }

    @classmethod
    def from_config(cls, config: AdversaryConfig, context: ObjectiveContext) -> list[AdversaryTerm]:
        """The term when ``config.attribute`` is set."""
        if config.attribute is None:
            return []
        n_values = context.check_attribute(config.attribute, "objective.adversary.attribute")
        return [
            cls(
                config.attribute,
                embedding_dim=context.embedding_dim,
                num_values=n_values,
                weight=config.weight,
                alpha=config.alpha,
                hidden=config.hidden,
                lr=config.lr,
            )
        ]

    def __init__(
        self,
        attribute: str,
        *,
        embedding_dim: int,
        num_values: int,
        weight: float = 1.0,
        alpha: float = 1.0,
        hidden: int | None = None,
        lr: float | None = None,
    ) -> None:
        super().__init__(weight=weight, lr=lr)
        self.attribute = attribute
        self.adversary = AttributeAdversary(embedding_dim, num_values, alpha=alpha, hidden=hidden)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        codes = batch.attribute(self.attribute)
        out = {f"adversary/{self.attribute}": self.adversary(batch.embeddings, codes)}
        with torch.no_grad():
            predicted = self.adversary.classifier(batch.embeddings.detach()).argmax(dim=1)
            out[f"@adversary/{self.attribute}/accuracy"] = (predicted == codes).float().mean()
        return out
