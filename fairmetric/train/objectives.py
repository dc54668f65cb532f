"""Build the training objective a config describes: the PML metric loss with the reducer of the
``reducer`` section, and every registered fairness term its ``objective.<name>`` section turns
on, composed in an :class:`~fairmetric.losses.Objective`. Nothing here names a term or reducer:
they come from :data:`~fairmetric.losses.TERMS` and :data:`~fairmetric.losses.REDUCERS`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fairmetric.data.dataset import AttributeDataset
from fairmetric.losses import REDUCERS, TERMS, Objective, ObjectiveContext
from fairmetric.losses.factories import build_loss, build_miner
from fairmetric.losses.objective import Term
from fairmetric.losses.reducers import reduction_base
from fairmetric.train.config import ExperimentConfig

__all__ = ["build_training_loss", "build_objective", "reduction_base", "objective_context"]


def objective_context(
    cfg: ExperimentConfig,
    train_set: AttributeDataset,
    metric_loss: torch.nn.Module,
    *,
    groups: np.ndarray | None = None,
    feature_dim: int | None = None,
    num_classes: int | None = None,
    log: Callable[[str], None] = print,
) -> ObjectiveContext:
    """The :class:`~fairmetric.losses.ObjectiveContext` terms and reducers build from."""
    return ObjectiveContext(
        train_set=train_set,
        embedding_dim=cfg.model.embedding_dim,
        normalize=cfg.model.normalize,
        feature_dim=feature_dim,
        metric_loss=metric_loss,
        groups=groups,
        group_attribute=cfg.data.group_attribute if groups is not None else None,
        num_classes=num_classes,
        log=log,
    )


def build_training_loss(
    cfg: ExperimentConfig,
    train_set: AttributeDataset,
    groups: np.ndarray | None,
    *,
    num_classes: int,
    log: Callable[[str], None] = print,
) -> torch.nn.Module:
    """The PML loss of ``cfg.loss``, with the reducer of ``cfg.reducer`` when one is named."""
    loss_fn = build_loss(
        cfg.loss.name,
        cfg.loss.params,
        num_classes=num_classes,
        embedding_size=cfg.model.embedding_dim,
    )
    name = cfg.reducer.name
    if name is None:
        return loss_fn
    plugin = REDUCERS.get(name)
    if "reducer" in cfg.loss.params:
        legacy = getattr(plugin, "legacy_key", None)
        raise ValueError(
            f"reducer.name={name}{f' ({legacy})' if legacy else ''} replaces the loss's reducer; "
            "remove loss.params.reducer"
        )
    context = objective_context(
        cfg, train_set, loss_fn, groups=groups, num_classes=num_classes, log=log
    )
    reducer = plugin.from_config(cfg.reducer.config(), context)
    install = getattr(plugin, "install", None)
    if install is not None:
        install(loss_fn, reducer)
    else:
        loss_fn.set_reducer(reducer)
    return loss_fn


def build_objective(
    cfg: ExperimentConfig,
    train_set: AttributeDataset,
    metric_loss: torch.nn.Module,
    *,
    feature_dim: int,
    groups: np.ndarray | None = None,
    log: Callable[[str], None] = print,
) -> Objective:
    """The metric loss, its miner and every fairness term the config turns on (in the order the
    terms are registered)."""
    miner = build_miner(cfg.miner.name, cfg.miner.params)
    context = objective_context(
        cfg, train_set, metric_loss, groups=groups, feature_dim=feature_dim, log=log
    )
    terms: list[Term] = []
    for name in TERMS:
        section = getattr(cfg.objective, name, None)
        if section is None:  # registered after this config was built: off
            continue
        terms += TERMS.get(name).from_config(section, context)
    return Objective(metric_loss, miner, terms)
