"""Demographic score normalisation: each side's group standardises the score."""

from __future__ import annotations

from typing import Any

import numpy as np

from fairmetric.audit.posthoc._checks import PairSet
from fairmetric.audit.posthoc._groupwise import GroupwiseFix

__all__ = ["ScoreNormalisation"]


class ScoreNormalisation(GroupwiseFix):
    r"""Z-normalise the score by each side's group impostor distribution (needs the attribute).

    On the calibration split, ``μ_d`` and ``σ_d`` are the mean and (population, ``ddof = 0``)
    standard deviation of group ``d``'s same-group impostor scores; then

    .. math:: s' = \tfrac12\Big[\frac{s - μ_{d(i)}}{σ_{d(i)}} + \frac{s - μ_{d(j)}}{σ_{d(j)}}\Big]

    so every group's same-group impostor scores have mean 0 and variance 1 on the calibration
    split. Each group needs at least two same-group impostor pairs with different scores.
    """

    name = "score_normalisation"
    min_impostors = 2

    def __init__(self) -> None:
        pass

    def _fit_groups(self, impostor_scores: np.ndarray, per_group: dict[int, np.ndarray]) -> None:
        self.means = np.array([s.mean() for s in per_group.values()])
        self.stds = np.array([s.std() for s in per_group.values()])
        flat = np.flatnonzero(self.stds <= 0)
        if flat.size:
            code = int(self.codes[flat[0]])
            raise ValueError(
                f"{self.name}: group '{self.names[flat[0]]}' (code {code}) has impostor scores "
                "with zero spread (all equal): it cannot be standardised"
            )

    def _transform(self, pairs: PairSet) -> np.ndarray:
        si, sj = self._slots(pairs)
        s = pairs.scores
        return 0.5 * ((s - self.means[si]) / self.stds[si] + (s - self.means[sj]) / self.stds[sj])

    def _state(self) -> dict[str, Any]:
        return {**self._group_state(), "means": self.means.tolist(), "stds": self.stds.tolist()}

    def _load_state(self, state: dict[str, Any]) -> None:
        n = self._load_group_state(state)
        self.means = self._array(state, "means", (n,))
        self.stds = self._array(state, "stds", (n,), positive=True)
