"""Slow, obviously correct references for neighbours with ties (tiny data only).

Scores are float64 from explicit per-pair loops over the float32 rows; tie blocks are runs of
exactly equal scores; tie-averaged metrics are the plain metric averaged over **every** order of
the tied rows (explicit enumeration with itertools), never a closed form.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def pair_score(x: np.ndarray, i: int, j: int, metric: str) -> float:
    """Float64 score of rows ``i`` and ``j`` (squared distance or similarity), by loops."""
    a = [float(v) for v in np.asarray(x[i], dtype=np.float32)]
    b = [float(v) for v in np.asarray(x[j], dtype=np.float32)]
    if metric == "l2":
        return math.fsum((p - q) ** 2 for p, q in zip(a, b))
    dot = math.fsum(p * q for p, q in zip(a, b))
    if metric == "cosine":
        # the documented float64 formula, dot / (‖a‖·‖b‖) (fairmetric/neighbors/rerank.py):
        # rounding decides whether a row and a scaled copy of it tie, so round the same way
        return dot / (
            math.sqrt(math.fsum(p * p for p in a)) * math.sqrt(math.fsum(q * q for q in b))
        )
    return dot


def ranked_blocks(x: np.ndarray, i: int, metric: str) -> list[list[int]]:
    """The other rows of query ``i`` as tie blocks, nearest block first."""
    key = {}
    for j in range(len(x)):
        if j != i:
            s = pair_score(x, i, j, metric)
            key[j] = s if metric == "l2" else -s
    blocks: dict[float, list[int]] = {}
    for j, v in key.items():
        blocks.setdefault(v, []).append(j)
    return [blocks[v] for v in sorted(blocks)]


def orders(blocks: list[list[int]], depth: int) -> list[list[int]]:
    """Every ranking obtained by ordering the blocks that reach into the first ``depth``
    positions in every possible way (later blocks in any one fixed order)."""
    used, pos = [], 0
    for b in blocks:
        if pos >= depth:
            break
        used.append(b)
        pos += len(b)
    rest = [j for b in blocks[len(used) :] for j in b]
    out = []
    for perm in itertools.product(*(itertools.permutations(b) for b in used)):
        out.append([j for p in perm for j in p] + rest)
    return out


def mean_over_orders(x, i, metric, depth, fn) -> float:
    """``fn(ranking)`` averaged over every order of the tie blocks in the first ``depth``."""
    values = [fn(r) for r in orders(ranked_blocks(x, i, metric), depth)]
    return sum(values) / len(values)


def recall_credit(x, labels, i, k, metric) -> float:
    return mean_over_orders(
        x, i, metric, k, lambda r: float(any(labels[j] == labels[i] for j in r[:k]))
    )


def average_precision(ranking, labels, i, cap) -> float:
    r = sum(1 for j in range(len(labels)) if j != i and labels[j] == labels[i])
    if r == 0:
        return 0.0
    hits, total = 0, 0.0
    for rank, j in enumerate(ranking[: min(r, cap)], start=1):
        if labels[j] == labels[i]:
            hits += 1
            total += hits / rank
    return total / r


def ap_credit(x, labels, i, cap, metric) -> float:
    return mean_over_orders(x, i, metric, cap, lambda r: average_precision(r, labels, i, cap))


def expected_counts(x, i, metric, depth, fns) -> list[float]:
    """Averages over orders of several counts over the first ``depth`` neighbours."""
    rankings = orders(ranked_blocks(x, i, metric), depth)
    return [sum(f(r[:depth]) for r in rankings) / len(rankings) for f in fns]


def homophily(x, labels, codes, i, hk, metric) -> float | None:
    """Ratio of expected counts: different-class neighbours sharing the query's value over all
    different-class neighbours, over the value's base rate (None when no different class)."""
    shared, other = expected_counts(
        x,
        i,
        metric,
        hk,
        [
            lambda r: sum(1 for j in r if labels[j] != labels[i] and codes[j] == codes[i]),
            lambda r: sum(1 for j in r if labels[j] != labels[i]),
        ],
    )
    if other == 0:
        return None
    base = sum(1 for c in codes if c == codes[i]) / len(codes)
    return shared / other / base


def vote(x, codes, i, lk, metric, *, nearest_first: bool) -> int:
    """Winner of the expected vote counts over all tie orders; a vote tie goes to the value
    whose nearest voter's tie block comes first (``nearest_first``), then the smallest code."""
    blocks = ranked_blocks(x, i, metric)
    values = sorted({int(c) for c in codes})
    counts = expected_counts(
        x, i, metric, lk, [lambda r, v=v: sum(1 for j in r if codes[j] == v) for v in values]
    )
    first = {}
    pos = 0
    for b in blocks:
        if pos >= lk:
            break
        for j in b:
            first.setdefault(int(codes[j]), pos)
        pos += len(b)
    best = max(counts)
    tied = [v for v, c in zip(values, counts) if abs(c - best) < 1e-9]
    if nearest_first:
        near = min(first.get(v, lk) for v in tied)
        tied = [v for v in tied if first.get(v, lk) == near]
    return min(tied)
