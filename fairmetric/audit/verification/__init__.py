"""Face-verification fairness audit (NIST FRVT Part 3, ISO/IEC 19795-10; METHODS.md §6): pairs,
the global threshold at a target FMR, per-group FMR / FNMR, disparity summaries."""

from fairmetric.audit.verification.pairs import Pairs, PairSample, sample_pairs
from fairmetric.audit.verification.scores import pair_scores
from fairmetric.audit.verification.summaries import (
    PAIR_SUMMARIES,
    RATE_SUMMARIES,
    clopper_pearson_upper,
    fdr,
    garbe,
    gini,
    inequity_rate,
    max_geomean,
    max_over_min,
)
from fairmetric.audit.verification.threshold import threshold_at_fmr
from fairmetric.audit.verification.verify import (
    DEFAULT_FMRS,
    VerificationMetric,
    add_verification,
    fmr_label,
    verification_audit,
)

__all__ = [
    "DEFAULT_FMRS",
    "PAIR_SUMMARIES",
    "RATE_SUMMARIES",
    "PairSample",
    "Pairs",
    "VerificationMetric",
    "add_verification",
    "clopper_pearson_upper",
    "fdr",
    "fmr_label",
    "garbe",
    "gini",
    "inequity_rate",
    "max_geomean",
    "max_over_min",
    "pair_scores",
    "sample_pairs",
    "threshold_at_fmr",
    "verification_audit",
]
