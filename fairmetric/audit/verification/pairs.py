"""Verification pairs: genuine (same identity) and impostor (different identities) pairs.

Three seeded sets, each *all* pairs of its kind when they fit the budget, otherwise a uniform
sample with replacement (so every rate estimated from it is unbiased, and the report states the
sample size):

- ``genuine``: pairs of two samples of one identity; sampled by first drawing an identity with
  probability proportional to its number of pairs, then two of its samples;
- ``impostor``: pairs of samples of two identities, over the whole set — the global threshold
  ``τ`` is set on these (FRVT: one threshold for everyone);
- ``same_group[attribute][group]``: impostor pairs with both samples in one group, the
  demographic-effects case (FRVT Part 3 pairs impostors by sex, age, country).

Pairs are ``(i, j)`` row indices with ``i != j``; a pair's *owner* is the identity of ``i``
(the bootstrap resamples identities: a person's pairs are not independent).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PairSample", "Pairs", "sample_pairs"]


@dataclass
class PairSample:
    """Index arrays of one set of pairs and whether the set holds all pairs of its kind."""

    i: np.ndarray
    j: np.ndarray
    exhaustive: bool
    available: int  # pairs of this kind in the data

    def __len__(self) -> int:
        return len(self.i)


@dataclass
class Pairs:
    """All pair sets of one verification audit."""

    genuine: PairSample
    impostor: PairSample
    same_group: dict[str, dict[int, PairSample]] = field(default_factory=dict)


def _empty(available: int = 0) -> PairSample:
    z = np.zeros(0, dtype=np.int64)
    return PairSample(z, z.copy(), True, available)


def _all_pairs(members: np.ndarray, labels: np.ndarray, same: bool) -> PairSample:
    """Every pair of its kind, in ``np.triu_indices`` order, built in blocks of rows (the pairs
    of the other kind, which may be far more, are never held all at once)."""
    m = len(members)
    lab = labels[members]
    parts_i, parts_j = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    step = max(1, (1 << 22) // max(m, 1))
    for s in range(0, m, step):
        rows = np.arange(s, min(s + step, m))
        per = m - 1 - rows  # partners after each row
        a = np.repeat(rows, per)
        first = np.repeat(np.cumsum(per) - per, per)  # where each row's run starts
        b = a + 1 + (np.arange(len(a)) - first)
        keep = (lab[a] == lab[b]) if same else (lab[a] != lab[b])
        parts_i.append(members[a[keep]])
        parts_j.append(members[b[keep]])
    i, j = np.concatenate(parts_i), np.concatenate(parts_j)
    return PairSample(i, j, True, len(i))


def _impostor_sample(
    members: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` uniform impostor pairs (with replacement) among ``members``, by rejection."""
    out_i, out_j, got = [], [], 0
    m = len(members)
    for _ in range(1000):
        need = size - got
        if need <= 0:
            break
        draw = int(need * 1.2) + 16
        a = rng.integers(0, m, size=draw)
        b = rng.integers(0, m - 1, size=draw)
        b = b + (b >= a)  # uniform over the other members
        i, j = members[a], members[b]
        keep = labels[i] != labels[j]
        i, j = i[keep][:need], j[keep][:need]
        out_i.append(i)
        out_j.append(j)
        got += len(i)
    if got < size:  # nearly every pair is genuine: the caller checked that impostors exist
        raise ValueError(
            f"could not draw {size} impostor pairs: nearly every pair of these {m} samples is "
            "genuine (one identity dominates); lower the impostor budget below the "
            "impostor pairs available, so that all of them are taken"
        )
    return np.concatenate(out_i), np.concatenate(out_j)


def _impostors(
    members: np.ndarray, labels: np.ndarray, budget: int, rng: np.random.Generator
) -> PairSample:
    m = len(members)
    total = m * (m - 1) // 2
    if total == 0:
        return _empty()
    counts = np.unique(labels[members], return_counts=True)[1]
    genuine = int((counts * (counts - 1) // 2).sum())
    available = total - genuine
    if available == 0:
        return _empty()
    if available <= budget:  # all impostor pairs fit (even when the genuine pairs would not)
        return _all_pairs(members, labels, same=False)
    i, j = _impostor_sample(members, labels, budget, rng)
    return PairSample(i, j, False, available)


def _genuine(labels: np.ndarray, budget: int, rng: np.random.Generator) -> PairSample:
    order = np.argsort(labels, kind="stable")
    ids, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    per = counts * (counts - 1) // 2
    available = int(per.sum())
    if available == 0:
        return _empty()
    if available <= budget:
        i_parts, j_parts = [], []
        for s, c in zip(starts, counts):
            if c < 2:
                continue
            a, b = np.triu_indices(int(c), 1)
            i_parts.append(order[s + a])
            j_parts.append(order[s + b])
        return PairSample(np.concatenate(i_parts), np.concatenate(j_parts), True, available)
    pick = rng.choice(len(ids), size=budget, p=per / per.sum())
    c = counts[pick]
    a = (rng.random(budget) * c).astype(np.int64)
    b = (rng.random(budget) * (c - 1)).astype(np.int64)
    b = b + (b >= a)
    return PairSample(order[starts[pick] + a], order[starts[pick] + b], False, available)


def sample_pairs(
    labels: np.ndarray,
    groupings: dict[str, np.ndarray],
    *,
    genuine: int,
    impostor: int,
    same_group: int,
    seed: int = 0,
) -> Pairs:
    """Draw the pair sets of a verification audit (see the module docstring).

    Args:
        labels: ``(N,)`` identity codes.
        groupings: ``{attribute: (N,) group codes}``.
        genuine: most genuine pairs (all when there are no more).
        impostor: most impostor pairs over the whole set.
        same_group: most same-group impostor pairs per group of each attribute.
        seed: seeds every draw.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    everyone = np.arange(len(labels), dtype=np.int64)
    pairs = Pairs(
        genuine=_genuine(labels, genuine, rng),
        impostor=_impostors(everyone, labels, impostor, rng),
    )
    for name, codes in groupings.items():
        codes = np.asarray(codes, dtype=np.int64)
        pairs.same_group[name] = {
            int(g): _impostors(np.flatnonzero(codes == g), labels, same_group, rng)
            for g in np.unique(codes)
        }
    return pairs
