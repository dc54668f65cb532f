"""The downstream classifier base class: input validation, label mapping, fit / predict / score.

A subclass fills in ``_fit(x, codes)`` and ``_predict_codes(x)`` on validated float32 features and
integer class codes ``0..K-1``; the base class maps the user's labels (any sortable values, e.g.
the digit classes ``5..9``) to those codes and back, and refuses bad input with a message that
names the argument and the fix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

__all__ = ["DownstreamClassifier", "check_features", "check_labels"]

_SHOW = 5


def _first(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:_SHOW])
    return shown + (", ..." if len(indices) > _SHOW else "")


def check_features(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a C-contiguous float32 ``(N, D)`` array with finite values, or a ``ValueError``."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    if hasattr(x, "embeddings") and hasattr(x, "labels"):
        raise ValueError(
            f"{name} is an EmbeddingSet; pass its .embeddings (and its .labels as the labels)"
        )
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array of embeddings, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} has shape {arr.shape}: it needs at least one row and one column")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32 become Inf, reported below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} row(s) with NaN or Inf values (first at [{_first(bad)}]); drop "
            "them first, e.g. with EmbeddingSet(..., allow_invalid=True).drop_invalid()"
        )
    return out


def check_labels(y: Any, n: int, name: str = "y", *, rows_name: str = "x") -> np.ndarray:
    """``y`` as a 1-D array with one entry per row of ``rows_name`` (``n`` rows)."""
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per row), got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(
            f"{rows_name} has {n} rows but {name} has {len(arr)} entries; give one label per row"
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf labels")
    if arr.dtype.kind not in "iufUSb":
        raise ValueError(f"{name} must hold integers or strings, got dtype {arr.dtype}")
    return arr


class DownstreamClassifier(ABC):
    """A classifier on fixed embeddings: ``fit(x, y)``, ``predict(x)``, ``score(x, y)``.

    Attributes (after :meth:`fit`):
        classes_: the sorted distinct training labels; predictions are drawn from them.
        dim_: the embedding dimension it was fitted on.
        n_train_: the number of training rows.
    """

    #: short name used in reports
    name: str = "classifier"

    classes_: np.ndarray
    dim_: int
    n_train_: int

    def fit(self, x: Any, y: Any) -> DownstreamClassifier:
        """Fit on ``(N, D)`` embeddings ``x`` with labels ``y``; returns ``self``.

        Raises:
            ValueError: non-2-D or non-finite ``x``, ``y`` of another length, or fewer than two
                classes in ``y``.
        """
        x = check_features(x, "x")
        y = check_labels(y, len(x), "y")
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"the training labels hold a single class ({classes[0]!r}); a classifier needs at "
                "least two: check the downstream split and the balancing, which may have removed "
                "the other classes"
            )
        self._check_train_size(len(x))
        self.classes_ = classes
        self.dim_ = int(x.shape[1])
        self.n_train_ = int(len(x))
        self._fit(x, codes.ravel().astype(np.int64))
        return self

    def predict(self, x: Any) -> np.ndarray:
        """Predicted labels (values of :attr:`classes_`) of the rows of ``x``."""
        x = self._check_query(x)
        return self.classes_[self._predict_codes(x)]

    def _check_query(self, x: Any) -> np.ndarray:
        """Validated query rows of a fitted classifier."""
        if not hasattr(self, "classes_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit(x, y) first")
        x = check_features(x, "x")
        if x.shape[1] != self.dim_:
            raise ValueError(
                f"x has {x.shape[1]} columns but the classifier was fitted on {self.dim_}; "
                "embed the test data with the same model"
            )
        return x

    def score(self, x: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on ``(x, y)``."""
        pred = self.predict(x)
        y = check_labels(y, len(pred), "y")
        return float(np.mean(pred == y))

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable settings, for report metadata."""
        return {"name": self.name}

    def _check_train_size(self, n: int) -> None:  # noqa: B027 - optional hook
        """Refuse a training set that is too small for this classifier (override if needed)."""

    @abstractmethod
    def _fit(self, x: np.ndarray, codes: np.ndarray) -> None:
        """Fit on validated float32 ``x`` and class codes ``0..K-1``."""

    @abstractmethod
    def _predict_codes(self, x: np.ndarray) -> np.ndarray:
        """Class codes ``0..K-1`` of the validated rows ``x``."""
