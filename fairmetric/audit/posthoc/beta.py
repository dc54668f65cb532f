r"""Beta calibration (Kull et al. 2017): score → P(genuine), fitted without extra dependencies.

A score is first mapped into (0, 1): ``"cosine"``: ``u = (s + 1) / 2``; ``"minmax"``:
``u = (s − lo) / (hi − lo)`` with ``lo``/``hi`` the calibration extremes; ``u`` is then clipped
to ``[1e-12, 1 − 1e-12]``. The calibrator is a logistic regression on ``[ln u, −ln(1 − u)]``:

.. math:: P(\text{genuine} \mid s) = σ\big(a \ln u - b \ln(1 - u) + c\big),\quad a, b \ge 0

fitted by Newton's method with a tiny ridge (``1e-3`` on ``a`` and ``b``, none on ``c``) so that
separable data stays finite. As in Kull et al., a negative ``a`` or ``b`` (a non-monotone map) is
set to 0 and the rest refitted, so the probability never decreases with the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import expit

__all__ = ["BetaCalibrator", "ScoreMap", "beta_predict", "fit_beta"]

ScoreMapKind = Literal["cosine", "minmax"]
EPS = 1e-12
RIDGE = 1e-3


@dataclass(frozen=True)
class ScoreMap:
    """How scores map into (0, 1) (see the module docstring)."""

    kind: ScoreMapKind = "cosine"
    lo: float = -1.0
    hi: float = 1.0

    @classmethod
    def fit(cls, kind: str, scores: np.ndarray) -> ScoreMap:
        if kind == "cosine":
            return cls("cosine", -1.0, 1.0)
        if kind == "minmax":
            lo, hi = float(np.min(scores)), float(np.max(scores))
            if not hi > lo:
                raise ValueError(
                    "score_map='minmax' needs calibration scores that are not all equal"
                )
            return cls("minmax", lo, hi)
        raise ValueError(f"score_map must be 'cosine' or 'minmax', got {kind!r}")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        u = (np.asarray(scores, dtype=np.float64) - self.lo) / (self.hi - self.lo)
        return np.clip(u, EPS, 1.0 - EPS)


def _features(u: np.ndarray) -> np.ndarray:
    return np.stack([np.log(u), -np.log1p(-u), np.ones_like(u)], axis=1)


def _newton(X: np.ndarray, y: np.ndarray, penalty: np.ndarray, iters: int = 100) -> np.ndarray:
    """Penalised logistic regression (penalty per coefficient) by damped Newton steps."""
    mean = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    w = np.zeros(X.shape[1])
    w[-1] = np.log(mean / (1 - mean))

    def loss(w: np.ndarray) -> float:
        z = X @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w))

    current = loss(w)
    for _ in range(iters):
        p = expit(X @ w)
        grad = X.T @ (p - y) + penalty * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        for _ in range(40):
            new = loss(w - t * step)
            if new <= current:
                break
            t *= 0.5
        else:
            break
        w = w - t * step
        done = current - new <= 1e-12 * max(1.0, abs(current))
        current = new
        if done or np.max(np.abs(t * step)) < 1e-10:
            break
    return w


def fit_beta(u: np.ndarray, genuine: np.ndarray) -> np.ndarray:
    """Coefficients ``[a, b, c]`` of the beta calibrator on mapped scores ``u`` in (0, 1)."""
    y = np.asarray(genuine, dtype=np.float64)
    if y.size == 0 or y.min() == y.max():
        raise ValueError("beta calibration needs both genuine and impostor pairs")
    X = _features(np.asarray(u, dtype=np.float64))
    active = [0, 1]
    while True:
        cols = active + [2]
        w = _newton(X[:, cols], y, np.array([RIDGE] * len(active) + [0.0]))
        coef = np.zeros(3)
        coef[cols] = w
        negative = [k for k in active if coef[k] < 0]
        if not negative:
            return coef
        active.remove(min(negative, key=lambda k: coef[k]))


def beta_predict(u: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """P(genuine) of mapped scores ``u`` under coefficients ``coef``: ``(3,)`` or one row per
    score ``(P, 3)``."""
    X = _features(np.asarray(u, dtype=np.float64))
    coef = np.asarray(coef, dtype=np.float64)
    z = X @ coef if coef.ndim == 1 else np.einsum("pk,pk->p", X, coef)
    return expit(z)


class BetaCalibrator:
    """A fitted beta calibrator; call it on scores to get P(genuine).

    Args:
        score_map: ``"cosine"`` (scores in [-1, 1]) or ``"minmax"`` (any scale: the calibration
            extremes map to 0 and 1; later scores outside them are clipped).
    """

    def __init__(self, *, score_map: ScoreMapKind = "cosine") -> None:
        if score_map not in ("cosine", "minmax"):
            raise ValueError(f"score_map must be 'cosine' or 'minmax', got {score_map!r}")
        self.score_map = score_map

    def fit(self, scores: np.ndarray, genuine: np.ndarray) -> BetaCalibrator:
        s = np.asarray(scores, dtype=np.float64)
        g = np.asarray(genuine, dtype=bool)
        if s.ndim != 1 or g.shape != s.shape:
            raise ValueError(
                f"scores and genuine must be 1-D of the same length, got {s.shape} and {g.shape}"
            )
        if not np.all(np.isfinite(s)):
            raise ValueError("scores must be finite")
        self.map = ScoreMap.fit(self.score_map, s)
        self.coef = fit_beta(self.map(s), g)
        return self

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return beta_predict(self.map(scores), self.coef)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_map": self.map.kind,
            "lo": self.map.lo,
            "hi": self.map.hi,
            "coef": self.coef.tolist(),
        }
