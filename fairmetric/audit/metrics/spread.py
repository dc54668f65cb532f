"""Embedding spread (METHODS.md §5): how far each group's embeddings are from collapsing.

Two group-level statistics, so a method that closes a Recall@1 gap by collapsing a group's part of
the space shows it:

- ``mean_resultant_length``: ``||mean_{i∈g} ê_i||`` of the unit vectors ``ê_i = e_i / ||e_i||``,
  in ``[0, 1]``: 0 when the group's directions cancel out (spread over the sphere, e.g. isotropic
  data, where it is about ``1/sqrt(n_g)``), 1 when every embedding points the same way. Rows of
  norm 0 have no direction and are left out.
- ``effective_rank``: ``exp(H(p))`` with ``p_k = σ_k² / Σ_j σ_j²``, the ``σ_k`` the singular
  values of the group's centred embeddings (Roy & Vetterli, 2007): the number of directions the
  group's variance is spread over, from 1 (all on one line) to ``min(D, n_g - 1)`` (equal variance
  in every direction). It is scale-free: a group shrunk towards a point keeps its effective rank
  if it shrinks evenly; the mean resultant length (and the alignments) show that case.

Both are computed in float64 from the float32 embeddings. A group with fewer than two rows has no
effective rank (NA, with that reason); a group of two or more identical rows has effective rank
0 (the rank of its zero centred matrix, the extreme collapse, kept visible to gates).

Both are biased in small groups, like any plug-in statistic of a few rows: the mean resultant
length of ``n_g`` isotropic directions is about ``1/sqrt(n_g)``, not 0, and the effective rank is at
most ``n_g - 1``; compare groups of similar size, or far larger than ``D``.

They are not means of per-sample values, so the audit does not build them from per-sample
contributions: :class:`SpreadStatistic` recomputes them on every bootstrap resample of the rows
within each group (:func:`~fairmetric.report.frame.group_metric_from_statistic`). Resampling
works on additive per-unit sums (count, Σ ê, Σ y, Σ y yᵀ of the centred rows ``y``); a unit is one
row when the group has at most ``max_units`` rows (the exact row bootstrap), otherwise one of
``max_units`` random blocks of rows (a bootstrap of exchangeable blocks of about
``n_g / max_units`` rows, which keeps the replicate's size and, for these smooth statistics,
the row bootstrap's spread to first order), so memory stays ``max_units · D²`` per group. The
audit's intervals are those of the replicates centred on the value (:meth:`SpreadStatistic.compute`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fairmetric.audit.metrics.base import AuditContext, AuditMetric, Job, register_audit_metric

__all__ = [
    "SpreadMetric",
    "SpreadStatistic",
    "crossed",
    "effective_rank",
    "group_spread",
    "mean_resultant_length",
]

#: the reason given for the effective rank of a group with fewer than two rows
FEW = "fewer than two samples in this group"
#: the reason given for the mean resultant length of a group whose rows are all zero
NO_DIRECTION = "no embedding of this group has a direction (all are zero vectors)"

#: rows per block when float32 rows are converted to float64 piece by piece
_BLOCK = 8192


def _units(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows in float64 (zero rows stay zero) and which rows have a direction."""
    x64 = np.asarray(x, dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", x64, x64))
    has = norm > 0
    e = np.zeros_like(x64)
    e[has] = x64[has] / norm[has, None]
    return e, has


def _effective_rank(scatter: np.ndarray) -> np.ndarray:
    """``exp(H(λ / Σλ))`` of the eigenvalues ``λ`` of scatter matrices ``(..., D, D)``; 0 where
    the scatter is zero."""
    ev = np.clip(np.linalg.eigvalsh(scatter), 0.0, None)
    total = ev.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(total > 0, ev / total, 0.0)
        h = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
    return np.where(total[..., 0] > 0, np.exp(h), 0.0)


def mean_resultant_length(x: np.ndarray) -> float | None:
    """``||mean ê_i||`` of the rows of ``x`` with a direction (None if there is none)."""
    e, has = _units(x)
    if not has.any():
        return None
    return float(np.linalg.norm(e[has].sum(axis=0)) / has.sum())


def effective_rank(x: np.ndarray) -> float | None:
    """``exp(H(σ²/Σσ²))`` of the centred rows of ``x`` (None under two rows; 0 if all equal)."""
    x64 = np.asarray(x, dtype=np.float64)
    if len(x64) < 2:
        return None
    y = x64 - x64.mean(axis=0)
    with threadpool_limits(1, user_api="blas"):
        return float(_effective_rank(y.T @ y))


@dataclass
class _Cell:
    """Additive sums per unit of one group, about the group's own mean ``centre``."""

    centre: np.ndarray  # (D,)
    count: np.ndarray  # (M,) rows per unit
    ndir: np.ndarray  # (M,) rows with a direction
    e: np.ndarray  # (M, D) Σ ê
    s: np.ndarray  # (M, D) Σ y
    q: np.ndarray  # (M, D*D) Σ y yᵀ, flattened


def _cell(
    x: np.ndarray, rows: np.ndarray, max_units: int, rng: np.random.Generator | None
) -> _Cell:
    """The unit sums of one group: one unit per row up to ``max_units`` rows, else
    ``max_units`` random blocks (one block, in row order, when ``max_units`` is 1)."""
    n, d = len(rows), x.shape[1]
    centre = np.zeros(d)
    for b in range(0, n, _BLOCK):
        centre += x[rows[b : b + _BLOCK]].astype(np.float64).sum(axis=0)
    centre /= max(n, 1)
    if n <= max_units:  # one unit per row
        y = x[rows].astype(np.float64) - centre
        e, has = _units(x[rows])
        q = (y[:, :, None] * y[:, None, :]).reshape(n, d * d)
        return _Cell(centre, np.ones(n), has.astype(np.float64), e, y, q)
    # random blocks of (nearly) equal size: unit u holds the rows at positions u, u + m, ...
    m = max_units
    order = rows if m == 1 or rng is None else rows[rng.permutation(n)]
    count, ndir = np.zeros(m), np.zeros(m)
    e_sum, s_sum, q_sum = np.zeros((m, d)), np.zeros((m, d)), np.zeros((m, d * d))
    for u in range(m):
        members = order[u::m]
        count[u] = len(members)
        for b in range(0, len(members), _BLOCK):  # float64 copies of at most _BLOCK rows
            xu = x[members[b : b + _BLOCK]]
            yu = xu.astype(np.float64) - centre
            eu, has = _units(xu)
            ndir[u] += has.sum()
            e_sum[u] += eu.sum(axis=0)
            s_sum[u] += yu.sum(axis=0)
            q_sum[u] += (yu.T @ yu).ravel()
    return _Cell(centre, count, ndir, e_sum, s_sum, q_sum)


def _merge(parts: list[_Cell]) -> _Cell:
    """The one-unit sums of the union of cells (each one unit, disjoint), about the union's
    mean: ``Σ y`` and ``Σ y yᵀ`` move from each part's centre ``m_f`` to the union's ``m`` by
    ``y + (m_f - m)``, expanded exactly (the parallel-axis step of a pooled scatter)."""
    d = len(parts[0].centre)
    counts = np.array([p.count.sum() for p in parts])
    n = counts.sum()
    centre = sum(p.centre * c for p, c in zip(parts, counts)) / n
    s_sum, q_sum = np.zeros(d), np.zeros((d, d))
    for p, c in zip(parts, counts):
        delta = p.centre - centre
        sp = p.s.sum(axis=0)
        s_sum += sp + c * delta
        q_sum += p.q.sum(axis=0).reshape(d, d)
        q_sum += np.outer(delta, sp) + np.outer(sp, delta) + c * np.outer(delta, delta)
    return _Cell(
        centre,
        np.array([n]),
        np.array([sum(p.ndir.sum() for p in parts)]),
        sum(p.e.sum(axis=0) for p in parts)[None],
        s_sum[None],
        q_sum.reshape(1, d * d),
    )


def _finish(
    n: np.ndarray, ndir: np.ndarray, e: np.ndarray, scatter: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean resultant length and effective rank from (batched) sums and centred scatter
    matrices; NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mrl = np.where(ndir > 0, np.linalg.norm(e, axis=-1) / ndir, np.nan)
    erank = np.where(n >= 2, _effective_rank(scatter), np.nan)
    return mrl, erank


class SpreadStatistic:
    """Mean resultant length and effective rank per group, with stratified bootstrap replicates
    (a :class:`~fairmetric.report.frame.GroupStatistic` for each of the two, sharing one
    computation per grouping).

    Args:
        x: ``(N, D)`` embeddings (float32 or float64).
        max_units: resampling units per group (see the module docstring); groups up to this size
            are resampled row by row.
        partition: ``(N,)`` integer codes of a partition every later group is a union of (the
            audit's: all its groupings crossed). The values of a group are then pooled from
            the sums of its parts, one pass over the rows for all groupings instead of one per
            grouping (equal up to float64 rounding); a group that is not such a union is summed
            from its rows.
    """

    def __init__(
        self,
        x: np.ndarray,
        *,
        max_units: int | None = None,
        partition: np.ndarray | None = None,
    ) -> None:
        self.x = np.asarray(x)
        if self.x.ndim != 2:
            raise ValueError(f"x must have shape (N, D), got {self.x.shape}")
        self.n, self.d = self.x.shape
        if max_units is None:  # about 32 MB of D x D sums per group (256 units at D = 128)
            max_units = int(np.clip((32 << 20) // (8 * max(self.d, 1) ** 2), 16, 4096))
        if max_units < 1:
            raise ValueError(f"max_units must be >= 1, got {max_units}")
        self.max_units = max_units
        self.partition = None if partition is None else np.asarray(partition, dtype=np.int64)
        if self.partition is not None and self.partition.shape != (self.n,):
            raise ValueError(f"partition must have shape ({self.n},), got {self.partition.shape}")
        self._parts: dict[int, _Cell] | None = None
        self._part_sizes: np.ndarray | None = None
        self._cache: dict[tuple, tuple[np.ndarray, list, np.ndarray, list, np.ndarray]] = {}

    def entry(self, which: str):
        """The :class:`~fairmetric.report.frame.GroupStatistic` of ``"mean_resultant_length"``
        or ``"effective_rank"``."""
        col = {"mean_resultant_length": 0, "effective_rank": 1}[which]
        parent = self

        class _Entry:
            n = parent.n

            def __call__(self, cells, n_boot, seed):
                out = parent.compute(cells, n_boot, seed)
                return out[3 * col], out[3 * col + 1], out[3 * col + 2]

        return _Entry()

    def compute(
        self, cells: list[np.ndarray], n_boot: int, seed: int, *, centre: bool = True
    ) -> tuple:
        """``(mrl, mrl_reasons, mrl_reps, erank, erank_reasons, erank_reps)`` of each cell and
        of all cells pooled (last column); see :class:`~fairmetric.report.frame.GroupStatistic`.

        With ``centre`` (the audit's), each column's replicates are shifted so their mean is
        the value (and clipped to the statistic's range): a resample repeats rows (about 63%
        are distinct), which by itself raises the mean resultant length and lowers the
        effective rank of a small group, so uncentred percentile intervals can miss the value
        altogether. The centred interval is the resampling spread around the value; neither
        corrects the value's own small-sample bias (see the module docstring).
        """
        key = (n_boot, seed, tuple(hash(np.asarray(c).tobytes()) for c in cells))
        if key not in self._cache:
            with threadpool_limits(1, user_api="blas"):  # one summation order on every machine
                self._cache[key] = self._compute(cells, n_boot, seed)
        out = self._cache[key]
        if not centre or not n_boot:
            return out
        mrl, mrl_why, mrl_reps, erank, erank_why, erank_reps = out
        sizes = np.array([len(c) for c in cells] + [sum(len(c) for c in cells)])
        top = np.minimum(self.d, np.maximum(sizes - 1, 0)).astype(np.float64)
        return (
            mrl,
            mrl_why,
            _centred(mrl_reps, mrl, 0.0, np.ones(len(mrl))),
            erank,
            erank_why,
            _centred(erank_reps, erank, 0.0, top),
        )

    def _whole(self, rows: np.ndarray) -> _Cell:
        """The one-unit sums of a group: pooled from the partition's parts when the group is a
        union of them, else summed from its rows."""
        if self.partition is not None and len(rows):
            if self._parts is None:
                codes = self.partition
                self._part_sizes = np.bincount(codes)
                self._parts = {
                    int(c): _cell(self.x, np.flatnonzero(codes == c), 1, None)
                    for c in np.flatnonzero(self._part_sizes)
                }
            ids = np.unique(self.partition[rows])
            if self._part_sizes[ids].sum() == len(rows):  # rows are distinct: the whole parts
                return (
                    self._parts[int(ids[0])]
                    if len(ids) == 1
                    else _merge([self._parts[int(i)] for i in ids])
                )
        return _cell(self.x, rows, 1, None)

    def _compute(self, cells: list[np.ndarray], n_boot: int, seed: int) -> tuple:
        d, g = self.d, len(cells)
        rng = np.random.default_rng(seed)
        cells = [np.asarray(c, dtype=np.int64) for c in cells]
        # the values from one sum per cell, in row order (independent of the seed and of
        # n_boot); the replicates from units of rows or of random blocks of rows
        whole = [self._whole(c) for c in cells]
        n_all = sum(len(c) for c in cells)
        mu = sum(p.centre * p.count.sum() for p in whole) / n_all if n_all else np.zeros(d)

        def values(parts: list[_Cell], weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            """Both statistics per cell and pooled, for the unit weights ``(B, M)`` of each cell.

            The pooled scatter is the sum of the cells' scatters plus the between-cell term
            ``Σ_c n_c (m_c - m)(m_c - m)ᵀ`` of their (weighted) means ``m_c``.
            """
            b = len(weights[0]) if weights else 1
            mrl, erank = np.full((b, g + 1), np.nan), np.full((b, g + 1), np.nan)
            within = np.zeros((b, d, d))
            n_tot, nd_tot, e_tot = np.zeros(b), np.zeros(b), np.zeros((b, d))
            means = np.zeros((g, b, d))
            counts = np.zeros((g, b))
            for i, (p, w) in enumerate(zip(parts, weights)):
                n, nd, e, s_ = w @ p.count, w @ p.ndir, w @ p.e, w @ p.s
                scatter = (w @ p.q).reshape(b, d, d)
                with np.errstate(divide="ignore", invalid="ignore"):
                    mean_y = np.where(n[:, None] > 0, s_ / n[:, None], 0.0)
                scatter -= n[:, None, None] * mean_y[:, :, None] * mean_y[:, None, :]
                scatter = (scatter + np.swapaxes(scatter, 1, 2)) / 2
                mrl[:, i], erank[:, i] = _finish(n, nd, e, scatter)
                within += scatter
                n_tot += n
                nd_tot += nd
                e_tot += e
                means[i], counts[i] = p.centre - mu + mean_y, n
            if g:
                with np.errstate(divide="ignore", invalid="ignore"):
                    grand = np.where(
                        n_tot[:, None] > 0,
                        np.einsum("cb,cbd->bd", counts, means) / n_tot[:, None],
                        0.0,
                    )
                dev = means - grand[None]
                within += np.einsum("cb,cbi,cbj->bij", counts, dev, dev)
            mrl[:, g], erank[:, g] = _finish(n_tot, nd_tot, e_tot, within)
            return mrl, erank

        mrl, erank = values(whole, [np.ones((1, 1)) for _ in whole])
        mrl, erank = mrl[0], erank[0]
        parts = [_cell(self.x, c, self.max_units, rng) for c in cells] if n_boot else []
        sizes = [len(c) for c in cells] + [n_all]
        ndirs = [p.ndir.sum() for p in whole]
        ndirs.append(sum(ndirs))
        mrl_why = [None if nd > 0 else NO_DIRECTION for nd in ndirs]
        erank_why = [None if n >= 2 else FEW for n in sizes]
        mrl_reps = np.zeros((n_boot, g + 1))
        erank_reps = np.zeros((n_boot, g + 1))
        # replicates in chunks: the pooled sums hold chunk x D² floats (about 64 MB)
        chunk = max(1, (64 << 20) // (8 * d * d))
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            weights = []
            for p in parts:  # rows (units) drawn with replacement within each cell
                m = len(p.count)
                draws = rng.integers(0, m, size=(b, m)) + (np.arange(b) * m)[:, None]
                weights.append(np.bincount(draws.ravel(), minlength=b * m).reshape(b, m) * 1.0)
            mrl_reps[start : start + b], erank_reps[start : start + b] = values(parts, weights)
        return mrl, mrl_why, mrl_reps, erank, erank_why, erank_reps


def _centred(reps: np.ndarray, value: np.ndarray, low: float, high: np.ndarray) -> np.ndarray:
    """Replicates shifted to have mean ``value`` per column, clipped to ``[low, high]``."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        shift = value - np.nanmean(reps, axis=0)
    return np.clip(reps + shift, low, high)


def crossed(codes: list[np.ndarray]) -> np.ndarray | None:
    """The cells of several groupings crossed, as dense codes numbered in the lexicographic
    order of the groupings' codes (``None`` for no grouping). Crossing in a grouping that is
    already a crossing of the others (the audit's intersection) changes nothing."""
    out = None
    for c in codes:
        c = np.asarray(c, dtype=np.int64)
        if out is None:
            out = np.unique(c, return_inverse=True)[1].ravel()
        else:  # a 1-D key per pair of codes, renumbered densely (no overflow)
            key = out * (int(c.max(initial=0)) + 1) + c
            out = np.unique(key, return_inverse=True)[1].ravel()
    return out


def group_spread(
    embeddings: np.ndarray,
    groups: np.ndarray,
    names: list[str] | None = None,
    *,
    partition: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Mean resultant length and effective rank of each group and overall (no bootstrap).

    Args:
        embeddings: ``(N, D)`` embeddings.
        groups: ``(N,)`` non-negative integer group codes.
        names: display name of each code (default: the code as text).
        partition: a partition every group is a union of (see :class:`SpreadStatistic`): pass
            the same one as the audit (its attributes crossed, :func:`crossed`) for the same
            bits as the audit's values.

    Returns:
        ``{"mean_resultant_length": {"overall": v, "by_group": {name: v}}, "effective_rank":
        {...}}``; ``None`` where undefined (see the module docstring). The overall value pools
        the groups' sums (equal to the value of all rows up to float64 rounding).
    """
    x = np.asarray(embeddings)
    codes = np.asarray(groups)
    if x.ndim != 2 or codes.shape != (len(x),):
        raise ValueError(
            f"embeddings must be (N, D) and groups (N,), got {x.shape} and {codes.shape}"
        )
    if codes.size and (codes.dtype.kind not in "iu" or codes.min() < 0):
        raise ValueError("groups must be non-negative integer codes")
    present = np.unique(codes)
    label = [str(c) if names is None else names[c] for c in present]
    mrl, _, _, erank, _, _ = SpreadStatistic(x, partition=partition).compute(
        [np.flatnonzero(codes == c) for c in present], 0, 0
    )

    def entry(v: np.ndarray) -> dict[str, Any]:
        def clean(u: float) -> float | None:
            return None if np.isnan(u) else float(u)

        return {"overall": clean(v[-1]), "by_group": {k: clean(u) for k, u in zip(label, v)}}

    return {"mean_resultant_length": entry(mrl), "effective_rank": entry(erank)}


@register_audit_metric("spread")
class SpreadMetric(AuditMetric):
    """``mean_resultant_length`` and ``effective_rank`` per group of every grouping, on the
    searched rows (unit-norm under cosine), recomputed on every bootstrap resample."""

    def jobs(self, ctx: AuditContext) -> list[Job]:
        # every grouping's groups are unions of the groupings' crossed cells: one pass over rows
        stat = SpreadStatistic(ctx.x, partition=crossed([g.codes for g in ctx.groupings]))
        return [
            (
                "mean_resultant_length",
                dict(
                    statistic=stat.entry("mean_resultant_length"),
                    higher_is_better=False,
                    description="length of the group's mean unit embedding (0: spread over the "
                    "sphere, 1: all one direction; higher: collapsed)",
                ),
            ),
            (
                "effective_rank",
                dict(
                    statistic=stat.entry("effective_rank"),
                    higher_is_better=True,
                    description="exp(entropy of the normalised squared singular values) of the "
                    "group's centred embeddings: directions its variance spans (lower: collapsed)",
                ),
            ),
        ]
