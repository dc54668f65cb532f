"""Shared plumbing of the attribute-aware fixes: per-group same-group impostor scores, lookups."""

from __future__ import annotations

from typing import Any

import numpy as np

from fairmetric.audit.posthoc._checks import PairSet, group_label
from fairmetric.audit.posthoc.base import PosthocFix

__all__ = ["GroupwiseFix"]


class GroupwiseFix(PosthocFix):
    """A fix with one set of numbers per demographic group, learnt from the group's same-group
    impostor pairs (both rows in the group), as in NIST FRVT Part 3's demographic analysis.

    Every group that has a row in the calibration split must have at least
    :attr:`min_impostors` same-group impostor pairs, else ``fit`` fails naming the group.
    """

    needs_groups = True
    #: fewest same-group impostor pairs a group needs
    min_impostors: int = 1

    codes: np.ndarray
    names: tuple[str, ...]

    def _fit(self, pairs: PairSet) -> None:
        assert pairs.groups is not None and pairs.genuine is not None
        codes = np.unique(pairs.groups)
        imp = pairs.impostor()
        gi, gj = pairs.groups[pairs.i], pairs.groups[pairs.j]
        per_group = {}
        for code in codes.tolist():
            s = pairs.scores[imp & (gi == code) & (gj == code)]
            if s.size < self.min_impostors:
                raise ValueError(
                    f"{self.name}: group {group_label(code, pairs.names)} has {s.size} same-group "
                    f"impostor pairs in the calibration split, needs at least {self.min_impostors}: "
                    "add impostor pairs within the group, or merge or drop the group"
                )
            per_group[code] = s
        self.codes = codes.astype(np.int64)
        self.names = tuple(pairs.names[c] for c in self.codes.tolist())
        self._fit_groups(pairs.scores[imp], per_group)

    def _fit_groups(self, impostor_scores: np.ndarray, per_group: dict[int, np.ndarray]) -> None:
        """Learn the state from all impostor scores and each group's same-group impostor scores
        (``per_group``, in the order of :attr:`codes`)."""
        raise NotImplementedError

    def _slots(self, pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
        """Per pair: the index into :attr:`codes` of each side's group."""
        assert pairs.groups is not None
        slot = np.searchsorted(self.codes, pairs.groups)
        slot = np.minimum(slot, len(self.codes) - 1)
        unknown = self.codes[slot] != pairs.groups
        if np.any(unknown):
            code = int(pairs.groups[np.flatnonzero(unknown)[0]])
            raise ValueError(
                f"{self.name}: group code {code} was not in the calibration split "
                f"(fitted groups: {dict(zip(self.codes.tolist(), self.names))}); "
                "fit on a split that has every group"
            )
        return slot[pairs.i], slot[pairs.j]

    def _group_state(self) -> dict[str, Any]:
        return {"codes": self.codes.tolist(), "names": list(self.names)}

    def _load_group_state(self, state: dict[str, Any]) -> int:
        codes = self._array(state, "codes", (None,), dtype=np.int64)
        if codes.size == 0 or np.any(codes < 0) or np.any(np.diff(codes) <= 0):
            raise ValueError(
                f"{self.name}: saved state 'codes' must be non-empty, non-negative and increasing"
            )
        names = state.get("names")
        if not isinstance(names, list) or len(names) != codes.size:
            raise ValueError(
                f"{self.name}: saved state 'names' must be a list of {codes.size} names"
            )
        self.codes, self.names = codes, tuple(str(n) for n in names)
        return int(codes.size)
