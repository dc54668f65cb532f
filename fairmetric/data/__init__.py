"""Attribute-aware datasets, built-in biased benchmarks, on-disk loaders and DML splits."""

from fairmetric.data.celeba import CELEBA_ATTRIBUTES, load_celeba
from fairmetric.data.colored_digits import make_colored_digits
from fairmetric.data.cub import load_cub
from fairmetric.data.dataset import (
    AttributeDataset,
    ImageFileDataset,
    TensorAttributeDataset,
    encode_column,
)
from fairmetric.data.folder import load_folder_csv
from fairmetric.data.gaussian import make_gaussian_groups
from fairmetric.data.identities import make_identities
from fairmetric.data.lfw import load_lfw
from fairmetric.data.registry import DATASETS, build_splits
from fairmetric.data.splits import attribute_share, class_disjoint_split, imbalanced_subsample

__all__ = [
    "AttributeDataset",
    "CELEBA_ATTRIBUTES",
    "DATASETS",
    "ImageFileDataset",
    "TensorAttributeDataset",
    "attribute_share",
    "build_splits",
    "class_disjoint_split",
    "encode_column",
    "imbalanced_subsample",
    "load_celeba",
    "load_cub",
    "load_folder_csv",
    "load_lfw",
    "make_colored_digits",
    "make_gaussian_groups",
    "make_identities",
]
