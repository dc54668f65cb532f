"""The verification audit (METHODS.md §6): per-group FMR and FNMR at one global threshold, each
group's own threshold, disparity summaries, cross-group FMR, with intervals by bootstrap over
identities, as an :class:`~fairmetric.report.result.AuditReport`.

Rates are counts over pairs. A person's pairs are not independent, so the intervals come from a
bootstrap over identities, stratified by group, with the thresholds held at their full-sample
values: a genuine pair counts as often as its identity is drawn; an impostor pair depends on two
identities and is weighed by the product of their multiplicities (a two-way cluster bootstrap).
A group's ``count`` is its number of identities, so ``min_group_size`` counts identities here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric import __version__
from fairmetric.audit.verification.bootstrap import boot, interval, pair_boot, unit_counts
from fairmetric.audit.verification.gallery import sample_cross_pairs, stack_probes_and_gallery
from fairmetric.audit.verification.hard import hard_fmr
from fairmetric.audit.verification.metric import RateBuilder, VerificationMetric
from fairmetric.audit.verification.pairs import PairSample, read_pair_file, sample_pairs
from fairmetric.audit.verification.scores import pair_scores
from fairmetric.audit.verification.threshold import _check_target, threshold_at_fmr
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report.frame import (
    DEFAULT_MIN_GROUP_SIZE,
    Estimate,
    GroupMetric,
    check_min_group_size,
)
from fairmetric.report.result import AuditReport

__all__ = [
    "DEFAULT_FMRS",
    "VerificationMetric",
    "add_verification",
    "fmr_label",
    "verification_audit",
]

DEFAULT_FMRS = (1e-3, 1e-4)
#: the largest set whose rank-1 identification errors are measured unless asked (an exact search)
IDENTIFICATION_AUTO_MAX = 200_000


def fmr_label(target: float) -> str:
    """``1e-3`` for 0.001, ``5e-4`` for 0.0005: the suffix of ``fmr@...`` report keys."""
    mantissa, exponent = f"{target:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _check_args(fmr: Sequence[float], alpha: float, bootstrap: int, level: float) -> list[float]:
    if isinstance(fmr, (int, float, np.number)):
        fmr = [fmr]
    targets = [_check_target(t) for t in fmr]
    if not targets:
        raise ValueError("give at least one target FMR (e.g. fmr=[1e-3, 1e-4])")
    if len(set(targets)) != len(targets):
        raise ValueError(f"target FMRs repeat: {targets}")
    if isinstance(alpha, bool) or not (
        isinstance(alpha, (int, float, np.number)) and 0 <= alpha <= 1
    ):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(f"bootstrap must be an integer >= 0, got {bootstrap!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    return targets


def verification_audit(
    data: EmbeddingSet,
    *,
    attributes: Sequence[str] | None = None,
    fmr: Sequence[float] = DEFAULT_FMRS,
    metric: str = "cosine",
    genuine_pairs: int = 200_000,
    impostor_pairs: int = 1_000_000,
    same_group_pairs: int = 200_000,
    alpha: float = 0.5,
    bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    score_transform: Any = None,
    identification: bool | None = None,
    pairs_file: str | Path | None = None,
    hard_impostors: int = 0,
    gallery: EmbeddingSet | None = None,
) -> AuditReport:
    """Verification error rates per group at one global threshold (FRVT / ISO 19795-10).

    Args:
        data: embeddings; ``labels`` are the identities.
        attributes: the demographic attributes (default: all).
        fmr: target false match rates; ``τ`` is set at each on all impostor pairs.
        metric: pair score: ``"cosine"`` similarity or ``"l2"`` (minus the distance).
        genuine_pairs: most genuine pairs scored (all when there are no more).
        impostor_pairs: most impostor pairs over the whole set (``τ`` comes from these).
        same_group_pairs: most same-group impostor pairs per group (FMR per group).
        alpha: weight of FMR in GARBE, FDR and IR.
        bootstrap: replicates over identities (0: no intervals).
        level: interval coverage.
        seed: seeds the pair samples and the bootstrap.
        min_group_size: groups with fewer identities are reported but not compared.
        score_transform: a :class:`~fairmetric.audit.verification.fixes.ScoreTransform` (a
            fitted post-hoc fix) applied to every pair's score before thresholds are set.
        pairs_file: audit the pairs listed in this CSV (``a,b[,same]``: row indices; see
            :func:`~fairmetric.audit.verification.pairs.read_pair_file`) instead of sampling.
        hard_impostors: with ``k > 0``, also ``hard_fmr@T``: each group's FMR at the global
            threshold among its *hard* impostor pairs, every member paired with its ``k`` most
            similar members of other identities (the RFW protocol).
        identification: also measure the rank-1 identification errors by group (one exact
            neighbour search; ``metadata["verification"]["identification"]``); ``None``: when
            the set has at most :data:`IDENTIFICATION_AUTO_MAX` rows (an exact search of
            millions of rows takes long; the audit's own Recall@1 has the error rates).
        gallery: a separate gallery (enrolment set): every pair is then a sample of ``data``
            (a probe) and a gallery sample, identities and attribute values matched by name
            (:mod:`~fairmetric.audit.verification.gallery`); the rank-1 identification errors
            search the gallery for each probe whose identity is enrolled, and hard impostors
            are each probe's most similar gallery samples. Not with ``pairs_file``.

    Returns:
        An :class:`AuditReport` with ``fmr@T``, ``fnmr@T`` (:class:`VerificationMetric`, with
        disparity summaries) and ``threshold@T`` (each group's own threshold at ``T``) for every
        target, and ``metadata["verification"]`` (thresholds, pair counts, cross-group FMR).
    """
    targets = _check_args(fmr, alpha, bootstrap, level)
    min_group_size = check_min_group_size(min_group_size)
    if metric not in ("cosine", "l2"):
        raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}")
    if not isinstance(data, EmbeddingSet):
        raise ValueError(f"data must be an EmbeddingSet, got {type(data).__name__}")
    _check_rows(data, metric, "embedding")
    if isinstance(attributes, str):
        attributes = [attributes]
    names = list(data.attribute_names if attributes is None else attributes)
    for a in names:
        data.attribute(a)  # an unknown name fails here, naming the attributes
    n_probes = None
    if gallery is not None:
        if pairs_file is not None:
            raise ValueError(
                "a pair file lists pairs of one set's rows: audit it without a gallery, or "
                "drop the pair file to pair every probe with the gallery"
            )
        if not isinstance(gallery, EmbeddingSet):
            raise ValueError(f"gallery must be an EmbeddingSet, got {type(gallery).__name__}")
        _check_rows(gallery, metric, "gallery")
        n_probes = len(data)
        data = stack_probes_and_gallery(data, gallery, names)
    x = np.asarray(data.embeddings)
    codes = {a: np.asarray(data.attribute(a), dtype=np.int64) for a in names}
    labels = np.asarray(data.labels, dtype=np.int64)
    for name, value in (
        ("genuine_pairs", genuine_pairs),
        ("impostor_pairs", impostor_pairs),
        ("same_group_pairs", same_group_pairs),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if pairs_file is not None:
        pairs = read_pair_file(pairs_file, labels, codes, ids=data.ids)
    elif n_probes is not None:
        pairs = sample_cross_pairs(
            labels,
            codes,
            n_probes,
            genuine=int(genuine_pairs),
            impostor=int(impostor_pairs),
            same_group=int(same_group_pairs),
            seed=seed,
        )
    else:
        pairs = sample_pairs(
            labels,
            codes,
            genuine=int(genuine_pairs),
            impostor=int(impostor_pairs),
            same_group=int(same_group_pairs),
            seed=seed,
        )
    if len(pairs.genuine) == 0 and n_probes is not None:  # pragma: no cover - checked above
        raise ValueError("no identity has a sample in both the probes and the gallery")
    if len(pairs.genuine) == 0:
        raise ValueError(
            "no genuine pairs: every identity has a single sample; a verification audit needs "
            "identities with at least two samples"
        )
    if len(pairs.impostor) == 0:
        raise ValueError("no impostor pairs: the data holds a single identity")

    def score(p: PairSample) -> np.ndarray:
        s = pair_scores(x, p.i, p.j, metric)
        if score_transform is not None:
            s = np.asarray(score_transform.transform(data, x, p.i, p.j, s), np.float64)
        return s

    gen_s = score(pairs.genuine)
    imp_s = score(pairs.impostor)
    taus = np.array([threshold_at_fmr(imp_s, t) for t in targets])
    gen_miss = (gen_s[:, None] < taus[None, :]).astype(np.float64)
    imp_hit = (imp_s[:, None] >= taus[None, :]).astype(np.float64)
    rng = np.random.default_rng([seed, 1])

    labels_t = [fmr_label(t) for t in targets]
    fmr_metrics = {t: RateBuilder(f"fmr@{t}", False, level) for t in labels_t}
    fnmr_metrics = {t: RateBuilder(f"fnmr@{t}", False, level) for t in labels_t}
    own_thresholds: dict[str, dict[str, dict[str, Estimate]]] = {t: {} for t in labels_t}
    matrices: dict[str, dict[str, Any]] = {t: {} for t in labels_t}
    group_pairs: dict[str, dict[str, dict[str, int]]] = {}
    scores_for_plots: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}

    overall_fmr = imp_hit.mean(axis=0)
    overall_fnmr = gen_miss.mean(axis=0)
    # overall intervals: resample identities over the whole set
    one = np.zeros(len(labels), dtype=np.int64)
    g_all = unit_counts(labels[pairs.genuine.i], one[pairs.genuine.i], gen_miss, 1)
    fnmr_all_reps = boot(g_all, 0, bootstrap, rng)
    fmr_all_reps = pair_boot(
        labels[pairs.impostor.i], labels[pairs.impostor.j], imp_hit, bootstrap, rng
    )
    n_identities = int(len(np.unique(labels)))
    for k, t in enumerate(labels_t):
        fmr_metrics[t].overall_reps = fmr_all_reps[:, k]
        fnmr_metrics[t].overall_reps = fnmr_all_reps[:, k]
        fmr_metrics[t].overall = Estimate(
            float(overall_fmr[k]), n_identities, *_ci(fmr_all_reps[:, k], bootstrap, level)
        )
        fnmr_metrics[t].overall = Estimate(
            float(overall_fnmr[k]), n_identities, *_ci(fnmr_all_reps[:, k], bootstrap, level)
        )

    for a in names:
        c = codes[a]
        value_names = list(data.attribute_value_names[a])
        n_groups = len(value_names)
        present = [int(g) for g in np.unique(c)]
        gen_units = unit_counts(labels[pairs.genuine.i], c[pairs.genuine.i], gen_miss, n_groups)
        group_pairs[a] = {}
        scores_for_plots[a] = {}
        same_scores = {g: score(pairs.same_group[a][g]) for g in present}
        fmr_reps, fnmr_reps = {}, {}
        for g in present:
            name = value_names[g]
            p = pairs.same_group[a][g]
            s = same_scores[g]
            hit = (s[:, None] >= taus[None, :]).astype(np.float64)
            gsel = gen_units.units == g
            n_gen = int(gen_units.n[gsel].sum())
            # a group's count: its identities (min_group_size counts identities)
            ids_in_group = int(len(np.unique(labels[c == g])))
            gen_ids = imp_ids = ids_in_group
            group_pairs[a][name] = {
                "genuine": n_gen,
                "same_group_impostor": len(p),
                "same_group_impostor_available": p.available,
                "identities": int(len(np.unique(labels[c == g]))),
            }
            gen_mask = c[pairs.genuine.i] == g
            scores_for_plots[a][name] = (gen_s[gen_mask], s)
            fmr_reps[name] = pair_boot(labels[p.i], labels[p.j], hit, bootstrap, rng)
            fnmr_reps[name] = boot(gen_units, g, bootstrap, rng)
            for k, t in enumerate(labels_t):
                fmr_v = float(hit[:, k].mean()) if len(p) else None
                fnmr_v = float(gen_miss[gen_mask, k].mean()) if n_gen else None
                fmr_metrics[t].add(
                    a,
                    name,
                    fmr_v,
                    imp_ids,
                    fmr_reps[name][:, k],
                    errors=int(hit[:, k].sum()),
                    pairs=len(p),
                    na="no same-group impostor pairs (a single identity in this group)",
                )
                fnmr_metrics[t].add(
                    a,
                    name,
                    fnmr_v,
                    gen_ids,
                    fnmr_reps[name][:, k],
                    errors=int(gen_miss[gen_mask, k].sum()),
                    pairs=n_gen,
                    na="no genuine pairs (no identity of this group has two samples)",
                )
                own = (
                    Estimate(threshold_at_fmr(s, targets[k]), imp_ids)
                    if len(p)
                    else Estimate(None, 0, na_reason="no same-group impostor pairs")
                )
                own_thresholds[t].setdefault(a, {})[name] = own
        # cross-group FMR by (group of i, group of j), symmetric: all impostor pairs when the
        # global set holds them all (the same-group sets are then subsets of it); otherwise the
        # global sample plus the same-group samples (each uniform within its cells)
        if pairs.impostor.exhaustive:
            all_i, all_j, all_s = pairs.impostor.i, pairs.impostor.j, imp_s
        else:
            all_i = np.concatenate([pairs.impostor.i, *(pairs.same_group[a][g].i for g in present)])
            all_j = np.concatenate([pairs.impostor.j, *(pairs.same_group[a][g].j for g in present)])
            all_s = np.concatenate([imp_s, *(same_scores[g] for g in present)])
        gi, gj = c[all_i], c[all_j]
        for k, t in enumerate(labels_t):
            hits = np.zeros((n_groups, n_groups))
            tot = np.zeros((n_groups, n_groups))
            h = (all_s >= taus[k]).astype(np.float64)
            np.add.at(tot, (gi, gj), 1.0)
            np.add.at(tot, (gj, gi), 1.0)
            np.add.at(hits, (gi, gj), h)
            np.add.at(hits, (gj, gi), h)
            with np.errstate(invalid="ignore", divide="ignore"):
                m = np.where(tot > 0, hits / np.maximum(tot, 1), np.nan)
            keep = present
            matrices[t][a] = {
                "groups": [value_names[g] for g in keep],
                "fmr": [[_clean(m[r, q]) for q in keep] for r in keep],
                "pairs": [[int(tot[r, q] / (2 if r == q else 1)) for q in keep] for r in keep],
            }
        for k, t in enumerate(labels_t):
            fmr_metrics[t].summarise(a, fnmr_metrics[t], k, alpha, min_group_size, bootstrap)

    hard_metrics = (
        hard_fmr(
            data,
            x,
            codes,
            k=hard_impostors,
            metric=metric,
            taus=taus,
            labels_t=labels_t,
            score=score,
            bootstrap=bootstrap,
            rng=rng,
            level=level,
            min_group_size=min_group_size,
            n_probes=n_probes,
        )
        if hard_impostors
        else {}
    )
    metrics: dict[str, GroupMetric] = {}
    for k, t in enumerate(labels_t):
        metrics[f"fmr@{t}"] = fmr_metrics[t].build(
            f"false match rate of same-group impostor pairs at the global threshold for FMR "
            f"{t} (lower is better)",
            min_group_size,
        )
        metrics[f"fnmr@{t}"] = fnmr_metrics[t].build(
            f"false non-match rate of genuine pairs at the global threshold for FMR {t} "
            "(lower is better; TMR = 1 - FNMR)",
            min_group_size,
        )
        metrics[f"threshold@{t}"] = GroupMetric(
            name=f"threshold@{t}",
            description=f"each group's own threshold at FMR {t} on its same-group impostors "
            "(overall: the global threshold)",
            higher_is_better=False,
            overall=Estimate(float(taus[k]), int(len(pairs.impostor))),
            by_group=own_thresholds[t],
            min_group_size=min_group_size,
            ratio_defined=False,  # a score threshold can be negative
        )
    metrics.update(hard_metrics)
    warnings = []
    for a in names:
        for g, counts in group_pairs[a].items():
            need = max(math.ceil(10 / min(targets)), 1)
            if counts["same_group_impostor"] < need:
                warnings.append(
                    f"{a}={g}: {counts['same_group_impostor']} same-group impostor pairs, fewer "
                    f"than 10/FMR = {need} for FMR {fmr_label(min(targets))}: its FMR there is "
                    "coarse (raise same_group_pairs, or the group has too few identities)"
                )
    ident: dict[str, Any] = {}
    if identification is None:
        identification = len(labels) <= IDENTIFICATION_AUTO_MAX
    if identification:
        from fairmetric.audit.verification.identification import identification_errors

        for a, res in identification_errors(x, labels, codes, metric, n_probes).items():
            value_names = list(data.attribute_value_names[a])
            keep = [int(g) for g in np.unique(codes[a])]
            m = res["matrix"]
            ident[a] = {
                "groups": [value_names[g] for g in keep],
                "queries": {value_names[g]: int(res["queries"][g]) for g in keep},
                "rank1_error": {value_names[g]: _clean(float(np.nansum(m[g, keep]))) for g in keep},
                "matrix": [[_clean(m[r, q]) for q in keep] for r in keep],
            }
    meta: dict[str, Any] = {
        "n": len(labels),
        "dim": int(x.shape[1]),
        "identities": int(len(np.unique(labels))),
        "metric": metric,
        "seed": seed,
        "bootstrap": bootstrap,
        "bootstrap_unit": "identity (stratified by group; impostor pairs weighed by both identities; thresholds fixed)",
        "level": level,
        "alpha": alpha,
        "min_group_size": min_group_size,
        "min_group_size_counts": "identities",
        "attributes": names,
        "verification": {
            "targets": {
                t: {
                    "fmr": targets[k],
                    "threshold": float(taus[k]),
                    "realised_fmr": float(overall_fmr[k]),
                    "realised_over_target": float(overall_fmr[k] / targets[k]),
                }
                for k, t in enumerate(labels_t)
            },
            "pairs": {
                "genuine": len(pairs.genuine),
                "genuine_available": pairs.genuine.available,
                "genuine_all": pairs.genuine.exhaustive,
                "impostor": len(pairs.impostor),
                "impostor_available": pairs.impostor.available,
                "impostor_all": pairs.impostor.exhaustive,
                "same_group_budget": same_group_pairs,
                "by_group": group_pairs,
            },
            "fmr_matrix": matrices,
            "identification": ident,
            "identification_measured": bool(identification),
            "warnings": warnings,
            "score_transform": None if score_transform is None else score_transform.name,
            "pairs_file": None if pairs_file is None else str(pairs_file),
            "hard_impostors": int(hard_impostors),
            "gallery": None
            if n_probes is None
            else {"probes": n_probes, "n": len(labels) - n_probes},
        },
        "fairmetric_version": __version__,
    }
    report = AuditReport(metrics=metrics, metadata=meta)
    report.verification = {  # plot data, not in report.json
        "scores": scores_for_plots,
        "impostor_scores": imp_s,
        "genuine_scores": gen_s,
        "thresholds": dict(zip(labels_t, taus.tolist())),
    }
    return report


def _check_rows(data: EmbeddingSet, metric: str, what: str) -> None:
    """Refuse rows with NaN/Inf, and all-zero rows under cosine (no direction)."""
    bad = data.invalid_mask
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} {what} rows contain NaN/Inf (first: "
            f"{np.flatnonzero(bad)[:5].tolist()}); drop them first (EmbeddingSet.drop_invalid)"
        )
    if metric == "cosine":
        zero = np.flatnonzero(~np.any(data.embeddings != 0, axis=1))
        if zero.size:
            raise ValueError(
                f"{zero.size} {what} rows are all zero (first: {zero[:5].tolist()}): they have "
                "no cosine similarity; drop them or use metric='l2'"
            )


def _clean(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _ci(reps: np.ndarray, bootstrap: int, level: float) -> tuple[float | None, float | None]:
    return interval(reps, level) if bootstrap else (None, None)


def add_verification(report: AuditReport, verification: AuditReport) -> AuditReport:
    """Merge a :func:`verification_audit` result into an :func:`~fairmetric.audit.audit` report
    of the same data (its metrics after the audit's; ``metadata["verification"]``)."""
    clash = sorted(set(report.metrics) & set(verification.metrics))
    if clash:
        raise ValueError(f"the report already has {', '.join(clash)}")
    report.metrics.update(verification.metrics)
    meta = dict(verification.metadata["verification"])
    meta.update(
        bootstrap_unit=verification.metadata["bootstrap_unit"],
        alpha=verification.metadata["alpha"],
        min_group_size_counts=verification.metadata["min_group_size_counts"],
    )
    report.metadata["verification"] = meta
    report.verification = verification.verification
    return report
