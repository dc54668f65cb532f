"""SMOTE on embeddings (METHODS.md §2): synthetic minority embeddings by interpolation.

A synthetic embedding is ``x_i + λ (x_j − x_i)``: a base sample ``i`` of a minority *cell*, one of
its ``k`` nearest neighbours ``j`` **in the same cell**, and ``λ ~ U(0, 1)`` (``ratio_mode=
"uniform"``) or ``λ = 0.5`` (``"midpoint"``). A cell is a class, an attribute value, or a
(class, attribute) pair (``group_by``). Two entry points:

- :class:`EmbeddingSMOTE` (this module) — offline, ``fit_resample(X, y, groups)`` in the style of
  imbalanced-learn: the originals followed by the synthetic rows. Neighbours come from the
  package's one neighbour search (:func:`fairmetric.neighbors.search.search_rows`: exact faiss
  L2 search inside each oversampled cell, re-ranked in float64) for the distinct base samples
  only. With ``group_by="class"`` the per-class output counts equal imbalanced-learn's
  ``SMOTE(sampling_strategy=..., k_neighbors=k)`` for every strategy it shares.
- :func:`~fairmetric.sampling.smote_batch.smote_batch` — in training: synthetic embeddings for
  one mini-batch, computed in torch so gradients flow (re-exported here).

Exactness: no approximate search is used, so every synthetic point lies on a segment from its base
to one of the base's exact ``k`` nearest same-cell neighbours (the base itself excluded **by
index**, so exact duplicates of it remain valid neighbours at distance 0).

**Ties** (neighbours at equal float64 distance, e.g. duplicate rows): the neighbour is drawn
uniformly from the ``k`` nearest *as if the tied rows were in a random order*: a draw that lands
on one of the ``m`` slots of the tie block straddling the ``k``-th neighbour (``t`` members) takes
a uniformly random member of the whole block (one extra draw from the same generator, made only
then), so each member is chosen with probability ``m/(t·k)`` — the tie rule of
:mod:`fairmetric.neighbors.ties`, whatever the order of the rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from fairmetric.neighbors.index import NeighborIndex
from fairmetric.neighbors.search import search_rows
from fairmetric.sampling._smote_checks import RATIO_MODES, _check_choice, _check_int
from fairmetric.sampling.smote_batch import smote_batch

__all__ = ["EmbeddingSMOTE", "smote_batch"]

GROUP_BY = ("class", "attribute", "class_attribute")
STRATEGIES = ("auto", "not majority", "minority", "not minority", "all")
_SHOW = 5


# ----------------------------------------------------------------------------- helpers


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _py(value: Any) -> Any:
    """A numpy scalar as the plain Python value (so cell keys print and compare simply)."""
    return value.item() if isinstance(value, np.generic) else value


def _first(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in rows[:_SHOW])
    return shown + (", ..." if len(rows) > _SHOW else "")


def _as_matrix(X: Any) -> np.ndarray:
    """``X`` as a C-contiguous float32 ``(N, D)`` array, checked for shape and finite values."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        X = X.float().numpy() if X.is_floating_point() else X.numpy()
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(
            f"X must be a 2-D array of shape (n_samples, n_features), got shape {arr.shape}; "
            f"reshape a single embedding with X.reshape(1, -1) or stack the embeddings"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X is empty (shape {arr.shape}); pass at least one row and column")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"X must be a real numeric array, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32's range become inf, reported below
        x32 = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(x32).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"X has {len(bad)} row(s) with NaN or inf values (after casting to float32), first "
            f"at rows [{_first(bad)}]; drop or repair those rows (and their y/groups) before "
            f"resampling"
        )
    return x32


def _as_labels(values: Any, name: str, n: int) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D with one entry per row of X, got shape {arr.shape}"
            + ("; flatten it with .ravel()" if arr.ndim == 2 and 1 in arr.shape else "")
        )
    if len(arr) != n:
        raise ValueError(
            f"{name} has {len(arr)} entries but X has {n} rows; pass one {name} value per row "
            f"of X, in the same order"
        )
    return arr


