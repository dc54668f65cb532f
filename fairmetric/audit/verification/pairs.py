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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fairmetric.data.csv_table import CsvTable

__all__ = ["PairSample", "Pairs", "read_pair_file", "sample_pairs"]


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


_SAME = {"1": True, "true": True, "same": True, "0": False, "false": False, "different": False}
_HEADERS = "'a,b[,same]' (row indices) or 'id_a,id_b[,same]' (sample ids)"
_SHOW_IDS = 5


def read_pair_file(
    path: str | Path,
    labels: np.ndarray,
    groupings: dict[str, np.ndarray],
    *,
    ids: np.ndarray | None = None,
) -> Pairs:
    """The pairs of a published protocol (LFW / BFW / RFW-style pair lists), audited as given.

    The CSV names each pair's two samples under one of two headers:

    - ``a,b[,same]``: 0-based row indices of the audited set;
    - ``id_a,id_b[,same]``: sample ids of the audited set (``ids``, see
      :attr:`~fairmetric.embeddings.EmbeddingSet.ids`; for an embedded image folder, the image
      paths relative to the folder, e.g. ``Aaron_Peirsol/Aaron_Peirsol_0001.jpg``), looked up
      as exact strings (``007`` and ``7`` are two ids), so the file does not depend on the row
      order or on rows dropped before the audit.

    The optional ``same`` column says whether the pair is genuine (``1``/``0``,
    ``true``/``false``, ``same``/``different``); it must agree with the labels (identities);
    without it, the labels decide. Same-group impostor sets are the listed impostor pairs with
    both samples in one group.

    Args:
        path: the CSV file.
        labels: ``(N,)`` identity codes of the audited set.
        groupings: ``{attribute: (N,) group codes}``.
        ids: the ``N`` sample ids of the audited set, needed for the ``id_a,id_b`` form.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a bad header; an index that is not an integer or outside the set; an id
            form for a set without ids, or an id the set lacks (named with its line, and how
            many ids are unknown); a pair of a sample with itself; a ``same`` value that is
            unknown or contradicts the labels; or no genuine or no impostor pair (the message
            names the file, and the line where one line is at fault).
    """
    from fairmetric.data.csv_table import read_csv_table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair file not found: {path}")
    table = read_csv_table(path, required=(), expected=_HEADERS, prefix="pairs: ")
    by_id = table.header[:2] == ["id_a", "id_b"]
    if not by_id and table.header[:2] != ["a", "b"]:
        raise ValueError(
            f"pairs: {path} line 1: expected a header {_HEADERS}, got {','.join(table.header)!r}"
        )
    has_same = len(table.header) > 2 and table.header[2] == "same"
    columns = ",".join(table.header[: 3 if has_same else 2])
    labels = np.asarray(labels, dtype=np.int64)
    same_list = []
    for row, line in zip(table.rows, table.lines):
        if len(row) < (3 if has_same else 2) or (by_id and not (row[0] and row[1])):
            raise ValueError(f"pairs: {path} line {line}: expected {columns}, got {row}")
        if has_same:
            same = _SAME.get(row[2].lower())
            if same is None:
                raise ValueError(
                    f"pairs: {path} line {line}: same must be 1/0, true/false or same/different, "
                    f"got {row[2]!r}"
                )
            same_list.append(same)
    if by_id:
        i, j = _rows_by_id(path, table, ids)
    else:
        i, j = _rows_by_index(path, table, len(labels))

    def shown(k: int) -> tuple[str, str]:
        """How pair ``k`` names one of its samples, and both, in messages."""
        if by_id:
            a, b = table.rows[k][:2]
            return f"id {a!r}", f"ids {a!r} and {b!r}"
        return f"row {i[k]}", f"rows {i[k]} and {j[k]}"

    genuine = labels[i] == labels[j]
    itself = np.flatnonzero(i == j)
    if itself.size:
        k = int(itself[0])
        raise ValueError(
            f"pairs: {path} line {table.lines[k]}: a pair of {shown(k)[0]} with itself"
        )
    if has_same:
        wrong = np.flatnonzero(np.asarray(same_list, dtype=bool) != genuine)
        if wrong.size:
            k = int(wrong[0])
            raise ValueError(
                f"pairs: {path} line {table.lines[k]}: the file says {shown(k)[1]} are "
                f"{'the same' if same_list[k] else 'different'} identities, the labels say "
                f"{'the same' if genuine[k] else 'different'}; fix the file or the labels"
            )
    if not genuine.any() or genuine.all():
        raise ValueError(
            f"pairs: {path} lists {int(genuine.sum())} genuine and {int((~genuine).sum())} "
            "impostor pairs; a verification audit needs both"
        )
    gi, gj, ii, ij = i[genuine], j[genuine], i[~genuine], j[~genuine]
    pairs = Pairs(
        genuine=PairSample(gi, gj, True, len(gi)),
        impostor=PairSample(ii, ij, True, len(ii)),
    )
    for name, codes in groupings.items():
        codes = np.asarray(codes, dtype=np.int64)
        pairs.same_group[name] = {}
        for g in np.unique(codes):
            both = (codes[ii] == g) & (codes[ij] == g)
            pairs.same_group[name][int(g)] = PairSample(ii[both], ij[both], True, int(both.sum()))
    return pairs


