"""Bad input fails with a ValueError naming the argument, the fix and, where it applies, the group."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit.posthoc import (
    FairCal,
    FairScoreNormalisation,
    PerGroupThreshold,
    ScoreNormalisation,
)

ALL = [
    lambda: PerGroupThreshold(target_fmr=0.1),
    lambda: ScoreNormalisation(),
    lambda: FairScoreNormalisation(target_fmr=0.1, n_clusters=3, n_init=1),
    lambda: FairCal(n_clusters=3, n_init=1),
]


@pytest.mark.parametrize("make", ALL)
def test_mismatched_lengths(make, tiny):
    fix = make()
    with pytest.raises(ValueError, match="j has 629 entries but scores has 630"):
        fix.fit(tiny.x, tiny.i, tiny.j[:-1], tiny.scores, tiny.genuine, groups=tiny.groups)
    with pytest.raises(ValueError, match=r"genuine must have shape \(630,\)"):
        fix.fit(tiny.x, tiny.i, tiny.j, tiny.scores, tiny.genuine[:5], groups=tiny.groups)
    if fix.needs_groups:  # the attribute-free fixes ignore groups
        with pytest.raises(ValueError, match=r"groups must have shape \(36,\)"):
            fix.fit(*tiny.fit_args(), groups=tiny.groups[:-1])


@pytest.mark.parametrize("make", ALL)
def test_nan_scores_and_bad_indices(make, tiny):
    fix = make()
    scores = tiny.scores.copy()
    scores[17] = np.nan
    with pytest.raises(ValueError, match=f"{fix.name}: scores must be finite, got nan at pair 17"):
        fix.fit(tiny.x, tiny.i, tiny.j, scores, tiny.genuine, groups=tiny.groups)
    j = tiny.j.copy()
    j[0] = 36
    with pytest.raises(ValueError, match=r"j has row index 36, outside \[0, 36\)"):
        fix.fit(tiny.x, tiny.i, j, tiny.scores, tiny.genuine, groups=tiny.groups)


@pytest.mark.parametrize("make", ALL)
def test_transform_before_fit(make, tiny):
    with pytest.raises(ValueError, match="call fit"):
        make().transform(*tiny.transform_args(), groups=tiny.groups)


@pytest.mark.parametrize("cls", [PerGroupThreshold, ScoreNormalisation])
def test_group_without_impostor_pairs_is_named(cls, tiny):
    groups = tiny.groups.copy()
    groups[:3] = 3  # identity 0's three rows alone: only genuine pairs within group 3
    with pytest.raises(ValueError, match=r"group 'D' \(code 3\) has 0 same-group impostor pairs"):
        cls().fit(*tiny.fit_args(), groups=groups, group_names=["A", "B", "C", "D"])


@pytest.mark.parametrize("cls", [PerGroupThreshold, ScoreNormalisation])
def test_groups_required_and_unknown_at_transform(cls, tiny):
    with pytest.raises(ValueError, match="needs groups"):
        cls().fit(*tiny.fit_args())
    fix = cls().fit(*tiny.fit_args(), groups=tiny.groups)
    groups = tiny.groups.copy()
    groups[0] = 5
    with pytest.raises(ValueError, match="group code 5 was not in the calibration split"):
        fix.transform(*tiny.transform_args(), groups=groups)
    with pytest.raises(ValueError, match="non-negative"):
        fix.transform(*tiny.transform_args(), groups=tiny.groups - 1)


@pytest.mark.parametrize("target", [0, 1, -1e-3, 2.0, float("nan")])
@pytest.mark.parametrize("cls", [PerGroupThreshold, FairScoreNormalisation])
def test_target_fmr_out_of_range(cls, target):
    with pytest.raises(ValueError, match=f"{cls.name}: target_fmr must be a number in \\(0, 1\\)"):
        cls(target_fmr=target)


@pytest.mark.parametrize("cls", [FairScoreNormalisation, FairCal])
def test_more_clusters_than_rows(cls, tiny):
    with pytest.raises(ValueError, match=f"{cls.name}: n_clusters=50 is more than the 36 rows"):
        cls(n_clusters=50).fit(*tiny.fit_args())
    with pytest.raises(ValueError, match="n_clusters must be an integer >= 1"):
        cls(n_clusters=0)
    fix = cls(n_clusters=3, n_init=1).fit(*tiny.fit_args())
    with pytest.raises(ValueError, match="x has 3 columns but the fix was fitted on 4-dimensional"):
        fix.transform(tiny.x[:, :3], tiny.i, tiny.j, tiny.scores)


def test_default_clusters_capped_by_rows(tiny):
    fix = FairScoreNormalisation(target_fmr=0.1, n_init=1).fit(*tiny.fit_args())
    assert fix.centroids.shape == (36, 4)


def test_faircal_bad_score_map():
    with pytest.raises(ValueError, match="faircal: score_map must be 'cosine' or 'minmax'"):
        FairCal(score_map="l2")
