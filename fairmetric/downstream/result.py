"""The result of a downstream run: the report, the predictions and what was fitted."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.report.result import AuditReport

__all__ = ["DownstreamResult"]


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
