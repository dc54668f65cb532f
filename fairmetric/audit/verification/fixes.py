"""Post-hoc score fixes on an :class:`EmbeddingSet`: fit one on a calibration split, apply it in a
verification audit, save it beside the model, and judge it on held-out identities.

:class:`ScoreTransform` wraps a fitted :mod:`fairmetric.audit.posthoc` fix with the attribute it
was fitted on (the attribute-aware fixes look a pair's groups up by *name*, so a held-out split
or another dataset with the same group names can be scored). The saved file is the fix's JSON
(:func:`~fairmetric.audit.posthoc.save_fix`) plus an ``"attribute"`` entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.audit.posthoc import (
    POSTHOC_FIXES,
    PosthocFix,
    calibration_by_group,
    create_fix,
    load_fix,
    pair_groups,
    probability_from_scores,
    save_fix,
)
from fairmetric.audit.verification.pairs import sample_pairs
from fairmetric.audit.verification.scores import pair_scores
from fairmetric.audit.verification.verify import verification_audit
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report.result import AuditReport
from fairmetric.utils import atomic_write_bytes

__all__ = [
    "FixComparison",
    "ScoreTransform",
    "compare_fix",
    "fit_score_transform",
    "load_score_transform",
    "split_identities",
]


@dataclass
class ScoreTransform:
    """A fitted fix and the attribute whose groups it needs (``None`` for fsn / faircal)."""

    fix: PosthocFix
    attribute: str | None = None

    @property
    def name(self) -> str:
        return self.fix.name

    def _codes(self, data: EmbeddingSet) -> np.ndarray | None:
        if not self.fix.needs_groups:
            return None
        if self.attribute is None:
            raise ValueError(f"{self.name} needs the attribute it was fitted on; none is recorded")
        if self.attribute not in data.attribute_names:
            raise ValueError(
                f"the score transform {self.name} was fitted on attribute {self.attribute!r}, "
                f"which this data lacks (it has: {', '.join(data.attribute_names) or 'none'})"
            )
        fitted = {name: int(code) for code, name in zip(self.fix.codes, self.fix.names)}
        names = data.attribute_value_names[self.attribute]
        missing = sorted(set(names) - set(fitted))
        if missing:
            raise ValueError(
                f"the score transform {self.name} has no value for {self.attribute} group(s) "
                f"{missing} (fitted on: {sorted(fitted)}); fit it on data with every group"
            )
        lookup = np.array([fitted[n] for n in names], dtype=np.int64)
        return lookup[np.asarray(data.attribute(self.attribute), dtype=np.int64)]

    def transform(
        self, data: EmbeddingSet, x: np.ndarray, i: np.ndarray, j: np.ndarray, scores: np.ndarray
    ) -> np.ndarray:
        """The fixed scores of pairs ``(i, j)`` of ``data`` (rows ``x``)."""
        return self.fix.transform(x, i, j, scores, groups=self._codes(data))

    def save(self, path: str | Path) -> Path:
        """Write the fix as JSON (no pickle) with the attribute it needs."""
        path = save_fix(self.fix, path)
        doc = json.loads(Path(path).read_text())
        doc["attribute"] = self.attribute
        atomic_write_bytes(path, (json.dumps(doc, allow_nan=False, indent=1) + "\n").encode())
        return path


def load_score_transform(path: str | Path) -> ScoreTransform:
    """Read a file written by :meth:`ScoreTransform.save` (or :func:`save_fix`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score transform file not found: {path}")
    fix = load_fix(path)
    attribute = json.loads(path.read_text()).get("attribute")
    if attribute is not None and not isinstance(attribute, str):
        raise ValueError(f"{path}: 'attribute' must be a name, got {attribute!r}")
    if fix.needs_groups and attribute is None:
        raise ValueError(
            f"{path}: the {fix.name} fix needs the attribute it was fitted on, and the file names "
            "none; re-fit it with fairmetric posthoc (or save it with ScoreTransform.save)"
        )
    return ScoreTransform(fix, attribute)


def split_identities(
    data: EmbeddingSet, calibration_fraction: float = 0.5, seed: int = 0
) -> tuple[EmbeddingSet, EmbeddingSet]:
    """``(calibration, held_out)``: the identities split at random, stratified by the first
    attribute's group of each identity (no identity in both)."""
    if not 0 < calibration_fraction < 1:
        raise ValueError(f"calibration_fraction must lie in (0, 1), got {calibration_fraction!r}")
    labels = np.asarray(data.labels, dtype=np.int64)
    ids = np.unique(labels)
    first = data.attribute_names[0] if data.attribute_names else None
    strata = np.zeros(len(ids), dtype=np.int64)
    if first is not None:  # the group of each identity's first row
        order = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[order], ids)
        strata = np.asarray(data.attribute(first))[order[starts]]
    rng = np.random.default_rng(seed)
    cal_ids = []
    for s in np.unique(strata):
        members = ids[strata == s]
        take = int(round(calibration_fraction * len(members)))
        cal_ids.append(rng.permutation(members)[:take])
    calibration = np.isin(labels, np.concatenate(cal_ids))
    if calibration.all() or not calibration.any():
        raise ValueError(
            f"{len(ids)} identities are too few to split into calibration and held-out parts"
        )
    return data.subset(calibration), data.subset(~calibration)


