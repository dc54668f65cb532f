"""``audit()``: every fairness metric of an embedding set, from one neighbour search."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from fairmetric import __version__
from fairmetric.audit.distributed import gather_shards
from fairmetric.audit.metrics import AUDIT_METRICS, AuditContext, Job, NeighbourStats
from fairmetric.embeddings import EmbeddingSet
from fairmetric.neighbors.index import IndexKind, Metric, NeighborIndex
from fairmetric.neighbors.search import iter_neighbours
from fairmetric.report.frame import (
    DEFAULT_MIN_GROUP_SIZE,
    Grouping,
    GroupMetric,
    check_min_group_size,
    group_metric_from_samples,
    intersect,
)
from fairmetric.report.result import AuditReport

__all__ = ["audit", "build_groupings", "DEFAULT_KS", "DEFAULT_MIN_GROUP_SIZE"]

DEFAULT_KS = (1, 2, 4, 8)


def build_groupings(
    data: EmbeddingSet, attributes: Sequence[str], *, intersectional: bool = True
) -> list[Grouping]:
    """One :class:`Grouping` per attribute, plus their intersection when there are several."""
    groupings = [
        Grouping(a, data.attribute(a), list(data.attribute_value_names[a])) for a in attributes
    ]
    if intersectional and len(attributes) >= 2:
        groupings.append(intersect(groupings))
    return groupings


def _check_inputs(
    data: EmbeddingSet, metric: str, drop_invalid: bool
) -> tuple[EmbeddingSet, list[int]]:
    bad = data.invalid_mask.copy()
    reason = "NaN or Inf values"
    if metric == "cosine":
        x = data.embeddings
        zero = ~bad & (np.einsum("ij,ij->i", x, x, dtype=np.float64) == 0)
        if zero.any():
            bad |= zero
            reason = "NaN/Inf values or zero vectors (which have no direction under cosine)"
    if not bad.any():
        return data, []
    idx = np.flatnonzero(bad)
    if drop_invalid and bad.all():
        raise ValueError(
            f"every one of the {idx.size} embedding rows has {reason}: dropping invalid rows "
            "(--drop-invalid) leaves nothing to audit; check how the embeddings were computed "
            "(e.g. a model that diverged during training, or a non-finite input)"
        )
    if not drop_invalid:
        raise ValueError(
            f"{idx.size} embedding row(s) have {reason} (first indices: {idx[:5].tolist()}); "
            "remove them, or pass drop_invalid=True (--drop-invalid) to drop them and have the "
            "report say so"
        )
    return data.subset(np.flatnonzero(~bad)), idx.tolist()


def recode_by_name(
    names_q: Sequence[str], names_g: Sequence[str], codes: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The gallery's ``codes`` (indices into ``names_g``) in the queries' code space (indices
    into ``names_q``), matched by name; names only the gallery has get codes after the
    queries'. Returns the codes and the names of the joint code space."""
    index = {str(n): i for i, n in enumerate(names_q)}
    for n in names_g:
        index.setdefault(str(n), len(index))
    lookup = np.array([index[str(n)] for n in names_g], dtype=np.int64)
    return lookup[np.asarray(codes, dtype=np.int64)], list(index)


def _align_gallery(
    data: EmbeddingSet, gallery: EmbeddingSet, attributes: Sequence[str], metric: str
) -> tuple[EmbeddingSet, np.ndarray, dict[str, np.ndarray]]:
    """The gallery checked, and its labels and attribute values in the queries' codes (matched
    by name; names only the gallery has get codes after the queries')."""
    if not isinstance(gallery, EmbeddingSet):
        raise ValueError(f"gallery must be an EmbeddingSet, got {type(gallery).__name__}")
    if gallery.dim != data.dim:
        raise ValueError(
            f"the gallery's embeddings have dimension {gallery.dim}, the queries' {data.dim}: "
            "embed both with the same model"
        )
    gallery, dropped = _check_inputs(gallery, metric, False)

    def mapped(names_q: Sequence[str], names_g: Sequence[str], codes: np.ndarray) -> np.ndarray:
        return recode_by_name(names_q, names_g, codes)[0]

    labels = mapped(data.label_names, gallery.label_names, gallery.labels)
    shared = set(np.asarray(data.labels).tolist()) & set(labels.tolist())
    if not shared:
        raise ValueError(
            "no label of the queries appears in the gallery (labels are matched by name): "
            "every query would miss; check that both sets name the classes the same way"
        )
    attrs = {}
    for a in attributes:
        if a not in gallery.attribute_names:
            raise ValueError(
                f"the gallery has no attribute {a!r} (it has: "
                f"{', '.join(gallery.attribute_names) or 'none'})"
            )
        attrs[a] = mapped(
            data.attribute_value_names[a], gallery.attribute_value_names[a], gallery.attribute(a)
        )
    return gallery, labels, attrs


