"""Linear probe: multinomial logistic regression on (standardised) frozen embeddings.

The probe is scikit-learn's ``LogisticRegression`` (L-BFGS, multinomial, L2 penalty), optionally
after a ``StandardScaler`` fitted on the training embeddings. It minimises

.. math::

    \\frac{1}{2} \\lVert W \\rVert_F^2 + C \\sum_{i=1}^{N} -\\log
    \\frac{\\exp(w_{y_i}^\\top z_i + b_{y_i})}{\\sum_k \\exp(w_k^\\top z_i + b_k)},
    \\qquad z_i = (x_i - \\mu) / \\sigma,

with ``C`` the inverse regularisation strength (the intercepts ``b`` are not penalised).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fairmetric.downstream.base import DownstreamClassifier

__all__ = ["LinearProbe"]


class LinearProbe(DownstreamClassifier):
    """Multinomial logistic regression on embeddings (scikit-learn's solver).

    Args:
        C: inverse L2 regularisation strength (scikit-learn's ``C``), > 0.
        max_iter: L-BFGS iteration limit.
        tol: L-BFGS stopping tolerance.
        standardize: standardise each embedding dimension with the training mean and standard
            deviation first (recommended: unit-norm embeddings have tiny per-dimension scales, so
            without it ``C`` acts as a much stronger penalty).
        class_weight: ``None`` or ``"balanced"`` (weights inversely proportional to class counts).
        seed: ``random_state`` of the solver (L-BFGS is deterministic; kept for symmetry).

    Attributes (after :meth:`fit`):
        model_: the fitted scikit-learn ``Pipeline``.
        converged_: whether L-BFGS stopped before ``max_iter``.
    """

    name = "probe"

    def __init__(
        self,
        *,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name
        max_iter: int = 1000,
        tol: float = 1e-4,
        standardize: bool = True,
        class_weight: str | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
            raise ValueError(f"C must be a positive number, got {C!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        if not isinstance(tol, (int, float)) or not tol > 0:
            raise ValueError(f"tol must be a positive number, got {tol!r}")
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        self.C = float(C)
        self.max_iter = max_iter
        self.tol = float(tol)
        self.standardize = bool(standardize)
        self.class_weight = class_weight
        self.seed = int(seed)

    def build(self) -> Any:
        """The unfitted scikit-learn pipeline this probe fits (a reference for tests)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        logreg = LogisticRegression(
            C=self.C,
            max_iter=self.max_iter,
            tol=self.tol,
            class_weight=self.class_weight,
            random_state=self.seed,
        )
        return (
            make_pipeline(StandardScaler(), logreg) if self.standardize else make_pipeline(logreg)
        )

    def _fit(self, x: np.ndarray, codes: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning

        model = self.build()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x, codes)
        self.converged_ = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if not self.converged_:
            warnings.warn(
                f"the linear probe did not converge in max_iter={self.max_iter} iterations; "
                "raise max_iter or lower C",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.model_ = model

    def _predict_codes(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict(x).astype(np.int64)

    def predict_proba(self, x: Any) -> np.ndarray:
        """``(N, K)`` class probabilities, columns in the order of :attr:`classes_`."""
        return self.model_.predict_proba(self._check_query(x))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "C": self.C,
            "max_iter": self.max_iter,
            "standardize": self.standardize,
            "class_weight": self.class_weight,
        }