def _pairs(
    data: EmbeddingSet, attribute: str | None, genuine: int, impostor: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(data.labels, dtype=np.int64)
    groupings = {} if attribute is None else {attribute: data.attribute(attribute)}
    p = sample_pairs(
        labels, groupings, genuine=genuine, impostor=impostor, same_group=impostor, seed=seed
    )
    # the same-group samples add impostors inside small groups; when the global set already
    # holds every impostor pair they are subsets of it, and adding them would count pairs twice
    same = (
        [] if p.impostor.exhaustive else [s for per in p.same_group.values() for s in per.values()]
    )
    sets = [p.genuine, p.impostor, *same]
    i = np.concatenate([s.i for s in sets])
    j = np.concatenate([s.j for s in sets])
    return i, j, labels[i] == labels[j]


def fit_score_transform(
    data: EmbeddingSet,
    fix: str | PosthocFix,
    *,
    attribute: str | None = None,
    metric: str = "cosine",
    genuine_pairs: int = 200_000,
    impostor_pairs: int = 1_000_000,
    seed: int = 0,
    **params: Any,
) -> ScoreTransform:
    """Fit ``fix`` (a name in ``POSTHOC_FIXES`` or a ready fix) on the pairs of ``data``.

    ``attribute`` (needed by ``per_group_threshold`` and ``score_normalisation``; default: the
    only attribute) names the groups; ``params`` go to the fix's constructor (``target_fmr``,
    ``n_clusters``, ...).
    """
    if isinstance(fix, str) and fix not in POSTHOC_FIXES:
        raise ValueError(f"unknown post-hoc fix {fix!r}; known: {', '.join(POSTHOC_FIXES)}")
    fixer = create_fix(fix, **params) if isinstance(fix, str) else fix
    if fixer.needs_groups and attribute is None:
        if len(data.attribute_names) != 1:
            raise ValueError(
                f"{fixer.name} needs an attribute (--attribute); the data has "
                f"{', '.join(data.attribute_names) or 'none'}"
            )
        attribute = data.attribute_names[0]
    if attribute is not None:
        data.attribute(attribute)  # a clear error for an unknown name
    x = np.asarray(data.embeddings)
    grouped = attribute if fixer.needs_groups else None  # fsn / faircal: the same pairs always
    i, j, genuine = _pairs(data, grouped, genuine_pairs, impostor_pairs, seed)
    scores = pair_scores(x, i, j, metric)
    groups = None if attribute is None else np.asarray(data.attribute(attribute), np.int64)
    names = None if attribute is None else list(data.attribute_value_names[attribute])
    fixer.fit(x, i, j, scores, genuine, groups=groups, group_names=names)
    return ScoreTransform(fixer, attribute if fixer.needs_groups else None)


@dataclass
class FixComparison:
    """A fix judged on held-out identities: the verification audit before and after it, and
    the calibration (ECE, KS, Brier) of P(genuine) per group before and after."""

    transform: ScoreTransform
    before: AuditReport
    after: AuditReport
    calibration_before: dict[str, Any]
    calibration_after: dict[str, Any]
    n_calibration: int
    n_held_out: int


def _calibration(
    cal: EmbeddingSet,
    held: EmbeddingSet,
    attribute: str,
    transform: ScoreTransform | None,
    metric: str,
    budget: int,
    seed: int,
) -> dict[str, Any]:
    """ECE / KS / Brier per group of held-out pair probabilities: FairCal's own output, else a
    global beta calibrator fitted on the calibration split's (fixed) scores."""

    def scored(data: EmbeddingSet, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i, j, genuine = _pairs(data, attribute, budget, budget, s)
        x = np.asarray(data.embeddings)
        scores = pair_scores(x, i, j, metric)
        if transform is not None:
            scores = transform.transform(data, x, i, j, scores)
        codes = np.asarray(data.attribute(attribute), np.int64)
        return scores, genuine, pair_groups(codes, i, j)

    held_s, held_g, held_groups = scored(held, seed + 1)
    if transform is not None and transform.name == "faircal":
        prob = held_s
    else:
        cal_s, cal_g, _ = scored(cal, seed)
        prob = probability_from_scores(cal_s, cal_g)(held_s)
    rep = calibration_by_group(
        prob, held_g, held_groups, list(held.attribute_value_names[attribute])
    )
    return {"overall": rep.overall, "by_group": rep.by_group}


def compare_fix(
    data: EmbeddingSet,
    fix: str | PosthocFix,
    *,
    attribute: str | None = None,
    calibration_fraction: float = 0.5,
    fmr: Any = (1e-3, 1e-4),
    metric: str = "cosine",
    genuine_pairs: int = 200_000,
    impostor_pairs: int = 1_000_000,
    bootstrap: int = 200,
    seed: int = 0,
    min_group_size: int = 10,
    **params: Any,
) -> FixComparison:
    """Split ``data`` by identity, fit ``fix`` on the calibration part and audit the held-out
    part before and after it (same pairs, same seeds), with calibration per group."""
    cal, held = split_identities(data, calibration_fraction, seed)
    transform = fit_score_transform(
        cal,
        fix,
        attribute=attribute,
        metric=metric,
        genuine_pairs=genuine_pairs,
        impostor_pairs=impostor_pairs,
        seed=seed,
        **params,
    )
    attr = attribute or (data.attribute_names[0] if data.attribute_names else None)
    if attr is None:
        raise ValueError("judging a fix needs a demographic attribute in the data")
    audit_kw = dict(
        attributes=[attr],
        fmr=fmr,
        metric=metric,
        genuine_pairs=genuine_pairs,
        impostor_pairs=impostor_pairs,
        same_group_pairs=impostor_pairs,
        bootstrap=bootstrap,
        seed=seed,
        min_group_size=min_group_size,
    )
    before = verification_audit(held, **audit_kw)
    after = verification_audit(held, score_transform=transform, **audit_kw)
    budget = min(genuine_pairs, 200_000)
    return FixComparison(
        transform=transform,
        before=before,
        after=after,
        calibration_before=_calibration(cal, held, attr, None, metric, budget, seed),
        calibration_after=_calibration(cal, held, attr, transform, metric, budget, seed),
        n_calibration=len(cal),
        n_held_out=len(held),
    )
