"""Argument checks and small array helpers of the neighbour search (messages name the argument
and the fix)."""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np
import torch

# rows per block when validating / normalising, so no N x D temporary is made
_ROW_BLOCK = 65536
_SHOW_INDICES = 5


def _check_choice(value: Any, name: str, valid: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid values: {', '.join(map(repr, valid))}")


def _check_int(value: Any, name: str, *, low: int, high: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, got {value}{hint}")
    return value


def _first(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:_SHOW_INDICES])
    return shown + (", ..." if len(indices) > _SHOW_INDICES else "")


def _as_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array without a copy where possible (tensors: a CPU view)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() and x.dtype != torch.float64 else x).numpy()
    return np.asarray(x)


#: rows whose largest absolute value lies outside ``[2^-32, 2^32]`` are multiplied by a power of
#: two (exact in floating point) so that it lies in ``[0.5, 1)``: squared distances and inner
#: products of ``D`` terms then stay far from float32's overflow (``2^128``) and underflow
_SAFE_LOW, _SAFE_HIGH = 2.0**-32, 2.0**32
#: under cosine only inputs that float32 cannot hold are rescaled (norms are taken in float64)
_COSINE_LOW, _COSINE_HIGH = 2.0**-100, 2.0**100
#: the largest absolute value (in the index's units) whose squared distances and products float64
#: can still hold, and the largest a query may have against rows scaled to ``[0.5, 1)``
_FLOAT64_HIGH = 2.0**500
_QUERY_HIGH = 2.0**40


def _max_abs(arr: np.ndarray) -> float:
    """Largest absolute value of ``arr`` as a Python float (NaN when ``arr`` has a NaN)."""
    lo, hi = arr.min(), arr.max()  # no temporary the size of arr
    return max(-float(lo), float(hi))


def _scale_exponent(arr: np.ndarray, metric: str, name: str = "x") -> int:
    """``e`` such that ``arr · 2^e`` is safe to search (0 when ``arr`` already is).

    Raises:
        ValueError: under ``"l2"``/``"ip"``, values so large that their squared distances
            overflow float64 (only a float64 input can hold them); the rows are named.
    """
    maxabs = _max_abs(arr)
    if not math.isfinite(maxabs) or maxabs == 0:
        return 0  # non-finite rows are reported by the caller; all-zero rows need no scaling
    if metric == "cosine":
        if arr.dtype == np.float32 or _COSINE_LOW <= maxabs <= _COSINE_HIGH:
            return 0
    elif _SAFE_LOW <= maxabs <= _SAFE_HIGH:
        return 0
    elif maxabs > _FLOAT64_HIGH:
        bad = np.concatenate(
            [
                start
                + np.flatnonzero((np.abs(arr[start : start + _ROW_BLOCK]) > _FLOAT64_HIGH).any(1))
                for start in range(0, len(arr), _ROW_BLOCK)
            ]
        )
        raise ValueError(
            f"{name} has {len(bad)} row(s) with values beyond 2^500 (up to {maxabs:.3g}), first "
            f"at indices [{_first(bad)}]: their squared distances and inner products overflow "
            "float64; drop them, or divide the embeddings by a common factor (neighbours under "
            "l2 and cosine do not change)"
        )
    return -math.frexp(maxabs)[1]


def _as_float32(
    x: Any, name: str = "x", *, metric: str | None = None
) -> tuple[np.ndarray, bool, int]:
    """``x`` as a C-contiguous float32 ``(N, D)`` array (no copy when it already is one and needs
    no rescaling), checked for shape and finite values, whether that array is a copy (``owned``),
    and the power of two ``e`` it was multiplied by (``x · 2^e``; 0 unless ``metric`` is given
    and the values are extreme, see :data:`_SAFE_LOW`)."""
    arr = _as_numpy(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, D), got shape {arr.shape}")
    n, d = arr.shape
    if n < 2:
        raise ValueError(f"{name} must have at least 2 rows to have neighbours, got N={n}")
    if d == 0:
        raise ValueError(f"{name} has D=0 columns; embeddings need at least one dimension")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    shift = 0 if metric is None else _scale_exponent(arr, metric, name)
    if shift:
        out = np.empty((n, d), dtype=np.float32)
        with np.errstate(over="ignore", under="ignore"):
            for start in range(0, n, _ROW_BLOCK):
                block = arr[start : start + _ROW_BLOCK].astype(np.float64)
                out[start : start + _ROW_BLOCK] = np.ldexp(block, shift)
    else:
        with np.errstate(over="ignore"):  # values beyond float32 become Inf, reported below
            out = np.ascontiguousarray(arr, dtype=np.float32)
    owned = not np.shares_memory(out, arr)
    bad = np.concatenate(
        [
            start + np.flatnonzero(~np.isfinite(out[start : start + _ROW_BLOCK]).all(axis=1))
            for start in range(0, n, _ROW_BLOCK)
        ]
    )
    if len(bad):
        raise ValueError(
            f"{name} has {len(bad)} row(s) with NaN or Inf values (after casting to float32), "
            f"first at indices [{_first(bad)}]; drop them before the search (e.g. "
            f"EmbeddingSet(..., allow_invalid=True).drop_invalid())"
        )
    return out, owned, shift


