"""``hard_fmr@T``: each group's FMR at the global threshold among its hard impostor pairs (the
RFW protocol; :func:`~fairmetric.audit.verification.pairs.hard_impostor_pairs`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fairmetric.audit.verification.bootstrap import interval as _interval
from fairmetric.audit.verification.bootstrap import pair_boot as _pair_boot
from fairmetric.audit.verification.gallery import hard_cross_pairs
from fairmetric.audit.verification.pairs import PairSample, hard_impostor_pairs
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report.frame import Estimate, GroupMetric

__all__ = ["hard_fmr"]


def hard_fmr(
    data: EmbeddingSet,
    x: np.ndarray,
    codes: dict[str, np.ndarray],
    *,
    k: int,
    metric: str,
    taus: np.ndarray,
    labels_t: list[str],
    score: Callable[[PairSample], np.ndarray],
    bootstrap: int,
    rng: np.random.Generator,
    level: float,
    min_group_size: int,
    n_probes: int | None = None,
) -> dict[str, GroupMetric]:
    """``hard_fmr@T`` per group: FMR at the global threshold among hard same-group impostors
    (with ``n_probes``: each probe's hardest same-group impostors in the gallery, the rows from
    ``n_probes`` on)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"hard_impostors must be an integer >= 0, got {k!r}")
    by_group: dict[str, dict[str, dict[str, Estimate]]] = {t: {} for t in labels_t}
    replicates: dict[str, dict[str, dict[str, np.ndarray]]] = {t: {} for t in labels_t}
    overall: dict[str, list[np.ndarray]] = {t: [] for t in labels_t}
    labels = np.asarray(data.labels, dtype=np.int64)
    names = list(codes)
    empty = (
        "no impostor pairs (a single identity in this group)"
        if n_probes is None
        else "no impostor pairs (no probe, or no gallery sample of another identity, in this group)"
    )
    for a in names:
        c = codes[a]
        value_names = list(data.attribute_value_names[a])
        for g in np.unique(c):
            members = np.flatnonzero(c == g)
            if n_probes is None:
                p = hard_impostor_pairs(x, labels, members, int(k), metric)
            else:
                probes, gallery = members[members < n_probes], members[members >= n_probes]
                p = hard_cross_pairs(x, labels, probes, gallery, int(k), metric)
            s = score(p)
            hit = (s[:, None] >= taus[None, :]).astype(np.float64)
            reps = _pair_boot(labels[p.i], labels[p.j], hit, bootstrap, rng)
            ids = int(len(np.unique(labels[c == g])))
            for q, t in enumerate(labels_t):
                if len(p) == 0:
                    est = Estimate(None, ids, na_reason=empty)
                else:
                    lo, hi = _interval(reps[:, q], level) if bootstrap else (None, None)
                    est = Estimate(float(hit[:, q].mean()), ids, lo, hi)
                by_group[t].setdefault(a, {})[value_names[int(g)]] = est
                if bootstrap:
                    per = replicates[t].setdefault(a, {"__overall__": np.full(bootstrap, np.nan)})
                    per[value_names[int(g)]] = reps[:, q]
                if a == names[0]:
                    overall[t].append(hit[:, q])
    out = {}
    for t in labels_t:
        pooled = np.concatenate(overall[t]) if overall[t] else np.zeros(0)
        out[f"hard_fmr@{t}"] = GroupMetric(
            name=f"hard_fmr@{t}",
            description=f"false match rate of hard same-group impostor pairs (each sample with "
            f"its {k} most similar other identities of its group, the RFW protocol) at the "
            f"global threshold for FMR {t} (lower is better; overall: pooled over the groups "
            f"of {names[0] if names else 'none'})",
            higher_is_better=False,
            overall=Estimate(
                float(pooled.mean()) if pooled.size else None, int(len(np.unique(labels)))
            ),
            by_group=by_group[t],
            replicates=replicates[t],
            min_group_size=min_group_size,
        )
    return out
