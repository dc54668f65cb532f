"""The base class of every post-hoc score fix: validation, fit/transform plumbing, (de)serialisation.

A fix is fitted on a calibration split and maps the scores of pairs of any split to new scores
(higher = more similar, or a probability of a genuine pair for FairCal). Subclasses fill in
``_fit`` (learn the state from a validated :class:`~fairmetric.audit.posthoc._checks.PairSet`),
``_transform`` (new scores of a validated split), ``_state`` (the learned state as JSON-ready
lists and numbers) and ``_load_state`` (rebuild it, checking it with :meth:`PosthocFix._array`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from fairmetric.audit.posthoc._checks import PairSet, check_pairs

__all__ = ["PosthocFix"]


class PosthocFix:
    """A post-hoc score fix: ``fit`` on calibration pairs, ``transform`` pairs of any split.

    Subclasses set :attr:`name`, :attr:`needs_groups` / :attr:`needs_x`, take their settings as
    keyword-only constructor arguments (stored under the same attribute names, so :meth:`params`
    can read them back) and implement the four hooks above.
    """

    #: registry name, also written by :func:`~fairmetric.audit.posthoc.save_fix`
    name: ClassVar[str] = ""
    #: whether fit and transform need the demographic group of every row
    needs_groups: ClassVar[bool] = False
    #: whether fit and transform read the embeddings ``x`` (not only their row count)
    needs_x: ClassVar[bool] = False

    _fitted: bool = False

    # ----- public API ----------------------------------------------------------------------
    def fit(
        self,
        x: np.ndarray,
        i: np.ndarray,
        j: np.ndarray,
        scores: np.ndarray,
        genuine: np.ndarray,
        *,
        groups: np.ndarray | None = None,
        group_names: Sequence[str] | None = None,
    ) -> PosthocFix:
        """Learn the fix from calibration pairs.

        Args:
            x: ``(N, D)`` embeddings of the calibration rows.
            i, j: ``(P,)`` row indices of each pair's two sides.
            scores: ``(P,)`` pair scores, higher = more similar.
            genuine: ``(P,)`` bool, True for same-identity pairs.
            groups: ``(N,)`` non-negative group codes (needed by the attribute-aware fixes,
                ignored by the others).
            group_names: names of the codes, for messages and saved files.

        Returns:
            ``self``.
        """
        if genuine is None:
            raise ValueError(f"{self.name}: fit needs genuine (one same-identity flag per pair)")
        pairs = self._check(x, i, j, scores, genuine, groups, group_names)
        self._fit(pairs)
        self._fitted = True
        return self

    def transform(
        self,
        x: np.ndarray,
        i: np.ndarray,
        j: np.ndarray,
        scores: np.ndarray,
        *,
        groups: np.ndarray | None = None,
    ) -> np.ndarray:
        """The fixed scores of pairs ``(i, j)`` of rows ``x`` (any split): ``(P,)`` float64."""
        if not self._fitted:
            raise ValueError(f"{self.name}: call fit (or load_fix) before transform")
        pairs = self._check(x, i, j, scores, None, groups, None)
        return np.asarray(self._transform(pairs), dtype=np.float64)

    def fit_transform(
        self,
        x: np.ndarray,
        i: np.ndarray,
        j: np.ndarray,
        scores: np.ndarray,
        genuine: np.ndarray,
        *,
        groups: np.ndarray | None = None,
        group_names: Sequence[str] | None = None,
    ) -> np.ndarray:
        """``fit`` then ``transform`` the same pairs."""
        self.fit(x, i, j, scores, genuine, groups=groups, group_names=group_names)
        return self.transform(x, i, j, scores, groups=groups)

    def params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, as given (JSON-ready)."""
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "params", "state"}`` with plain lists and numbers (no NaN)."""
        if not self._fitted:
            raise ValueError(f"{self.name}: only a fitted fix can be saved; call fit first")
        return {"name": self.name, "params": self.params(), "state": self._state()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PosthocFix:
        """Rebuild a fitted fix from :meth:`to_dict`'s output, checking every field."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.name}: expected a mapping, got {type(data).__name__}")
        for key in ("name", "params", "state"):
            if key not in data:
                raise ValueError(f"{cls.name}: the saved fix has no {key!r} key")
        if data["name"] != cls.name:
            raise ValueError(
                f"{cls.name}: the saved fix is named {data['name']!r}, not {cls.name!r}"
            )
        params, state = data["params"], data["state"]
        if not isinstance(params, dict) or not isinstance(state, dict):
            raise ValueError(f"{cls.name}: 'params' and 'state' must be mappings")
        try:
            fix = cls(**params)
        except TypeError as exc:
            raise ValueError(f"{cls.name}: bad params {params!r}: {exc}") from None
        fix._load_state(state)
        fix._fitted = True
        return fix

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # ----- hooks -----------------------------------------------------------------------------
    def _fit(self, pairs: PairSet) -> None:
        raise NotImplementedError

    def _transform(self, pairs: PairSet) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ----- helpers ---------------------------------------------------------------------------
    def _check(self, x, i, j, scores, genuine, groups, group_names) -> PairSet:
        return check_pairs(
            x,
            i,
            j,
            scores,
            genuine,
            groups=groups if self.needs_groups else None,
            group_names=group_names,
            need_x=self.needs_x,
            need_groups=self.needs_groups,
            who=self.name,
        )

    def _array(
        self,
        state: dict[str, Any],
        key: str,
        shape: tuple[int | None, ...],
        *,
        dtype: type = np.float64,
        positive: bool = False,
    ) -> np.ndarray:
        """``state[key]`` as an array of ``shape`` (``None`` = any length), finite; a ValueError
        names the key and the fix otherwise."""
        where = f"{self.name}: saved state {key!r}"
        if key not in state:
            raise ValueError(f"{where} is missing")
        try:
            a = np.asarray(state[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where} is not a (nested) list of numbers") from None
        if a.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(a.shape, shape)
        ):
            want = "(" + ", ".join("n" if w is None else str(w) for w in shape) + ")"
            raise ValueError(f"{where} has shape {a.shape}, expected {want}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where} holds NaN or infinite values")
        if positive and np.any(a <= 0):
            raise ValueError(f"{where} must be > 0")
        if dtype is not np.float64:
            if np.any(a != np.round(a)):
                raise ValueError(f"{where} must hold integers")
            return a.astype(dtype)
        return a


def check_int(value: object, key: str, who: str, *, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, or a ValueError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{who}: {key} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{who}: {key} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_finite(value: float, key: str, who: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{who}: {key} must be finite, got {value!r}")
    return float(value)
