"""Samplers: batch composition (m-per-class, group quotas), over/under-sampling, SMOTE."""

from fairmetric.sampling.m_per_class import MPerClassBatchSampler

__all__ = ["MPerClassBatchSampler"]