def _offset_centre(x32: np.ndarray) -> np.ndarray | None:
    """The float64 mean row when the rows sit far from the origin compared with their spread
    (mean squared norm above 64 times the mean squared distance to the mean), else ``None``.

    faiss's float32 L2 kernel computes ``‖x‖² + ‖y‖² − 2⟨x, y⟩``, whose rounding error grows with
    the norms, not with the distance: rows at ``1e4 ± 1e-3`` would look tied to faiss and every
    query would fall back on a boundary search over all rows. Distances do not change under a
    translation, so the index searches the centred rows instead.
    """
    n = len(x32)
    total = np.zeros(x32.shape[1])
    sq = 0.0
    for start in range(0, n, _ROW_BLOCK):
        block = x32[start : start + _ROW_BLOCK].astype(np.float64)
        total += block.sum(axis=0)
        sq += float(np.einsum("ij,ij->", block, block))
    centre = total / n
    mean_sq = sq / n
    if not mean_sq > 0 or float(centre @ centre) <= mean_sq * (1 - 1 / 64):
        return None
    return centre


def _centred(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``x − centre`` computed in float64, as a C-contiguous float32 array (row blocks)."""
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, len(x), _ROW_BLOCK):
        out[start : start + _ROW_BLOCK] = x[start : start + _ROW_BLOCK].astype(np.float64) - centre
    return out


def _normalized(arr: np.ndarray, *, owned: bool, name: str = "x") -> np.ndarray:
    """Rows of ``arr`` scaled to unit L2 norm, in place when ``owned`` else in one copy."""
    n = arr.shape[0]
    out = arr if owned else np.empty_like(arr)
    zero = []
    for start in range(0, n, _ROW_BLOCK):
        block = arr[start : start + _ROW_BLOCK].astype(np.float64)
        norms = np.linalg.norm(block, axis=1)
        zero.append(start + np.flatnonzero(norms == 0))
        norms[norms == 0] = 1.0
        out[start : start + _ROW_BLOCK] = block / norms[:, None]
    bad = np.concatenate(zero)
    if len(bad):
        raise ValueError(
            f"{name} has {len(bad)} zero-norm row(s), first at indices [{_first(bad)}]; cosine "
            f"similarity is undefined for them: drop them or use metric='l2'"
        )
    return out


def _check_k(k: Any, n: int, exclude_self: bool) -> int:
    high = n - 1 if exclude_self else n
    hint = (
        f" (N={n} rows" + (", minus the query itself" if exclude_self else "") + ")"
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k > high
        else ""
    )
    return _check_int(k, "k", low=1, high=high, hint=hint)


def _check_queries(queries: Any, n: int) -> np.ndarray:
    if isinstance(queries, torch.Tensor):
        queries = queries.detach().cpu().numpy()
    q = np.asarray(queries)
    if q.dtype == bool:
        if q.shape != (n,):
            raise ValueError(
                f"queries as a boolean mask must have shape ({n},), got {q.shape}; or pass indices"
            )
        return np.flatnonzero(q).astype(np.int64)
    if q.ndim != 1:
        raise ValueError(f"queries must be a 1-D array of row indices, got shape {q.shape}")
    if q.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"queries must hold integer row indices, got dtype {q.dtype}")
    bad = np.flatnonzero((q < 0) | (q >= n))
    if len(bad):
        raise ValueError(
            f"queries has {len(bad)} index(es) out of range [0, {n}), first "
            f"{[int(v) for v in q[bad[:_SHOW_INDICES]]]}"
        )
    return q.astype(np.int64, copy=False)


def _gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _drop_self(
    scores: np.ndarray, ids: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Remove, from each row of ``(q, k+1)`` results, the query's own id ``rows[i]`` wherever it
    is, or the last column when it is absent. Returns ``(q, k)`` arrays, order kept."""
    q, k1 = ids.shape
    is_self = ids == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k1 - 1)
    keep = np.arange(k1)[None, :] != drop[:, None]
    return scores[keep].reshape(q, k1 - 1), ids[keep].reshape(q, k1 - 1)
