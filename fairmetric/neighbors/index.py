"""The faiss layer of the neighbour search: one faiss index, searched in query chunks.

Its scores are float32 and faiss breaks exact ties by position; consumers use
:mod:`fairmetric.neighbors.search`, which re-ranks these candidates in float64 and applies the tie
rule of :mod:`fairmetric.neighbors.ties`.

Every audit metric and every subgroup is served by **one** k-NN search over the whole set (the
query excluded from its own neighbours, METHODS.md §1). :class:`NeighborIndex` builds the index
once; :meth:`NeighborIndex.iter_search` then yields the neighbours of consecutive query chunks, so a
consumer that reduces each chunk to per-query numbers keeps ``O(chunk·k + N·D)`` memory, never
``O(N²)`` and never ``O(N·k)`` unless it keeps the neighbour lists itself.

Metrics (``metric=``):

- ``"l2"``: scores are **squared** Euclidean distances ``||x_i − x_j||²`` (faiss's convention),
  ascending. Tiny negative values from the ``||x||² + ||y||² − 2⟨x, y⟩`` expansion are clamped to 0.
- ``"cosine"``: rows are L2-normalised (in a copy) and searched by inner product, so scores are
  cosine similarities ``⟨x_i, x_j⟩ / (||x_i|| ||x_j||)``, descending.
- ``"ip"``: raw inner products ``⟨x_i, x_j⟩``, descending.

Indexes (``index=``): ``"exact"`` (``IndexFlatL2``/``IndexFlatIP``), ``"ivf"`` (``IndexIVFFlat``),
``"ivfpq"`` (IVF over 4-bit product-quantised codes scanned with SIMD, ``IndexIVFPQFastScan``,
whose best candidates are re-scored exactly from the stored rows, ``IndexRefineFlat``),
``"hnsw"`` (``IndexHNSWFlat``), or ``"auto"`` = exact when ``N <= exact_max``, else IVF-PQ (IVF
on a GPU, which has no fast-scan index; IVF settings are ignored when exact is picked).

**IVF-PQ.** Each row is stored twice: as a code of ``pq_m`` 4-bit numbers (``pq_m/2`` bytes) and as
its float32 row. A query scans the codes of the ``nprobe`` lists it visits, keeps the
``refine_factor · k`` best by their approximate scores and re-scores those from the rows (the same
float32 scores as exact search, then the float64 re-ranking of
:mod:`~fairmetric.neighbors.search`). Scanning a code costs about a quarter of an exact
(BLAS) distance on this project's 2-core CPU (0.8 against 2.9 ns at 1M × 128), so IVF-PQ stays
cheaper than exact search even when it visits every list; on data where a query's nearest neighbour often lies in a far list it is
the approximate index that can still keep the audit's promise (measured at 1M × 128 in
``benchmarks/RESULTS.md``). Codes are of the rows themselves, not of their residuals to the list
centroid: one look-up table per query serves every list, which scans about twice as fast at the
same accuracy after re-scoring.

**IVF.** ``nlist ≈ 4·sqrt(N)`` lists (:func:`default_nlist`), trained by seeded k-means on a random
sample, with an L2 coarse quantizer for every metric (it probes better lists than an inner-product
one on clustered data, for cosine and ip too). IVF scores inside the visited lists are exact, so a
query finds its true nearest neighbour exactly when that neighbour's list is among the ``nprobe``
lists probed; :func:`nprobe_needed` measures this on a sample of the data being indexed, and the
default ``nprobe`` is the smallest that reaches ``target_recall`` Recall@1 against exact search
(the measured value is in ``params["calibration"]``). No fixed ``nprobe`` fits all data: for
Recall@1 >= 0.995 on Gaussian clusters in 128-d, 1M points in 2000 clusters need 4 of 4000 lists,
100k points in 2000 clusters 70 (l2) to 238 (cosine) of 1265, and more overlap needs more. An IVF
scan costs about 25 times more per vector than exact BLAS search, so probing more than about 4% of
the lists is slower than exact search: ``"auto"`` then falls back to exact (with a warning and
``params["ivf_rejected"]``), an explicit ``"ivf"`` warns.

**Scale.** Neighbours do not depend on the scale of the rows (``x`` and ``c·x`` have the same
neighbours under every metric). faiss computes in float32, where squared distances of rows near
``1e30`` overflow and those of rows near ``1e-30`` underflow, so under ``"l2"`` and ``"ip"`` rows
whose largest absolute value lies outside ``[2^-32, 2^32]`` are multiplied by the power of two
``2^e`` that brings it into ``[0.5, 1)`` (exact in floating point: the neighbour order and the tie
blocks are those of the unscaled rows bit for bit), and scores are reported in the caller's units
(multiplied by ``2^-2e``, exactly). ``params["scale"]`` says ``"2^e"`` when this happened.
Under ``"cosine"`` only a float64 input that float32 cannot hold is rescaled. Components below
float32's range after the rescaling (``2^-149`` of the largest) become 0. A float64 input whose
squared distances overflow float64 (values beyond ``2^500``) is refused with the rows named,
and outside queries larger than ``2^40`` times the rows' scale are refused (their scores would
overflow float32). The float32 scores of the raw methods (:meth:`NeighborIndex.search`,
:meth:`~NeighborIndex.iter_search`, :meth:`~NeighborIndex.search_vectors`) can overflow to ``inf``
(or underflow to 0) in the caller's units for such rows; the float64 scores of
:mod:`fairmetric.neighbors.search` do not.

**Offset.** Under ``"l2"``, rows that sit far from the origin compared with their spread (mean
squared norm above 64 times the mean squared distance to the mean row) are searched centred on
the mean row: faiss's ``‖x‖² + ‖y‖² − 2⟨x, y⟩`` loses the distances to cancellation otherwise
(rows at ``1e4 ± 1e-3`` all look tied in float32, and every query needed a boundary search
over all rows). The float64 re-ranking reads the uncentred rows, so lists, tie blocks and
re-scored scores are unchanged; :attr:`NeighborIndex.vectors` stays the uncentred rows.

**Missing neighbours.** Approximate indexes can return fewer than ``k`` neighbours (an IVF probe
that visits small lists, an HNSW graph region with few reachable nodes). Those slots hold id
``-1`` with score ``NaN``; consumers must treat ``-1`` as "no neighbour" (not as the last row).
Exact search never pads.

**Self-exclusion.** With ``exclude_self=True`` the index is searched for ``k + 1`` neighbours and the
query's own row is dropped wherever it appears (with duplicate vectors it need not be the first
column); if it does not appear (ties among more than ``k + 1`` duplicates, or an approximate miss)
the last column is dropped instead.

**Memory.** The input is cast to C-contiguous ``float32`` once; an input that already is one is used
as is (no copy — do not modify it while the index is alive). Peak memory while building is
``x`` itself + one ``float32`` copy (only when ``x`` was not float32 C-contiguous, or under
``"cosine"``; one more when extreme rows are rescaled or offset rows centred, see above) + the
index storage (``N·D·4`` bytes; HNSW adds about ``N·hnsw_m·8`` bytes of graph
links) + for IVF the training sample (``train_size·D·4`` bytes). For a CPU exact index the copy is
released after building: queries are read straight from the index storage. A search then holds one
query chunk (``chunk·D·4`` bytes, a copy only for explicit query indices) and its results
(``chunk·(k+1)·12`` bytes), plus faiss's small internal blocks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from typing import Any, Literal, get_args

import faiss
import numpy as np
import torch

from fairmetric.neighbors.checks import (
    _QUERY_HIGH,
    _as_float32,
    _as_numpy,
    _centred,
    _check_choice,
    _check_int,
    _check_k,
    _check_queries,
    _drop_self,
    _first,
    _gpu_available,
    _max_abs,
    _normalized,
    _offset_centre,
)
from fairmetric.neighbors.ivf import (
    default_nlist,
    default_nlist_pq,
    default_pq_m,
    nprobe_for_recall,
    nprobe_needed,
    probes_to_reach,
)
from fairmetric.utils import faiss_threads

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "IndexKind",
    "Metric",
    "NeighborIndex",
    "default_nlist",
    "default_nlist_pq",
    "nprobe_for_recall",
    "nprobe_needed",
    "knn_bruteforce",
]

Metric = Literal["l2", "cosine", "ip"]
IndexKind = Literal["auto", "exact", "ivf", "ivfpq", "hnsw"]

_METRICS: tuple[str, ...] = get_args(Metric)
_INDEX_KINDS: tuple[str, ...] = get_args(IndexKind)

#: default number of queries per chunk (fewer for very large k, see NeighborIndex.iter_search)
DEFAULT_CHUNK_SIZE = 8192
# the most results one chunk may hold by default: 8192 queries x 512 neighbours (~50 MB)
_MAX_CHUNK_RESULTS = 8192 * 512
# faiss GPU k-selection supports k (and nprobe) up to 2048
_GPU_MAX_K = 2048
# IVF scans its lists about 25x slower per vector than exact (BLAS) search: measured on this
# project's 2-core CPU, 200k and 1M x 128, IVF time / exact time = 0.7 at 1/32 of the lists
# probed and 1.3-1.6 at 1/16, so beyond ~1/25 IVF costs more than it saves
_IVF_MAX_PROBE_FRACTION = 1 / 25
#: candidates per neighbour an IVF-PQ search re-scores exactly (``refine_factor``)
DEFAULT_REFINE_FACTOR = 4
_IVF_KINDS = ("ivf", "ivfpq")


# ----------------------------------------------------------------------------- index


def _auto_kind(n: int, exact_max: int, gpu: bool) -> str:
    """What ``index="auto"`` builds: exact search up to ``exact_max`` rows, then IVF-PQ (IVF-Flat
    on a GPU: faiss has no GPU fast-scan index)."""
    if n <= exact_max:
        return "exact"
    return "ivf" if gpu else "ivfpq"


class NeighborIndex:
    """A faiss index over the rows of ``x``, searched by row index in query chunks.

    Build once, then call :meth:`iter_search` (chunked, for metrics computed per query) or
    :meth:`search` (all results at once, for a subset or small sets). See the module docstring for
    the score conventions, ``-1`` padding, self-exclusion and memory.

    Args:
        x: ``(N, D)`` real array (or tensor), ``N >= 2``, finite.
        metric: ``"l2"`` (squared distances, ascending), ``"cosine"`` or ``"ip"`` (similarities,
            descending).
        index: ``"exact"``, ``"ivf"``, ``"ivfpq"``, ``"hnsw"`` or ``"auto"`` (exact when
            ``N <= exact_max``, else IVF-PQ on the CPU and IVF on a GPU).
        threads: OpenMP threads for faiss during build and search (the previous count is
            restored after each call); ``None`` leaves faiss's setting alone.
        use_gpu: ``None`` = GPU faiss when the installed faiss sees a GPU, ``True`` = require it,
            ``False`` = CPU. HNSW has no GPU version (``None`` falls back to CPU for it).
        exact_max: largest ``N`` for which ``"auto"`` picks exact search.
        nlist: IVF lists (default :func:`default_nlist`; for IVF-PQ, whose lists are cheap to
            scan, :func:`default_nlist_pq`).
        nprobe: IVF lists visited per query. Default: calibrated on this data by
            :func:`nprobe_needed`, the smallest value whose Recall@1 against exact search on
            a 2000-query sample reaches ``target_recall`` plus 1.645 standard errors (so the
            recall over all queries reaches the target with ~95% confidence).
        pq_m: IVF-PQ code length in 4-bit numbers, a divisor of ``D`` (default: the largest
            divisor of ``D`` up to ``D/4``, 32 for ``D = 128``).
        refine_factor: IVF-PQ candidates re-scored exactly per neighbour asked (default 4).
        hnsw_m: HNSW graph degree ``M``.
        ef_search: HNSW search beam; default ``max(64, 2·k')`` per search with ``k'`` the number
            of neighbours asked of faiss (``k + 1`` with ``exclude_self``).
        train_size: rows used to train the IVF quantizer, a seeded random sample (default
            ``min(N, max(39·nlist, 50_000))``).
        target_recall: Recall@1 the IVF ``nprobe`` calibration aims for. The Recall@1 measured
            on the calibration sample is reported in ``params["calibration"]``, for a given
            ``nprobe`` too.
        seed: seed for the IVF training sample, k-means and the calibration sample.

    Attributes:
        index_used: ``"exact"``, ``"ivf"``, ``"ivfpq"`` or ``"hnsw"`` (what ``"auto"`` resolved
            to).
        description: human-readable index, e.g. ``"IndexFlatIP (exact, cosine)"``.
        params: JSON-serialisable settings actually used.
        build_seconds: wall time of normalisation, training and adding.
        n, d, metric: size, dimension and metric.
    """

    def __init__(
        self,
        x: np.ndarray,
        *,
        metric: Metric = "l2",
        index: IndexKind = "auto",
        threads: int | None = None,
        use_gpu: bool | None = None,
        exact_max: int = 100_000,
        nlist: int | None = None,
        nprobe: int | None = None,
        pq_m: int | None = None,
        refine_factor: int | None = None,
        hnsw_m: int = 32,
        ef_search: int | None = None,
        train_size: int | None = None,
        target_recall: float = 0.995,
        seed: int = 0,
    ) -> None:
        _check_choice(metric, "metric", _METRICS)
        _check_choice(index, "index", _INDEX_KINDS)
        if threads is not None:
            threads = _check_int(threads, "threads", low=1)
        if use_gpu not in (None, True, False):
            raise ValueError(f"use_gpu must be None, True or False, got {use_gpu!r}")
        exact_max = _check_int(exact_max, "exact_max", low=0)
        hnsw_m = _check_int(hnsw_m, "hnsw_m", low=2)
        seed = _check_int(seed, "seed", low=0)
        if index in ("exact", "hnsw"):
            ivf_args = (("nlist", nlist), ("nprobe", nprobe), ("train_size", train_size))
            for name, value in ivf_args:
                if value is not None:
                    raise ValueError(f"{name} applies to IVF only, but index={index!r}")
        if index not in ("ivfpq", "auto"):
            for name, value in (("pq_m", pq_m), ("refine_factor", refine_factor)):
                if value is not None:
                    raise ValueError(f"{name} applies to index='ivfpq' only, but index={index!r}")
        if refine_factor is not None:
            refine_factor = _check_int(refine_factor, "refine_factor", low=1, high=1024)
        if isinstance(target_recall, bool) or not isinstance(target_recall, (int, float)):
            raise ValueError(f"target_recall must be a number in (0, 1], got {target_recall!r}")
        if not 0 < target_recall <= 1:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
        if ef_search is not None:
            if index != "hnsw":
                raise ValueError(f"ef_search applies to index='hnsw' only, but index={index!r}")
            ef_search = _check_int(ef_search, "ef_search", low=1)

        start = time.perf_counter()
        x32, owned, shift = _as_float32(x, metric=metric)
        # the rows as given (read as float32) for float64 re-ranking: under cosine the float32
        # copy is normalised, so keep the caller's array (or the un-normalised float32 one; the
        # rescaled copy when the rows were rescaled)
        self._source: Any = x32
        self._shift = shift
        self._given: Any = None  # the caller's rows, kept for `vectors` when rescaled under l2/ip
        if metric == "cosine":
            if owned and not shift:
                self._source = _as_numpy(x)
            x32 = _normalized(x32, owned=owned and not shift)
            owned = True
        elif shift:
            self._given = x
        # under l2, rows far from the origin compared with their spread are searched centred
        # (exact distances are translation-invariant; the re-ranking reads the uncentred rows)
        self._centre = _offset_centre(x32) if metric == "l2" else None
        if self._centre is not None:
            x32 = _centred(x32, self._centre)
            owned = True
        # scores in the caller's units = scores of the rescaled rows · 2^_score_shift
        self._score_shift = 0 if metric == "cosine" else -2 * shift
        n, d = x32.shape

        if pq_m is not None:
            pq_m = _check_int(pq_m, "pq_m", low=1, high=d)
            if d % pq_m:
                raise ValueError(f"pq_m must divide the dimension {d}, got {pq_m}")
        gpu_seen = use_gpu if use_gpu is not None else _gpu_available()
        if index != "auto":
            kind = index
        else:
            kind = _auto_kind(n, exact_max, bool(gpu_seen))
        if use_gpu is True and kind in ("hnsw", "ivfpq"):
            name = "HNSW" if kind == "hnsw" else "fast-scan IVF-PQ"
            raise ValueError(
                f"use_gpu=True, but faiss has no GPU {name} index; use index='ivf' or 'exact' on "
                "the GPU, or use_gpu=False"
            )
        if use_gpu is True and not _gpu_available():
            raise ValueError(
                "use_gpu=True, but the installed faiss has no GPU support "
                f"(faiss.get_num_gpus() = {faiss.get_num_gpus()}); install a GPU build of faiss "
                "(e.g. `pip install faiss-gpu-cu12`) or pass use_gpu=False"
            )
        gpu = kind not in ("hnsw", "ivfpq") and bool(gpu_seen)
        self._auto = index == "auto"

        if kind in _IVF_KINDS:
            if nlist is None:
                nlist = default_nlist(n) if kind == "ivf" else default_nlist_pq(n)
            else:
                nlist = _check_int(nlist, "nlist", low=1, high=n)
            if train_size is None:
                train_size = min(n, max(39 * nlist, 50_000))
            train_size = _check_int(
                train_size, "train_size", low=nlist, high=n, hint=f" (nlist={nlist}, N={n})"
            )
            if nprobe is not None:
                nprobe = _check_int(nprobe, "nprobe", low=1, high=nlist, hint=f" (nlist={nlist})")

        self.n, self.d, self.metric = n, d, metric
        self._gpu = bool(gpu)
        self._threads = threads
        self._ef_search = ef_search
        self._gpu_res = faiss.StandardGpuResources() if self._gpu else None
        extra: dict[str, Any] = {}
        self._pq = (pq_m or default_pq_m(d), refine_factor or DEFAULT_REFINE_FACTOR)
        with faiss_threads(threads):
            if kind in _IVF_KINDS:
                ivf = self._build_ivf(
                    x32, nlist, nprobe, train_size, target_recall, seed, kind == "ivfpq"
                )
                if ivf is None:  # "auto", and IVF would be slower than exact search
                    kind = "exact"
                    extra["ivf_rejected"] = self._rejected
                else:
                    idx, extra = ivf
            if kind == "exact":
                idx = self._to_gpu(faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d))
                idx.add(x32)
                name = "IndexFlatL2" if metric == "l2" else "IndexFlatIP"
                self.description = f"{'Gpu' if self._gpu else ''}{name} (exact, {metric})"
            elif kind == "hnsw":
                idx, extra = self._build_hnsw(x32, hnsw_m)
        self.index_used: str = kind
        self._index = idx
        self._x_in_index = False  # True when the rows are the faiss index's own memory
        if kind in ("exact", "ivfpq") and not self._gpu and owned:
            # our float32 copy duplicates the index storage: read queries from the index instead
            copy = x32
            flat = idx if kind == "exact" else faiss.downcast_index(idx.refine_index)
            x32 = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)
            x32.flags.writeable = False
            self._x_in_index = True
            if self._source is copy:  # the same values: do not hold both
                self._source = x32
        self._x = x32
        self.build_seconds = time.perf_counter() - start
        self.params: dict[str, Any] = {
            "index": kind,
            "metric": metric,
            "n": n,
            "d": d,
            **extra,
            "threads": threads if threads is not None else int(faiss.omp_get_max_threads()),
            "gpu": self._gpu,
            "seed": seed,
        }
        if shift:
            self.params["scale"] = f"2^{shift}"
        if kind in _IVF_KINDS:
            self.description = self._describe()

    def _build_ivf(
        self,
        x32: np.ndarray,
        nlist: int,
        nprobe: int | None,
        train_size: int,
        target_recall: float,
        seed: int,
        compressed: bool = False,
    ) -> tuple[Any, dict[str, Any]] | None:
        """Train, calibrate and fill an ``IndexIVFFlat`` (``compressed``: an IVF-PQ fast-scan
        index inside an ``IndexRefineFlat``); ``None`` when ``index="auto"`` and the calibrated
        ``nprobe`` makes IVF slower than exact search."""
        n, d = x32.shape
        metric = self.metric
        faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        # L2 k-means and an L2 coarse quantizer for every metric: measured on clustered data it
        # probes better lists for cosine and ip too (100k x 128, nprobe=80: Recall@1 0.999 vs
        # 0.993 with a spherical IP quantizer for cosine, 0.996 vs 0.989 with faiss's default IP
        # quantizer for ip)
        quantizer = faiss.IndexFlatL2(d)
        if compressed:
            pq_m, refine_factor = self._pq
            ivf = faiss.IndexIVFPQFastScan(quantizer, d, nlist, pq_m, 4, faiss_metric)
            ivf.by_residual = False  # one look-up table per query for every list (docstring)
            ivf.pq.cp.seed = seed
        else:
            ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss_metric)
        ivf.cp.seed = seed
        if train_size == n:
            ivf.train(x32)
        else:
            rows = np.random.default_rng(seed).choice(n, train_size, replace=False)
            ivf.train(x32[np.sort(rows)])
        if compressed:
            idx = faiss.IndexRefineFlat(ivf)
            idx.k_factor = refine_factor
            self._ivf = ivf  # the refine index does not own it
        else:
            idx = ivf
        needed = nprobe_needed(
            x32, quantizer, nlist, metric=metric, seed=seed, gpu_resources=self._gpu_res
        )
        # aim 1.645 standard errors above the target on the sample, so the recall over all
        # queries reaches the target with ~95% confidence, not just on average
        m = len(needed)
        sample_target = min(
            1.0, target_recall + 1.645 * math.sqrt(target_recall * (1 - target_recall) / m)
        )
        source = "given" if nprobe is not None else "calibrated"
        if nprobe is None:
            nprobe = nprobe_for_recall(needed, sample_target)
            if not compressed and nprobe > nlist * _IVF_MAX_PROBE_FRACTION:
                message = (
                    f"IVF needs nprobe={nprobe} of nlist={nlist} lists for Recall@1 >= "
                    f"{target_recall} on this data; scanning more than "
                    f"{_IVF_MAX_PROBE_FRACTION:.0%} of the lists is slower than exact search"
                )
                if self._auto:
                    warnings.warn(f"{message}: index='auto' uses exact search", stacklevel=3)
                    self._rejected = {"nlist": nlist, "nprobe_needed": nprobe}
                    return None
                warnings.warn(
                    f"{message}: consider index='exact' (or a lower target_recall)", stacklevel=3
                )
            if self._gpu and nprobe > _GPU_MAX_K:
                warnings.warn(
                    f"IVF needs nprobe={nprobe} for Recall@1 >= {target_recall} but faiss GPU "
                    f"allows at most {_GPU_MAX_K}; using {_GPU_MAX_K}",
                    stacklevel=3,
                )
                nprobe = _GPU_MAX_K
        elif self._gpu and nprobe > _GPU_MAX_K:
            raise ValueError(
                f"nprobe={nprobe} exceeds faiss GPU's limit of {_GPU_MAX_K}; use use_gpu=False"
            )
        ivf.nprobe = nprobe
        if self._gpu:
            idx = self._to_gpu(idx)
            faiss.GpuParameterSpace().set_index_parameter(idx, "nprobe", nprobe)
        else:
            self._quantizer = quantizer  # the IVF index does not own it
        idx.add(x32)
        extra: dict[str, Any] = {}
        if compressed:
            extra = {"pq_m": pq_m, "pq_bits": 4, "refine_factor": refine_factor}
        return idx, {
            "nlist": nlist,
            "nprobe": nprobe,
            **extra,
            "train_size": train_size,
            "calibration": {
                "nprobe_source": source,
                "target_recall@1": target_recall,
                "sample_target@1": round(sample_target, 6),
                "sample_queries": m,
                "recall@1": float(np.mean(needed <= nprobe)),
            },
        }

    def _build_hnsw(self, x32: np.ndarray, hnsw_m: int) -> tuple[Any, dict[str, Any]]:
        faiss_metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        idx = faiss.IndexHNSWFlat(x32.shape[1], hnsw_m, faiss_metric)
        idx.add(x32)
        ef = self._ef_search if self._ef_search is not None else "max(64, 2k)"
        self.description = f"IndexHNSWFlat(M={hnsw_m}, efSearch={ef}, {self.metric})"
        return idx, {
            "hnsw_m": hnsw_m,
            "ef_construction": int(idx.hnsw.efConstruction),
            "ef_search": ef,
        }

    def _to_gpu(self, idx: Any) -> Any:
        if not self._gpu:
            return idx
        return faiss.index_cpu_to_gpu(self._gpu_res, 0, idx)

    @property
    def vectors(self) -> np.ndarray:
        """The ``(N, D)`` float32 rows the index searches, in the caller's units (unit-norm under
        ``"cosine"``).

        Read-only by convention: it may be the caller's array or the index's own storage. When
        extreme rows were rescaled (``params["scale"]``) under ``"l2"``/``"ip"`` it is the
        caller's rows read as float32 (values beyond float32's range become ``inf``).
        """
        if self._given is None:
            return self._x if self._centre is None else self._source
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(_as_numpy(self._given), dtype=np.float32)

    @property
    def source(self) -> Any:
        """The ``(N, D)`` rows as given (read as float32; not normalised under ``"cosine"``;
        multiplied by ``params["scale"]`` when extreme rows were rescaled): what float64
        re-ranking scores from. Do not modify it while the index is in use."""
        return self._source

    @property
    def score_shift(self) -> int:
        """Scores of the rescaled rows times ``2^score_shift`` are scores in the caller's units
        (0 unless extreme rows were rescaled under ``"l2"``/``"ip"``)."""
        return self._score_shift

    def query_rows(self, rows: np.ndarray) -> np.ndarray:
        """Float32 rows ``rows`` of :attr:`source` (not normalised, rescaled as the index)."""
        return np.ascontiguousarray(self._source[rows], dtype=np.float32)

    def check_vectors(self, vectors: Any, name: str = "queries") -> np.ndarray:
        """Outside query vectors as a C-contiguous float32 ``(q, D)`` array in the index's units
        (rescaled as the rows were), checked for shape, finite values, a size whose distances
        to the rows float32 can hold (``"l2"``/``"ip"``) and (under ``"cosine"``) non-zero norm;
        not normalised."""
        arr = _as_numpy(vectors)
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ValueError(
                f"{name} must be a 2-D array of shape (q, {self.d}) (the indexed dimension), "
                f"got shape {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        with np.errstate(over="ignore", under="ignore"):
            if self._shift:
                q32 = np.ldexp(arr.astype(np.float64), self._shift).astype(np.float32)
            else:
                q32 = np.ascontiguousarray(arr, dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(q32).all(axis=1))
        if len(bad):
            raise ValueError(
                f"{name} has {len(bad)} row(s) with NaN or Inf values (after casting to "
                f"float32), first at indices [{_first(bad)}]; drop them before the search"
            )
        if self.metric == "cosine" and len(q32):
            _normalized(q32, owned=False, name=name)  # raises on zero rows
        elif len(q32):
            top = _max_abs(self._faiss_queries(q32))
            if top > _QUERY_HIGH:
                ratio = top / max(_max_abs(self._x), 2.0**-149)
                raise ValueError(
                    f"{name} has values up to {_max_abs(arr):.3g}, about {ratio:.1g} times "
                    f"the indexed rows' largest: their {self.metric} scores overflow float32; "
                    "bring queries and rows to a common scale"
                )
        return q32

    def _faiss_queries(self, q32: np.ndarray) -> np.ndarray:
        """Query rows as faiss searches them: unit-norm under cosine, centred when the rows
        are (see :func:`~fairmetric.neighbors.checks._offset_centre`)."""
        if self.metric == "cosine":
            return _normalized(q32, owned=False)
        return q32 if self._centre is None else _centred(q32, self._centre)

    def _finish_raw(
        self, scores: Any, ids: Any, rows: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids).astype(np.int64, copy=False)
        scores = np.asarray(scores).astype(np.float32, copy=False)
        if rows is not None:
            scores, ids = _drop_self(scores, ids, rows)
        missing = ids < 0
        if missing.any():
            scores = scores.copy()
            scores[missing] = np.nan
        if self.metric == "l2":
            scores = np.maximum(scores, 0)
        return scores, ids

    def _caller_scores(self, scores: np.ndarray) -> np.ndarray:
        """Float32 scores of the rescaled rows in the caller's units (``inf`` or 0 where float32
        cannot hold them; the float64 scores of :mod:`~fairmetric.neighbors.search` can)."""
        if not self._score_shift:
            return scores
        with np.errstate(over="ignore", under="ignore"):
            return np.ldexp(scores, self._score_shift).astype(np.float32)

    def search_vectors(self, q32: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed rows of outside float32 vectors (from
        :meth:`check_vectors`), nothing excluded: ``(scores float32, ids int64)`` as in
        :meth:`search`."""
        scores, ids = self._search_vectors_raw(q32, k)
        return self._caller_scores(scores), ids

    def _search_vectors_raw(self, q32: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search_vectors` with the scores of the rescaled rows (see :attr:`source`)."""
        k, chunk_size = self._prepare(k, False, None)
        if self._index is None:
            raise RuntimeError("this NeighborIndex was released; build a new one to search")
        scores = np.empty((len(q32), k), dtype=np.float32)
        ids = np.empty((len(q32), k), dtype=np.int64)
        for start in range(0, len(q32), chunk_size):
            q = self._faiss_queries(q32[start : start + chunk_size])
            if self.index_used == "hnsw":
                ef = self._ef_search if self._ef_search is not None else max(64, 2 * k)
                faiss.downcast_index(self._index).hnsw.efSearch = max(ef, k)
            with faiss_threads(self._threads):
                s, i = self._index.search(q, k)
            s, i = self._finish_raw(s, i, None)
            scores[start : start + len(q)] = s
            ids[start : start + len(q)] = i
        return scores, ids

    def exact_candidates(
        self, q32: np.ndarray, k: int, rows: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact brute-force search (whatever the index kind) of float32 query vectors over
        the indexed rows: ``k`` neighbours, excluding ``rows`` (the queries' own rows) by index
        when given. Used for the rare queries whose cut-off needs more candidates.

        Queries and scores are in the index's units (rows rescaled as :attr:`source`)."""
        q = self._faiss_queries(q32)
        k_search = k + 1 if rows is not None else k  # k <= N - 1 with rows, <= N without
        faiss_metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        with faiss_threads(self._threads):
            if self._gpu_res is not None:
                s, i = faiss.knn_gpu(self._gpu_res, q, self._x, k_search, metric=faiss_metric)
            else:
                s, i = faiss.knn(q, self._x, k_search, metric=faiss_metric)
        return self._finish_raw(s, i, rows)

    def _describe(self) -> str:
        """The IVF index in words, with its current ``nprobe``."""
        p = self.params
        if self.index_used == "ivfpq":
            return (
                f"IndexIVFPQFastScan(nlist={p['nlist']}, nprobe={p['nprobe']}, "
                f"PQ{p['pq_m']}x4, re-scored {p['refine_factor']}x, {self.metric})"
            )
        prefix = "Gpu" if self._gpu else ""
        return f"{prefix}IndexIVFFlat(nlist={p['nlist']}, nprobe={p['nprobe']}, {self.metric})"

    def set_nprobe(self, nprobe: int) -> None:
        """The IVF lists probed per query in later searches."""
        if self.index_used not in _IVF_KINDS:
            raise ValueError(f"nprobe applies to an IVF index, this one is {self.index_used}")
        nlist = int(self.params["nlist"])
        nprobe = _check_int(nprobe, "nprobe", low=1, high=nlist, hint=f" (nlist={nlist})")
        if self._gpu:
            if nprobe > _GPU_MAX_K:
                raise ValueError(f"nprobe={nprobe} exceeds faiss GPU's limit of {_GPU_MAX_K}")
            faiss.GpuParameterSpace().set_index_parameter(self._index, "nprobe", nprobe)
        else:
            faiss.extract_index_ivf(self._index).nprobe = nprobe
        self.params["nprobe"] = nprobe
        self.description = self._describe()

    def set_refine_factor(self, refine_factor: int) -> None:
        """The IVF-PQ candidates re-scored exactly per neighbour, in later searches."""
        if self.index_used != "ivfpq":
            raise ValueError(
                f"refine_factor applies to an IVF-PQ index, this one is {self.index_used}"
            )
        refine_factor = _check_int(refine_factor, "refine_factor", low=1, high=1024)
        self._index.k_factor = refine_factor
        self._pq = (self._pq[0], refine_factor)
        self.params["refine_factor"] = refine_factor
        self.description = self._describe()

    def probes_needed(self, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """For IVF indexes: the ``nprobe`` the query row ``rows[i]`` needs for its search to
        visit the list holding row ``targets[i]``."""
        if self.index_used not in _IVF_KINDS or self._gpu:
            raise ValueError(
                f"probes_needed applies to a CPU IVF index, this one is {self.index_used}"
            )
        return probes_to_reach(
            self._x[np.asarray(rows)],
            self._x[np.asarray(targets)],
            self._quantizer,
            int(self.params["nlist"]),
        )

    @property
    def max_useful_nprobe(self) -> int:
        """The most IVF lists worth probing: beyond, IVF costs more than exact search (IVF-PQ
        stays cheaper when it probes every list)."""
        nlist = int(self.params["nlist"])
        if self.index_used == "ivfpq":
            return nlist
        return max(1, int(nlist * _IVF_MAX_PROBE_FRACTION))

    def set_ef_search(self, ef_search: int) -> None:
        """The HNSW search beam for later searches (see ``ef_search``)."""
        if self.index_used != "hnsw":
            raise ValueError(f"ef_search applies to an HNSW index, this one is {self.index_used}")
        self._ef_search = _check_int(ef_search, "ef_search", low=1)
        self.params["ef_search"] = self._ef_search
        self.description = (
            f"IndexHNSWFlat(M={self.params['hnsw_m']}, efSearch={ef_search}, {self.metric})"
        )

    def release(self) -> None:
        """Free the faiss index once the searches are done; :attr:`vectors` stays valid.

        When the rows are the index's own storage (an exact index over a copy we made), the
        index is kept, since freeing it would free the rows. Searching after a release raises.
        """
        index = getattr(self, "_index", None)
        if index is None:
            return
        if self._x_in_index:
            return
        self._index = None

    def __repr__(self) -> str:
        return f"NeighborIndex({self.description}, n={self.n}, d={self.d})"

    # ------------------------------------------------------------------------- search

    def _search_block(
        self, q: np.ndarray, rows: np.ndarray, k: int, exclude_self: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            raise RuntimeError("this NeighborIndex was released; build a new one to search")
        k_search = k + 1 if exclude_self else k
        if self.index_used == "hnsw":
            ef = self._ef_search if self._ef_search is not None else max(64, 2 * k_search)
            # set on the index rather than passed as search(params=...): faiss.contrib.torch_utils
            # (imported by pytorch-metric-learning) replaces search() with one that has no params
            faiss.downcast_index(self._index).hnsw.efSearch = max(ef, k_search)
        with faiss_threads(self._threads):
            scores, ids = self._index.search(q, k_search)
        # np.asarray: under faiss.contrib.torch_utils results can come back as tensors
        ids = np.asarray(ids).astype(np.int64, copy=False)
        scores = np.asarray(scores).astype(np.float32, copy=False)
        if exclude_self:
            scores, ids = _drop_self(scores, ids, rows)
        missing = ids < 0
        if missing.any():
            scores[missing] = np.nan
        if self.metric == "l2":
            np.maximum(scores, 0, out=scores)  # NaN stays NaN
        return scores, ids

    def _prepare(self, k: Any, exclude_self: bool, chunk_size: Any) -> tuple[int, int]:
        if not isinstance(exclude_self, (bool, np.bool_)):
            raise ValueError(f"exclude_self must be True or False, got {exclude_self!r}")
        k = _check_k(k, self.n, bool(exclude_self))
        k_search = k + 1 if exclude_self else k
        if self._gpu and k_search > _GPU_MAX_K:
            raise ValueError(
                f"k={k} needs {k_search} neighbours from faiss, above the GPU limit of "
                f"{_GPU_MAX_K}; use a smaller k or use_gpu=False"
            )
        if chunk_size is None:
            chunk_size = max(1, min(DEFAULT_CHUNK_SIZE, _MAX_CHUNK_RESULTS // k_search))
        chunk_size = _check_int(chunk_size, "chunk_size", low=1)
        return k, chunk_size

    def iter_search(
        self,
        k: int,
        *,
        chunk_size: int | None = None,
        exclude_self: bool = True,
        progress: bool = False,
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Neighbours of every row of ``x``, one chunk of consecutive queries at a time.

        Arguments are checked when this is called, not at the first ``next()``.

        Args:
            k: neighbours per query (``1 <= k <= N-1`` with ``exclude_self``, else ``<= N``).
            chunk_size: queries per chunk (default 8192, fewer for very large ``k`` so a chunk
                holds at most about 4M results).
            exclude_self: leave each query's own row out of its neighbours.
            progress: show a tqdm bar over queries.

        Yields:
            ``(start, stop, scores, ids)`` for query rows ``start .. stop-1`` in order:
            ``scores (stop-start, k) float32`` and ``ids (stop-start, k) int64``, nearest first;
            id ``-1`` (score NaN) marks a missing neighbour.
        """
        k, chunk_size = self._prepare(k, exclude_self, chunk_size)
        parts = self._iter(k, chunk_size, bool(exclude_self), bool(progress))
        if not self._score_shift:
            return parts
        return ((a, b, self._caller_scores(s), i) for a, b, s, i in parts)

    def _iter(
        self, k: int, chunk_size: int, exclude_self: bool, progress: bool
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        from tqdm.auto import tqdm

        with tqdm(
            total=self.n,
            unit="query",
            desc="k-NN search",
            disable=None if progress else True,
            leave=False,
        ) as bar:
            for start in range(0, self.n, chunk_size):
                stop = min(start + chunk_size, self.n)
                rows = np.arange(start, stop, dtype=np.int64)
                scores, ids = self._search_block(self._x[start:stop], rows, k, exclude_self)
                bar.update(stop - start)
                yield start, stop, scores, ids

    def search(
        self, queries: np.ndarray | None, k: int, *, exclude_self: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of the rows ``queries`` of ``x`` (``None`` = every row), all at once.

        Holds ``len(queries)·k`` results; prefer :meth:`iter_search` for whole large sets.

        Args:
            queries: 1-D integer row indices into ``x`` (any order, repeats allowed), a boolean
                mask of length ``N``, or ``None`` for all rows.
            k: neighbours per query.
            exclude_self: leave each query's own row out of its neighbours.

        Returns:
            ``(scores (q, k) float32, ids (q, k) int64)``, nearest first, id ``-1`` (score NaN)
            for a missing neighbour.
        """
        scores, ids = self._search_raw(queries, k, exclude_self=exclude_self)
        return self._caller_scores(scores), ids

    def _search_raw(
        self, queries: np.ndarray | None, k: int, *, exclude_self: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the scores of the rescaled rows (see :attr:`source`)."""
        k, chunk_size = self._prepare(k, exclude_self, None)
        if queries is None:
            parts = list(self._iter(k, chunk_size, bool(exclude_self), False))
            if not parts:  # pragma: no cover - n >= 2 always
                return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
            return (
                np.concatenate([p[2] for p in parts]),
                np.concatenate([p[3] for p in parts]),
            )
        rows = _check_queries(queries, self.n)
        scores = np.empty((len(rows), k), dtype=np.float32)
        ids = np.empty((len(rows), k), dtype=np.int64)
        for start in range(0, len(rows), chunk_size):
            part = rows[start : start + chunk_size]
            s, i = self._search_block(self._x[part], part, k, bool(exclude_self))
            scores[start : start + len(part)] = s
            ids[start : start + len(part)] = i
        return scores, ids


# ----------------------------------------------------------------------------- reference


def knn_bruteforce(
    x: np.ndarray, k: int, *, metric: Metric = "l2", exclude_self: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The slow, obviously correct reference: all pairwise scores in float64, then ``topk``.

    ``O(N²)`` memory — for tests on tiny data only. Same conventions as :class:`NeighborIndex`
    (squared distances ascending for ``"l2"``, similarities descending otherwise; the query's own
    row is excluded by index, so duplicates of it still count as neighbours).

    Returns:
        ``(scores (N, k) float64, ids (N, k) int64)``, nearest first (ties in arbitrary order).
    """
    _check_choice(metric, "metric", _METRICS)
    arr, _, _ = _as_float32(x)  # same validation as the index
    k = _check_k(k, arr.shape[0], exclude_self)
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if metric == "cosine":
        norms = t.norm(dim=1, keepdim=True)
        if (norms == 0).any():
            _normalized(arr, owned=False)  # raises the index's error
        t = t / norms
    if metric == "l2":
        s = torch.cdist(t, t, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    else:
        s = t @ t.T
    if exclude_self:
        s.fill_diagonal_(math.inf if metric == "l2" else -math.inf)
    scores, ids = torch.topk(s, k, dim=1, largest=metric != "l2", sorted=True)
    return scores.numpy(), ids.numpy().astype(np.int64)
