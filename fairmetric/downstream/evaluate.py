"""Per-subgroup accuracy, balanced accuracy and macro-F1 of downstream predictions, as an audit
report.

Accuracy is measured from per-sample correctness ``c_i = [ŷ_i = y_i]``: a group's accuracy is the
mean of ``c_i`` over its samples, the gap is ``max − min`` over groups, the worst group is the
least accurate, and the intervals are stratified percentile bootstraps (each replicate resamples
every group at its own size) — :func:`~fairmetric.report.frame.group_metric_from_samples` does the
work, so a downstream evaluation is an :class:`~fairmetric.report.result.AuditReport` that
:func:`~fairmetric.report.writers.write_report` writes as ``report.json`` / ``.md`` / ``.html``.
Balanced accuracy (the mean recall over classes) and macro-F1 (the mean F1 over classes) are
recomputed on every group's rows and on every bootstrap resample of them
(:mod:`fairmetric.downstream.metrics`), with the same stratified resampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairmetric import __version__
from fairmetric.data.dataset import encode_column
from fairmetric.downstream.base import check_labels
from fairmetric.downstream.metrics import ClassificationStatistic
from fairmetric.report.frame import (
    DEFAULT_MIN_GROUP_SIZE,
    Grouping,
    check_min_group_size,
    group_metric_from_samples,
    group_metric_from_statistic,
    intersect,
)
from fairmetric.report.result import AuditReport

__all__ = ["METRICS", "evaluate_downstream", "groups_of"]

ACCURACY = "accuracy"
BALANCED_ACCURACY = "balanced_accuracy"
MACRO_F1 = "macro_f1"
#: the metrics of a downstream report, in report order
METRICS = (ACCURACY, BALANCED_ACCURACY, MACRO_F1)
_DESCRIPTIONS = {
    BALANCED_ACCURACY: "mean over classes of the share of each class's test samples classified "
    "correctly (recall), so every class counts equally.",
    MACRO_F1: "mean over classes of F1 = 2·precision·recall / (precision + recall).",
}


def groups_of(
    data: Any, attributes: Sequence[str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """``(groups, group_names)`` of an EmbeddingSet or AttributeDataset for
    :func:`evaluate_downstream` (``attributes=None``: all of its attributes)."""
    names = list(data.attribute_names) if attributes is None else list(attributes)
    groups = {a: np.asarray(data.attribute(a)) for a in names}
    return groups, {a: list(data.attribute_value_names[a]) for a in names}


def _grouping(name: str, column: Any, names: Sequence[str] | None, n: int) -> Grouping:
    col = np.asarray(column)
    if col.shape != (n,):
        raise ValueError(
            f"group column {name!r} has shape {col.shape} but there are {n} predictions; give one "
            "group value per sample"
        )
    if names is None:
        codes, auto = encode_column(col, name=name)
        return Grouping(name, codes, auto)
    if col.dtype.kind not in "iu" or (n and (col.min() < 0 or col.max() >= len(names))):
        raise ValueError(
            f"group column {name!r} must hold integer codes 0..{len(names) - 1} to match its "
            f"{len(names)} group names"
        )
    return Grouping(name, col.astype(np.int64), [str(s) for s in names])


def evaluate_downstream(
    y_true: Any,
    y_pred: Any,
    groups: Mapping[str, Any],
    *,
    group_names: Mapping[str, Sequence[str]] | None = None,
    intersectional: bool = True,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    metadata: Mapping[str, Any] | None = None,
) -> AuditReport:
    """Accuracy, balanced accuracy and macro-F1 overall and per group, with gaps, worst groups
    and bootstrap intervals.

    Args:
        y_true: ``(N,)`` true labels of the downstream test samples.
        y_pred: ``(N,)`` predicted labels.
        groups: ``{attribute: (N,) values}``; values are integer codes when ``group_names`` names
            them, otherwise any values (mapped to codes in sorted order).
        group_names: ``{attribute: [name of code 0, ...]}`` for some or all attributes.
        intersectional: also report the intersection of the attributes when there are several.
        n_boot: bootstrap replicates (0: no intervals).
        seed: bootstrap seed.
        level: interval coverage.
        min_group_size: groups with fewer test samples are reported but kept out of the gap,
            the ratio and the worst group (as in :func:`fairmetric.audit`), with the reason.
        metadata: extra JSON-serialisable facts for the report (task, classifier, ...).

    Returns:
        An :class:`~fairmetric.report.result.AuditReport` with the metrics ``"accuracy"``,
        ``"balanced_accuracy"`` and ``"macro_f1"`` (see the module docstring);
        ``report["accuracy"].difference("colour")`` is the gap, ``.worst_group("colour")`` the
        worst group. A group's balanced accuracy and macro-F1 are those of scikit-learn's
        ``balanced_accuracy_score`` and ``f1_score(average="macro")`` on the group's rows.
    """
    y_true = np.asarray(y_true)
    y_true = check_labels(y_true, y_true.shape[0] if y_true.ndim else 0, "y_true")
    y_pred = check_labels(y_pred, len(y_true), "y_pred", rows_name="y_true")
    if (y_true.dtype.kind in "US") != (y_pred.dtype.kind in "US"):
        raise ValueError(
            f"y_true holds {y_true.dtype} values but y_pred holds {y_pred.dtype}: predictions "
            "must be labels of the same kind (strings for string labels, numbers for numbers)"
        )
    n = len(y_true)
    if n == 0:
        raise ValueError("there are no predictions to evaluate (y_true is empty)")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    min_group_size = check_min_group_size(min_group_size)
    group_names = dict(group_names or {})
    unknown = sorted(set(group_names) - set(groups))
    if unknown:
        raise ValueError(
            f"group_names names unknown attributes {unknown}; groups has {list(groups)}"
        )
    groupings = [_grouping(a, col, group_names.get(a), n) for a, col in groups.items()]
    if intersectional and len(groupings) >= 2:
        groupings.append(intersect(groupings))
    correct = (y_true == y_pred).astype(np.float64)
    metric = group_metric_from_samples(
        ACCURACY,
        num=correct,
        groupings=groupings,
        higher_is_better=True,
        description="share of downstream test samples classified correctly.",
        n_boot=int(n_boot),
        seed=seed,
        level=level,
        na_reason="no test sample of this group",
        min_group_size=min_group_size,
    )
    metrics = {ACCURACY: metric}
    for i, name in enumerate((BALANCED_ACCURACY, MACRO_F1), start=1):
        metrics[name] = group_metric_from_statistic(
            name,
            statistic=ClassificationStatistic(y_true, y_pred, name),  # type: ignore[arg-type]
            groupings=groupings,
            higher_is_better=True,
            description=_DESCRIPTIONS[name],
            n_boot=int(n_boot),
            seed=seed + i,
            level=level,
            min_group_size=min_group_size,
        )
    meta: dict[str, Any] = {
        "n": n,
        "classes": int(len(np.unique(y_true))),
        "seed": seed,
        "bootstrap": int(n_boot),
        "level": level,
        "min_group_size": min_group_size,
        "attributes": list(groups),
        "groupings": [g.name for g in groupings],
        **dict(metadata or {}),
        "fairmetric_version": __version__,
    }
    return AuditReport(metrics=metrics, metadata=meta)