def _gallery_chunks(
    index: NeighborIndex,
    queries: np.ndarray,
    k: int,
    progress: bool,
    lo: int = 0,
    hi: int | None = None,
):
    """Neighbours in the gallery of the query rows ``lo..hi-1`` (default all), in chunks
    (``.query_rows`` set)."""
    from fairmetric.neighbors.search import search_vectors

    step = 4096
    hi = len(queries) if hi is None else hi
    for start in tqdm(
        range(lo, hi, step), desc="gallery search", disable=None if progress else True
    ):
        nb = search_vectors(index, queries[start : min(start + step, hi)], k)
        nb.query_rows = np.arange(start, start + len(nb.ids), dtype=np.int64)
        yield nb


def _shard_chunks(index: NeighborIndex, lo: int, hi: int, k: int, progress: bool):
    """Neighbours of the indexed rows ``lo..hi-1`` among all rows (themselves excluded), in
    chunks: one process's share of a distributed audit."""
    from fairmetric.neighbors.search import search_rows

    step = 4096
    for start in tqdm(range(lo, hi, step), desc="search", disable=None if progress else True):
        yield search_rows(index, np.arange(start, min(start + step, hi), dtype=np.int64), k)


def _checked_index(
    nn_index: NeighborIndex,
    data: EmbeddingSet,
    attributes: Sequence[str],
    metric: str,
    index: str,
    threads: int | None,
    use_gpu: bool | None,
    seed: int,
    k_search: int,
) -> tuple[NeighborIndex, dict[str, Any]]:
    """An approximate index measured against exact search (:mod:`.agreement`; HNSW calibrated):
    kept when every group's Recall@1 is within the tolerance; otherwise ``"auto"`` falls back to
    exact search (with a warning) and a forced index is refused."""
    from fairmetric.audit.agreement import IndexDisagrees, check_index, refusal

    ivf = nn_index.index_used in ("ivf", "ivfpq")
    limit = nn_index.max_useful_nprobe if ivf and index == "auto" else None
    result = check_index(nn_index, data, attributes, seed=seed, max_nprobe=limit, k=k_search)
    if result["passed"]:
        if ivf and result["nprobe_tried"][-1] > nn_index.max_useful_nprobe:
            warnings.warn(
                f"IVF needs nprobe={result['nprobe_tried'][-1]} of {nn_index.params['nlist']} "
                "lists to keep the audit's promise on this data, which is slower than exact "
                "search: consider index='exact'",
                stacklevel=3,
            )
        return nn_index, result
    message = refusal(result)
    if index != "auto":
        raise IndexDisagrees(message)
    warnings.warn(f"{message}; index='auto' uses exact search instead", stacklevel=3)
    nn_index.release()
    exact = NeighborIndex(
        data.embeddings, metric=metric, index="exact", threads=threads, use_gpu=use_gpu, seed=seed
    )
    return exact, {**result, "fallback": "exact"}


_KIND_NAMES = {"exact": "exact search", "ivf": "IVF-Flat", "ivfpq": "IVF-PQ", "hnsw": "HNSW"}


