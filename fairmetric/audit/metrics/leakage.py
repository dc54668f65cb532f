"""Attribute leakage (METHODS.md §1): how well the attribute is predicted from the embedding, by
a k-NN vote of the neighbours (``leakage_knn:<a>``) and by a cross-validated, class-balanced
linear probe (``leakage_linear:<a>``); recall per group, balanced accuracy overall."""

from __future__ import annotations

import numpy as np

from fairmetric.audit.metrics.base import AuditContext, AuditMetric, Job, register_audit_metric
from fairmetric.report.frame import Grouping

__all__ = [
    "LinearLeakageMetric",
    "KNNLeakageMetric",
    "linear_probe_predictions",
    "linear_probes",
]

#: rows per block when a computation converts a float32 matrix to float64 piece by piece
_BLOCK = 16384


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


def _values(ctx: AuditContext, attribute: str) -> tuple[np.ndarray, int]:
    codes = ctx.data.attribute(attribute)
    n_values = len(np.unique(codes))
    # chance level of the balanced accuracy, in the metadata for every audited attribute
    ctx.metadata.setdefault("leakage_chance", {})[attribute] = 1.0 / n_values
    return codes, n_values


@register_audit_metric("leakage_knn")
class KNNLeakageMetric(AuditMetric):
    """``leakage_knn:<a>``: a ``leakage_k``-NN vote for ``a`` (tie rule of
    :class:`~fairmetric.audit.metrics.neighbour_stats.NeighbourStats`)."""

    def k_needed(self, ctx: AuditContext) -> int:
        return int(ctx.settings["leakage_k"])

    def attribute_jobs(self, ctx: AuditContext, grouping: Grouping) -> list[Job]:
        a = grouping.name
        codes, n_values = _values(ctx, a)
        if n_values < 2:
            return []
        chance = 1.0 / n_values
        return [
            (
                f"leakage_knn:{a}",
                dict(
                    num=(ctx.stats.vote[a] == codes).astype(np.float64),
                    groupings=[grouping],
                    overall_mode="macro",
                    higher_is_better=False,
                    description=f"how well a {ctx.settings['leakage_k']}-NN vote predicts {a}: "
                    f"recall per group, balanced accuracy overall (chance {chance:.3f})",
                ),
            )
        ]


@register_audit_metric("leakage_linear")
class LinearLeakageMetric(AuditMetric):
    """``leakage_linear:<a>``: a cross-validated linear probe for ``a`` (``linear_probe=True``);
    the probes of all attributes are fitted together once."""

    def attribute_jobs(self, ctx: AuditContext, grouping: Grouping) -> list[Job]:
        a = grouping.name
        codes, n_values = _values(ctx, a)
        if n_values < 2 or not ctx.settings["linear_probe"]:
            return []
        if "linear_probes" not in ctx.cache:
            probed = [b for b in ctx.attributes if len(np.unique(ctx.data.attribute(b))) >= 2]
            columns = np.stack([ctx.data.attribute(b) for b in probed], axis=1)
            cells = np.unique(columns, axis=0, return_inverse=True)[1].ravel()  # intersection
            ctx.cache["linear_probes"] = linear_probes(
                ctx.x,
                {b: ctx.data.attribute(b) for b in probed},
                cells=cells,
                seed=ctx.settings["seed"],
            )
        chance = 1.0 / n_values
        return [
            (
                f"leakage_linear:{a}",
                dict(
                    num=(ctx.cache["linear_probes"][a] == codes).astype(np.float64),
                    groupings=[grouping],
                    overall_mode="macro",
                    higher_is_better=False,
                    description=f"how well a cross-validated linear probe predicts {a}: recall "
                    f"per group, balanced accuracy overall (chance {chance:.3f})",
                ),
            )
        ]
