"""Neighbour statistics of the audit, accumulated chunk by chunk from one k-NN search.

:class:`NeighbourStats` reduces each chunk of :func:`~fairmetric.neighbors.search.iter_neighbours`
to per-query Recall@k credit, MAP@R, homophily and the k-NN attribute vote (METHODS.md §1), with
the tie rule of :mod:`fairmetric.neighbors.ties`; the registered metrics
(:mod:`~fairmetric.audit.metrics.recall`, ...) read it from the audit's context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairmetric.neighbors import ties
from fairmetric.neighbors.search import Neighbours

__all__ = ["NeighbourStats"]


class NeighbourStats:
    """Accumulates neighbour-based per-query statistics over chunks of a k-NN search.

    For each query ``i`` (own index excluded from its neighbours; id ``-1`` = missing neighbour):

    - ``hits[k][i]``: one of the ``k`` nearest neighbours shares ``i``'s label (Recall@k);
    - ``ap[i]``: average precision at ``R_i`` (PML's MAP@R): with ``R_i`` the number of other
      samples of ``i``'s class, ``AP_i = (1/R_i) Σ_{j ≤ min(R_i, K)} P(j) · rel(j)``; with
      ``R_i > K`` ranks beyond ``K`` count as misses (PML's convention with an explicit ``k``);
    - ``homophily[a][i]``: take the first ``homophily_k`` neighbours and keep those of a
      *different* class; the fraction of them sharing ``i``'s value of attribute ``a``, divided by
      that value's base rate over the whole set (NaN when none is of a different class);
    - ``vote[a][i]``: the value of ``a`` predicted by a majority vote of the first ``leakage_k``
      neighbours (ties go to the value of the nearer neighbour, then to the smallest code).

    **Ties** (neighbours with equal float64 scores, from :func:`~fairmetric.neighbors.search.
    iter_neighbours` via :meth:`add`) follow the tie rule of :mod:`fairmetric.neighbors.ties`:
    Recall@k is the probability of a hit under a random order of each tie block (hypergeometric),
    MAP@R its exact expectation, homophily the ratio of the expected counts, and in the vote the
    members of the tie block at the cut-off share its remaining slots (weight ``m/t`` each; a
    block's members all count as seen at the block's first rank). Without ties these are the
    plain definitions above, bit for bit; ``hits`` is float (a probability) for that reason.

    Args:
        labels: ``(N,)`` class codes.
        attributes: ``{name: (N,) codes}`` for homophily and leakage.
        ks: the Recall@k cut-offs.
        homophily_k: neighbours considered for homophily.
        leakage_k: neighbours voting for the attribute.
    """

    def __init__(
        self,
        labels: np.ndarray,
        attributes: dict[str, np.ndarray],
        *,
        ks: Sequence[int],
        homophily_k: int,
        leakage_k: int,
        gallery_labels: np.ndarray | None = None,
        gallery_attributes: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        n = len(self.labels)
        self.attributes = {a: np.asarray(c, dtype=np.int64) for a, c in attributes.items()}
        self.ks = sorted({int(k) for k in ks})
        self.homophily_k = int(homophily_k)
        self.leakage_k = int(leakage_k)
        # the neighbours' labels and attributes: the queries' own, or a separate gallery's
        # (codes in the queries' code space); R_i and the base rates then count the gallery
        self.gallery = gallery_labels is not None
        self.nb_labels = self.labels if gallery_labels is None else np.asarray(gallery_labels)
        self.nb_attributes = (
            self.attributes
            if gallery_attributes is None
            else {a: np.asarray(c, dtype=np.int64) for a, c in gallery_attributes.items()}
        )
        size = int(max(self.labels.max(initial=-1), self.nb_labels.max(initial=-1))) + 1
        counts = np.bincount(self.nb_labels, minlength=size)
        # other samples of the same class (a sample is not its own gallery entry)
        self.r = counts[self.labels] - (0 if self.gallery else 1)
        self.valid = self.r > 0
        self.hits = {k: np.zeros(n) for k in self.ks}
        self.ap = np.zeros(n)
        self.base_rate = {}
        for a, c in self.attributes.items():
            g = self.nb_attributes[a]
            top = int(max(c.max(initial=-1), g.max(initial=-1))) + 1
            self.base_rate[a] = np.bincount(g, minlength=top) / max(len(g), 1)
        self.homophily = {a: np.full(n, np.nan) for a in self.attributes}
        self.vote = {a: np.zeros(n, dtype=np.int64) for a in self.attributes}
        #: queries whose neighbour list holds a real (float64) tie, so the tie rule decided
        self.tied_queries = 0

    @property
    def k_needed(self) -> int:
        """Neighbours per query the search must return."""
        return max([*self.ks, self.homophily_k, self.leakage_k, 1])

    def update(self, start: int, ids: np.ndarray) -> None:
        """Consume tie-free neighbour ids ``(q, K)`` of queries ``start .. start+q-1``."""
        self._plain(np.arange(start, start + len(ids)), np.asarray(ids))

    def add(self, nb: Neighbours, rows: np.ndarray | None = None) -> None:
        """Consume a chunk of :class:`~fairmetric.neighbors.search.Neighbours` (with ties);
        ``rows``: the query rows of outside-vector neighbours (a gallery search)."""
        rows = nb.rows if rows is None else np.asarray(rows, dtype=np.int64)
        if rows is None:
            raise ValueError("NeighbourStats needs the query rows of outside-vector neighbours")
        self._plain(rows, nb.ids[:, : nb.k])
        tied = nb.tied
        if tied.any():
            self.tied_queries += int(tied.sum())
            self._tied(rows[tied], nb.ids[tied], nb.start[tied], nb.end[tied], nb.k)

    def _plain(self, rows: np.ndarray, ids: np.ndarray) -> None:
        q, kk = ids.shape
        missing = ids < 0
        safe = np.where(missing, 0, ids)
        y = self.labels[rows]
        same = (self.nb_labels[safe] == y[:, None]) & ~missing
        for k in self.ks:
            self.hits[k][rows] = same[:, : min(k, kk)].any(axis=1)

        # MAP@R: relevant columns are the first R_i
        r = self.r[rows]
        rank = np.arange(1, kk + 1)
        rel = same & (rank[None, :] <= r[:, None])
        cum = np.cumsum(rel, axis=1)
        ap_sum = (cum * rel / rank[None, :]).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.ap[rows] = np.where(r > 0, ap_sum / np.maximum(r, 1), 0.0)

        other = ~same & ~missing
        hk = min(self.homophily_k, kk)
        lk = min(self.leakage_k, kk)
        voters = np.repeat(np.arange(q), lk)
        present = ~missing[:, :lk].ravel()
        for a, codes in self.attributes.items():
            mine = codes[rows]
            nb = self.nb_attributes[a][safe]
            # homophily among different-class neighbours
            o = other[:, :hk]
            shared = ((nb[:, :hk] == mine[:, None]) & o).sum(axis=1)
            n_other = o.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = shared / n_other
                self.homophily[a][rows] = np.where(
                    n_other > 0, frac / self.base_rate[a][mine], np.nan
                )
            # kNN vote for the attribute value; a tie goes to the value seen at the nearer rank
            n_values = len(self.base_rate[a])
            if n_values <= 64:  # few values: one vectorised pass per value
                near = nb[:, :lk]
                ok = ~missing[:, :lk]
                score = np.empty((q, n_values), dtype=np.int64)
                for v in range(n_values):
                    is_v = (near == v) & ok
                    first = np.where(is_v.any(axis=1), is_v.argmax(axis=1), lk)
                    score[:, v] = is_v.sum(axis=1) * (lk + 1) + (lk - first)
            else:
                votes = nb[:, :lk].ravel()
                tally = np.zeros((q, n_values), dtype=np.int64)
                np.add.at(tally, (voters[present], votes[present]), 1)
                first = np.full((q, n_values), lk, dtype=np.int64)
                ranks = np.tile(np.arange(lk), q)
                np.minimum.at(first, (voters[present], votes[present]), ranks[present])
                score = tally * (lk + 1) + (lk - first)
            self.vote[a][rows] = score.argmax(axis=1)

    def _tied(
        self, rows: np.ndarray, ids: np.ndarray, start: np.ndarray, end: np.ndarray, kk: int
    ) -> None:
        """Recompute the queries ``rows`` whose lists hold ties, with the tie rule."""
        present = ids >= 0
        safe = np.where(present, ids, 0)
        same = (self.nb_labels[safe] == self.labels[rows][:, None]) & present
        for k in self.ks:
            self.hits[k][rows] = ties.hit_probability(same, start, end, min(k, kk))
        self.ap[rows] = ties.expected_average_precision(same, start, end, self.r[rows], kk)
        other = ~same & present
        hk = min(self.homophily_k, kk)
        lk = min(self.leakage_k, kk)
        n_other = ties.expected_count(other, start, end, hk)
        for a, codes in self.attributes.items():
            mine = codes[rows]
            nb = self.nb_attributes[a][safe]
            shared = ties.expected_count((nb == mine[:, None]) & other, start, end, hk)
            with np.errstate(divide="ignore", invalid="ignore"):
                self.homophily[a][rows] = np.where(
                    n_other > 0, shared / n_other / self.base_rate[a][mine], np.nan
                )
            self.vote[a][rows] = ties.vote(
                nb, start, end, lk, len(self.base_rate[a]), present=present, nearest_first=True
            )
