"""The registry of post-hoc fixes (name → class) and the factory that builds one."""

from __future__ import annotations

from typing import Any

from fairmetric.audit.posthoc.base import PosthocFix
from fairmetric.audit.posthoc.faircal import FairCal
from fairmetric.audit.posthoc.fsn import FairScoreNormalisation
from fairmetric.audit.posthoc.per_group_threshold import PerGroupThreshold
from fairmetric.audit.posthoc.score_normalisation import ScoreNormalisation

__all__ = ["POSTHOC_FIXES", "create_fix"]

#: every post-hoc fix by name
POSTHOC_FIXES: dict[str, type[PosthocFix]] = {
    cls.name: cls
    for cls in (PerGroupThreshold, ScoreNormalisation, FairScoreNormalisation, FairCal)
}


def create_fix(fix: str | PosthocFix, **kwargs: Any) -> PosthocFix:
    """A fix from its registry name and constructor arguments, or a ready fix returned as is."""
    if isinstance(fix, PosthocFix):
        if kwargs:
            raise ValueError("create_fix: give keyword arguments only with a fix name")
        return fix
    if fix not in POSTHOC_FIXES:
        raise ValueError(f"unknown post-hoc fix {fix!r}; choose one of {sorted(POSTHOC_FIXES)}")
    return POSTHOC_FIXES[fix](**kwargs)
