"""Balance or imbalance the downstream training set by a sensitive attribute (subsampling only).

Modes:

- ``"none"``: keep every sample (the identity).
- ``"attribute"``: equal counts for every value of the attribute. With ``per_class=True`` (the
  default) the counts are equal **within each class**: class ``c`` keeps
  ``m_c = min_v n(c, v)`` random samples of every value ``v``, so each value also has the same
  total count ``Σ_c m_c`` and the class proportions of the values are identical. With
  ``per_class=False`` every value keeps ``min_v n(v)`` random samples, whatever their classes.
- ``"imbalanced"``: the value ``minority_value`` (default: the least frequent) makes up ``share``
  of the samples — within each class with ``per_class=True``, of the whole set otherwise — by
  dropping random samples of the minority (when it is above the share) or of the other values
  (when it is below), as :func:`fairmetric.data.imbalanced_subsample` does for training sets. At
  least one minority sample is kept per class (per set). The achieved share is the rounded target.

Samples are never duplicated. Every value of the attribute must occur (in every class, with
``per_class=True``), otherwise a ``ValueError`` names the value and the way out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

__all__ = ["BalanceMode", "balance_by_attribute", "balance_indices", "split_and_balance"]

BalanceMode = Literal["none", "attribute", "imbalanced"]


def _value_name(names: Sequence[str] | None, v: int) -> str:
    return repr(names[v]) if names is not None and 0 <= v < len(names) else str(v)


def check_mode(mode: Any) -> None:
    """Raise a ``ValueError`` listing the valid modes unless ``mode`` is one."""
    if mode not in get_args(BalanceMode):
        raise ValueError(
            f"unknown balance mode {mode!r}; valid values: "
            + ", ".join(repr(m) for m in get_args(BalanceMode))
        )


def _share_keep(
    minority: np.ndarray, rest: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    """Indices kept from ``minority`` and ``rest`` so the minority makes up ``share``."""
    n_min, n_rest = len(minority), len(rest)
    if n_min / (n_min + n_rest) > share:
        keep = min(max(int(round(share * n_rest / (1.0 - share))), 1), n_min)
        return np.concatenate([rng.choice(minority, keep, replace=False), rest])
    keep = min(max(int(round(n_min * (1.0 - share) / share)), 0), n_rest)
    return np.concatenate([minority, rng.choice(rest, keep, replace=False)])


def balance_indices(
    labels: Any,
    values: Any,
    *,
    mode: BalanceMode = "attribute",
    per_class: bool = True,
    share: float | None = None,
    minority_value: int | None = None,
    n_values: int | None = None,
    attribute: str = "attribute",
    value_names: Sequence[str] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Sorted row indices that balance (or imbalance) ``values`` as ``mode`` says.

    Args:
        labels: ``(N,)`` class labels.
        values: ``(N,)`` non-negative integer codes of the attribute.
        mode: ``"none"``, ``"attribute"`` or ``"imbalanced"`` (see the module docstring).
        per_class: balance within each class (``True``) or over the whole set.
        share: for ``"imbalanced"``: the target share of ``minority_value``, in ``(0, 1)``.
        minority_value: for ``"imbalanced"``: the value whose share is set (default: the least
            frequent one).
        n_values: the number of values the attribute has (codes ``0..n_values-1``); default: the
            values present. A value without samples is an error.
        attribute: the attribute's name, for messages.
        value_names: names of the codes, for messages.
        seed: seed of the random choice of what is dropped.

    Returns:
        ``int64`` indices into the rows, ascending.
    """
    check_mode(mode)
    labels = np.asarray(labels)
    values = np.asarray(values)
    if labels.ndim != 1 or values.ndim != 1:
        raise ValueError("labels and the attribute values must be 1-D arrays")
    if len(labels) != len(values):
        raise ValueError(
            f"labels has {len(labels)} entries but attribute {attribute!r} has {len(values)}; "
            "give one value per sample"
        )
    if values.dtype.kind not in "iu" or (values.size and values.min() < 0):
        raise ValueError(f"attribute {attribute!r} must hold non-negative integer codes")
    if mode == "imbalanced":
        if share is None or isinstance(share, bool) or not 0.0 < float(share) < 1.0:
            raise ValueError(f"mode='imbalanced' needs share in (0, 1), got {share!r}")
    elif share is not None or minority_value is not None:
        raise ValueError(f"share and minority_value apply to mode='imbalanced' only, not {mode!r}")
    if mode == "none":
        return np.arange(len(labels), dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("there are no samples to balance")

    present = np.unique(values)
    expected = np.arange(n_values) if n_values is not None else present
    missing = np.setdiff1d(expected, present)
    if missing.size:
        raise ValueError(
            f"value {_value_name(value_names, int(missing[0]))} of attribute {attribute!r} has no "
            "samples in the training data, so balancing would keep nothing; use balance mode "
            "'none' or a training set that has every value"
        )
    if len(expected) < 2:
        raise ValueError(
            f"attribute {attribute!r} has a single value in the training data: nothing to balance "
            "(use balance mode 'none')"
        )
    rng = np.random.default_rng(seed)
    counts = np.bincount(values, minlength=int(expected.max()) + 1)
    if mode == "imbalanced":
        if minority_value is None:
            minority_value = int(expected[np.argmin(counts[expected])])
        if minority_value not in expected:
            raise ValueError(
                f"minority_value {minority_value} is not a value of attribute {attribute!r} "
                f"(codes {expected.tolist()})"
            )

    strata: list[Any] = list(np.unique(labels)) if per_class else [None]
    kept: list[np.ndarray] = []
    for c in strata:
        rows = np.flatnonzero(labels == c) if c is not None else np.arange(len(labels))
        v = values[rows]
        where = " in class " + repr(c.item() if hasattr(c, "item") else c) if c is not None else ""
        if mode == "attribute":
            by_value = [rows[v == val] for val in expected]
            m = min(len(r) for r in by_value)
            if m == 0:
                lacking = next(int(val) for val, r in zip(expected, by_value) if len(r) == 0)
                raise ValueError(
                    f"value {_value_name(value_names, lacking)} of attribute {attribute!r} has no "
                    f"samples{where}, so per-class balancing would drop the class; pass "
                    "per_class=False to balance the values over the whole set instead"
                )
            kept += [rng.choice(r, m, replace=False) for r in by_value]
        else:
            minority, rest = rows[v == minority_value], rows[v != minority_value]
            if len(minority) == 0 or len(rest) == 0:
                which = "no" if len(minority) == 0 else "only"
                raise ValueError(
                    f"there are {which} samples with {attribute}="
                    f"{_value_name(value_names, minority_value)}{where}: the share cannot be set; "
                    "pass per_class=False or choose another minority_value"
                )
            kept.append(_share_keep(minority, rest, float(share), rng))  # type: ignore[arg-type]
    return np.sort(np.concatenate(kept)).astype(np.int64)


def balance_by_attribute(
    data: Any,
    attribute: str | None,
    *,
    mode: BalanceMode = "attribute",
    per_class: bool = True,
    share: float | None = None,
    minority_value: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """:func:`balance_indices` for an :class:`~fairmetric.embeddings.EmbeddingSet` or an
    :class:`~fairmetric.data.AttributeDataset` (anything with ``labels``, ``attribute(name)``
    and ``attribute_value_names``).

    Every named value of the attribute must have samples (for ``"attribute"`` and
    ``"imbalanced"``). ``attribute`` may be ``None`` only with ``mode="none"``, or when the data
    has exactly one attribute. Use the result with ``data.subset(indices)``.

    Raises:
        ValueError: unknown attribute or mode, a value (or a class × value cell) without
            samples, or a bad ``share``.
    """
    check_mode(mode)
    if mode == "none":
        return balance_indices(data.labels, np.zeros(len(data.labels), np.int64), mode="none")
    if attribute is None:
        names = list(getattr(data, "attribute_names", []))
        if len(names) != 1:
            raise ValueError(
                f"name the attribute to balance by; the data has: {', '.join(names) or '(none)'}"
            )
        attribute = names[0]
    column = data.attribute(attribute)  # raises for an unknown attribute, listing the names
    value_names = data.attribute_value_names.get(attribute)
    return balance_indices(
        data.labels,
        column,
        mode=mode,
        per_class=per_class,
        share=share,
        minority_value=minority_value,
        n_values=len(value_names) if value_names else None,
        attribute=attribute,
        value_names=value_names,
        seed=seed,
    )


def split_and_balance(
    data: Any,
    *,
    test_fraction: float,
    seed: int,
    balance: BalanceMode,
    balance_attribute: str | None,
    balance_per_class: bool,
    share: float | None,
    minority_value: Any,
) -> tuple[np.ndarray, np.ndarray, int, str | None]:
    """The downstream split of ``data`` (an ``EmbeddingSet`` or ``AttributeDataset``):
    a seeded split stratified by class and every attribute, then the training half balanced by
    ``balance_attribute`` (default: the only attribute when balancing).

    Returns:
        ``(train_indices, test_indices, train_size_before_balancing, balance_attribute)``.

    Raises:
        ValueError: balancing asked without naming the attribute among several.
    """
    from fairmetric.downstream.split import stratified_split

    if balance != "none" and balance_attribute is None:
        if len(data.attribute_names) != 1:
            raise ValueError(
                "name the attribute to balance by (balance_attribute); the data has: "
                + (", ".join(data.attribute_names) or "(none)")
            )
        balance_attribute = data.attribute_names[0]
    strata = [data.attributes[:, j] for j in range(data.attributes.shape[1])]
    train_idx, test_idx = stratified_split(
        data.labels, strata, test_fraction=test_fraction, seed=seed
    )
    n_before = len(train_idx)
    keep = balance_by_attribute(
        data.subset(train_idx),
        balance_attribute,
        mode=balance,
        per_class=balance_per_class,
        share=share,
        minority_value=minority_value,
        seed=seed,
    )
    return train_idx[keep], test_idx, n_before, balance_attribute
