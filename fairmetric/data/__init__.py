"""Attribute-aware datasets, built-in biased benchmarks, on-disk loaders and DML splits."""

from fairmetric.data.colored_digits import make_colored_digits
from fairmetric.data.dataset import (
    AttributeDataset,
    ImageFileDataset,
    TensorAttributeDataset,
    encode_column,
)
from fairmetric.data.gaussian import make_gaussian_groups
from fairmetric.data.registry import DATASETS, build_splits
from fairmetric.data.splits import attribute_share, class_disjoint_split, imbalanced_subsample

__all__ = [
    "AttributeDataset",
    "DATASETS",
    "ImageFileDataset",
    "TensorAttributeDataset",
    "attribute_share",
    "build_splits",
    "class_disjoint_split",
    "encode_column",
    "imbalanced_subsample",
    "make_colored_digits",
    "make_gaussian_groups",
]
