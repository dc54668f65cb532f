"""Verification against a separate gallery (enrolment set): every pair is a probe and a gallery
sample, as in a deployed face-recognition system that compares a new capture with enrolled ones.

The probes and the gallery are stacked into one :class:`~fairmetric.embeddings.EmbeddingSet`
(probes first), with identities and attribute values matched *by name*, so the rest of the
verification audit (scores, thresholds, per-group rates, the identity bootstrap, score fixes)
runs unchanged on pairs ``(i, j)`` with ``i`` a probe row and ``j`` a gallery row. The pair
sets are those of :mod:`~fairmetric.audit.verification.pairs`, restricted to such cross pairs:

- ``genuine``: a probe and a gallery sample of one identity; sampled by drawing an identity with
  probability proportional to its cross pairs, then one of its probes and one of its gallery
  samples;
- ``impostor``: a probe and a gallery sample of different identities, uniform by rejection;
- ``same_group[attribute][group]``: impostor cross pairs with both samples in the group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairmetric.audit.audit import recode_by_name
from fairmetric.audit.verification.pairs import Pairs, PairSample
from fairmetric.embeddings import EmbeddingSet

__all__ = ["sample_cross_pairs", "stack_probes_and_gallery"]


def stack_probes_and_gallery(
    probes: EmbeddingSet, gallery: EmbeddingSet, attributes: Sequence[str]
) -> EmbeddingSet:
    """One set of the probes' rows then the gallery's, with identities and the values of
    ``attributes`` in one code space (matched by name).

    Raises:
        ValueError: a gallery that is not an :class:`EmbeddingSet`, another dimension, a missing
            attribute, or no identity in both sets (then no genuine pair exists).
    """
    if not isinstance(gallery, EmbeddingSet):
        raise ValueError(f"gallery must be an EmbeddingSet, got {type(gallery).__name__}")
    if gallery.dim != probes.dim:
        raise ValueError(
            f"the gallery's embeddings have dimension {gallery.dim}, the probes' {probes.dim}: "
            "embed both with the same model"
        )
    g_labels, label_names = recode_by_name(probes.label_names, gallery.label_names, gallery.labels)
    if not np.isin(probes.labels, g_labels).any():
        raise ValueError(
            "no identity of the probes is in the gallery (identities are matched by name): there "
            "are no genuine pairs; check that both sets name the people the same way"
        )
    columns, value_names = {}, {}
    for a in attributes:
        if a not in gallery.attribute_names:
            raise ValueError(
                f"the gallery has no attribute {a!r} (it has: "
                f"{', '.join(gallery.attribute_names) or 'none'}); give both sets the attribute"
            )
        codes, names = recode_by_name(
            probes.attribute_value_names[a], gallery.attribute_value_names[a], gallery.attribute(a)
        )
        columns[a] = np.concatenate([probes.attribute(a), codes])
        value_names[a] = names
    return EmbeddingSet(
        embeddings=np.concatenate([probes.embeddings, gallery.embeddings]),
        labels=np.concatenate([probes.labels, g_labels]),
        label_names=label_names,
        attributes=columns,
        attribute_value_names=value_names,
        metadata=probes.metadata,
        allow_invalid=True,  # the caller checks the rows
    )


def _by_identity(rows: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """``rows`` sorted by identity, where each identity's run starts, and its length."""
    order = rows[np.argsort(labels[rows], kind="stable")]
    counts = np.bincount(labels[rows], minlength=size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def _cross_genuine(
    probes: np.ndarray,
    gallery: np.ndarray,
    labels: np.ndarray,
    budget: int,
    rng: np.random.Generator,
) -> PairSample:
    size = int(labels.max()) + 1
    p_order, p_start, p_count = _by_identity(probes, labels, size)
    g_order, g_start, g_count = _by_identity(gallery, labels, size)
    per = p_count * g_count
    available = int(per.sum())
    z = np.zeros(0, np.int64)
    if available == 0:
        return PairSample(z, z.copy(), True, 0)
    if available <= budget:
        i_parts, j_parts = [], []
        for ident in np.flatnonzero(per):
            ps = p_order[p_start[ident] : p_start[ident] + p_count[ident]]
            gs = g_order[g_start[ident] : g_start[ident] + g_count[ident]]
            i_parts.append(np.repeat(ps, len(gs)))
            j_parts.append(np.tile(gs, len(ps)))
        return PairSample(np.concatenate(i_parts), np.concatenate(j_parts), True, available)
    pick = rng.choice(size, size=budget, p=per / per.sum())
    a = (rng.random(budget) * p_count[pick]).astype(np.int64)
    b = (rng.random(budget) * g_count[pick]).astype(np.int64)
    return PairSample(p_order[p_start[pick] + a], g_order[g_start[pick] + b], False, available)


def _cross_impostors(
    probes: np.ndarray,
    gallery: np.ndarray,
    labels: np.ndarray,
    budget: int,
    rng: np.random.Generator,
) -> PairSample:
    z = np.zeros(0, np.int64)
    size = int(labels.max()) + 1
    same = int(
        (np.bincount(labels[probes], minlength=size) * np.bincount(labels[gallery], minlength=size))
        .astype(np.int64)
        .sum()
    )
    available = len(probes) * len(gallery) - same
    if available == 0:
        return PairSample(z, z.copy(), True, 0)
    if available <= budget:  # every cross pair of different identities, in blocks of probes
        i_parts, j_parts = [z], [z]
        step = max(1, (1 << 22) // len(gallery))
        for s in range(0, len(probes), step):
            ps = probes[s : s + step]
            i = np.repeat(ps, len(gallery))
            j = np.tile(gallery, len(ps))
            keep = labels[i] != labels[j]
            i_parts.append(i[keep])
            j_parts.append(j[keep])
        return PairSample(np.concatenate(i_parts), np.concatenate(j_parts), True, available)
    out_i, out_j, got = [], [], 0
    for _ in range(1000):  # uniform over cross pairs, rejecting genuine ones
        need = budget - got
        if need <= 0:
            break
        draw = int(need * 1.2) + 16
        i = probes[rng.integers(0, len(probes), size=draw)]
        j = gallery[rng.integers(0, len(gallery), size=draw)]
        keep = labels[i] != labels[j]
        out_i.append(i[keep][:need])
        out_j.append(j[keep][:need])
        got += len(out_i[-1])
    if got < budget:
        raise ValueError(
            f"could not draw {budget} impostor pairs: nearly every probe-gallery pair is genuine; "
            "lower the impostor budget below the impostor pairs available, so that all are taken"
        )
    return PairSample(np.concatenate(out_i), np.concatenate(out_j), False, available)


def sample_cross_pairs(
    labels: np.ndarray,
    groupings: dict[str, np.ndarray],
    n_probes: int,
    *,
    genuine: int,
    impostor: int,
    same_group: int,
    seed: int = 0,
) -> Pairs:
    """The pair sets of a probe/gallery verification audit (see the module docstring): rows
    ``0..n_probes-1`` are probes, the rest the gallery; the budgets are as in
    :func:`~fairmetric.audit.verification.pairs.sample_pairs`."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(labels), dtype=np.int64)
    probes, gallery = rows[:n_probes], rows[n_probes:]
    pairs = Pairs(
        genuine=_cross_genuine(probes, gallery, labels, genuine, rng),
        impostor=_cross_impostors(probes, gallery, labels, impostor, rng),
    )
    for name, codes in groupings.items():
        codes = np.asarray(codes, dtype=np.int64)
        pairs.same_group[name] = {}
        for g in np.unique(codes):
            p, q = probes[codes[probes] == g], gallery[codes[gallery] == g]
            if len(p) == 0 or len(q) == 0:
                z = np.zeros(0, np.int64)
                pairs.same_group[name][int(g)] = PairSample(z, z.copy(), True, 0)
                continue
            pairs.same_group[name][int(g)] = _cross_impostors(p, q, labels, same_group, rng)
    return pairs


def hard_cross_pairs(
    x: np.ndarray,
    labels: np.ndarray,
    probes: np.ndarray,
    gallery: np.ndarray,
    k: int,
    metric: str,
) -> PairSample:
    """The RFW protocol's hard impostors against a gallery: each probe of ``probes`` paired with
    its ``k`` most similar samples of ``gallery`` of *other* identities (exact search ranked in
    float64; candidates tied with the ``k``-th are all kept, so the set does not depend on the
    CPU or the row order). Rows are of ``x``; pairs are ``(probe, gallery sample)``."""
    from fairmetric.neighbors.index import NeighborIndex
    from fairmetric.neighbors.search import search_vectors

    labels = np.asarray(labels, dtype=np.int64)
    probes = np.asarray(probes, dtype=np.int64)
    gallery = np.asarray(gallery, dtype=np.int64)
    z = np.zeros(0, np.int64)
    if len(probes) == 0 or len(gallery) == 0:
        return PairSample(z, z.copy(), True, 0)
    largest = int(np.bincount(labels[gallery]).max())
    depth = min(len(gallery), k + largest)  # enough to pass every gallery sample of one's own
    index = NeighborIndex(np.asarray(x)[gallery], metric=metric, index="exact", use_gpu=False)
    nearer_first = -1.0 if metric == "l2" else 1.0  # scores: squared distance, or similarity
    a_parts, b_parts = [z], [z]
    for s in range(0, len(probes), 2048):
        rows = probes[s : s + 2048]
        nb = search_vectors(index, np.asarray(x)[rows], depth)
        for q, row in enumerate(rows):
            ids = nb.ids[q]
            found = ids >= 0
            keep = found & (labels[gallery[np.where(found, ids, 0)]] != labels[row])
            cand, score = gallery[ids[keep]], nb.scores[q][keep] * nearer_first
            if len(cand) > k:  # the k best, and every candidate tied with the k-th
                cand = cand[score >= np.sort(score)[::-1][k - 1]]
            a_parts.append(np.full(len(cand), row))
            b_parts.append(cand)
    i, j = np.concatenate(a_parts), np.concatenate(b_parts)
    return PairSample(i, j, True, len(i))
