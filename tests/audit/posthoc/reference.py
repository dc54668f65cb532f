"""Slow, obviously-correct references (explicit loops) for the post-hoc fix tests."""

from __future__ import annotations

import math

import numpy as np


def threshold_loop(scores, target: float) -> float:
    """The documented rule, with Python lists and loops."""
    s = sorted((float(v) for v in scores), reverse=True)
    n = len(s)
    k = math.floor(target * n + 1e-9)
    if k == 0:
        return float(np.nextafter(s[0], math.inf))
    v = s[k - 1]
    count = 0
    for value in s:
        if value >= v:
            count += 1
    return v if count <= k else float(np.nextafter(v, math.inf))


def nearest_loop(x, centroids) -> list[int]:
    out = []
    for row in x:
        best, best_d = 0, math.inf
        for c, centre in enumerate(centroids):
            d = sum((float(a) - float(b)) ** 2 for a, b in zip(row, centre))
            if d < best_d:
                best, best_d = c, d
        out.append(best)
    return out