def _index_choice(
    index: str, nn_index: NeighborIndex, agreement: dict[str, Any] | None, exact_max: int
) -> str:
    """What the neighbour search used, and why, in one sentence for the report."""
    n = nn_index.n
    if agreement is None:
        kind = _KIND_NAMES[nn_index.index_used]
        if nn_index.index_used != "exact":  # a gallery's index: not checked (docs/audit.md)
            how = "picked by auto" if index == "auto" else f"as asked (--index {index})"
            return (
                f"{kind} over the gallery ({nn_index.description}), {how}; not checked against "
                "exact search (gallery audits are not checked yet: use --index exact where "
                "the promise matters)"
            )
        if index != "auto":
            return f"{kind}, as asked (--index {index})"
        return (
            f"exact search, picked by auto: N = {n:,} <= {exact_max:,} rows (exact_max), where "
            "exact search is fast enough"
        )
    how = index if index != "auto" else "auto"
    tried = agreement.get("nprobe_tried") or agreement.get("ef_search_tried") or []
    effort = nn_index.description
    if agreement.get("fallback") == "exact":
        return (
            f"exact search: auto built an approximate index above {exact_max:,} rows, but at "
            f"its most effort ({effort}) it did not keep Recall@1 of every group within "
            f"{agreement['tolerance']} of exact search on {agreement['sample_queries']:,} sampled "
            "queries, so the audit searched exactly"
        )
    why = (
        f"N = {n:,} > {exact_max:,} rows (exact_max): compressed codes scanned with SIMD, "
        "re-scored exactly, cheaper than exact search even when every list is visited; "
        if how == "auto"
        else f"as asked (--index {index}); "
    )
    return (
        f"{_KIND_NAMES[nn_index.index_used]}, {why}calibrated to {effort} in {len(tried)} "
        f"step(s): the least effort tried that keeps every group's Recall@1 within "
        f"{agreement['tolerance']} of exact search (one-sided 95%) on "
        f"{agreement['sample_queries']:,} sampled queries"
    )


def _process_group(distributed: bool | None) -> tuple[int, int]:
    """``(rank, world size)`` of a distributed audit, ``(0, 1)`` otherwise."""
    if distributed is False:
        return 0, 1
    import torch.distributed as dist

    ready = dist.is_available() and dist.is_initialized()
    if not ready:
        if distributed:
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group (run "
                "under torchrun and call torch.distributed.init_process_group first; the "
                "fairmetric command line does both)"
            )
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _projection(
    x: np.ndarray, data: EmbeddingSet, attributes: Sequence[str], points: int, seed: int
) -> dict[str, Any] | None:
    if points <= 0 or len(x) < 3:
        return None
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(x), size=min(points, len(x)), replace=False))
    sample = x[take].astype(np.float64)
    sample -= sample.mean(axis=0)
    _, vecs = np.linalg.eigh(sample.T @ sample)  # principal axes, ascending eigenvalues
    xy = sample @ vecs[:, ::-1][:, :2]
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((len(xy), 2 - xy.shape[1]))])
    return {
        "xy": xy,
        "method": "PCA",
        "attributes": {
            a: np.array(data.attribute_value_names[a])[data.attribute(a)[take]] for a in attributes
        },
    }


def _small_groups(groupings: list[Grouping], min_group_size: int) -> dict[str, dict[str, int]]:
    """``{grouping: {group: samples}}`` of the groups with fewer than ``min_group_size`` samples
    (every grouping listed, an empty object when none is small)."""
    out: dict[str, dict[str, int]] = {}
    for g in groupings:
        codes, counts = np.unique(np.asarray(g.codes), return_counts=True)
        out[g.name] = {g.names[c]: int(n) for c, n in zip(codes, counts) if n < min_group_size}
    return out


