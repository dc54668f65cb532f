"""Fairness terms that plug into pytorch-metric-learning: group-aware reducers (reweighting, Group
DRO), per-sample losses, PARADE decorrelation, spectral decoupling, adversarial removal, and the
`Objective` that composes them with a metric loss.

Terms and reducers are plug-ins: registered by name in :data:`TERMS` (``objective.<name>``) and
:data:`REDUCERS` (``reducer.name``), each with its own typed config (see
:mod:`fairmetric.losses.registry`)."""

from fairmetric.losses.factories import LossConfig, MinerConfig, build_loss, build_miner
from fairmetric.losses.group_dro import GroupDROReducer, install_group_dro
from fairmetric.losses.objective import Batch, Objective, Term
from fairmetric.losses.per_sample import per_sample_losses
from fairmetric.losses.reducers import (
    GroupAwareReducer,
    GroupWeightedReducer,
    anchor_indices,
    batch_groups,
    check_sample_indexed,
    group_weights,
)
from fairmetric.losses.registry import (
    REDUCERS,
    TERMS,
    ObjectiveContext,
    register_reducer,
    register_term,
)
from fairmetric.losses.terms import AdversaryTerm, ParadeTerm, SpectralDecouplingTerm

__all__ = [
    "REDUCERS",
    "TERMS",
    "AdversaryTerm",
    "Batch",
    "LossConfig",
    "MinerConfig",
    "ObjectiveContext",
    "ParadeTerm",
    "SpectralDecouplingTerm",
    "build_loss",
    "build_miner",
    "register_reducer",
    "register_term",
    "GroupAwareReducer",
    "GroupDROReducer",
    "GroupWeightedReducer",
    "Objective",
    "Term",
    "anchor_indices",
    "batch_groups",
    "check_sample_indexed",
    "group_weights",
    "install_group_dro",
    "per_sample_losses",
]
