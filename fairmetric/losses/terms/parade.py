r"""PARADE (Dullerud et al., ICLR 2022) as the fairness term ``objective.parade``.

An attribute head ``ψ_s`` on the shared backbone learns a similarity metric for one sensitive
attribute (a PML loss on its values, weight ``λ_s``), and the target embedding is decorrelated from
it (weight ``ρ``, the *partial* knob). Its parameters (heads, ``ξ``) live in the objective, not in
the embedder, so the exported model is the backbone and target head only.

Beyond the paper, four measured flaws of a naive implementation are addressed by the defaults:
a scale-invariant estimator (``decorrelation: rv``; the squared cross-covariance can be lowered
by collapsing the embedding), ξ's learning rate following the model's (``xi_lr: null``), an
attribute head that does not train the backbone (``detach_features: true``) and group-balanced
batch statistics (``balance: true``). See :class:`ParadeConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from fairmetric.bounds import bounded
from fairmetric.losses.decorrelation import (
    DECORRELATIONS,
    AdversarialDecorrelation,
    balanced_weights,
    build_decorrelation,
    embedding_correlation,
)
from fairmetric.losses.factories import LossConfig, MinerConfig, build_loss, build_miner
from fairmetric.losses.objective import Batch, Term
from fairmetric.losses.registry import ObjectiveContext, register_term
from fairmetric.models.heads import AttributeHead

__all__ = ["ParadeConfig", "ParadeTerm", "check_parade_config"]


def _attribute_loss() -> LossConfig:
    return LossConfig(name="TripletMarginLoss", params={"margin": 0.2})


def _no_miner() -> MinerConfig:
    return MinerConfig(name=None, params={})


@dataclass
class ParadeConfig:
    r"""PARADE: one attribute head per name in ``attributes`` (empty: off).

    Each head learns a metric on its attribute's values (``loss``/``miner``, weight ``weight`` =
    λ_s); the target embedding is decorrelated from it with weight ``rho`` (0: no decorrelation;
    larger: less attribute information left).

    Keys (defaults in brackets):

    - ``decorrelation`` [``rv``]: the estimator. ``rv`` is the chance-corrected RV coefficient of
      the centred batches (:func:`~fairmetric.losses.decorrelation.rv_penalty`): invariant to the
      embeddings' scale and offset, so it cannot be lowered by squeezing the embedding into a
      small cap. ``cross_covariance`` (squared Frobenius norm of the batch cross-covariance) and
      ``adversarial`` (the reference: gradient reversal + an MLP ξ of width ``xi_hidden``) still
      work; ``cross_covariance`` can be lowered by collapse, check a collapse measure with it.
    - ``rho`` [1.0]: what ρ means depends on the estimator's magnitude. ``rv``: the penalty lies
      in about ``[0, 1]`` whatever the embedding sizes ``D`` and ``D_s`` (0 on average for
      independent rows, ``1 - chance`` when ``e_s`` is a rotation of ``e``), so ρ is the loss paid
      for full dependence, next to a metric loss of order 0.1 (a triplet loss with margin 0.2). On
      the synthetic training test ρ from 0.3 to 10 removed the dependence without collapse; on the
      synthetic-identities demo ρ=1 lowered the effective rank and collapsed one group, ρ=0.1 did
      little (see :func:`~fairmetric.losses.decorrelation.rv_penalty`): sweep it with a
      collapse measure beside it.
      ``cross_covariance``: on unit embeddings at most about :math:`1/\sqrt{D D_s}` (spread over
      every dimension), so ρ must grow like :math:`\sqrt{D D_s}` (about 45× for 64 and 32
      dimensions). ``adversarial``: at most :math:`1/D`, about :math:`1/D^2` at chance, so ρ
      grows like ``D`` (the reference uses 100–1500).
    - ``xi_lr`` [null]: ξ's learning rate; null follows the model's (``optim.lr``). DiVA's 1e-5
      was its whole network's rate; next to a model at 1e-3 it leaves ξ untrained.
    - ``detach_features`` [true]: the attribute head reads the backbone features through
      ``detach()``: its metric loss trains the head only, never the backbone, and the
      decorrelation moves the target embedding ``e`` only (its gradient reaches the backbone
      through ``e``). At ``rho=0`` the backbone then trains exactly as the baseline. True by
      default because PARADE is used here to *narrow* a gap: false is the paper's joint training,
      where the attribute loss trains the shared backbone *towards* the attribute (measured:
      ``rho=0`` widens the gap), so the decorrelation first has to undo what the head put in.
    - ``balance`` [true]: batch means and (cross-)covariances (and the adversarial mean over rows)
      weight each row by :math:`1/(G\,n_g)`, so every attribute value in the batch counts equally
      (:func:`~fairmetric.losses.decorrelation.balanced_weights`); a batch holding one value only
      falls back to uniform weights.

    Runs saved before ``detach_features`` and ``balance`` existed read them as today's defaults
    (true) when resumed; their checkpoints load unchanged (neither adds parameters).
    """

    attributes: list[str] = field(default_factory=list)
    attribute_dim: int = bounded(32, ge=1, le=65536)
    loss: LossConfig = field(default_factory=_attribute_loss)
    miner: MinerConfig = field(default_factory=_no_miner)
    weight: float = bounded(1.0, ge=0)
    rho: float = bounded(1.0, ge=0)
    decorrelation: str = "rv"
    xi_hidden: int = bounded(512, ge=1, le=65536)
    xi_lr: float | None = bounded(None, gt=0)
    detach_features: bool = True
    balance: bool = True


def check_parade_config(config: ParadeConfig) -> None:
    """Raise a ``ValueError`` naming the ``objective.parade`` key and the fix for a bad value."""
    key = "objective.parade"
    if config.decorrelation not in DECORRELATIONS:
        raise ValueError(
            f"{key}.decorrelation must be rv (scale-invariant, the default), adversarial or "
            f"cross_covariance, got {config.decorrelation!r}"
        )
    hints = {
        "rho": "rho=0 trains the attribute head without decorrelation; larger rho removes more "
        "attribute information",
        "weight": "the attribute metric loss's weight λ_s; 1.0 is the default",
    }
    for name, hint in hints.items():
        value = getattr(config, name)
        if not math.isfinite(float(value)) or value < 0:
            raise ValueError(f"{key}.{name} must be a finite number >= 0, got {value} ({hint})")
    for name in ("attribute_dim", "xi_hidden"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}.{name} must be an integer >= 1, got {value!r}")
    if config.xi_lr is not None and not (math.isfinite(float(config.xi_lr)) and config.xi_lr > 0):
        raise ValueError(
            f"{key}.xi_lr must be a positive number or null (null: the model's optim.lr), got "
            f"{config.xi_lr}"
        )
    for name in ("detach_features", "balance"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{key}.{name} must be true or false, got {getattr(config, name)!r}")


@register_term("parade")
class ParadeTerm(Term):
    r"""PARADE for one sensitive attribute.

    Reports ``parade/<attr>/metric`` (weighted by ``attribute_weight`` = :math:`λ_s`),
    ``parade/<attr>/decorrelation`` (weighted by ``rho``) and the diagnostics (logged, not
    optimised) ``parade/<attr>/correlation`` (the RV coefficient between ``e`` and ``e^s`` on the
    batch, see :func:`~fairmetric.losses.decorrelation.embedding_correlation`) and, for the
    adversarial estimator, ``parade/<attr>/xi_agreement``: the agreement
    :math:`\frac1N\sum_i\sum_k[\hat e_i \odot \mathrm{normalize}(\xi(\hat e^s_i))]_k^2` between ``e``
    and ξ's prediction from ``e^s``: about ``1/D`` while ξ predicts nothing, rising as it learns.
    :meth:`state_log` adds ξ's gradient norm at the epoch's last step to the epoch record.

    Args:
        attribute: the attribute's name (a column of ``batch.attributes``).
        feature_dim: width of the backbone features ``h``.
        target_dim: width of the target embedding ``e``.
        attribute_loss: a PML loss trained on the attribute's values, on ``e^s``.
        attribute_miner: optional PML miner for it.
        attribute_dim: width of ``e^s``.
        attribute_weight: :math:`λ_s`.
        rho: :math:`ρ` (``>= 0``; 0 trains the attribute head without decorrelation).
        decorrelation: ``"rv"`` (chance-corrected RV coefficient, scale-invariant),
            ``"cross_covariance"`` (closed form, lowered by collapse) or ``"adversarial"``
            (gradient reversal + MLP ``ξ``, the reference estimator).
        xi_hidden: width of ``ξ``.
        xi_lr: learning rate of ``ξ`` (its own optimiser group); ``None``: the model's.
        normalize: L2-normalise ``e^s``.
        detach_features: the head reads ``features.detach()`` and the decorrelation sees
            ``e^s.detach()``: the attribute loss trains the head only and the decorrelation moves
            ``e`` only.
        balance: weight rows by :math:`1/(G\,n_g)` in the decorrelation's batch statistics.
        num_values: number of values of the attribute (lets the balanced weights be computed
            without a device sync); ``None``: read from each batch.
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
        decorrelation: str = "rv",
        xi_hidden: int = 512,
        xi_lr: float | None = None,
        normalize: bool = True,
        detach_features: bool = True,
        balance: bool = True,
        num_values: int | None = None,
    ) -> None:
        super().__init__(weight=1.0)
        for name, value in (("rho", rho), ("attribute_weight", attribute_weight)):
            if not math.isfinite(float(value)) or value < 0:
                raise ValueError(
                    f"PARADE {name} must be a finite number >= 0, got {value} (rho=0 keeps the "
                    "attribute head without decorrelation; larger rho removes more attribute "
                    "information)"
                )
        if xi_lr is not None and not (math.isfinite(float(xi_lr)) and xi_lr > 0):
            raise ValueError(f"PARADE xi_lr must be a positive number or None, got {xi_lr}")
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
        self.detach_features = bool(detach_features)
        self.balance = bool(balance)
        self.num_values = num_values
        self.prefix = f"parade/{attribute}"

    config_class = ParadeConfig
    #: the bench's PARADE: the defaults spelled out (so the method does not drift when a default
    #: changes): scale-invariant ``rv`` estimator, detached attribute head, group-balanced
    #: statistics, rho 1 (full dependence costs about ten triplet-loss margins' worth)
    bench_methods = {
        "parade": [
            "objective.parade.attributes=[{attr}]",
            "objective.parade.decorrelation=rv",
            "objective.parade.rho=1.0",
            "objective.parade.detach_features=true",
            "objective.parade.balance=true",
        ]
    }

    @classmethod
    def from_config(cls, config: ParadeConfig, context: ObjectiveContext) -> list[ParadeTerm]:
        """One term per attribute of ``config.attributes``."""
        check_parade_config(config)
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
                    detach_features=config.detach_features,
                    balance=config.balance,
                    num_values=n_values,
                )
            )
        return terms

    def weight_of(self, name: str) -> float:
        return self.rho if name.endswith("/decorrelation") else self.attribute_weight

    def row_weights(self, codes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """The decorrelation's row weights: balanced over the attribute's values, or ``None``."""
        if not self.balance:
            return None
        return balanced_weights(codes, self.num_values, dtype=dtype)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        codes = batch.attribute(self.attribute)
        features = batch.features.detach() if self.detach_features else batch.features
        e_s = self.head(features)
        batch.cache[f"{self.prefix}/embedding"] = e_s
        indices = self.attribute_miner(e_s, codes) if self.attribute_miner is not None else None
        out = {f"{self.prefix}/metric": self.attribute_loss(e_s, codes, indices)}
        if self.rho > 0:
            # detached: the decorrelation cannot move e^s (nor the head), only e
            e_s_dec = e_s.detach() if self.detach_features else e_s
            weights = self.row_weights(codes, batch.embeddings.dtype)
            value = self.decorrelation(batch.embeddings, e_s_dec, weights)
            out[f"{self.prefix}/decorrelation"] = value
            if isinstance(self.decorrelation, AdversarialDecorrelation):
                out[f"@{self.prefix}/xi_agreement"] = self.decorrelation.agreement(value)
        with torch.no_grad():
            out[f"@{self.prefix}/correlation"] = embedding_correlation(
                batch.embeddings.detach(), e_s.detach()
            )
        return out

    def state_log(self) -> dict[str, Any]:
        """``{"parade/<attr>": {"xi_grad_norm": ...}}`` for the adversarial estimator: the norm of
        the gradient that reached ξ's parameters at the last step (read from their ``.grad`` when
        the epoch ends, so it costs nothing per step); empty otherwise or before any step."""
        if self.rho == 0 or not isinstance(self.decorrelation, AdversarialDecorrelation):
            return {}
        grads = [p.grad for p in self.decorrelation.parameters() if p.grad is not None]
        if not grads:
            return {}
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        return {self.prefix: {"xi_grad_norm": float(norm)}}

    def param_groups(self) -> list[dict[str, Any]]:
        xi = {id(p) for p in self.decorrelation.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in xi]
        groups = [{"params": rest}] if rest else []
        xi_params = [p for p in self.decorrelation.parameters() if p.requires_grad]
        if xi_params and self.rho > 0:
            # no "lr" key when xi_lr is None: the objective fills in the model's (optim.lr)
            groups.append({"params": xi_params, **({"lr": self.xi_lr} if self.xi_lr else {})})
        return groups
