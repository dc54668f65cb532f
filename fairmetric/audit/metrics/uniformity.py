"""Uniformity (METHODS.md §1, Wang & Isola): ``log mean exp(-t·squared distance)`` over pairs
inside each group, from all pairs in small groups and seeded partner samples in large ones.

Computed in the log domain (per-sample log-sum-exps, summed by the report with a shift), so it
has a value at any scale whose squared distances float64 holds."""

from __future__ import annotations

import math

import numpy as np

from fairmetric.audit.metrics.base import AuditContext, AuditMetric, Job, register_audit_metric

__all__ = ["UniformityMetric", "uniformity_by_grouping", "uniformity_contributions"]


#: a sum of shifted weights below this is recomputed with its own shift: float64 carries sums of
#: at most a few thousand terms above it to ~1e-26 relative (terms below ~1e-308 are lost)
_TINY = 1e-280


def _needs_float64(top: float, width: int) -> bool:
    """Whether squared distances between rows with values up to ``top`` in ``width`` dimensions
    could overflow float32 (at most ``4·width·top²``; float32 ends near ``3.4e38``)."""
    return top > math.sqrt(1e37 / (4 * max(1, width)))


def _row_logsumexp(a: np.ndarray) -> np.ndarray:
    """``log Σ_j exp(a_ij)`` per row, shifted by the row's max (``-inf`` for a row of ``-inf``)."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], -np.inf)
    top = a.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - top[:, None]).sum(axis=1)) + top


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
    """Per-sample logs of the sums of ``exp(-t ||x_i - x_j||²)`` over partners ``j`` in the same
    cell.

    Cells with at most ``exact_max`` samples use all pairs; larger cells use ``partners``
    uniformly drawn partners per sample (seeded, with replacement, never ``i`` itself), an
    unbiased estimate of the mean over pairs. Each sum is kept as its log, computed as a
    log-sum-exp shifted by the row's largest term, so it has a value even where every
    ``exp(-t d²)`` underflows in float64 (embeddings far apart). Uniformity of a set of samples is
    ``log(Σ exp(lnum) / Σ den)`` (``group_metric_from_samples(..., num_log=True)``).

    Returns:
        ``(lnum, den)``: per-sample ``log Σ_j exp(-t d²_ij)`` (``-inf`` for a sample alone in
        its cell) and partner counts (0 for a sample alone in its cell).
    """
    x = np.asarray(x)
    n = len(x)
    cells = np.zeros(n, dtype=np.int64) if cells is None else np.asarray(cells, dtype=np.int64)
    lnum = np.full(n, -np.inf)
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
        xm = x64 - x64.mean(axis=0)
        # float32 for speed, unless squared distances would overflow it (rows far apart, e.g.
        # scaled by 1e30): float64 holds them, and the log-sum-exp keeps their (tiny) weights
        if not _needs_float64(float(np.abs(xm).max(initial=0.0)), xm.shape[1]):
            xm = xm.astype(np.float32)
        if m <= exact_max:
            sq = np.einsum("ij,ij->i", xm, xm)
            d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (xm @ xm.T), 0.0)
            a = -t * d2.astype(np.float64)
            np.fill_diagonal(a, -np.inf)
            lnum[members] = _row_logsumexp(a)
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
            lnum[members[rows]] = _row_logsumexp(-t * d2)
            den[members[rows]] = partners
    return lnum, den


def _abs_max(x: np.ndarray, rows: int) -> float:
    """``max |x|`` read in chunks of ``rows`` rows (no full-size temporary)."""
    top = 0.0
    for a in range(0, len(x), rows):
        top = max(top, float(np.abs(x[a : a + rows]).max(initial=0.0)))
    return top


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
    partner is uniform over the other samples and never the sample itself. Rows are processed in
    chunks (about 16 MB of rows, and a ``rows × partners`` matrix of ``-t·d²``), so memory stays
    O(N·partners) beyond ``x``; each chunk's matrix is reduced by a per-row log-sum-exp, overall
    and, for each grouping, over the partners inside the row's group (``-inf`` where none is).
    Squared distances are computed in float32 unless they could overflow it (rows far apart, e.g.
    scaled by ``1e30``), then in float64. Conditioned on falling inside ``i``'s group a partner is uniform
    over the group, so the pairs that do are an unbiased sample of the group's pairs. Groups of
    at most ``exact_max`` samples use all their pairs instead, and groups too small to receive
    about one such partner per sample (``n_g · partners / N < 1``) get partners drawn inside the
    group (:func:`uniformity_contributions`).

    Returns:
        ``((lnum, den), {grouping: (lnum, den)})`` as in :func:`uniformity_contributions`: the
        logs of the per-sample sums, and the partner counts.
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
    lnum_p = np.empty(n)
    g_num = {name: np.empty(n) for name in groupings}
    g_den = {name: np.zeros(n) for name in groupings}
    width = max(1, x.shape[1] if x.ndim > 1 else 1)
    top = _abs_max(x, max(1, (16 << 20) // (8 * width)))
    dtype = np.float64 if _needs_float64(top, width) else np.float32
    itemsize = np.dtype(dtype).itemsize
    chunk = max(1, (16 << 20) // (itemsize * width))  # 16 MB of rows per chunk, never a full copy
    shifts = np.arange(1, partners + 1)
    for a in range(0, n, chunk):
        rows = np.arange(a, min(a + chunk, n))
        xa = np.asarray(x[order[rows]], dtype=dtype)
        other_rows = (rows[:, None] + shifts) % n  # row r is paired with P[r + shift]
        d2 = np.empty((len(rows), partners))
        for k in range(partners):
            diff = xa - np.asarray(x[order[other_rows[:, k]]], dtype=dtype)
            d2[:, k] = np.einsum("ij,ij->i", diff, diff)
        logw = -t * d2
        # log-sum-exp per row, shifted by the row's largest term; each grouping reuses the
        # shifted weights masked to the partners inside the row's group, and takes its own shift
        # (the largest term among them) where their sum is too small for float64 to carry
        top = logw.max(axis=1)
        top[~np.isfinite(top)] = 0.0
        w = np.exp(logw - top[:, None])
        with np.errstate(divide="ignore"):
            lnum_p[rows] = np.log(w.sum(axis=1)) + top
            for name, c in codes_p.items():
                same = c[rows][:, None] == c[other_rows]
                s = np.where(same, w, 0.0).sum(axis=1)
                lg = np.log(s) + top
                low = (s < _TINY) & same.any(axis=1)
                if low.any():
                    lg[low] = _row_logsumexp(np.where(same[low], logw[low], -np.inf))
                g_num[name][rows] = lg
                g_den[name][rows] = same.sum(axis=1)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    overall = (lnum_p[inverse], np.full(n, float(partners)))
    out = {}
    for name, codes in groupings.items():
        codes = np.asarray(codes, dtype=np.int64)
        lnum, den = g_num[name][inverse], g_den[name][inverse]
        sizes = np.bincount(codes)
        for code in np.flatnonzero(sizes):
            size = sizes[code]
            if size <= exact_max or size * partners < n:
                members = np.flatnonzero(codes == code)
                lnum[members], den[members] = uniformity_contributions(
                    x[members],
                    t=t,
                    partners=partners,
                    exact_max=exact_max,
                    seed=int(rng.integers(2**31)),
                )
        out[name] = (lnum, den)
    return overall, out


@register_audit_metric("uniformity")
class UniformityMetric(AuditMetric):
    """``uniformity`` per group of every grouping (``uniformity_t``, ``pair_partners``).

    The per-sample sums are passed as logs (``num_log=True``), so embeddings far apart (every
    ``exp(-t·d²)`` 0 in float64) still get a finite value, about ``-t·d²`` of the closest pairs.
    """

    def jobs(self, ctx: AuditContext) -> list[Job]:
        t = ctx.settings["uniformity_t"]
        (u_num, u_den), u_group = uniformity_by_grouping(
            ctx.x,
            {g.name: g.codes for g in ctx.groupings},
            t=t,
            partners=ctx.settings["pair_partners"],
            seed=ctx.settings["seed"],
        )
        return [
            (
                "uniformity",
                dict(
                    num=u_num,
                    den=u_den,
                    group_num={g: v[0] for g, v in u_group.items()},
                    group_den={g: v[1] for g, v in u_group.items()},
                    transform=math.log,
                    num_log=True,
                    higher_is_better=False,
                    na_reason="fewer than two samples in this group",
                    description=f"log mean exp(-{t:g}·squared distance) over pairs inside the "
                    "group (lower: spread more uniformly)",
                ),
            )
        ]
