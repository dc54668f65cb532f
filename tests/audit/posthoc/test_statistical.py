"""On held-out data, every fix brings two groups' FMR at the global threshold closer together.

Group 1's identities are more concentrated than group 0's, so its same-group impostor scores are
shifted up and, at one global threshold, its FMR is many times group 0's. Each fix is fitted on a
calibration split and judged on a held-out split of other identities, with the global threshold
recomputed on the held-out transformed impostor scores.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit.posthoc import (
    FairCal,
    FairScoreNormalisation,
    PerGroupThreshold,
    ScoreNormalisation,
    calibration_by_group,
    pair_groups,
    probability_from_scores,
    threshold_at_fmr,
)

TARGET = 0.05


def fmr_ratio(split, scores):
    tau = threshold_at_fmr(scores[~split.genuine], TARGET)
    pg = pair_groups(split.groups, split.i, split.j)
    fmr = [np.mean(scores[~split.genuine & (pg == g)] >= tau) for g in (0, 1)]
    assert min(fmr) > 0
    return max(fmr) / min(fmr)


FIXES = {
    "per_group_threshold": lambda: PerGroupThreshold(target_fmr=TARGET),
    "score_normalisation": lambda: ScoreNormalisation(),
    "fsn": lambda: FairScoreNormalisation(target_fmr=TARGET, n_clusters=2),
    "faircal": lambda: FairCal(n_clusters=2),
}


@pytest.mark.parametrize("name", list(FIXES))
def test_fix_shrinks_the_fmr_ratio_on_held_out_pairs(synthetic, name):
    cal, held = synthetic
    before = fmr_ratio(held, held.scores)
    assert before > 5  # the set is unfair to begin with
    fix = FIXES[name]().fit(*cal.fit_args(), groups=cal.groups)
    after = fmr_ratio(held, fix.transform(*held.transform_args(), groups=held.groups))
    assert after < before / 2, (name, before, after)


def test_faircal_probabilities_are_calibrated_per_group(synthetic):
    cal, held = synthetic
    pg = pair_groups(held.groups, held.i, held.j)
    raw = probability_from_scores(cal.scores, cal.genuine)(held.scores)
    fair = FairCal(n_clusters=2).fit(*cal.fit_args()).transform(*held.transform_args())
    before = calibration_by_group(raw, held.genuine, pg, ["A", "B"])
    after = calibration_by_group(fair, held.genuine, pg, ["A", "B"])
    assert set(after.by_group) == {"A", "B"}
    assert after.difference("ks") < before.difference("ks")
