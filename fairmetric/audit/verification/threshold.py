"""The global threshold at a target false match rate (the rule and its one implementation:
:mod:`fairmetric.audit.posthoc.threshold`).

Convention (METHODS.md §6): a pair *matches* when its score ``s >= τ``. For ``n`` impostor scores
and a target ``FMR*``, let ``k`` be the largest count with ``k / n <= FMR*``. ``τ`` is the
``k``-th largest score ``v`` when at most ``k`` scores reach it, otherwise the next float above
``v`` (ties at ``v`` all fall below); with ``k = 0``, the next float above the largest score. The
realised FMR never exceeds the target, and with ties it is what it is, reported next to it.
"""

from __future__ import annotations

from fairmetric.audit.posthoc.threshold import check_target_fmr, threshold_at_fmr

__all__ = ["threshold_at_fmr"]


def _check_target(target_fmr: float) -> float:
    return check_target_fmr(target_fmr, key="target FMR")