def _cells(
    y: np.ndarray, groups: np.ndarray | None, group_by: str
) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """Cell code of every row (into the sorted cell keys), the keys, and the cell sizes."""
    if group_by == "class":
        uniq, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        return codes.ravel(), [_py(v) for v in uniq], counts
    assert groups is not None
    if group_by == "attribute":
        uniq, codes, counts = np.unique(groups, return_inverse=True, return_counts=True)
        return codes.ravel(), [_py(v) for v in uniq], counts
    y_uniq, y_codes = np.unique(y, return_inverse=True)
    g_uniq, g_codes = np.unique(groups, return_inverse=True)
    pair = y_codes.ravel().astype(np.int64) * len(g_uniq) + g_codes.ravel()
    uniq, codes, counts = np.unique(pair, return_inverse=True, return_counts=True)
    keys = [(_py(y_uniq[p // len(g_uniq)]), _py(g_uniq[p % len(g_uniq)])) for p in uniq]
    return codes.ravel(), keys, counts


def _cell_word(group_by: str) -> str:
    return {"class": "class", "attribute": "attribute value", "class_attribute": "cell"}[group_by]


def _cells_word(group_by: str) -> str:
    return {"class": "classes", "attribute": "attribute values", "class_attribute": "cells"}[
        group_by
    ]


def _strategy_counts(
    strategy: Any, keys: list[Any], counts: np.ndarray, group_by: str
) -> dict[int, int]:
    """Number of synthetic rows per targeted cell (cell position -> count), imblearn's rules."""
    word, words = _cell_word(group_by), _cells_word(group_by)
    key_hint = {
        "class": "class label",
        "attribute": "attribute value",
        "class_attribute": "(class, attribute) tuple",
    }[group_by]
    if isinstance(strategy, Mapping):
        lookup = {key: pos for pos, key in enumerate(keys)}
        out: dict[int, int] = {}
        for key, target in strategy.items():
            try:
                pos = lookup.get(key)
            except TypeError:  # unhashable
                pos = None
            if pos is None:
                shown = ", ".join(map(repr, keys[:10])) + (", ..." if len(keys) > 10 else "")
                raise ValueError(
                    f"sampling_strategy has key {key!r}, which is not a {word} present in the "
                    f"data; with group_by={group_by!r} keys are the {key_hint} of a cell: "
                    f"{shown}"
                )
            if isinstance(target, bool) or not isinstance(target, Integral):
                raise ValueError(
                    f"sampling_strategy[{key!r}] must be an integer target count, got {target!r}"
                )
            if target < counts[pos]:
                raise ValueError(
                    f"sampling_strategy[{key!r}] = {target} is below the {word}'s current size "
                    f"{int(counts[pos])}; over-sampling cannot remove rows: ask for at least "
                    f"{int(counts[pos])} (or leave the {word} out of the dict)"
                )
            out[pos] = int(target) - int(counts[pos])
        return out
    if isinstance(strategy, str):
        hint = (
            "; 'majority' is an under-sampling target and cannot be used to over-sample"
            if strategy == "majority"
            else "; or a float in (0, 1] (two cells) or a dict {cell: target count}"
        )
        _check_choice(strategy, "sampling_strategy", STRATEGIES, hint)
        if len(keys) < 2:
            raise ValueError(
                f"sampling_strategy={strategy!r} balances {words}, but the data has only one "
                f"{word} ({keys[0]!r}); check y/groups/group_by, or pass a dict "
                f"{{{keys[0]!r}: target_count}} to grow it"
            )
        majority = int(np.argmax(counts))  # first of the largest, in sorted key order
        minority = int(np.argmin(counts))
        n_major = int(counts[majority])
        if strategy in ("auto", "not majority"):
            chosen = [p for p in range(len(keys)) if p != majority]
        elif strategy == "minority":
            chosen = [minority]
        elif strategy == "not minority":
            chosen = [p for p in range(len(keys)) if p != minority]
        else:  # "all"
            chosen = list(range(len(keys)))
        return {p: n_major - int(counts[p]) for p in chosen}
    if isinstance(strategy, Real) and not isinstance(strategy, bool):
        ratio = float(strategy)
        if not (0 < ratio <= 1):
            raise ValueError(
                f"sampling_strategy as a float must be in (0, 1] (the minority's target as a "
                f"fraction of the majority's size), got {strategy!r}"
            )
        if len(keys) != 2:
            raise ValueError(
                f"sampling_strategy as a float needs exactly two {words} (binary case), the data "
                f"has {len(keys)}; pass a dict {{cell: target count}} instead, e.g. "
                f"int({ratio} * largest) for each cell to grow"
            )
        majority = int(np.argmax(counts))
        minority = 1 - majority
        # imbalanced-learn's exact expression (truncation of the float product)
        n_new = int(int(counts[majority]) * ratio - int(counts[minority]))
        if n_new < 0:
            raise ValueError(
                f"sampling_strategy={ratio} asks for {int(counts[minority]) + n_new} rows of "
                f"{word} {keys[minority]!r}, below its current size {int(counts[minority])}; "
                f"over-sampling cannot remove rows: use a ratio of at least "
                f"{int(counts[minority]) / int(counts[majority]):.4g}"
            )
        return {minority: n_new}
    raise ValueError(
        f"sampling_strategy must be one of {', '.join(map(repr, STRATEGIES))}, a float in (0, 1] "
        f"or a dict {{cell: target count}}; got {strategy!r}"
    )


# ----------------------------------------------------------------------------- offline


class EmbeddingSMOTE:
    """SMOTE for embeddings, per class, attribute value or (class, attribute) cell.

    Args:
        k_neighbors: neighbours per base sample, searched only inside the base's cell (``>= 1``).
            Every cell that is oversampled needs at least ``k_neighbors + 1`` members.
        sampling_strategy: imbalanced-learn's conventions, applied to cells:

            - ``"auto"`` / ``"not majority"``: every cell but the largest is brought up to the
              largest cell's size; ``"minority"``: only the smallest cell; ``"not minority"``:
              all but the smallest; ``"all"``: every cell (ties: the first cell in sorted key
              order counts as the largest / smallest, as in imbalanced-learn).
            - a float ``r`` in ``(0, 1]`` with exactly two cells: the smaller is grown to
              ``int(r × largest)`` rows (``ValueError`` if that is below its current size).
            - a dict ``{cell_key: target_count}``: the listed cells grow to the given sizes (a
              target below the current size is a ``ValueError``); cells not listed are left
              as they are. Keys are class labels (``group_by="class"``), attribute values
              (``"attribute"``) or ``(class, attribute)`` tuples (``"class_attribute"``).
        ratio_mode: ``"uniform"`` (``λ ~ U[0, 1)``) or ``"midpoint"`` (``λ = 0.5``).
        group_by: ``"class"`` (cell = ``y``), ``"attribute"`` (cell = ``groups``) or
            ``"class_attribute"`` (cell = the ``(y, groups)`` pair); the last two need ``groups``.
        random_state: seed of ``numpy.random.default_rng`` (same seed, same output).
        n_threads: faiss OpenMP threads for the neighbour search (default: all available cores).

    Attributes set by :meth:`fit_resample` (synthetic rows in output order, after the originals):
        sample_indices_: indices of the original rows kept (all of them, ``arange(N)``).
        base_indices_: row of ``X`` each synthetic row was grown from.
        neighbor_indices_: row of ``X`` it was interpolated towards (one of the base's ``k``
            nearest same-cell neighbours).
        lambdas_: the float32 ``λ`` of each synthetic row.
        sampling_strategy_: ``{cell_key: number of synthetic rows}`` for every targeted cell.
        n_neighbor_queries_: number of neighbour searches run (the distinct base samples).
        timings_: seconds spent in ``"validate"``, ``"search"`` and ``"interpolate"``.

    Synthetic rows take the label and group of their base. Output ``X`` is float32 (float64 input
    is accepted; everything is computed in float32). Synthetic rows come cell by cell in sorted
    key order, as imbalanced-learn orders classes.
    """

    def __init__(
        self,
        k_neighbors: int = 5,
        sampling_strategy: Any = "auto",
        ratio_mode: str = "uniform",
        group_by: str = "class",
        random_state: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.k_neighbors = k_neighbors
        self.sampling_strategy = sampling_strategy
        self.ratio_mode = ratio_mode
        self.group_by = group_by
        self.random_state = random_state
        self.n_threads = n_threads
        self._check_params()

    def _check_params(self) -> None:
        _check_int(self.k_neighbors, "k_neighbors", 1, " (neighbours searched per base sample)")
        _check_choice(self.ratio_mode, "ratio_mode", RATIO_MODES)
        _check_choice(self.group_by, "group_by", GROUP_BY)
        if self.n_threads is not None:
            _check_int(self.n_threads, "n_threads", 1, " (or None for all cores)")

    def __repr__(self) -> str:
        return (
            f"EmbeddingSMOTE(k_neighbors={self.k_neighbors}, "
            f"sampling_strategy={self.sampling_strategy!r}, ratio_mode={self.ratio_mode!r}, "
            f"group_by={self.group_by!r}, random_state={self.random_state!r})"
        )

    def fit_resample(
        self, X: Any, y: Any, groups: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Oversample the cells chosen by ``sampling_strategy``.

        Args:
            X: ``(N, D)`` embeddings (numpy array or tensor), finite.
            y: ``(N,)`` class labels.
            groups: ``(N,)`` sensitive-attribute values; required for ``group_by="attribute"``
                and ``"class_attribute"``, optional (carried along) for ``"class"``.

        Returns:
            ``(X_res, y_res, groups_res)``: the ``N`` original rows unchanged (as float32)
            followed by the synthetic rows; ``groups_res`` is ``None`` when ``groups`` was.
        """
        t0 = time.perf_counter()
        self._check_params()
        k = int(self.k_neighbors)
        x32 = _as_matrix(X)
        n, d = x32.shape
        y_arr = _as_labels(y, "y", n)
        g_arr = None if groups is None else _as_labels(groups, "groups", n)
        if g_arr is None and self.group_by != "class":
            raise ValueError(
                f"group_by={self.group_by!r} needs the sensitive attribute: pass "
                f"fit_resample(X, y, groups=...) with one value per row, or use group_by='class'"
            )
        codes, keys, counts = _cells(y_arr, g_arr, self.group_by)
        todo = _strategy_counts(self.sampling_strategy, keys, counts, self.group_by)
        self.sampling_strategy_ = {keys[p]: todo[p] for p in sorted(todo)}

        word, words = _cell_word(self.group_by), _cells_word(self.group_by)
        small = [p for p in sorted(todo) if todo[p] > 0 and counts[p] < k + 1]
        if small:
            listed = "; ".join(
                f"{word} {keys[p]!r} has {int(counts[p])} member(s) and needs {todo[p]} "
                f"synthetic row(s)"
                for p in small[:_SHOW]
            ) + ("; ..." if len(small) > _SHOW else "")
            single = any(counts[p] == 1 for p in small)
            multi = [int(counts[p]) for p in small if counts[p] > 1]
            fix = f"lower k_neighbors to {min(multi) - 1} or less, or " if multi else ""
            raise ValueError(
                f"k_neighbors={k} needs at least {k + 1} members (the base plus {k} neighbours) "
                f"in every {word} that is oversampled, but {listed}. "
                + (
                    f"A {word} with a single member cannot be interpolated at all. "
                    if single
                    else ""
                )
                + f"To fix: {fix}leave such {words} out with a dict sampling_strategy "
                f"{{key: target_count}} that lists only the {words} to grow"
            )

        total = int(sum(todo.values()))
        x_res = np.empty((n + total, d), dtype=np.float32)
        x_res[:n] = x32
        base_all = np.empty(total, dtype=np.int64)
        nbr_all = np.empty(total, dtype=np.int64)
        lam_all = np.empty(total, dtype=np.float32)
        rng = np.random.default_rng(self.random_state)
        order = np.argsort(codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)])
        threads = self.n_threads if self.n_threads is not None else _default_threads()
        t_search = t_interp = 0.0
        queries = 0
        t1 = time.perf_counter()
        pos_out = 0
        for p in sorted(todo):
            m = todo[p]
            if m == 0:
                continue
            members = order[starts[p] : starts[p + 1]]  # rows of X in this cell, ascending
            bases = rng.integers(0, len(members), size=m)
            cols = rng.integers(0, k, size=m)
            if self.ratio_mode == "uniform":
                lam = rng.random(m, dtype=np.float32)
            else:
                lam = np.full(m, 0.5, dtype=np.float32)
            ts = time.perf_counter()
            uniq, inv = np.unique(bases, return_inverse=True)
            inv = inv.ravel()
            nn = self._search(x32[members], uniq, k, threads)  # local ids, with tie blocks
            queries += len(uniq)
            ti = time.perf_counter()
            base_g = members[bases]
            pick = cols.copy()
            # a draw on a slot of the tie block straddling the k-th neighbour takes a uniform
            # member of the whole block (the tie rule; only when such a block exists)
            s_blk, e_blk = nn.start[:, k - 1], nn.end[:, k - 1]
            straddle = (e_blk[inv] > k) & (cols >= s_blk[inv])
            if straddle.any():
                size = (e_blk - s_blk)[inv][straddle]
                pick[straddle] = s_blk[inv][straddle] + rng.integers(0, size)
            nbr_g = members[nn.ids[inv, pick]]
            out = x_res[n + pos_out : n + pos_out + m]
            np.take(x32, nbr_g, axis=0, out=out)
            xb = x32[base_g]
            out -= xb
            out *= lam[:, None]
            out += xb
            base_all[pos_out : pos_out + m] = base_g
            nbr_all[pos_out : pos_out + m] = nbr_g
            lam_all[pos_out : pos_out + m] = lam
            pos_out += m
            t_search += ti - ts
            t_interp += time.perf_counter() - ti

        self.sample_indices_ = np.arange(n, dtype=np.int64)
        self.base_indices_ = base_all
        self.neighbor_indices_ = nbr_all
        self.lambdas_ = lam_all
        self.n_neighbor_queries_ = queries
        y_res = np.concatenate([y_arr, y_arr[base_all]])
        g_res = None if g_arr is None else np.concatenate([g_arr, g_arr[base_all]])
        self.timings_ = {
            "validate": t1 - t0,
            "search": t_search,
            "interpolate": t_interp + (time.perf_counter() - t1 - t_search - t_interp),
        }
        return x_res, y_res, g_res

    @staticmethod
    def _search(xc: np.ndarray, rows: np.ndarray, k: int, threads: int) -> Any:
        """Exact ``k`` nearest neighbours (self excluded by index) of the cell rows ``rows``,
        as :class:`~fairmetric.neighbors.search.Neighbours` with local ids into ``xc``."""
        index = NeighborIndex(xc, metric="l2", index="exact", threads=threads, use_gpu=False)
        return search_rows(index, rows, k)
