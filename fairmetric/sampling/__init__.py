"""Samplers: batch composition (m-per-class, group quotas), over/under-sampling, hard examples, SMOTE.

Batch samplers are registered by name (``sampling.name``) in :data:`SAMPLERS`; one added as a new
module of this package registers itself (every module of the package is imported here).
"""

import importlib
import pkgutil

from fairmetric.sampling.balanced import EpochBalancedBatchSampler, GroupQuotaBatchSampler
from fairmetric.sampling.class_mixed import ClassMixedBatchSampler
from fairmetric.sampling.hard_mining import HardExampleSelector, select_hard
from fairmetric.sampling.m_per_class import MPerClassBatchSampler
from fairmetric.sampling.registry import SAMPLERS, SamplerContext, register_sampler
from fairmetric.sampling.smote import EmbeddingSMOTE, smote_batch

__all__ = [
    "SAMPLERS",
    "SamplerContext",
    "register_sampler",
    "ClassMixedBatchSampler",
    "EmbeddingSMOTE",
    "EpochBalancedBatchSampler",
    "GroupQuotaBatchSampler",
    "HardExampleSelector",
    "MPerClassBatchSampler",
    "select_hard",
    "smote_batch",
]

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
