"""Splits for deep metric learning: class-disjoint train/test, and imbalanced subsampling.

DML evaluates on classes never seen in training, so :func:`class_disjoint_split` splits by class.
:func:`imbalanced_subsample` reproduces the finDML protocol (Dullerud et al., 2022): the training set
is subsampled so that one value of a sensitive attribute makes up a chosen share of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from fairmetric.data.dataset import AttributeDataset

__all__ = ["class_disjoint_split", "imbalanced_subsample", "attribute_share"]


def class_disjoint_split(
    dataset: AttributeDataset,
    *,
    test_fraction: float = 0.5,
    test_classes: Sequence[int] | None = None,
    seed: int = 0,
) -> tuple[AttributeDataset, AttributeDataset]:
    """Split ``dataset`` into train and test sets that share no class.

    Args:
        dataset: the dataset to split.
        test_fraction: share of the classes that go to the test set (rounded, at least one class
            on each side). Ignored when ``test_classes`` is given.
        test_classes: explicit label codes of the test classes.
        seed: seed of the random class assignment.

    Returns:
        ``(train, test)`` subsets.
    """
    classes = np.unique(dataset.labels)
    if len(classes) < 2:
        raise ValueError(
            f"a class-disjoint split needs at least 2 classes, the dataset has {len(classes)}"
        )
    if test_classes is not None:
        test = np.unique(np.asarray(list(test_classes), dtype=np.int64))
        unknown = np.setdiff1d(test, classes)
        if unknown.size:
            raise ValueError(f"test_classes not present in the dataset: {unknown.tolist()}")
        if test.size == 0 or test.size == classes.size:
            raise ValueError("test_classes must leave at least one class on each side")
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        n_test = int(round(test_fraction * len(classes)))
        n_test = min(max(n_test, 1), len(classes) - 1)
        rng = np.random.default_rng(seed)
        test = np.sort(rng.choice(classes, size=n_test, replace=False))
    is_test = np.isin(dataset.labels, test)
    return dataset.subset(np.flatnonzero(~is_test)), dataset.subset(np.flatnonzero(is_test))


def attribute_share(dataset: AttributeDataset, attribute: str, value: int) -> float:
    """Fraction of the samples of ``dataset`` whose ``attribute`` equals ``value``."""
    column = dataset.attribute(attribute)
    return float(np.mean(column == value)) if len(column) else 0.0


def imbalanced_subsample(
    dataset: AttributeDataset,
    *,
    attribute: str,
    share: float,
    minority_value: int | None = None,
    by: Literal["sample", "class"] = "sample",
    seed: int = 0,
) -> AttributeDataset:
    """Subsample ``dataset`` so that ``attribute == minority_value`` makes up ``share`` of it.

    Samples are only removed, never duplicated: when the current share is above the target, samples
    of the minority value are dropped; when it is below, samples of the other values are dropped.

    Args:
        dataset: the (training) dataset.
        attribute: name of the sensitive attribute.
        share: target fraction of samples with the minority value, in ``(0, 1)``.
        minority_value: the value whose share is set (default: the least frequent value).
        by: ``"sample"`` drops individual samples; ``"class"`` drops whole classes, which keeps
            every remaining class complete (the attribute must then be constant within each class).
            With ``"class"`` classes are taken in random order and the achieved share is at or
            below the target (at least one minority class is always kept, even if it alone
            exceeds the target).
        seed: seed of the random choice of what is dropped.

    Returns:
        The subsampled dataset.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must lie in (0, 1), got {share}")
    if by not in ("sample", "class"):
        raise ValueError(f"by must be 'sample' or 'class', got {by!r}")
    column = dataset.attribute(attribute)
    counts = np.bincount(column, minlength=len(dataset.attribute_value_names[attribute]))
    if minority_value is None:
        present = np.flatnonzero(counts)
        minority_value = int(present[np.argmin(counts[present])])
    if minority_value < 0 or counts.size <= minority_value or counts[minority_value] == 0:
        raise ValueError(
            f"value {minority_value} of attribute {attribute!r} does not occur in the dataset"
        )
    is_min = column == minority_value
    n_min, n_rest = int(is_min.sum()), int((~is_min).sum())
    if n_rest == 0:
        raise ValueError(
            f"every sample has {attribute}={minority_value}: nothing to balance against"
        )

    rng = np.random.default_rng(seed)
    current = n_min / (n_min + n_rest)
    if current > share:  # drop minority samples: keep about share * n_rest / (1 - share)
        reduce_mask, exact = is_min, share * n_rest / (1.0 - share)
    else:  # drop majority samples: keep about n_min * (1 - share) / share
        reduce_mask, exact = ~is_min, n_min * (1.0 - share) / share
    candidates = np.flatnonzero(reduce_mask)

    if by == "sample":
        size = min(max(int(round(exact)), 1), len(candidates))
        kept = rng.choice(candidates, size=size, replace=False)
    else:
        labels = dataset.labels
        for c in np.unique(labels[candidates]):
            if len(np.unique(column[labels == c])) > 1:
                raise ValueError(
                    f"by='class' needs {attribute!r} to be constant within each class, but class "
                    f"{c} has several values; use by='sample'"
                )
        cls = rng.permutation(np.unique(labels[candidates]))
        cumulative = np.cumsum([(labels[candidates] == c).sum() for c in cls])
        if reduce_mask is is_min:  # largest prefix of minority classes not above the target
            n_keep = int(np.searchsorted(cumulative, math.floor(exact + 1e-9), side="right"))
        else:  # smallest prefix of majority classes that brings the share down to the target
            n_keep = int(np.searchsorted(cumulative, math.ceil(exact - 1e-9), side="left")) + 1
        n_keep = min(max(n_keep, 1), len(cls))
        kept = candidates[np.isin(labels[candidates], cls[:n_keep])]
    keep = np.sort(np.concatenate([np.flatnonzero(~reduce_mask), kept]))
    return dataset.subset(keep)
