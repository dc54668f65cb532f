"""Build the training objective a config describes: the PML metric loss (with a group-aware
reducer when reweighting or Group DRO is on) and the fairness terms (PARADE, spectral decoupling,
adversarial removal) composed in an :class:`~fairmetric.losses.Objective`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fairmetric.data.dataset import AttributeDataset
from fairmetric.losses import (
    GroupWeightedReducer,
    Objective,
    check_sample_indexed,
)
from fairmetric.losses import group_weights as make_group_weights
from fairmetric.losses.group_dro import GroupDROReducer, install_group_dro
from fairmetric.losses.objective import Term
from fairmetric.losses.terms import AdversaryTerm, ParadeTerm, SpectralDecouplingTerm
from fairmetric.train.config import ExperimentConfig
from fairmetric.train.factories import build_loss, build_miner

__all__ = ["build_training_loss", "build_objective", "reduction_base"]


def reduction_base(loss_fn: torch.nn.Module, base: str, key: str) -> str:
    """``mean`` or ``avg_nonzero``; ``auto`` follows the loss's own default reducer."""
    if base in ("mean", "avg_nonzero"):
        return base
    if base != "auto":
        raise ValueError(f"{key} must be auto, mean or avg_nonzero, got {base!r}")
    from pytorch_metric_learning.reducers import AvgNonZeroReducer

    default = loss_fn.get_default_reducer()
    return "avg_nonzero" if isinstance(default, AvgNonZeroReducer) else "mean"


def _group_names(cfg: ExperimentConfig, train_set: AttributeDataset, n: int) -> list[str]:
    return [train_set.value_name(cfg.data.group_attribute, g) for g in range(n)]


def build_training_loss(
    cfg: ExperimentConfig,
    train_set: AttributeDataset,
    groups: np.ndarray | None,
    *,
    num_classes: int,
    log: Callable[[str], None] = print,
) -> torch.nn.Module:
    """The PML loss of ``cfg.loss``, with the group-weighted or Group DRO reducer when asked."""
    loss_fn = build_loss(
        cfg.loss.name,
        cfg.loss.params,
        num_classes=num_classes,
        embedding_size=cfg.model.embedding_dim,
    )
    rw, dro = cfg.mitigation.reweight, cfg.objective.group_dro
    if rw.enabled and dro.enabled:
        raise ValueError(
            "mitigation.reweight and objective.group_dro both set the metric loss's reducer; "
            "enable one of them (Group DRO adapts its group weights itself)"
        )
    if (rw.enabled or dro.enabled) and "reducer" in cfg.loss.params:
        which = "mitigation.reweight" if rw.enabled else "objective.group_dro"
        raise ValueError(f"{which} replaces the loss's reducer; remove loss.params.reducer")
    if rw.enabled:
        check_sample_indexed(loss_fn, "mitigation.reweight")
        weights = make_group_weights(groups, rw.beta)
        base = reduction_base(loss_fn, rw.base, "mitigation.reweight.base")
        loss_fn.set_reducer(GroupWeightedReducer(weights, base=base))
        names = _group_names(cfg, train_set, len(weights))
        log("reweighting by " + ", ".join(f"{n} {float(w):.3g}" for n, w in zip(names, weights)))
    if dro.enabled:
        check_sample_indexed(loss_fn, "objective.group_dro")
        values = train_set.attribute_value_names[cfg.data.group_attribute]
        reducer = GroupDROReducer.from_groups(
            groups,
            num_groups=len(values),
            eta=dro.eta,
            C=dro.C,
            base=reduction_base(loss_fn, dro.base, "objective.group_dro.base"),
            group_names=values,
        )
        install_group_dro(loss_fn, reducer)
        log(f"Group DRO over {cfg.data.group_attribute}: eta {dro.eta}, C {dro.C}")
    return loss_fn


def build_objective(
    cfg: ExperimentConfig,
    train_set: AttributeDataset,
    metric_loss: torch.nn.Module,
    *,
    feature_dim: int,
) -> Objective:
    """The metric loss, its miner and every enabled fairness term."""
    miner = build_miner(cfg.miner.name, cfg.miner.params)
    terms: list[Term] = []
    par = cfg.objective.parade
    if par.decorrelation not in ("adversarial", "cross_covariance"):
        raise ValueError(
            "objective.parade.decorrelation must be adversarial or cross_covariance, got "
            f"{par.decorrelation!r}"
        )
    if len(set(par.attributes)) != len(par.attributes):
        raise ValueError(f"objective.parade.attributes lists an attribute twice: {par.attributes}")
    for attr in par.attributes:
        _check_attribute(train_set, attr, "objective.parade.attributes")
        n_values = len(train_set.attribute_value_names[attr])
        terms.append(
            ParadeTerm(
                attr,
                feature_dim=feature_dim,
                target_dim=cfg.model.embedding_dim,
                attribute_loss=build_loss(
                    par.loss.name,
                    par.loss.params,
                    num_classes=n_values,
                    embedding_size=par.attribute_dim,
                ),
                attribute_miner=build_miner(par.miner.name, par.miner.params),
                attribute_dim=par.attribute_dim,
                attribute_weight=par.weight,
                rho=par.rho,
                decorrelation=par.decorrelation,
                xi_hidden=par.xi_hidden,
                xi_lr=par.xi_lr,
                normalize=cfg.model.normalize,
            )
        )
    sd = cfg.objective.spectral
    if sd.coefficient < 0:
        raise ValueError(f"objective.spectral.coefficient must be >= 0, got {sd.coefficient}")
    if sd.coefficient > 0:
        terms.append(
            SpectralDecouplingTerm(sd.coefficient, metric_loss=metric_loss, offsets=sd.offsets)
        )
    adv = cfg.objective.adversary
    if adv.attribute is not None:
        _check_attribute(train_set, adv.attribute, "objective.adversary.attribute")
        terms.append(
            AdversaryTerm(
                adv.attribute,
                embedding_dim=cfg.model.embedding_dim,
                num_values=len(train_set.attribute_value_names[adv.attribute]),
                weight=adv.weight,
                alpha=adv.alpha,
                hidden=adv.hidden,
                lr=adv.lr,
            )
        )
    return Objective(metric_loss, miner, terms)


def _check_attribute(train_set: AttributeDataset, attr: str, key: str) -> None:
    if attr not in train_set.attribute_names:
        have = ", ".join(train_set.attribute_names) or "none"
        raise ValueError(
            f"{key} names {attr!r}, which dataset {train_set.name} does not have; its attributes "
            f"are: {have}"
        )
