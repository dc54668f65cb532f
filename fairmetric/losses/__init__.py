"""Fairness terms that plug into pytorch-metric-learning: group-aware reducers (reweighting, Group
DRO), per-sample losses, PARADE decorrelation, spectral decoupling, adversarial removal, and the
`Objective` that composes them with a metric loss."""

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

__all__ = [
    "Batch",
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
