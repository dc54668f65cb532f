r"""The objective-side mitigation methods as :class:`~fairmetric.losses.objective.Term`\ s.

- :class:`ParadeTerm` -- PARADE (Dullerud et al., ICLR 2022): an attribute head ``ψ_s`` on the shared
  backbone learns a similarity metric for one sensitive attribute (a PML loss on its values, weight
  ``λ_s``), and the target embedding is decorrelated from it (weight ``ρ``, the *partial* knob).
- :class:`SpectralDecouplingTerm` -- Pezeshki et al. 2021: ``λ · mean((ŷ − γ)²)`` on the loss's
  class logits where it has them, else on the pre-normalisation embedding.
- :class:`AdversaryTerm` -- DANN: an attribute classifier on ``e`` behind gradient reversal.

Their parameters (heads, ``ξ``, classifiers) live in the objective, not in the embedder, so the
exported model is the backbone and target head only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from fairmetric.losses.adversarial import AttributeAdversary
from fairmetric.losses.decorrelation import build_decorrelation, embedding_correlation
from fairmetric.losses.objective import Batch, Term
from fairmetric.losses.spectral import loss_logits, spectral_decoupling
from fairmetric.models.heads import AttributeHead

__all__ = ["ParadeTerm", "SpectralDecouplingTerm", "AdversaryTerm"]


class ParadeTerm(Term):
    r"""PARADE for one sensitive attribute.

    Reports ``parade/<attr>/metric`` (weighted by ``attribute_weight`` = :math:`λ_s`),
    ``parade/<attr>/decorrelation`` (weighted by ``rho``) and the diagnostic
    ``parade/<attr>/correlation`` (the linear dependence between ``e`` and ``e^s`` on the batch,
    see :func:`~fairmetric.losses.decorrelation.embedding_correlation`; logged, not optimised).

    Args:
        attribute: the attribute's name (a column of ``batch.attributes``).
        feature_dim: width of the backbone features ``h``.
        target_dim: width of the target embedding ``e``.
        attribute_loss: a PML loss trained on the attribute's values, on ``e^s``.
        attribute_miner: optional PML miner for it.
        attribute_dim: width of ``e^s``.
        attribute_weight: :math:`λ_s`.
        rho: :math:`ρ` (``>= 0``; 0 trains the attribute head without decorrelation).
        decorrelation: ``"adversarial"`` (gradient reversal + MLP ``ξ``, the reference estimator)
            or ``"cross_covariance"`` (closed form, no adversary).
        xi_hidden: width of ``ξ``.
        xi_lr: learning rate of ``ξ`` (its own optimiser group); ``None``: the model's.
        normalize: L2-normalise ``e^s``.
    """

    def __init__(
        self,
        attribute: str,
        *,
        feature_dim: int,
        target_dim: int,
        attribute_loss: nn.Module,
        attribute_miner: nn.Module | None = None,
        attribute_dim: int = 32,
        attribute_weight: float = 1.0,
        rho: float = 1.0,
        decorrelation: str = "adversarial",
        xi_hidden: int = 512,
        xi_lr: float | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(weight=1.0)
        for name, value in (("rho", rho), ("attribute_weight", attribute_weight)):
            if not math.isfinite(float(value)) or value < 0:
                raise ValueError(
                    f"PARADE {name} must be a finite number >= 0, got {value} (rho=0 keeps the "
                    "attribute head without decorrelation; larger rho removes more attribute "
                    "information)"
                )
        self.attribute = attribute
        self.rho = float(rho)
        self.attribute_weight = float(attribute_weight)
        self.head = AttributeHead(feature_dim, attribute_dim, normalize=normalize)
        self.attribute_loss = attribute_loss
        self.attribute_miner = attribute_miner
        self.decorrelation_kind = decorrelation
        self.decorrelation = build_decorrelation(
            decorrelation, target_dim, attribute_dim, hidden=xi_hidden
        )
        if self.rho == 0:  # no decorrelation: ξ (if any) is never used, so never trained
            self.decorrelation.requires_grad_(False)
        self.xi_lr = xi_lr
        self.prefix = f"parade/{attribute}"

    def weight_of(self, name: str) -> float:
        return self.rho if name.endswith("/decorrelation") else self.attribute_weight

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        codes = batch.attribute(self.attribute)
        e_s = self.head(batch.features)
        batch.cache[f"{self.prefix}/embedding"] = e_s
        indices = self.attribute_miner(e_s, codes) if self.attribute_miner is not None else None
        out = {f"{self.prefix}/metric": self.attribute_loss(e_s, codes, indices)}
        if self.rho > 0:
            out[f"{self.prefix}/decorrelation"] = self.decorrelation(batch.embeddings, e_s)
        with torch.no_grad():
            out[f"@{self.prefix}/correlation"] = embedding_correlation(
                batch.embeddings.detach(), e_s.detach()
            )
        return out

    def param_groups(self) -> list[dict[str, Any]]:
        xi = {id(p) for p in self.decorrelation.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in xi]
        groups = [{"params": rest}] if rest else []
        xi_params = [p for p in self.decorrelation.parameters() if p.requires_grad]
        if xi_params and self.rho > 0:
            groups.append({"params": xi_params, **({"lr": self.xi_lr} if self.xi_lr else {})})
        return groups


class SpectralDecouplingTerm(Term):
    """Spectral decoupling, ``coefficient · mean((ŷ − γ)²)``, reported as ``spectral``.

    ``ŷ`` are the metric loss's class logits when it has them (classification / proxy losses),
    otherwise the pre-normalisation target embedding. ``offsets`` are per-class ``γ_c`` (or one
    number for all classes).
    """

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


class AdversaryTerm(Term):
    """DANN: cross-entropy of an attribute classifier on ``e`` behind gradient reversal (``alpha``).

    Reports ``adversary/<attr>`` (the classifier's loss; the embedding receives its reversed
    gradient) and the diagnostic ``adversary/<attr>/accuracy``.
    """

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
