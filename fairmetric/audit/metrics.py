"""Per-sample contributions of the audit metrics (METHODS.md §1).

Every function returns per-sample arrays; :func:`~fairmetric.report.frame.group_metric_from_samples`
turns them into overall / per-group values with bootstrap intervals. Neighbour metrics are
accumulated chunk by chunk from one k-NN search (:class:`NeighbourStats`); pair statistics use
closed forms (alignment) or seeded pair samples (uniformity), never an ``N × N`` matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairmetric.neighbors import ties
from fairmetric.neighbors.search import Neighbours

__all__ = [
    "NeighbourStats",
    "alignment_contributions",
    "alignment_by_grouping",
    "uniformity_contributions",
    "uniformity_by_grouping",
    "linear_probe_predictions",
    "linear_probes",
]


#: rows per block when a computation converts a float32 matrix to float64 piece by piece
#: (16384 x 128 float64 = 16 MB per temporary)
_BLOCK = 16384


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
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        n = len(self.labels)
        self.attributes = {a: np.asarray(c, dtype=np.int64) for a, c in attributes.items()}
        self.ks = sorted({int(k) for k in ks})
        self.homophily_k = int(homophily_k)
        self.leakage_k = int(leakage_k)
        counts = np.bincount(self.labels)
        self.r = counts[self.labels] - 1  # other samples of the same class
        self.valid = self.r > 0
        self.hits = {k: np.zeros(n) for k in self.ks}
        self.ap = np.zeros(n)
        self.base_rate = {
            a: np.bincount(c, minlength=c.max() + 1 if c.size else 0) / max(n, 1)
            for a, c in self.attributes.items()
        }
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

    def add(self, nb: Neighbours) -> None:
        """Consume a chunk of :class:`~fairmetric.neighbors.search.Neighbours` (with ties)."""
        if nb.rows is None:
            raise ValueError("NeighbourStats needs neighbours of indexed rows (nb.rows is None)")
        self._plain(nb.rows, nb.ids[:, : nb.k])
        tied = nb.tied
        if tied.any():
            self.tied_queries += int(tied.sum())
            self._tied(nb.rows[tied], nb.ids[tied], nb.start[tied], nb.end[tied], nb.k)

    def _plain(self, rows: np.ndarray, ids: np.ndarray) -> None:
        q, kk = ids.shape
        missing = ids < 0
        safe = np.where(missing, 0, ids)
        y = self.labels[rows]
        same = (self.labels[safe] == y[:, None]) & ~missing
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
            nb = codes[safe]
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
        same = (self.labels[safe] == self.labels[rows][:, None]) & present
        for k in self.ks:
            self.hits[k][rows] = ties.hit_probability(same, start, end, min(k, kk))
        self.ap[rows] = ties.expected_average_precision(same, start, end, self.r[rows], kk)
        other = ~same & present
        hk = min(self.homophily_k, kk)
        lk = min(self.leakage_k, kk)
        n_other = ties.expected_count(other, start, end, hk)
        for a, codes in self.attributes.items():
            mine = codes[rows]
            nb = codes[safe]
            shared = ties.expected_count((nb == mine[:, None]) & other, start, end, hk)
            with np.errstate(divide="ignore", invalid="ignore"):
                self.homophily[a][rows] = np.where(
                    n_other > 0, shared / n_other / self.base_rate[a][mine], np.nan
                )
            self.vote[a][rows] = ties.vote(
                nb, start, end, lk, len(self.base_rate[a]), present=present, nearest_first=True
            )


def _cell_sums(x: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray:
    """``(n_cells, D)`` sums of the rows of ``x`` per cell, as a sparse one-hot product (O(N·D))."""
    from scipy.sparse import csr_matrix

    onehot = csr_matrix(
        (np.ones(len(cell)), (cell, np.arange(len(cell)))), shape=(n_cells, len(cell))
    )
    return np.asarray(onehot @ x)


def alignment_contributions(
    x: np.ndarray, labels: np.ndarray, cells: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample sums of squared distances to same-class and to different-class partners.

    Partners of ``i`` are the other samples in the same *cell* (a group of a grouping; one cell
    for everything when ``cells`` is None). Uses ``Σ_j ||x_i - x_j||² = n ||x_i||² + Q - 2 x_i·S``
    per cell / class-within-cell, so the cost is O(N·D).

    Returns:
        ``(same_sum, same_pairs, diff_sum, diff_pairs)``, each ``(N,)``: intra-class alignment of
        a set of samples is ``Σ same_sum / Σ same_pairs``, inter-class alignment
        ``Σ diff_sum / Σ diff_pairs``.
    """
    n = len(labels)
    cells = np.zeros(n, dtype=np.int64) if cells is None else cells
    return alignment_by_grouping(x, labels, {"cells": cells})["cells"]


