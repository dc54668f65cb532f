"""Balanced accuracy and macro-F1 of downstream predictions, per group, with bootstrap intervals.

Both are computed from a group's confusion counts over classes ``c``: ``t_c`` test samples of
class ``c``, ``p_c`` samples predicted as ``c``, ``tp_c`` samples of class ``c`` predicted as
``c``:

.. math::

    \\text{balanced accuracy} = \\frac{1}{|T|} \\sum_{c \\in T} \\frac{tp_c}{t_c}, \\quad
    T = \\{c : t_c > 0\\}

    \\text{macro-F1} = \\frac{1}{|U|} \\sum_{c \\in U} \\frac{2\\, tp_c}{t_c + p_c}, \\quad
    U = \\{c : t_c + p_c > 0\\}

— scikit-learn's ``balanced_accuracy_score`` and ``f1_score(average="macro")`` on the group's rows
(classes are those that occur in the group's true labels, respectively in its true or predicted
labels). Neither is a mean of per-sample terms, so the intervals come from
:func:`~fairmetric.report.frame.group_metric_from_statistic`: each bootstrap replicate resamples
the rows of every group within the group and recomputes the statistic from the replicate's counts.
Point values are summed with ``math.fsum`` (correctly rounded), so they do not depend on the
summation order.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = ["ClassificationStatistic", "balanced_accuracy", "macro_f1"]

Which = Literal["balanced_accuracy", "macro_f1"]

#: resampled rows held at once while bootstrapping (bounds the memory of a replicate chunk)
_CHUNK_ROWS = 1 << 22


def _from_counts(t: np.ndarray, p: np.ndarray, tp: np.ndarray, which: Which) -> np.ndarray:
    """The statistic of each row of ``(B, K)`` count arrays; NaN where no class qualifies."""
    t, p, tp = (np.asarray(a, dtype=np.float64) for a in (t, p, tp))
    if which == "balanced_accuracy":
        used, den = t > 0, t
        terms = np.divide(tp, den, out=np.zeros_like(tp), where=used)
    else:
        den = t + p
        used = den > 0
        terms = np.divide(2.0 * tp, den, out=np.zeros_like(tp), where=used)
    n_used = used.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_used > 0, terms.sum(axis=1) / n_used, np.nan)


def _value(t: np.ndarray, p: np.ndarray, tp: np.ndarray, which: Which) -> float:
    """The statistic of one set of ``(K,)`` counts, summed exactly (``math.fsum``)."""
    if which == "balanced_accuracy":
        terms = [tp[c] / t[c] for c in range(len(t)) if t[c] > 0]
    else:
        terms = [2.0 * tp[c] / (t[c] + p[c]) for c in range(len(t)) if t[c] + p[c] > 0]
    return math.fsum(terms) / len(terms) if terms else math.nan


def _codes(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and of one length, got {y_true.shape} and "
            f"{y_pred.shape}"
        )
    classes, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    codes = codes.ravel().astype(np.int64)
    return codes[: len(y_true)], codes[len(y_true) :], len(classes)


def _counts(t: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.bincount(t, minlength=k),
        np.bincount(p, minlength=k),
        np.bincount(t[t == p], minlength=k),
    )


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (NaN for no samples)."""
    t, p, k = _codes(y_true, y_pred)
    return _value(*_counts(t, p, k), "balanced_accuracy")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over the classes present in ``y_true`` or ``y_pred`` (NaN for no samples)."""
    t, p, k = _codes(y_true, y_pred)
    return _value(*_counts(t, p, k), "macro_f1")


class ClassificationStatistic:
    """Balanced accuracy or macro-F1 of groups of rows, with stratified bootstrap replicates (a
    :class:`~fairmetric.report.frame.GroupStatistic`).

    Args:
        y_true: ``(N,)`` true labels.
        y_pred: ``(N,)`` predicted labels (same kind of values as ``y_true``).
        which: ``"balanced_accuracy"`` or ``"macro_f1"``.
    """

    def __init__(self, y_true: np.ndarray, y_pred: np.ndarray, which: Which) -> None:
        if which not in ("balanced_accuracy", "macro_f1"):
            raise ValueError(f"which must be 'balanced_accuracy' or 'macro_f1', got {which!r}")
        self.t, self.p, self.k = _codes(y_true, y_pred)
        self.n = len(self.t)
        self.which: Which = which

    def __call__(
        self, cells: list[np.ndarray], n_boot: int, seed: int
    ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        k, g = self.k, len(cells)
        values = np.full(g + 1, np.nan)
        totals = [np.zeros(k, np.int64) for _ in range(3)]
        for i, rows in enumerate(cells):
            counts = _counts(self.t[rows], self.p[rows], k)
            values[i] = _value(*counts, self.which)
            for total, c in zip(totals, counts):
                total += c
        values[g] = _value(*totals, self.which)
        reasons: list[str | None] = [
            "no test sample of this group" if np.isnan(v) else None for v in values
        ]
        reps = np.full((n_boot, g + 1), np.nan)
        if n_boot:
            rng = np.random.default_rng(seed)
            pooled = [np.zeros((n_boot, k), np.int64) for _ in range(3)]
            for i, rows in enumerate(cells):
                rows = np.asarray(rows, dtype=np.int64)
                if len(rows) == 0:
                    continue
                cell = self._replicate_counts(rows, n_boot, rng)
                reps[:, i] = _from_counts(*cell, self.which)
                for total, c in zip(pooled, cell):
                    total += c
            reps[:, g] = _from_counts(*pooled, self.which)
        return values, reasons, reps

    def _replicate_counts(
        self, rows: np.ndarray, n_boot: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(t, p, tp)`` counts, each ``(n_boot, K)``, of ``n_boot`` resamples of ``rows``."""
        k, m = self.k, len(rows)
        out = [np.zeros((n_boot, k), np.int64) for _ in range(3)]
        step = max(1, _CHUNK_ROWS // m)
        for start in range(0, n_boot, step):
            b = min(step, n_boot - start)
            draw = rows[rng.integers(0, m, size=(b, m))]
            t, p = self.t[draw], self.p[draw]
            offset = (np.arange(b) * k)[:, None]
            out[0][start : start + b] = np.bincount((t + offset).ravel(), minlength=b * k).reshape(
                b, k
            )
            out[1][start : start + b] = np.bincount((p + offset).ravel(), minlength=b * k).reshape(
                b, k
            )
            hit = (t + offset)[t == p]
            out[2][start : start + b] = np.bincount(hit, minlength=b * k).reshape(b, k)
        return out[0], out[1], out[2]