def audit(
    data: EmbeddingSet,
    *,
    attributes: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    metric: Metric = "cosine",
    index: IndexKind = "auto",
    bootstrap: int = 200,
    seed: int = 0,
    intersectional: bool = True,
    map_k: int | None = None,
    homophily_k: int = 10,
    leakage_k: int = 10,
    linear_probe: bool = True,
    pair_partners: int = 8,
    uniformity_t: float = 2.0,
    threads: int | None = None,
    use_gpu: bool | None = None,
    drop_invalid: bool = False,
    projection_points: int = 2000,
    progress: bool = False,
    source: str | None = None,
    index_options: dict[str, Any] | None = None,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    gallery: EmbeddingSet | None = None,
    distributed: bool | None = None,
) -> AuditReport | None:
    """Audit an embedding set for subgroup gaps (METHODS.md §1).

    One k-NN search over the whole set (query excluded from its own neighbours) serves Recall@k,
    MAP@R, neighbourhood homophily and k-NN attribute leakage, sliced per subgroup of every
    attribute (and of their intersection); alignment and uniformity come from closed forms and
    seeded pair samples; the linear-probe leakage from a cross-validated ridge probe.

    Neighbours are ranked in float64 (:func:`~fairmetric.neighbors.search.iter_neighbours`), so
    float32 near-ties are resolved exactly, and real ties (equal float64 scores, e.g. duplicate
    rows) get tie-averaged credit (:mod:`fairmetric.neighbors.ties`): the numbers do not depend on
    ``k``, the index, the CPU or the row order. ``metadata["tied_queries"]`` counts the queries
    where the tie rule decided something.

    Args:
        data: the embeddings with labels and attributes.
        attributes: attributes to audit (default: all).
        ks: Recall@k cut-offs.
        metric: ``"cosine"`` (default; alignment and uniformity then use L2-normalised
            embeddings, as Wang & Isola define them), ``"l2"`` or ``"ip"``.
        index: ``"auto"``, ``"exact"``, ``"ivf"`` or ``"hnsw"`` (see :class:`NeighborIndex`).
        bootstrap: bootstrap replicates for intervals (0 to skip), stratified within groups.
        seed: seed of bootstrap, pair samples, probe folds and the projection sample.
        intersectional: also audit the intersection of the attributes when there are several.
        map_k: neighbours used for MAP@R (default: the largest class's ``R``, at most 1000, so
            MAP@R is exact unless a class has over 1000 samples); with a smaller value, ranks
            beyond it count as misses (PML's convention with an explicit ``k``).
        homophily_k: neighbours for homophily.
        leakage_k: neighbours voting in the k-NN attribute-leakage probe.
        linear_probe: also measure leakage with a cross-validated linear probe.
        pair_partners: sampled partners per sample for uniformity in large groups.
        uniformity_t: the ``t`` of uniformity.
        threads: faiss threads (default: faiss's own).
        use_gpu: GPU faiss (None: when available).
        drop_invalid: drop NaN/Inf rows (and zero rows under cosine) instead of failing; the
            report lists how many.
        projection_points: points in the 2-D projection kept for plots (0: none).
        progress: progress bars for the search and the bootstrap.
        source: where the embeddings came from (recorded in the metadata).
        index_options: extra :class:`NeighborIndex` options (``nlist``, ``nprobe``, ...).
        gallery: a separate gallery (PML's reference set, OML's gallery): the neighbour
            metrics (Recall@k, MAP@R, homophily, k-NN leakage) then rank the gallery for each
            sample of ``data`` (the queries; none excluded), with labels and attribute values
            matched by name; R of MAP@R and the homophily base rates count the gallery. The
            other metrics describe ``data``.
        min_group_size: a group whose value rests on fewer samples (its ``count``) is still
            reported per group, but kept out of the gap summaries (difference, ratio, worst
            group, min, max) and so out of ``--fail-if`` gates; each metric lists such groups
            with the reason under ``excluded_groups``, and ``metadata["small_groups"]`` lists
            the groups with fewer samples than this. Default 10: below it one sample moves a
            mean by more than 0.1 and the bootstrap intervals degenerate (one sample:
            ``[v, v]``), so a single unlucky query could decide a gap
            (:data:`~fairmetric.report.frame.DEFAULT_MIN_GROUP_SIZE`). 1 compares every group.
        distributed: split the neighbour search across the processes of the initialised
            ``torch.distributed`` process group (under ``torchrun``; every process calls
            ``audit`` with the same data): each searches a contiguous shard of the queries
            against the whole index, the per-query results are gathered, and rank 0 computes
            the metrics, the bootstrap and the report, which equals the single-process audit
            exactly. ``None``: when a group of more than one process is initialised.

    Returns:
        An :class:`AuditReport`; ``None`` on the ranks other than 0 of a distributed audit.
    """
    t0 = time.perf_counter()
    if not isinstance(data, EmbeddingSet):
        raise TypeError(f"audit() takes an EmbeddingSet, got {type(data).__name__}")
    attributes = list(data.attribute_names if attributes is None else attributes)
    for a in attributes:
        data.attribute(a)  # clear error listing the valid names
    if len(set(attributes)) != len(attributes):
        raise ValueError(f"attributes listed twice: {attributes}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    min_group_size = check_min_group_size(min_group_size)
    data, dropped = _check_inputs(data, metric, drop_invalid)
    n = len(data)
    labels = data.labels
    counts = np.bincount(labels)
    map_k_given = map_k is not None
    if map_k is None:
        map_k = int(min(max(counts.max() - 1, 1), 1000))
    settings = {
        "ks": ks,
        "metric": metric,
        "map_k": map_k,
        "homophily_k": homophily_k,
        "leakage_k": leakage_k,
        "linear_probe": linear_probe,
        "pair_partners": pair_partners,
        "uniformity_t": uniformity_t,
        "seed": seed,
    }
    ctx = AuditContext(
        data=data,
        x=data.embeddings,
        labels=labels,
        attributes=attributes,
        groupings=[],
        settings=settings,
    )
    plugins = [cls() for _, cls in AUDIT_METRICS.items()]
    g_labels = g_attributes = None
    if gallery is not None:
        gallery, g_labels, g_attributes = _align_gallery(data, gallery, attributes, metric)
        if not map_k_given:  # R of MAP@R counts the gallery's samples of the class
            map_k = int(min(max(np.bincount(g_labels).max(), 1), 1000, len(gallery)))
            settings["map_k"] = map_k
    stats = NeighbourStats(
        labels,
        {a: data.attribute(a) for a in attributes},
        ks=ks,
        homophily_k=homophily_k,
        leakage_k=leakage_k,
        gallery_labels=g_labels,
        gallery_attributes=g_attributes,
    )
    ctx.stats = stats
    k_search = max([1, *(m.k_needed(ctx) for m in plugins)])
    if gallery is not None and k_search > len(gallery):
        raise ValueError(
            f"the audit needs {k_search} neighbours per query but the gallery holds "
            f"{len(gallery)} embeddings; lower --k / --homophily-k / --leakage-k"
        )
    if gallery is None and k_search >= n:
        asked = {"ks": max(ks), "map_k": map_k, "homophily_k": homophily_k, "leakage_k": leakage_k}
        too_big = [f"{name}={value}" for name, value in asked.items() if value >= n]
        raise ValueError(
            f"the audit needs {k_search} neighbours per query "
            f"({', '.join(too_big or [f'{k}={v}' for k, v in asked.items()])}) but there are only "
            f"{n} embeddings; audit more embeddings, or lower them below {n} (fairmetric audit: "
            "--k, --homophily-k, --leakage-k; audit(): ks, map_k, homophily_k, leakage_k)"
        )
    ctx.k_search = k_search

    # -- one neighbour search serves every neighbour metric and every group ----------------
    options = dict(index_options or {})
    if gallery is None and index in ("auto", "ivf", "ivfpq") and "nprobe" not in options:
        # IVF starts from one list and is calibrated on the audit's own promise below
        options["nprobe"] = 1
    t_index = time.perf_counter()
    nn_index = NeighborIndex(
        data.embeddings if gallery is None else gallery.embeddings,
        metric=metric,
        index=index,
        threads=threads,
        use_gpu=use_gpu,
        seed=seed,
        **options,
    )
    index_agreement = None
    if nn_index.index_used != "exact" and gallery is None:
        nn_index, index_agreement = _checked_index(
            nn_index, data, attributes, metric, index, threads, use_gpu, seed, k_search
        )
    exact_max = int(options.get("exact_max", 100_000))
    index_choice = _index_choice(index, nn_index, index_agreement, exact_max)
    t_search = time.perf_counter()
    t_index = t_search - t_index
    reranked = expanded = 0
    rank, world = _process_group(distributed)
    lo, hi = n * rank // world, n * (rank + 1) // world  # this process's queries
    if gallery is None and world == 1:
        chunks = iter_neighbours(nn_index, k_search, progress=progress)
    elif gallery is None:
        chunks = _shard_chunks(nn_index, lo, hi, k_search, progress)
    else:
        chunks = _gallery_chunks(nn_index, data.embeddings, k_search, progress, lo, hi)
    for nb in chunks:
        stats.add(nb, rows=getattr(nb, "query_rows", None))
        for m in plugins:
            m.update(ctx, nb)
        reranked += int(nb.reranked.sum())
        expanded += int(nb.expanded.sum())
    if world > 1:
        reranked, expanded = gather_shards(stats, lo, hi, reranked, expanded)
        if rank != 0:  # rank 0 computes the metrics, the bootstrap and the report
            nn_index.release()
            return None
    t_search = time.perf_counter() - t_search

    # the rows the index searched: unit-norm under cosine (alignment and uniformity are then
    # measured on the hypersphere, as Wang & Isola define them), the embeddings otherwise
    if gallery is None:
        x = nn_index.vectors
    else:  # the queries' rows, prepared as the index prepares its own
        nn_index.release()
        nn_index = NeighborIndex(data.embeddings, metric=metric, index="exact", use_gpu=False)
        x = nn_index.vectors
    ctx.x = x
    nn_index.release()  # the index is not needed for the metrics: do not hold both at once
    # After faiss's OpenMP search, multi-threaded OpenBLAS calls spin against idle OpenMP threads
    # on small machines (a 2000x128 SVD took 4.4 s instead of 0.07 s on 2 cores): the matrix work
    # below is small, so it runs on single-threaded BLAS.
    with threadpool_limits(1, user_api="blas"):
        groupings = build_groupings(data, attributes, intersectional=intersectional)
        ctx.groupings = groupings
        common = {
            "groupings": groupings,
            "n_boot": bootstrap,
            "seed": seed,
            "min_group_size": min_group_size,
        }
        metrics: dict[str, GroupMetric] = {}
        # every registered metric (fairmetric.audit.metrics): whole-set entries in registration
        # order, then each attribute's entries
        jobs: list[Job] = [job for m in plugins for job in m.jobs(ctx)]
        for g in groupings[: len(attributes)]:
            for m in plugins:
                jobs.extend(m.attribute_jobs(ctx, g))
        chance: dict[str, float] = ctx.metadata.pop("leakage_chance", {})

        t_metrics = time.perf_counter()
        for name, kwargs in tqdm(
            jobs, desc="metrics", disable=None if progress else True, leave=False
        ):
            metrics[name] = group_metric_from_samples(name, **{**common, **kwargs})
        t_metrics = time.perf_counter() - t_metrics

        homophily_plot = {}
        rng = np.random.default_rng(seed)
        for a in attributes:
            h = stats.homophily[a]
            codes = data.attribute(a)
            per = {}
            for v in np.unique(codes):
                vals = h[(codes == v) & ~np.isnan(h)]
                if vals.size > 5000:
                    vals = rng.choice(vals, 5000, replace=False)
                per[data.attribute_value_names[a][v]] = vals
            homophily_plot[a] = per

        metadata = {
            "n": n,
            "dim": data.dim,
            "classes": int(len(np.unique(labels))),
            "k": ks,
            "k_search": k_search,
            "metric": metric,
            "index": nn_index.index_used,
            "index_description": nn_index.description,
            "index_params": nn_index.params,
            "index_choice": index_choice,
            "index_agreement": index_agreement,
            "tied_queries": stats.tied_queries,
            "tie_rule": "tie-averaged credit (expected value under a random order of tied "
            "neighbours)",
            "reranked_queries": reranked,
            "boundary_searches": expanded,
            "seed": seed,
            "bootstrap": bootstrap,
            "level": 0.95,
            "attributes": attributes,
            "groupings": [g.name for g in groupings],
            "homophily_k": homophily_k,
            "leakage_k": leakage_k,
            "leakage_chance": chance,
            "pair_partners": pair_partners,
            "uniformity_t": uniformity_t,
            "dropped_invalid": {"count": len(dropped), "first_indices": dropped[:20]},
            "min_group_size": min_group_size,
            "small_groups": _small_groups(groupings, min_group_size),
            "gallery": None if gallery is None else {"n": len(gallery)},
            "source": source or data.metadata.get("source") or data.metadata.get("dataset"),
            "fairmetric_version": __version__,
            **ctx.metadata,
            "seconds": {
                "index": round(t_index, 3),
                "search": round(t_search, 3),
                "metrics": round(t_metrics, 3),
                "total": round(time.perf_counter() - t0, 3),
            },
        }
        return AuditReport(
            metrics=metrics,
            metadata=metadata,
            projection=_projection(x, data, attributes, projection_points, seed),
            homophily=homophily_plot,
        )
