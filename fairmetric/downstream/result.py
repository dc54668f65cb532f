"""The result of a downstream run: the report, the predictions and what was fitted."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fairmetric.downstream.evaluate import evaluate_downstream
from fairmetric.report.result import AuditReport
from fairmetric.report.writers import write_report

__all__ = ["DownstreamResult", "finish", "split_metadata", "value_counts"]


@dataclass
class DownstreamResult:
    """What :func:`run_downstream` did and found.

    Attributes:
        report: per-group accuracy on the downstream-test half (an :class:`AuditReport`).
        predictions: predicted labels of the downstream-test samples.
        labels: their true labels.
        train_indices: rows of the pool used for training (after balancing).
        test_indices: rows of the pool used for testing.
        classifier: the fitted :class:`DownstreamClassifier`, or the :class:`FinetuneResult`.
        paths: the files written (``{"json", "markdown", "html"}``), empty without ``out_dir``.
    """

    report: AuditReport
    predictions: np.ndarray
    labels: np.ndarray
    train_indices: np.ndarray
    test_indices: np.ndarray
    classifier: Any
    paths: dict[str, Path] = field(default_factory=dict)


def value_counts(data: Any, attribute: str) -> dict[str, int]:
    """``{value name: count}`` of ``attribute`` in ``data`` (a dataset or embedding set)."""
    names = data.attribute_value_names[attribute]
    counts = np.bincount(data.attribute(attribute), minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts)}


def split_metadata(
    train_set: Any,
    *,
    n_before: int,
    n_test: int,
    balance: str,
    balance_attribute: str | None,
) -> dict[str, Any]:
    """The report metadata of a downstream split (both routes): balancing, sizes before and
    after it, and the training half's count of each attribute value."""
    return {
        "balance": balance,
        "balance_attribute": balance_attribute,
        "n_train": len(train_set),
        "n_train_before_balance": int(n_before),
        "n_test": int(n_test),
        "train_counts": {a: value_counts(train_set, a) for a in train_set.attribute_names},
    }


def finish(
    *,
    labels: np.ndarray,
    predictions: Any,
    groups: dict[str, np.ndarray],
    names: dict[str, list[str]],
    n_boot: int,
    seed: int,
    level: float,
    min_group_size: int,
    metadata: dict[str, Any],
    start: float,
    out_dir: str | Path | None,
    train_indices: np.ndarray,
    test_indices: np.ndarray,
    classifier: Any,
) -> DownstreamResult:
    """The per-group report of ``predictions`` against ``labels`` (written to ``out_dir`` when
    given) and the :class:`DownstreamResult` of a run that started at ``start``
    (``time.perf_counter()``); the last step of every downstream route."""
    with threadpool_limits(1, user_api="blas"):
        report = evaluate_downstream(
            labels,
            predictions,
            groups,
            group_names=names,
            n_boot=n_boot,
            seed=seed,
            level=level,
            min_group_size=min_group_size,
            metadata=metadata,
        )
    report.metadata["seconds"] = round(time.perf_counter() - start, 3)
    paths = write_report(report, out_dir) if out_dir is not None else {}
    return DownstreamResult(
        report=report,
        predictions=np.asarray(predictions),
        labels=labels.copy(),
        train_indices=train_indices,
        test_indices=test_indices,
        classifier=classifier,
        paths=paths,
    )
