"""Any scikit-learn-style estimator as a downstream classifier.

:func:`make_classifier` takes what a user has at hand and returns a
:class:`~fairmetric.downstream.base.DownstreamClassifier`:

- a built-in name: ``"probe"`` (:class:`~fairmetric.downstream.probe.LinearProbe`) or ``"knn"``
  (:class:`~fairmetric.downstream.knn.KNNClassifier`), with ``params`` as keyword arguments;
- a dotted name of a class, ``"sklearn.linear_model.LogisticRegression"`` (or
  ``"package.module:Class"``), imported and built with ``params``;
- a class with ``fit`` and ``predict`` (built with ``params``), or an estimator object with them
  (then ``params`` must be empty; the object itself is fitted).

Estimators other than the built-ins are wrapped in :class:`EstimatorClassifier`: it fits them on
the float32 embeddings and class codes ``0..K-1`` (the base class maps the labels), so any
estimator that follows scikit-learn's ``fit(X, y)`` / ``predict(X)`` works. An estimator with a
``random_state`` parameter left at ``None`` gets the run's seed, so results repeat.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import numpy as np

from fairmetric.downstream.base import DownstreamClassifier
from fairmetric.downstream.knn import KNNClassifier
from fairmetric.downstream.probe import LinearProbe

__all__ = ["BUILTIN_CLASSIFIERS", "EstimatorClassifier", "import_estimator", "make_classifier"]

#: classifiers on fixed embeddings, by name
BUILTIN_CLASSIFIERS: dict[str, type[DownstreamClassifier]] = {
    "probe": LinearProbe,
    "knn": KNNClassifier,
}


def _is_estimator(obj: Any) -> bool:
    return callable(getattr(obj, "fit", None)) and callable(getattr(obj, "predict", None))


def _no_fit_predict(what: str) -> ValueError:
    return ValueError(
        f"{what} has no fit and predict methods; give a scikit-learn-style classifier, e.g. "
        "sklearn.linear_model.LogisticRegression, or a built-in name: "
        + ", ".join(BUILTIN_CLASSIFIERS)
    )


def import_estimator(name: str) -> type:
    """The class named ``"package.module.Class"`` or ``"package.module:Class"``.

    Raises:
        ValueError: the name has no module part, the module does not import, or it has no such
            attribute.
    """
    module_name, sep, attr = name.partition(":")
    if not sep:
        module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        raise ValueError(
            f"unknown classifier {name!r}; valid values: "
            + ", ".join(repr(c) for c in BUILTIN_CLASSIFIERS)
            + ", or a dotted class name such as sklearn.linear_model.LogisticRegression"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"classifier {name!r}: cannot import module {module_name!r} ({e}); check the spelling, "
            "or install the package that provides it"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(
            f"classifier {name!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable part of ``params`` (others are shown by their ``repr``)."""
    out = {}
    for key, value in params.items():
        try:
            json.dumps(value)
            out[key] = value
        except (TypeError, ValueError):
            out[key] = repr(value)
    return out


class EstimatorClassifier(DownstreamClassifier):
    """A scikit-learn-style estimator (``fit(X, y)``, ``predict(X)``) on fixed embeddings.

    Args:
        estimator: the estimator object; :meth:`fit` fits it in place.
        seed: given to the estimator's ``random_state`` when it has one set to ``None``.
    """

    def __init__(self, estimator: Any, *, seed: int = 0) -> None:
        if isinstance(estimator, type):
            raise ValueError(
                f"estimator is the class {estimator.__name__}; pass an instance, e.g. "
                f"{estimator.__name__}()"
            )
        if not _is_estimator(estimator):
            raise _no_fit_predict(f"estimator {type(estimator).__name__}")
        self.estimator = estimator
        self.seed = seed
        cls = type(estimator)
        self.name = f"{cls.__module__}.{cls.__qualname__}"

    def _params(self) -> dict[str, Any]:
        get = getattr(self.estimator, "get_params", None)
        if not callable(get):
            return {}
        try:
            return dict(get(deep=False))
        except TypeError:
            return dict(get())

    def _fit(self, x: np.ndarray, codes: np.ndarray) -> None:
        params = self._params()
        if "random_state" in params and params["random_state"] is None:
            self.estimator.set_params(random_state=self.seed)
        self.estimator.fit(x, codes)

    def _predict_codes(self, x: np.ndarray) -> np.ndarray:
        pred = np.asarray(self.estimator.predict(x))
        if pred.shape != (len(x),):
            raise ValueError(
                f"{self.name}.predict returned shape {pred.shape} for {len(x)} rows; a classifier "
                "must return one label per row"
            )
        codes = pred.astype(np.int64) if pred.dtype.kind in "iuf" else None
        if codes is None or not np.array_equal(codes, pred) or codes.min() < 0:
            raise ValueError(
                f"{self.name}.predict returned values that are not the class codes it was fitted "
                "on; a classifier must predict one of its training labels"
            )
        if codes.max() >= len(self.classes_):
            raise ValueError(f"{self.name}.predict returned an unknown class code {codes.max()}")
        return codes

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params": _json_params(self._params())}


def make_classifier(
    classifier: Any, params: dict[str, Any] | None = None, *, seed: int = 0
) -> DownstreamClassifier:
    """A :class:`DownstreamClassifier` from a built-in name, a dotted class name, a class or an
    estimator object (see the module docstring), built with the keyword arguments ``params``.

    Raises:
        ValueError: ``params`` not a mapping, or given with an object; a name that does not
            import; a class or object without ``fit``/``predict``; arguments the class refuses.
    """
    if params is not None and not isinstance(params, dict):
        raise ValueError(
            f"classifier_params must be a mapping of keyword arguments, got {type(params).__name__}"
        )
    params = dict(params or {})
    if isinstance(classifier, DownstreamClassifier) or (
        not isinstance(classifier, (str, type)) and classifier is not None
    ):
        if params:
            raise ValueError(
                "classifier_params apply to a classifier given by name or class; set the "
                "parameters on the object instead"
            )
        if isinstance(classifier, DownstreamClassifier):
            return classifier
        return EstimatorClassifier(classifier, seed=seed)
    if classifier is None:
        raise ValueError(
            "classifier is required (a built-in name, a dotted class name or an object)"
        )
    if isinstance(classifier, str):
        label = classifier
        cls = BUILTIN_CLASSIFIERS.get(classifier) or import_estimator(classifier)
    else:
        label, cls = classifier.__name__, classifier
    if not isinstance(cls, type):
        raise ValueError(f"classifier {label!r} is a {type(cls).__name__}, not a class")
    if not _is_estimator(cls):
        raise _no_fit_predict(f"class {label!r}")
    try:
        obj = cls(**params)
    except TypeError as e:
        raise ValueError(f"bad classifier_params for {label!r}: {e}") from None
    if isinstance(obj, DownstreamClassifier):
        return obj
    wrapped = EstimatorClassifier(obj, seed=seed)
    if isinstance(classifier, str):  # the name the user gave, not a private module path
        wrapped.name = classifier
    return wrapped