def alignment_by_grouping(
    x: np.ndarray, labels: np.ndarray, groupings: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`alignment_contributions` for several groupings in two passes over ``x``.

    Rows are converted to float64 and centred block by block (distances are translation-
    invariant, the closed form is not), and every grouping's cell sums are accumulated from the
    same converted block, so a large float32 matrix is never copied whole.

    Returns:
        ``{grouping: (same_sum, same_pairs, diff_sum, diff_pairs)}``.
    """
    x = np.asarray(x)
    labels = np.asarray(labels, dtype=np.int64)
    n, d = len(labels), x.shape[1]
    n_labels = int(labels.max()) + 1 if n else 1
    # per grouping: cell of each sample, and class-within-cell of each sample; identical keysets
    # (an attribute constant within classes makes class-within-cell equal to class) are shared
    keysets: list[tuple[np.ndarray, np.ndarray]] = []
    slots: list[tuple[int, int]] = []
    first_of_class = np.unique(labels, return_index=True)[1] if n else np.zeros(0, dtype=int)
    class_slot = None
    for codes in groupings.values():
        codes = np.asarray(codes, dtype=np.int64)
        pair = []
        constant = n and np.array_equal(
            codes, codes[first_of_class][np.searchsorted(labels[first_of_class], labels)]
        )
        for within_class in (False, True):
            if within_class and constant and class_slot is not None:
                pair.append(class_slot)
                continue
            keys = codes * n_labels + labels if within_class else codes
            _, inv, size = np.unique(keys, return_inverse=True, return_counts=True)
            keysets.append((inv.ravel(), size))
            pair.append(len(keysets) - 1)
            if within_class and constant:
                class_slot = len(keysets) - 1
        slots.append((pair[0], pair[1]))
    mean = x.mean(axis=0, dtype=np.float64)

    def block(b: int) -> np.ndarray:
        return x[b : b + _BLOCK].astype(np.float64) - mean

    # small matrices are converted once; large ones block by block in each pass
    cached = [block(b) for b in range(0, n, _BLOCK)] if n * d * 8 <= 256 << 20 else None

    def blocks():
        for i, b in enumerate(range(0, n, _BLOCK)):
            yield b, (cached[i] if cached is not None else block(b))

    sq = np.empty(n)
    for b, xb in blocks():
        sq[b : b + _BLOCK] = np.einsum("ij,ij->i", xb, xb)
    totals = []
    for inv, size in keysets:  # one keyset at a time: only its cell sums are held
        acc = np.zeros((len(size), d))
        for b, xb in blocks():
            acc += _cell_sums(xb, inv[b : b + _BLOCK], len(size))
        cross = np.empty(n)
        for b, xb in blocks():
            rows = inv[b : b + _BLOCK]
            if len(size) <= 64:  # few cells: one small product instead of gathering rows
                cross[b : b + _BLOCK] = (xb @ acc.T)[np.arange(len(rows)), rows]
            else:
                cross[b : b + _BLOCK] = np.einsum("ij,ij->i", xb, acc[rows])
        del acc
        qsum = np.bincount(inv, weights=sq, minlength=len(size))
        total = size[inv] * sq + qsum[inv] - 2.0 * cross
        totals.append((np.maximum(total, 0.0), (size[inv] - 1).astype(np.float64)))
    out = {}
    for name, (i_all, i_same) in zip(groupings, slots):
        (all_sum, all_pairs), (same_sum, same_pairs) = totals[i_all], totals[i_same]
        diff_sum = np.maximum(all_sum - same_sum, 0.0)
        out[name] = (same_sum, same_pairs, diff_sum, all_pairs - same_pairs)
    return out


def uniformity_contributions(
    x: np.ndarray,
    cells: np.ndarray | None = None,
    *,
    t: float = 2.0,
    partners: int = 16,
    exact_max: int = 1024,
    seed: int = 0,
    chunk: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample sums of ``exp(-t ||x_i - x_j||²)`` over partners ``j`` in the same cell.

    Cells with at most ``exact_max`` samples use all pairs; larger cells use ``partners``
    uniformly drawn partners per sample (seeded, with replacement, never ``i`` itself), an
    unbiased estimate of the mean over pairs. Uniformity of a set of samples is
    ``log(Σ num / Σ den)``.

    Returns:
        ``(num, den)``: per-sample sums and partner counts (0 for a sample alone in its cell).
    """
    x = np.asarray(x)
    n = len(x)
    cells = np.zeros(n, dtype=np.int64) if cells is None else np.asarray(cells, dtype=np.int64)
    num = np.zeros(n)
    den = np.zeros(n)
    rng = np.random.default_rng(seed)
    order = np.argsort(cells, kind="stable")
    bounds = np.flatnonzero(np.diff(cells[order])) + 1
    for members in np.split(order, bounds):
        m = len(members)
        if m < 2:
            continue
        # centre in float64 first: |a|^2 + |b|^2 - 2ab loses small distances far from the origin
        x64 = x[members].astype(np.float64)
        xm = (x64 - x64.mean(axis=0)).astype(np.float32)
        if m <= exact_max:
            sq = np.einsum("ij,ij->i", xm, xm)
            d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (xm @ xm.T), 0.0)
            e = np.exp(-t * d2.astype(np.float64))
            np.fill_diagonal(e, 0.0)
            num[members] = e.sum(axis=1)
            den[members] = m - 1
            continue
        step = max(1, min(chunk, (64 << 20) // max(1, 4 * partners * xm.shape[1])))
        for s in range(0, m, step):  # temporaries of about 64 MB
            rows = np.arange(s, min(s + step, m))
            # partner j uniform over the other m - 1 members: draw in [0, m-1), skip self
            j = rng.integers(0, m - 1, size=(len(rows), partners))
            j = j + (j >= rows[:, None])
            diff = xm[rows][:, None, :] - xm[j]
            d2 = np.einsum("ijk,ijk->ij", diff, diff).astype(np.float64)
            num[members[rows]] = np.exp(-t * d2).sum(axis=1)
            den[members[rows]] = partners
    return num, den


def uniformity_by_grouping(
    x: np.ndarray,
    groupings: dict[str, np.ndarray],
    *,
    t: float = 2.0,
    partners: int = 16,
    exact_max: int = 1024,
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Uniformity contributions overall and inside the groups of several groupings at once.

    One sample of partners serves every grouping: the samples are put in a random order ``P``
    and the partners of ``P[r]`` are ``P[r + s]`` for shifts ``s = 1..partners`` (mod N), so each
    partner is uniform over the other samples and never the sample itself; rows are processed in
    chunks of about 64 MB, so memory stays O(N·partners) beyond ``x``. Conditioned on falling inside ``i``'s group a
    partner is uniform over the group, so the pairs that do are an unbiased sample of the group's
    pairs. Groups of at most ``exact_max`` samples use all their pairs instead, and groups too
    small to receive about one such partner per sample (``n_g · partners / N < 1``) get partners
    drawn inside the group (:func:`uniformity_contributions`).

    Returns:
        ``((num, den), {grouping: (num, den)})`` as in :func:`uniformity_contributions`.
    """
    x = np.asarray(x)
    n = len(x)
    rng = np.random.default_rng(seed)
    if n <= exact_max:
        overall = uniformity_contributions(x, t=t, exact_max=exact_max, seed=seed)
        return overall, {
            name: uniformity_contributions(x, codes, t=t, exact_max=exact_max, seed=seed)
            for name, codes in groupings.items()
        }
    partners = min(partners, n - 1)
    order = rng.permutation(n)
    codes_p = {name: np.asarray(c, dtype=np.int64)[order] for name, c in groupings.items()}
    num_p = np.zeros(n)
    g_num = {name: np.zeros(n) for name in groupings}
    g_den = {name: np.zeros(n) for name in groupings}
    # rows of the permuted order in chunks (~64 MB of float32 at a time, never a full copy)
    chunk = max(1, (16 << 20) // max(1, 4 * x.shape[1]))  # 16 MB of float32 rows per chunk
    for a in range(0, n, chunk):
        rows = np.arange(a, min(a + chunk, n))
        xa = np.asarray(x[order[rows]], dtype=np.float32)
        for shift in range(1, partners + 1):
            other_rows = (rows + shift) % n  # row r is paired with P[r + shift]
            diff = xa - np.asarray(x[order[other_rows]], dtype=np.float32)
            w = np.exp(-t * np.einsum("ij,ij->i", diff, diff)).astype(np.float64)
            num_p[rows] += w
            for name, c in codes_p.items():
                same = c[rows] == c[other_rows]
                g_num[name][rows] += np.where(same, w, 0.0)
                g_den[name][rows] += same
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    overall = (num_p[inverse], np.full(n, float(partners)))
    out = {}
    for name, codes in groupings.items():
        codes = np.asarray(codes, dtype=np.int64)
        num, den = g_num[name][inverse], g_den[name][inverse]
        sizes = np.bincount(codes)
        for code in np.flatnonzero(sizes):
            size = sizes[code]
            if size <= exact_max or size * partners < n:
                members = np.flatnonzero(codes == code)
                num[members], den[members] = uniformity_contributions(
                    x[members],
                    t=t,
                    partners=partners,
                    exact_max=exact_max,
                    seed=int(rng.integers(2**31)),
                )
        out[name] = (num, den)
    return overall, out


def linear_probe_predictions(
    x: np.ndarray, codes: np.ndarray, *, folds: int = 2, ridge: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Cross-validated predictions of a class-balanced linear probe (ridge least squares).

    Each fold's probe is fitted on the other folds: standardised features plus a bias, one-hot
    targets, sample weights ``1 / count(value)`` so every value counts equally (the probe is
    judged by balanced accuracy), closed form ``W = (Xᵀ S X + λ·mean(S)·I')⁻¹ Xᵀ S Y`` with
    ``I'`` the identity on the features only (the bias is not penalised). Folds are stratified
    by value. Cost O(N·D²).

    Returns:
        ``(N,)`` predicted codes; each sample is predicted by a probe that never saw it.
    """
    codes = np.asarray(codes, dtype=np.int64)
    return linear_probes(x, {"a": codes}, cells=codes, folds=folds, ridge=ridge, seed=seed)["a"]


def linear_probes(
    x: np.ndarray,
    attributes: dict[str, np.ndarray],
    *,
    cells: np.ndarray,
    folds: int = 2,
    ridge: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """:func:`linear_probe_predictions` for several attributes from one pass over ``x``.

    ``cells`` must refine every attribute (e.g. the codes of their intersection): folds are
    stratified by cell, and per fold the standardised Gram matrix of each cell is computed once;
    an attribute's weighted normal equations are then sums of cell matrices.
    """
    x = np.asarray(x)
    n, d = x.shape
    cells = np.asarray(cells, dtype=np.int64)
    _, cells = np.unique(cells, return_inverse=True)
    cells = cells.ravel()
    n_cells = int(cells.max()) + 1
    value_of = {}
    for name, codes in attributes.items():
        codes = np.asarray(codes, dtype=np.int64)
        v = np.full(n_cells, -1)
        v[cells] = codes
        if np.any(v[cells] != codes):
            raise ValueError(f"cells do not refine attribute {name!r}")
        value_of[name] = v
    rng = np.random.default_rng(seed)
    fold = np.empty(n, dtype=np.int64)
    for c in range(n_cells):  # folds stratified by cell
        members = np.flatnonzero(cells == c)
        fold[members] = rng.permutation(len(members)) % folds
    preds = {name: np.zeros(n, dtype=np.int64) for name in attributes}
    for f in range(folds):
        train_rows, test_rows = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if not len(test_rows) or not len(train_rows):
            continue
        # standardisation of this fold, in float64 row blocks (no full float64 copy of x)
        s1, s2 = np.zeros(d), np.zeros(d)
        for b in range(0, len(train_rows), _BLOCK):
            xb = x[train_rows[b : b + _BLOCK]].astype(np.float64)
            s1 += xb.sum(axis=0)
            s2 += np.einsum("ij,ij->j", xb, xb)
        m = len(train_rows)
        mean = s1 / m
        std = np.sqrt(np.maximum(s2 / m - mean**2, 0.0)) + 1e-8
        cell_gram = np.zeros((n_cells, d + 1, d + 1))
        cell_sum = np.zeros((n_cells, d + 1))
        cell_count = np.bincount(cells[train_rows], minlength=n_cells).astype(np.float64)
        for b in range(0, m, _BLOCK):
            rows = train_rows[b : b + _BLOCK]
            rows = rows[np.argsort(cells[rows], kind="stable")]  # contiguous cells
            # standardised features in float32 for the products, accumulated in float64
            xs = np.empty((len(rows), d + 1), dtype=np.float32)
            xs[:, :d] = (x[rows] - mean) / std
            xs[:, d] = 1.0
            rc = cells[rows]
            bounds = np.flatnonzero(np.diff(rc)) + 1
            for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(rows)]):
                xc = xs[start:stop]
                cell_gram[rc[start]] += xc.T @ xc
                cell_sum[rc[start]] += xc.sum(axis=0, dtype=np.float64)
        coefs = {}
        for name, v in value_of.items():
            n_values = int(v.max()) + 1
            per_value = np.bincount(v, weights=cell_count, minlength=n_values)
            w_cell = np.where(cell_count > 0, 1.0 / np.maximum(per_value[v], 1), 0.0)
            gram = np.tensordot(w_cell, cell_gram, axes=1)
            rhs = np.zeros((d + 1, n_values))
            np.add.at(rhs.T, v, cell_sum * w_cell[:, None])
            gram[np.diag_indices(d)] += ridge * (w_cell * cell_count).sum() / m
            coefs[name] = np.linalg.solve(gram, rhs)
        for b in range(0, len(test_rows), _BLOCK):
            rows = test_rows[b : b + _BLOCK]
            xq = np.hstack([(x[rows].astype(np.float64) - mean) / std, np.ones((len(rows), 1))])
            for name, coef in coefs.items():
                preds[name][rows] = (xq @ coef).argmax(axis=1)
    return preds
