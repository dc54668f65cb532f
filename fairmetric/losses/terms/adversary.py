r"""Adversarial attribute removal (DANN) as the fairness term ``objective.adversary``.

The adversary's cross-entropy is **class-balanced** by default: with :math:`n_v` rows of attribute
value :math:`v` in the batch and :math:`V` values present,

.. math:: L_{adv} = \frac{1}{V} \sum_{v\ \mathrm{present}} \frac{1}{n_v}
    \sum_{i: a_i = v} \mathrm{CE}_i,

i.e. per-batch inverse-frequency weights (the mean over values of each value's mean loss). At 95:5
the plain mean is dominated by the majority: a classifier that always answers "majority" scores
a plain cross-entropy of :math:`H(0.05) \approx 0.2` nats and 95% accuracy, so the adversary
barely looks at the minority and its reversed gradient carries little about it. Under the
balanced loss the best constant answer scores :math:`\log 2` (uniform over two values), so the
adversary only gets below chance by separating the groups. ``balanced: false`` restores the plain
mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fairmetric.bounds import bounded
from fairmetric.losses.adversarial import AttributeAdversary
from fairmetric.losses.objective import Batch, Term
from fairmetric.losses.registry import ObjectiveContext, register_term

__all__ = ["AdversaryConfig", "AdversaryTerm", "balanced_cross_entropy", "balanced_accuracy"]


def balanced_cross_entropy(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    r"""Cross-entropy averaged per class, then over the classes present in the batch.

    .. math:: \frac{1}{V} \sum_{v} \frac{1}{n_v} \sum_{i: a_i = v} \mathrm{CE}(z_i, a_i)

    (``F.cross_entropy`` with class weights :math:`1/n_v`, whose weighted mean divides by
    :math:`\sum_i 1/n_{a_i} = V`). Equal to the plain mean when every value is equally frequent.

    Args:
        logits: ``(N, C)`` classifier outputs.
        codes: ``(N,)`` integer targets in ``[0, C)``.
    """
    counts = torch.bincount(codes, minlength=logits.shape[1]).to(logits.dtype)
    weight = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    return F.cross_entropy(logits, codes, weight=weight)


def balanced_accuracy(predicted: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Mean over the values present of each value's accuracy (0.5 for a constant guess of two)."""
    values = torch.unique(codes)
    return torch.stack([(predicted[codes == v] == v).float().mean() for v in values]).mean()


@dataclass
class AdversaryConfig:
    """DANN: an attribute classifier on the embedding behind gradient reversal (scale ``alpha``);
    ``attribute: null`` is off. ``hidden``: MLP width (null: linear). ``balanced``: the
    adversary's cross-entropy averaged per attribute value (per-batch inverse-frequency weights;
    false: the plain mean, which a majority guess nearly satisfies under imbalance)."""

    attribute: str | None = None
    weight: float = bounded(1.0, ge=0)
    alpha: float = bounded(1.0, ge=0)
    hidden: int | None = bounded(None, ge=1, le=65536)
    lr: float | None = bounded(None, gt=0)
    balanced: bool = True


@register_term("adversary")
class AdversaryTerm(Term):
    """DANN: cross-entropy of an attribute classifier on ``e`` behind gradient reversal (``alpha``).

    Reports ``adversary/<attr>`` (the classifier's loss, class-balanced unless
    ``balanced=False``; the embedding receives its reversed gradient) and the diagnostic
    ``adversary/<attr>/accuracy`` (balanced accuracy when ``balanced``: 0.5 is chance for two
    values whatever the imbalance).
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
                balanced=config.balanced,
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
        balanced: bool = True,
    ) -> None:
        super().__init__(weight=weight, lr=lr)
        if not isinstance(balanced, bool):
            raise ValueError(f"balanced must be true or false, got {balanced!r}")
        self.attribute = attribute
        self.balanced = balanced
        self.adversary = AttributeAdversary(embedding_dim, num_values, alpha=alpha, hidden=hidden)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        codes = batch.attribute(self.attribute)
        if self.balanced:
            codes = self.adversary._check(batch.embeddings, codes)
            loss = balanced_cross_entropy(self.adversary.logits(batch.embeddings), codes)
        else:
            loss = self.adversary(batch.embeddings, codes)
        out = {f"adversary/{self.attribute}": loss}
        with torch.no_grad():
            predicted = self.adversary.classifier(batch.embeddings.detach()).argmax(dim=1)
            codes = codes.to(predicted.device)
            accuracy = (
                balanced_accuracy(predicted, codes)
                if self.balanced
                else (predicted == codes).float().mean()
            )
            out[f"@adversary/{self.attribute}/accuracy"] = accuracy
        return out
