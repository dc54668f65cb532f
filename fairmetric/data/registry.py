"""Build the train/test splits of a dataset by name: the one entry point experiments use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fairmetric.bounds import check_param_types
from fairmetric.data.dataset import AttributeDataset
from fairmetric.data.splits import class_disjoint_split, imbalanced_subsample
from fairmetric.registry import Registry

__all__ = ["DATASETS", "build_splits"]

Splits = dict[str, AttributeDataset]
_IMBALANCE_KEYS = {"attribute", "share", "by", "minority_value"}
#: the coloured-digits benchmark's parameters unless data.params sets them
COLORED_DIGITS_DEFAULTS: dict[str, Any] = {"p_majority": 0.95, "copies": 2}


def _colored_digits(
    root: str | None,
    image_size: int,
    split: str,
    test_fraction: float,
    seed: int,
    params: dict[str, Any],
) -> Splits:
    from fairmetric.data.colored_digits import make_colored_digits

    if split not in ("auto", "official"):
        raise ValueError("colored_digits has its own class-disjoint split: use data.split=auto")
    # the benchmark's own defaults (data.params starts empty for every dataset)
    params = {"seed": seed, **COLORED_DIGITS_DEFAULTS, **params}
    return {
        s: make_colored_digits(split=s, image_size=image_size, **params) for s in ("train", "test")
    }


def _identities(
    root: str | None,
    image_size: int,
    split: str,
    test_fraction: float,
    seed: int,
    params: dict[str, Any],
) -> Splits:
    from fairmetric.data.identities import make_identities

    if split not in ("auto", "official"):
        raise ValueError("identities has its own identity-disjoint split: use data.split=auto")
    params = {"seed": seed, **params}
    return {s: make_identities(split=s, image_size=image_size, **params) for s in ("train", "test")}


def _gaussian(
    root: str | None,
    image_size: int,
    split: str,
    test_fraction: float,
    seed: int,
    params: dict[str, Any],
) -> Splits:
    from fairmetric.data.gaussian import make_gaussian_groups

    full = make_gaussian_groups(**{"seed": seed, **params})
    return _split_by_class(full, split, test_fraction, seed)


def _split_by_class(full: AttributeDataset, split: str, test_fraction: float, seed: int) -> Splits:
    if split not in ("auto", "class_disjoint"):
        raise ValueError(
            f"{full.name} has no official class-disjoint split: use data.split=auto or "
            "class_disjoint"
        )
    train, test = class_disjoint_split(full, test_fraction=test_fraction, seed=seed)
    return {"train": train, "test": test}


def _needs_root(name: str, root: str | None) -> str:
    if not root:
        raise ValueError(
            f"dataset {name!r} is read from a local copy: set data.root to its folder "
            "(fairmetric never downloads data)"
        )
    return root


def _celeba(root, image_size, split, test_fraction, seed, params) -> Splits:
    import numpy as np

    from fairmetric.data.celeba import load_celeba

    full = load_celeba(_needs_root("celeba", root), image_size=image_size, **params)
    if split == "class_disjoint":
        return _split_by_class(full, split, test_fraction, seed)
    if split not in ("auto", "official"):
        raise ValueError(f"unknown split {split!r} for celeba: use auto/official or class_disjoint")
    # CelebA's official partitions are identity-disjoint
    return {
        "train": full.subset(np.flatnonzero(full.partition == "train")),
        "valid": full.subset(np.flatnonzero(full.partition == "valid")),
        "test": full.subset(np.flatnonzero(full.partition == "test")),
    }


def _cub(root, image_size, split, test_fraction, seed, params) -> Splits:
    import numpy as np

    from fairmetric.data.cub import load_cub

    full = load_cub(_needs_root("cub", root), image_size=image_size, **params)
    if split == "official":
        raise ValueError(
            "CUB's official train/test split shares classes, which DML evaluation must not; use "
            "data.split=auto (first half of the classes for training, the rest for testing, the "
            "usual DML protocol) or class_disjoint"
        )
    if split == "class_disjoint":
        return _split_by_class(full, split, test_fraction, seed)
    if split != "auto":
        raise ValueError(f"unknown split {split!r} for cub: use auto or class_disjoint")
    classes = np.unique(full.labels)
    test_classes = classes[len(classes) // 2 :]
    train, test = class_disjoint_split(full, test_classes=test_classes)
    return {"train": train, "test": test}


def _lfw(root, image_size, split, test_fraction, seed, params) -> Splits:
    from fairmetric.data.lfw import load_lfw

    full = load_lfw(_needs_root("lfw", root), image_size=image_size, **params)
    return _split_by_class(full, split, test_fraction, seed)


def _folder(root, image_size, split, test_fraction, seed, params) -> Splits:
    from fairmetric.data.folder import load_folder_csv

    full = load_folder_csv(_needs_root("folder", root), image_size=image_size, **params)
    return _split_by_class(full, split, test_fraction, seed)


#: dataset name → builder ``(root, image_size, split, test_fraction, seed, params) -> splits``;
#: add one with ``DATASETS.register("name", builder)``
DATASETS: Registry[Callable[..., Splits]] = Registry("dataset")
#: the function each built-in dataset passes ``data.params`` to, for their type check
_PARAMS_OF: dict[str, str] = {}
for _name, _builder, _params_of in (
    ("identities", _identities, "fairmetric.data.identities:make_identities"),
    ("colored_digits", _colored_digits, "fairmetric.data.colored_digits:make_colored_digits"),
    ("gaussian", _gaussian, "fairmetric.data.gaussian:make_gaussian_groups"),
    ("celeba", _celeba, "fairmetric.data.celeba:load_celeba"),
    ("lfw", _lfw, "fairmetric.data.lfw:load_lfw"),
    ("cub", _cub, "fairmetric.data.cub:load_cub"),
    ("folder", _folder, "fairmetric.data.folder:load_folder_csv"),
):
    DATASETS.register(_name, _builder)
    _PARAMS_OF[_name] = _params_of


def build_splits(
    name: str,
    *,
    root: str | None = None,
    image_size: int = 32,
    split: str = "auto",
    test_fraction: float = 0.5,
    imbalance: dict[str, Any] | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> Splits:
    """Build a dataset's splits (at least ``"train"`` and ``"test"``, class-disjoint).

    Args:
        name: one of :data:`DATASETS`.
        root: local folder of an on-disk dataset.
        image_size: side of the image tensors.
        split: ``"auto"`` (the dataset's natural class-disjoint split), ``"official"`` or
            ``"class_disjoint"`` (random classes, ``test_fraction`` of them for testing).
        test_fraction: share of classes in the test split for ``class_disjoint``.
        imbalance: optional ``{attribute, share, by, minority_value}``: subsample the training
            split (finDML protocol) with :func:`~fairmetric.data.imbalanced_subsample`.
        seed: seed for random splits and generated data.
        params: keyword arguments for the dataset's builder or loader.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if imbalance:
        imbalance = dict(imbalance)
        unknown = sorted(set(imbalance) - _IMBALANCE_KEYS)
        if unknown:
            raise ValueError(
                f"unknown data.imbalance key(s) {unknown}; allowed: {sorted(_IMBALANCE_KEYS)}"
            )
        if "attribute" not in imbalance or "share" not in imbalance:
            raise ValueError("data.imbalance needs 'attribute' and 'share' (e.g. share: 0.05)")
    params = dict(params or {})
    target = _PARAMS_OF.get(name)
    if target is not None:  # a number or true/false where the builder's default is one
        module, fn = target.split(":")
        check_param_types(params, getattr(importlib.import_module(module), fn), "data.params")
    try:
        splits = DATASETS.get(name)(root, image_size, split, test_fraction, seed, params)
    except TypeError as e:
        if "keyword argument" not in str(e):  # a genuine bug, not a misspelt parameter
            raise
        raise ValueError(f"bad data.params for dataset {name!r}: {e}") from None
    if imbalance:
        splits["train"] = imbalanced_subsample(splits["train"], seed=seed, **imbalance)
    return splits