def _rows_by_index(path: Path, table: CsvTable, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``a,b`` columns as row indices, each checked to be an integer in ``0..n-1``."""
    rows = np.zeros((len(table.rows), 2), dtype=np.int64)
    for k, (row, line) in enumerate(zip(table.rows, table.lines)):
        try:
            a, b = int(row[0]), int(row[1])
        except ValueError:
            raise ValueError(
                f"pairs: {path} line {line}: a and b must be 0-based row indices (integers), got "
                f"{row[:2]}"
            ) from None
        if not (0 <= a < n and 0 <= b < n):
            raise ValueError(
                f"pairs: {path} line {line}: row index out of range 0..{n - 1}: {a}, {b}"
            )
        rows[k] = a, b
    return rows[:, 0], rows[:, 1]


def _rows_by_id(
    path: Path, table: CsvTable, ids: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the ``id_a,id_b`` columns; an id the set lacks is named with its line."""
    from fairmetric.embeddings import find_ids

    if ids is None:
        raise ValueError(
            f"pairs: {path} names samples by id (header 'id_a,id_b'), but the audited set has "
            "no ids: give them when building it (EmbeddingSet(..., ids=[...])), or embed an "
            "image folder, whose image paths relative to the folder become the ids; or list "
            "row indices under the header 'a,b[,same]'"
        )
    names = [v for row in table.rows for v in row[:2]]  # a, b of line 1, a, b of line 2, ...
    rows = find_ids(ids, names)
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        first = names[missing[0]]
        unknown = list(dict.fromkeys(names[k] for k in missing))
        more = ""
        if len(unknown) > 1:
            listed = ", ".join(repr(s) for s in unknown[:_SHOW_IDS])
            more = (
                f"; {len(unknown)} ids of the file are unknown: {listed}"
                f"{', ...' if len(unknown) > _SHOW_IDS else ''}"
            )
        raise ValueError(
            f"pairs: {path} line {table.lines[missing[0] // 2]}: unknown id {first!r}, no "
            f"sample of the audited set has it{more} (the set's ids look like "
            f"{str(np.asarray(ids)[0])!r})"
        )
    rows = rows.reshape(-1, 2)
    return rows[:, 0], rows[:, 1]


def hard_impostor_pairs(
    x: np.ndarray, labels: np.ndarray, members: np.ndarray, k: int, metric: str
) -> PairSample:
    """The RFW protocol's hard impostors inside one group: each member paired with its ``k``
    most similar members of *other* identities (exact search ranked in float64; candidates tied
    with the ``k``-th are all kept, so the set does not depend on the CPU or the row order;
    pairs listed once). Such pairs are where a group's false matches concentrate."""
    from fairmetric.neighbors.index import NeighborIndex
    from fairmetric.neighbors.search import iter_neighbours

    labels = np.asarray(labels, dtype=np.int64)
    members = np.asarray(members, dtype=np.int64)
    sub = labels[members]
    if len(np.unique(sub)) < 2:
        return _empty()
    largest = int(np.bincount(sub).max())
    depth = min(len(members) - 1, k + largest - 1)
    index = NeighborIndex(np.asarray(x)[members], metric=metric, index="exact", use_gpu=False)
    nearer_first = -1.0 if metric == "l2" else 1.0  # scores: squared distance, or similarity
    a_parts, b_parts = [], []
    for nb in iter_neighbours(index, depth):
        for q, row in enumerate(np.asarray(nb.rows)):
            ids = nb.ids[q]
            keep = (ids >= 0) & (sub[np.where(ids >= 0, ids, 0)] != sub[row])
            cand, score = ids[keep], nb.scores[q][keep] * nearer_first
            if len(cand) > k:  # the k best, and every candidate tied with the k-th
                cand = cand[score >= np.sort(score)[::-1][k - 1]]
            a_parts.append(np.full(len(cand), row))
            b_parts.append(cand)
    rows = np.concatenate(a_parts) if a_parts else np.zeros(0, np.int64)
    cols = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int64)
    a, b = np.minimum(rows, cols), np.maximum(rows, cols)
    key = np.unique(a * len(members) + b)
    a, b = key // len(members), key % len(members)
    return PairSample(members[a], members[b], True, len(key))
