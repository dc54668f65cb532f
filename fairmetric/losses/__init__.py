"""Fairness terms that plug into pytorch-metric-learning: group-aware reducers, per-sample losses."""

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
    "GroupAwareReducer",
    "GroupWeightedReducer",
    "anchor_indices",
    "batch_groups",
    "check_sample_indexed",
    "group_weights",
    "per_sample_losses",
]
