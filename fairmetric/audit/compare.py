"""``compare()``: is model B fairer than model A? Two audits of the same samples, paired.

Both embedding sets are audited with the same settings and seed, so their bootstrap replicates
resample the same rows (the audit's bootstrap is stratified within groups and its draws depend
only on the seed and the group sizes); :func:`~fairmetric.report.compare.compare_reports` then
takes ``B_r - A_r`` replicate by replicate for every overall value, group value and gap
(docs/compare.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fairmetric.audit.audit import DEFAULT_KS, audit, build_groupings
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError
from fairmetric.report.compare import Comparison, compare_reports
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE

__all__ = ["align_samples", "compare", "group_sizes"]


def _names_of(codes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    return np.asarray([str(s) for s in names], dtype=str)[np.asarray(codes, dtype=np.int64)]


def _first_mismatch(what: str, va: np.ndarray, vb: np.ndarray, ids: np.ndarray | None) -> str:
    bad = np.flatnonzero(va != vb)
    i = int(bad[0])
    where = f"row {i}" + (f" (id {str(ids[i])!r})" if ids is not None else "")
    return (
        f"{bad.size} of {len(va)} samples have a different {what} in A and B (first: {where}: "
        f"{str(va[i])!r} in A, {str(vb[i])!r} in B)"
    )


def align_samples(
    a: EmbeddingSet, b: EmbeddingSet, attributes: Sequence[str]
) -> tuple[EmbeddingSet, str]:
    """``b`` in the row order of ``a``, checked to hold the same samples.

    With ids in both sets, ``b``'s rows are matched to ``a``'s by id (both must hold the same
    ids); otherwise rows are matched by position, and both sets must have the same length. Then
    every row must have the same label and the same value of each of ``attributes`` in both
    (compared by name, so ``"7"`` and ``"007"`` differ).

    Returns:
        ``(b_aligned, matched_by)`` with ``matched_by`` ``"ids"`` or ``"row order"``.

    Raises:
        UserError: the sets hold different samples, naming the first difference.
    """
    for name, s in (("a", a), ("b", b)):
        if not isinstance(s, EmbeddingSet):
            raise TypeError(f"compare() takes EmbeddingSets, got {type(s).__name__} for {name}")
    if a.ids is not None and b.ids is not None:
        sa, sb = set(a.ids.tolist()), set(b.ids.tolist())
        if sa != sb:
            only_a = sorted(sa - sb)[:3]
            only_b = sorted(sb - sa)[:3]
            raise UserError(
                f"A and B do not name the same samples ({len(sa - sb)} ids only in A, e.g. "
                f"{only_a}; {len(sb - sa)} only in B, e.g. {only_b}): embed the same test set "
                "with both models"
            )
        if not np.array_equal(a.ids, b.ids):
            b = b.subset(b.rows_of(a.ids))
        matched_by = "ids"
    else:
        if len(a) != len(b):
            raise UserError(
                f"A has {len(a)} samples and B {len(b)}: a paired comparison needs the same "
                "samples in the same order (embed the same test set with both models; with ids "
                "in both sets, rows are matched by id)"
            )
        matched_by = "row order"
    ids = a.ids
    la, lb = _names_of(a.labels, a.label_names), _names_of(b.labels, b.label_names)
    if not np.array_equal(la, lb):
        raise UserError(
            _first_mismatch("label", la, lb, ids) + ": A and B are not the same samples in the "
            "same order; embed the same test set with both models"
        )
    for attr in attributes:
        for name, s in (("A", a), ("B", b)):
            if attr not in s.attribute_names:
                raise UserError(
                    f"{name} has no attribute {attr!r} (it has: "
                    f"{', '.join(s.attribute_names) or 'none'}); choose attributes both sets have"
                )
        va = _names_of(a.attribute(attr), a.attribute_value_names[attr])
        vb = _names_of(b.attribute(attr), b.attribute_value_names[attr])
        if not np.array_equal(va, vb):
            raise UserError(
                _first_mismatch(f"value of {attr!r}", va, vb, ids)
                + ": A and B are not the same samples in the same order"
            )
    return b, matched_by


def group_sizes(
    data: EmbeddingSet, attributes: Sequence[str], *, intersectional: bool = True
) -> dict[str, dict[str, int]]:
    """``{grouping: {group: samples}}`` of the groupings an audit of ``data`` slices by (for
    :func:`~fairmetric.report.compare.compare_reports`)."""
    return {
        g.name: {g.names[c]: int(n) for c, n in enumerate(np.bincount(g.codes)) if n}
        for g in build_groupings(data, attributes, intersectional=intersectional)
    }


def compare(
    a: EmbeddingSet,
    b: EmbeddingSet,
    *,
    attributes: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    bootstrap: int = 200,
    seed: int = 0,
    names: tuple[str, str] = ("A", "B"),
    sources: tuple[str | None, str | None] = (None, None),
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    progress: bool = False,
    **audit_options: Any,
) -> Comparison:
    """Audit two models' embeddings of the same samples and compare them, paired.

    Both sets are audited by :func:`~fairmetric.audit.audit` with the same settings and seed.
    Every replicate of the bootstrap resamples the same rows for both models (stratified within
    the groups of each attribute, as the audit's own intervals are), so each difference
    ``B - A`` (overall, per group, and of every gap ``max - min`` over groups) gets a paired
    95% percentile interval: an interval entirely below zero for a gap difference means B's
    gap is smaller ("B is fairer") beyond the sampling noise of this test set.

    Args:
        a: model A's embeddings (the reference, e.g. the baseline).
        b: model B's embeddings of the same samples: same ids (matched by id when both sets
            have them) or same row order, same labels and attribute values.
        attributes: attributes to compare (default: those of ``a``).
        ks: Recall@k cut-offs.
        bootstrap: paired replicates (0: differences without intervals).
        seed: seed of the bootstrap (the same draws for both models).
        names: display names of A and B.
        sources: where A and B came from, for the record (default: each set's
            ``metadata["source"]``, else its name).
        min_group_size: groups with fewer samples are kept out of the gaps (as in the audit).
        progress: progress bars.
        **audit_options: further :func:`~fairmetric.audit.audit` options (``metric``,
            ``intersectional``, ``linear_probe``, ``homophily_k``, ...), the same for both.

    Returns:
        A :class:`~fairmetric.report.compare.Comparison` (``to_dict()``, ``to_json()``,
        ``summary()``; :func:`~fairmetric.report.compare_writers.write_comparison` writes
        ``compare.json``, ``compare.md`` and ``compare.html``).

    Raises:
        UserError: the sets hold different samples, or an attribute is missing.
    """
    for bad in ("drop_invalid", "gallery", "seed", "bootstrap"):
        if bad in audit_options:
            raise TypeError(f"compare() does not take {bad!r} as an audit option")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ValueError(f"bootstrap must be an integer >= 0, got {bootstrap!r}")
    attributes = list(a.attribute_names if attributes is None else attributes)
    b, matched_by = align_samples(a, b, attributes)
    common = dict(
        attributes=attributes,
        ks=ks,
        bootstrap=int(bootstrap),
        seed=seed,
        min_group_size=min_group_size,
        progress=progress,
        projection_points=0,
        **audit_options,
    )
    report_a = audit(a, source=sources[0] or a.metadata.get("source") or names[0], **common)
    report_b = audit(b, source=sources[1] or b.metadata.get("source") or names[1], **common)
    sizes = group_sizes(a, attributes, intersectional=audit_options.get("intersectional", True))
    return compare_reports(
        report_a,
        report_b,
        names=names,
        metadata={"matched_by": matched_by, "k": list(ks)},
        group_sizes=sizes,
    )
