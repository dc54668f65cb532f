"""Uniformity (METHODS.md §1, Wang & Isola): ``log mean exp(-t·squared distance)`` over pairs
inside each group, from all pairs in small groups and seeded partner samples in large ones."""

from __future__ import annotations

import math

import numpy as np

from fairmetric.audit.metrics.base import AuditContext, AuditMetric, Job, register_audit_metric

__all__ = ["UniformityMetric", "uniformity_by_grouping", "uniformity_contributions"]


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
        xm = x64 - x64.mean(axis=0)
        # float32 for speed, unless squared distances would overflow it (rows far apart, e.g.
        # scaled by 1e30): float64 holds them and exp(-t d^2) is then an exact 0, no warning
        if not np.abs(xm).max(initial=0.0) > 1e18:
            xm = xm.astype(np.float32)
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


@register_audit_metric("uniformity")
class UniformityMetric(AuditMetric):
    """``uniformity`` per group of every grouping (``uniformity_t``, ``pair_partners``)."""

    def jobs(self, ctx: AuditContext) -> list[Job]:
        t = ctx.settings["uniformity_t"]
        (u_num, u_den), u_group = uniformity_by_grouping(
            ctx.x,
            {g.name: g.codes for g in ctx.groupings},
            t=t,
            partners=ctx.settings["pair_partners"],
            seed=ctx.settings["seed"],
        )
        na_reason = "fewer than two samples in this group"
        sums = [u_num, *(v[0] for v in u_group.values())]
        dens = [u_den, *(v[1] for v in u_group.values())]
        if any(((d > 0) & ~(num > 0)).any() for num, d in zip(sums, dens)):
            # exp(-t·d²) underflows (or d² overflows float32) when the embeddings are far apart
            na_reason += (
                f", or exp(-{t:g}·squared distance) is 0 in float64 for its pairs (embeddings "
                "too far apart for this uniformity_t: audit with metric='cosine' or scale them)"
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
                    higher_is_better=False,
                    na_reason=na_reason,
                    description=f"log mean exp(-{t:g}·squared distance) over pairs inside the "
                    "group (lower: spread more uniformly)",
                ),
            )
        ]
