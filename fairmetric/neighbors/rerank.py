"""Float64 scores of (query, row) pairs from the rows, and the float32 error bound of faiss.

faiss scores in float32. Two candidates whose float32 scores differ by less than the rounding error
may be in the wrong order, or look tied when they are not; :class:`RowScorer` recomputes such
pairs in float64 from the float32 rows (exact products, then a sum whose order is fixed by numpy
and not by the CPU or BLAS), and :meth:`RowScorer.error_bound` says how far a faiss float32
score can be from that value.

Scores (the conventions of :class:`~fairmetric.neighbors.index.NeighborIndex`):

- ``"l2"``: ``Σ_d (x_d − y_d)²`` (squared distance, from the differences: no cancellation);
- ``"ip"``: ``Σ_d x_d y_d``;
- ``"cosine"``: ``Σ_d x_d y_d / (‖x‖ ‖y‖)`` with both norms in float64 from the float32 rows.

Identical rows give bit-identical scores against any query, so duplicates tie exactly.

**Error bound.** A float32 dot product of length ``D`` in any summation order is within
``γ_D Σ|x_d y_d| ≤ γ_D ‖x‖‖y‖`` of the exact value (``γ_D = D·u/(1−D·u)``, ``u = 2⁻²⁴``).
faiss's L2 kernels compute ``‖x‖² + ‖y‖² − 2⟨x, y⟩`` (or ``Σ(x−y)²``), within
``γ_{D+2} (‖x‖ + ‖y‖)²``; its cosine scores are inner products of rows normalised to float32,
adding ``2u``. When the index searches rows centred on ``c`` (rows far from the origin), the
norms are ``‖x − c‖`` and ``3u`` is added for the rounding of the centred rows to float32. The bound used is ``1.01·(D+4)·u·S`` with ``S = 1`` (cosine), ``‖x‖·max‖y‖``
(ip) or ``(‖x‖ + max‖y‖)²`` (l2), plus ``2⁻⁴⁰·S`` for the float64 evaluation itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RowScorer", "FLOAT32_UNIT"]

#: unit roundoff of float32
FLOAT32_UNIT = 2.0**-24
# pairs per float64 block (P x D x 8 bytes of temporaries stay near 32 MB)
_PAIR_BYTES = 32 << 20
_ROW_BLOCK = 65536


def _rows64(source: Any, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``source`` as float64 values of their float32 rounding."""
    return np.asarray(source[idx], dtype=np.float32).astype(np.float64)


def _norms(x64: np.ndarray) -> np.ndarray:
    return np.sqrt((x64 * x64).sum(axis=1))


class RowScorer:
    """Float64 scores between query vectors and indexed rows.

    Args:
        source: the ``(N, D)`` rows (any real dtype; read as their float32 rounding).
        metric: ``"l2"``, ``"cosine"`` or ``"ip"``.
        score_shift: scores are reported as ``score · 2^score_shift`` (exact): the index
            rescales extreme rows by a power of two and scores them in its own units.
        centre: under ``"l2"``, the float64 point faiss's rows are centred on (rows far from
            the origin); the error bound then uses norms about it, plus the rounding of the
            centred rows to float32 (``3u``).
    """

    def __init__(
        self,
        source: Any,
        metric: str,
        *,
        score_shift: int = 0,
        centre: np.ndarray | None = None,
    ) -> None:
        self.source = source
        self.metric = metric
        self.score_shift = int(score_shift)
        self.centre = centre
        self.n, self.d = source.shape
        self._norms: np.ndarray | None = None
        self._centred_top: float | None = None

    @property
    def norms(self) -> np.ndarray:
        """``(N,)`` float64 norms of the float32 rows (computed once, in row blocks)."""
        if self._norms is None:
            self._norms = self._row_norms(None)
        return self._norms

    def _row_norms(self, centre: np.ndarray | None) -> np.ndarray:
        out = np.empty(self.n)
        for s in range(0, self.n, _ROW_BLOCK):
            rows = _rows64(self.source, np.arange(s, min(s + _ROW_BLOCK, self.n)))
            out[s : s + _ROW_BLOCK] = _norms(rows if centre is None else rows - centre)
        return out

    def query_vectors(self, rows: np.ndarray) -> np.ndarray:
        """Float64 query vectors for indexed rows."""
        return _rows64(self.source, rows)

    def error_bound(self, q64: np.ndarray) -> np.ndarray:
        """``(q,)`` bound on ``|faiss float32 score − float64 score|`` for any row."""
        factor = 1.01 * (self.d + 4) * FLOAT32_UNIT + 2.0**-40
        if self.metric == "cosine":
            return np.full(len(q64), factor)
        if self.metric == "l2" and self.centre is not None:
            if self._centred_top is None:
                self._centred_top = float(self._row_norms(self.centre).max())
            factor += 3 * FLOAT32_UNIT
            return factor * (_norms(q64 - self.centre) + self._centred_top) ** 2
        top = float(self.norms.max()) if self.n else 0.0
        nq = _norms(q64)
        if self.metric == "ip":
            return factor * nq * top
        return factor * (nq + top) ** 2

    def keys(self, q64: np.ndarray, qi: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Float64 sort keys (ascending = nearer) of the pairs ``(q64[qi], row rows)``:
        squared distance for ``"l2"``, minus the similarity otherwise."""
        out = np.empty(len(qi))
        step = max(1, _PAIR_BYTES // (8 * max(self.d, 1)))
        qnorm = _norms(q64) if self.metric == "cosine" else None
        for s in range(0, len(qi), step):
            a = q64[qi[s : s + step]]
            b = _rows64(self.source, rows[s : s + step])
            if self.metric == "l2":
                diff = a - b
                out[s : s + step] = (diff * diff).sum(axis=1)
                continue
            dot = (a * b).sum(axis=1)
            if self.metric == "cosine":
                dot = dot / (qnorm[qi[s : s + step]] * self.norms[rows[s : s + step]])
            out[s : s + step] = -dot
        return out

    def scores_from_keys(self, keys: np.ndarray) -> np.ndarray:
        """The metric's scores (squared distances or similarities) from sort keys, in the
        caller's units (``inf`` only beyond float64's range)."""
        scores = keys if self.metric == "l2" else -keys
        if self.score_shift:
            with np.errstate(over="ignore", under="ignore"):
                scores = np.ldexp(scores, self.score_shift)
        return scores
