"""Samplers: batch composition (m-per-class, group quotas), over/under-sampling, hard examples, SMOTE."""

from fairmetric.sampling.balanced import EpochBalancedBatchSampler, GroupQuotaBatchSampler
from fairmetric.sampling.hard_mining import HardExampleSelector, select_hard
from fairmetric.sampling.m_per_class import MPerClassBatchSampler
from fairmetric.sampling.registry import SAMPLERS, SamplerContext, register_sampler
from fairmetric.sampling.smote import EmbeddingSMOTE, smote_batch

__all__ = [
    "SAMPLERS",
    "SamplerContext",
    "register_sampler",
    "EmbeddingSMOTE",
    "EpochBalancedBatchSampler",
    "GroupQuotaBatchSampler",
    "HardExampleSelector",
    "MPerClassBatchSampler",
    "select_hard",
    "smote_batch",
]
