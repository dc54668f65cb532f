"""The combinatorial side of per-batch group quotas: which mixes of classes can take the quotas
(support patterns and a memoised search), the closest feasible whole quotas, and the capped flow
that splits a batch's classes between groups."""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__: list[str] = []


class _QuotaFeasibility:
    """Which mixes of K classes can take the quotas? Classes are reduced to support patterns.

    A class's *pattern* is the bitmask of the groups it has samples in. With
    ``need[S] = ceil(quotas[S] / m)``, K chosen classes can take the quotas iff every group set
    ``S`` is touched by at least ``need[S]`` of them (Hall), which depends only on the number of
    chosen classes per pattern, ``n``. :meth:`solve` finds one such ``n`` (or proves there is
    none) by a depth-first search that branches only on patterns touching a violated ``S`` and
    not dominated by a superset pattern with classes left, memoising dead ends.
    """

    def __init__(
        self, support: np.ndarray, quotas: np.ndarray, m: int, k: int, budget: int = 200_000
    ) -> None:
        n_groups = support.shape[1]
        bits = (support.astype(np.int64) << np.arange(n_groups)).sum(axis=1)
        self.patterns, inverse = np.unique(bits, return_inverse=True)
        self.pattern_of_class = inverse.reshape(-1)
        self.n_patterns = len(self.patterns)
        self.class_counts = np.bincount(self.pattern_of_class, minlength=self.n_patterns)
        subsets = np.arange(1 << n_groups)
        self.covers = (self.patterns[:, None] & subsets[None, :]) != 0  # (P, 2^G)
        member = (subsets[:, None] >> np.arange(n_groups)) & 1  # (2^G, G)
        self.quota_of = member @ quotas
        self.need = -(-self.quota_of // m)
        self.k = k
        self.budget = budget
        pat = self.patterns
        self._width = np.array([bin(int(b)).count("1") for b in pat])
        self._supersets = [
            [j for j in range(self.n_patterns) if j != i and pat[j] & pat[i] == pat[i]]
            for i in range(self.n_patterns)
        ]
        # any K classes work iff the worst K-set touches every S often enough
        worst = np.maximum(0, k - (self.class_counts @ ~self.covers))
        self.any_set_works = bool(np.all(worst >= self.need))

    def ok(self, counts: np.ndarray) -> bool:
        """Is the full choice ``counts`` (classes per pattern, summing to K) feasible?"""
        return bool(np.all(counts @ self.covers >= self.need))

    def solve(self) -> np.ndarray | None:
        """Classes per pattern of one feasible K-set, or None if there is none.

        Raises:
            ValueError: the search exceeded its budget of states without an answer.
        """
        self._dead: set[tuple[int, ...]] = set()
        found = self._search(np.zeros(self.n_patterns, dtype=np.int64))
        return found

    def feasible(self) -> bool:
        return self.solve() is not None

    def _search(self, s: np.ndarray) -> np.ndarray | None:
        key = tuple(s.tolist())
        if key in self._dead:
            return None
        if len(self._dead) > self.budget:
            raise ValueError(
                f"could not decide within {self.budget} search states whether the quotas fit "
                f"({self.n_patterns} class support patterns, {self.k} classes per batch); merge "
                "groups, or use fewer classes per batch"
            )
        left = self.class_counts - s
        slots = self.k - int(s.sum())
        cov = s @ self.covers
        deficit = cov < self.need
        if not deficit.any():  # any classes complete it: prefer broad patterns
            if int(left.sum()) < slots:
                self._dead.add(key)
                return None
            out = s.copy()
            for p in np.argsort(-self._width, kind="stable"):
                take = min(slots, int(left[p]))
                out[p] += take
                slots -= take
            return out
        if slots == 0 or np.any(cov + np.minimum(slots, left @ self.covers) < self.need):
            self._dead.add(key)
            return None
        useful = [
            p for p in range(self.n_patterns) if left[p] > 0 and self.covers[p, deficit].any()
        ]
        for p in useful:
            if any(left[j] > 0 for j in self._supersets[p]):
                continue  # a superset pattern with classes left serves at least as well
            s[p] += 1
            found = self._search(s)
            s[p] -= 1
            if found is not None:
                return found
        self._dead.add(key)
        return None

    def walk(self, counts: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """From feasible ``counts`` towards ``target`` by feasible one-class exchanges.

        Each step moves one class from a pattern above its target to one below, chosen at random
        among the exchanges that keep every Hall condition; stops when none is left.
        """
        counts = counts.copy()
        cov = counts @ self.covers
        while True:
            over = np.flatnonzero(counts > target)
            under = np.flatnonzero(counts < target)
            if not len(over) or not len(under):
                return counts
            # cov after moving one class from over[i] to under[j], for every S
            new = (
                cov[None, None, :] - self.covers[over][:, None, :] + self.covers[under][None, :, :]
            )
            good = np.argwhere(np.all(new >= self.need, axis=2))
            if not len(good):
                return counts
            i, j = good[rng.integers(len(good))]
            counts[over[i]] -= 1
            counts[under[j]] += 1
            cov = new[i, j]


def _closest_feasible_whole_quotas(
    support: np.ndarray, shares: np.ndarray, m: int, k: int, max_candidates: int = 200_000
) -> np.ndarray | None:
    """Feasible quotas ``m * (k_1, ..., k_G)``, all ``k_g >= 1``, closest (L1) to ``shares``."""
    n_groups = len(shares)
    if n_groups > k or math.comb(k - 1, n_groups - 1) > max_candidates:
        return None
    cuts = np.array(list(itertools.combinations(range(1, k), n_groups - 1)), dtype=np.int64)
    cuts = cuts.reshape(len(cuts), n_groups - 1)
    bounds = np.hstack([np.zeros((len(cuts), 1), np.int64), cuts, np.full((len(cuts), 1), k)])
    parts = np.diff(bounds, axis=1)  # every composition of k into G positive parts
    order = np.argsort(np.abs(parts / k - shares).sum(axis=1), kind="stable")
    for i in order[:100]:
        if _quietly_feasible(support, m * parts[i], m, k):
            return m * parts[i]
    return None


def _quietly_feasible(support: np.ndarray, quotas: np.ndarray, m: int, k: int) -> bool:
    """Feasibility for suggestions: a smaller search budget, undecided counts as infeasible."""
    try:
        return _QuotaFeasibility(support, quotas, m, k, budget=20_000).feasible()
    except ValueError:
        return False


def _capped_split(
    total: int, weights: np.ndarray, caps: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Split ``total`` units over cells in proportion to ``weights``, at most ``caps[i]`` each.

    Each cell gets the floor of its proportional share, plus one more unit with probability
    equal to the fractional part (systematic randomised rounding: exactly the right number of
    extra units, no cell gets two); overflow above a cap is re-split among cells with room. May
    give out less than ``total`` when the caps are too small.
    """
    out = np.zeros(len(caps), dtype=np.int64)
    left = total
    while left > 0:
        room = caps - out
        w = np.where(room > 0, weights, 0.0)
        w_sum = w.sum()
        if w_sum <= 0:
            break
        exact = (left / w_sum) * w
        share = np.floor(exact).astype(np.int64)
        rest = left - int(share.sum())
        if rest > 0:
            cum = np.cumsum(exact - share)
            points = rng.random() * (cum[-1] / rest) + np.arange(rest) * (cum[-1] / rest)
            share[np.minimum(np.searchsorted(cum, points, side="right"), len(cum) - 1)] += 1
        got = np.minimum(share, room)
        out += got
        left -= int(got.sum())
    return out


def _complete_flow(
    x: np.ndarray,
    support: np.ndarray,
    limit: np.ndarray | None,
    m: int,
    quotas: np.ndarray,
) -> None:
    """Augment ``x`` towards row sums ``m`` and column sums ``quotas`` (in place).

    Augmenting paths run from a class with room to a group short of its quota, along
    ``class → group`` edges (the class has samples of the group and the cell is below ``limit``;
    any amount when ``limit`` is None) and ``group → class`` edges (that class gives up some of
    its allocation in the group). Stops when complete or no path is left; with ``limit=None``
    and feasible quotas (checked up front) it always completes.
    """
    while True:
        row_left = m - x.sum(axis=1)
        col_left = quotas - x.sum(axis=0)
        if not row_left.any():
            return
        grow = support if limit is None else support & (x < limit)
        path = _augmenting_path(x, grow, row_left, col_left)
        if path is None:
            if limit is None:  # pragma: no cover - excluded by the up-front check
                raise RuntimeError("group quotas could not be allocated; please report this")
            return
        start, steps, end = path
        amount = min(int(row_left[start]), int(col_left[end]))
        for sign, r, g in steps:
            if sign < 0:
                amount = min(amount, int(x[r, g]))
            elif limit is not None:
                amount = min(amount, int(limit[r, g] - x[r, g]))
        for sign, r, g in steps:
            x[r, g] += sign * amount


def _augmenting_path(
    x: np.ndarray, grow: np.ndarray, row_left: np.ndarray, col_left: np.ndarray
) -> tuple[int, list[tuple[int, int, int]], int] | None:
    """Breadth-first search of the residual K × G graph; steps are (+1 | -1, row, group)."""
    n_rows, n_groups = x.shape
    grow_rows = [[g for g, ok in enumerate(row) if ok] for row in grow.tolist()]
    holders = [[r for r, v in enumerate(col) if v > 0] for col in x.T.tolist()]
    short = col_left.tolist()
    parent_row: dict[int, int | None] = {}  # row -> group it was reached from (None: a source)
    parent_group: dict[int, int] = {}  # group -> row it was reached from
    frontier = [r for r, v in enumerate(row_left.tolist()) if v > 0]
    for r in frontier:
        parent_row[r] = None
    while frontier:
        nxt = []
        for r in frontier:
            for g in grow_rows[r]:
                if g in parent_group:
                    continue
                parent_group[g] = r
                if short[g] > 0:  # reached a group short of its quota: walk back
                    steps = []
                    gg: int | None = g
                    while True:
                        rr = parent_group[gg]
                        steps.append((1, rr, gg))
                        gg = parent_row[rr]
                        if gg is None:
                            return rr, steps, g
                        steps.append((-1, rr, gg))
                for r2 in holders[g]:
                    if r2 not in parent_row:
                        parent_row[r2] = g
                        nxt.append(r2)
        frontier = nxt
    return None
