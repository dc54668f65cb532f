"""Post-hoc score fixes for face-verification fairness, on plain arrays (docs/posthoc.md).

Fitted on a calibration split, applied to pairs of any split; each maps pair scores to new scores
(FairCal: to probabilities of a genuine pair):

- :class:`PerGroupThreshold` (``per_group_threshold``) and :class:`ScoreNormalisation`
  (``score_normalisation``) need the demographic attribute;
- :class:`FairScoreNormalisation` (``fsn``, Terhörst et al. 2020) and :class:`FairCal`
  (``faircal``, Salvador et al. 2022) replace it with k-means clusters of the embeddings.

:func:`threshold_at_fmr` is the threshold convention shared with the verification audit;
:func:`save_fix` / :func:`load_fix` store fitted fixes as JSON; :func:`calibration_by_group` and
:func:`probability_from_scores` judge calibration per group.
"""

from fairmetric.audit.posthoc._checks import pair_groups
from fairmetric.audit.posthoc._clusters import assign_clusters
from fairmetric.audit.posthoc.base import PosthocFix
from fairmetric.audit.posthoc.beta import BetaCalibrator
from fairmetric.audit.posthoc.calibration import (
    CalibrationReport,
    brier_score,
    calibration_by_group,
    ece,
    ks_calibration,
    probability_from_scores,
)
from fairmetric.audit.posthoc.faircal import FairCal
from fairmetric.audit.posthoc.fsn import FairScoreNormalisation
from fairmetric.audit.posthoc.per_group_threshold import PerGroupThreshold
from fairmetric.audit.posthoc.registry import POSTHOC_FIXES, create_fix
from fairmetric.audit.posthoc.saving import load_fix, save_fix
from fairmetric.audit.posthoc.score_normalisation import ScoreNormalisation
from fairmetric.audit.posthoc.threshold import check_target_fmr, threshold_at_fmr

__all__ = [
    "POSTHOC_FIXES",
    "BetaCalibrator",
    "CalibrationReport",
    "FairCal",
    "FairScoreNormalisation",
    "PerGroupThreshold",
    "PosthocFix",
    "ScoreNormalisation",
    "assign_clusters",
    "brier_score",
    "calibration_by_group",
    "check_target_fmr",
    "create_fix",
    "ece",
    "ks_calibration",
    "load_fix",
    "pair_groups",
    "probability_from_scores",
    "save_fix",
    "threshold_at_fmr",
]
