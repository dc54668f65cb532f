"""Intra- and inter-class alignment (METHODS.md §1): mean squared distance of same-class and of
different-class pairs inside each group, from closed forms in O(N·D)."""

from __future__ import annotations

import numpy as np

from fairmetric.audit.metrics.base import AuditContext, AuditMetric, Job, register_audit_metric

__all__ = ["AlignmentMetric", "alignment_by_grouping", "alignment_contributions"]

#: rows per block when a computation converts a float32 matrix to float64 piece by piece
#: (16384 x 128 float64 = 16 MB per temporary)
_BLOCK = 16384


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


@register_audit_metric("alignment")
class AlignmentMetric(AuditMetric):
    """``intra_class_alignment`` and ``inter_class_alignment`` per group of every grouping, on
    the searched rows (unit-norm under cosine, as Wang & Isola define alignment)."""

    def jobs(self, ctx: AuditContext) -> list[Job]:
        n = ctx.n
        per_group = alignment_by_grouping(
            ctx.x,
            ctx.labels,
            {"": np.zeros(n, dtype=np.int64), **{g.name: g.codes for g in ctx.groupings}},
        )
        same, same_p, diff, diff_p = per_group.pop("")
        return [
            (
                "intra_class_alignment",
                dict(
                    num=same,
                    den=same_p,
                    group_num={g: v[0] for g, v in per_group.items()},
                    group_den={g: v[1] for g, v in per_group.items()},
                    higher_is_better=False,
                    na_reason="no class has two samples in this group",
                    description="mean squared distance between same-class pairs inside the group "
                    "(lower: tighter classes; a collapsed group is low here too, so the worst "
                    "group is the one whose classes are loosest, and a low value needs a high "
                    "inter_class_alignment to be good). Overall pools every same-class pair, "
                    "also those whose samples lie in different groups, so it can lie outside "
                    "the groups' range",
                ),
            ),
            (
                "inter_class_alignment",
                dict(
                    num=diff,
                    den=diff_p,
                    group_num={g: v[2] for g, v in per_group.items()},
                    group_den={g: v[3] for g, v in per_group.items()},
                    higher_is_better=True,
                    na_reason="fewer than two classes in this group",
                    description="mean squared distance between different-class pairs inside the "
                    "group (higher is better: the worst group is the one whose different people "
                    "or species crowd together, as in a collapsed group). Overall also counts "
                    "pairs across groups, usually further apart, so it can exceed every group's "
                    "value",
                ),
            ),
        ]
