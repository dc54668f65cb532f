r"""PARADE (Dullerud et al., ICLR 2022) as the fairness term ``objective.parade``.

An attribute head ``ψ_s`` on the shared backbone learns a similarity metric for one sensitive
attribute (a PML loss on its values, weight ``λ_s``), and the target embedding is decorrelated from
it (weight ``ρ``, the *partial* knob). Its parameters (heads, ``ξ``) live in the objective, not in
the embedder, so the exported model is the backbone and target head only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from fairmetric.losses.decorrelation import build_decorrelation, embedding_correlation
from fairmetric.losses.factories import LossConfig, MinerConfig, build_loss, build_miner
from fairmetric.losses.objective import Batch, Term
from fairmetric.losses.registry import ObjectiveContext, register_term
from fairmetric.models.heads import AttributeHead

__all__ = ["ParadeConfig", "ParadeTerm"]

DECORRELATIONS = ("adversarial", "cross_covariance")


def _attribute_loss() -> LossConfig:
    return LossConfig(name="TripletMarginLoss", params={"margin": 0.2})


def _no_miner() -> MinerConfig:
    return MinerConfig(name=None, params={})


@dataclass
class ParadeConfig:
    """PARADE: one attribute head per name in ``attributes`` (empty: off).

    Each head learns a metric on its attribute's values (``loss``/``miner``, weight ``weight`` =
    λ_s); the target embedding is decorrelated from it with weight ``rho`` (0: no decorrelation;
    larger: less attribute information left). ``decorrelation``: ``cross_covariance`` (closed
    form) or ``adversarial`` (gradient reversal + MLP ξ of width ``xi_hidden`` at learning rate
    ``xi_lr``, the reference estimator).
    """

    attributes: list[str] = field(default_factory=list)
    attribute_dim: int = 32
    loss: LossConfig = field(default_factory=_attribute_loss)
    miner: MinerConfig = field(default_factory=_no_miner)
    weight: float = 1.0
    rho: float = 10.0
    decorrelation: str = "cross_covariance"
    xi_hidden: int = 512
    xi_lr: float | None = 1e-5


@register_term("parade")
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

    config_class = ParadeConfig
    bench_methods = {
        "parade": ["objective.parade.attributes=[{attr}]", "objective.parade.rho=10.0"]
    }

    @classmethod
    def from_config(cls, config: ParadeConfig, context: ObjectiveContext) -> list[ParadeTerm]:
        """One term per attribute of ``config.attributes``."""
        if config.decorrelation not in DECORRELATIONS:
            raise ValueError(
                "objective.parade.decorrelation must be adversarial or cross_covariance, got "
                f"{config.decorrelation!r}"
            )
        attrs = config.attributes
        if len(set(attrs)) != len(attrs):
            raise ValueError(f"objective.parade.attributes lists an attribute twice: {attrs}")
        terms = []
        for attr in attrs:
            n_values = context.check_attribute(attr, "objective.parade.attributes")
            terms.append(
                cls(
                    attr,
                    feature_dim=context.feature_dim,
                    target_dim=context.embedding_dim,
                    attribute_loss=build_loss(
                        config.loss.name,
                        config.loss.params,
                        num_classes=n_values,
                        embedding_size=config.attribute_dim,
                    ),
                    attribute_miner=build_miner(config.miner.name, config.miner.params),
                    attribute_dim=config.attribute_dim,
                    attribute_weight=config.weight,
                    rho=config.rho,
                    decorrelation=config.decorrelation,
                    xi_hidden=config.xi_hidden,
                    xi_lr=config.xi_lr,
                    normalize=context.normalize,
                )
            )
        return terms

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
