"""The audit's promise for approximate indexes: per-group Recall@1 within ``tolerance`` of exact
search, measured on the data before the search, never assumed.

For every group of every audited attribute, up to ``per_group`` of its rows (a seeded sample; all
of them when the group is smaller) are searched twice, by the approximate index and by brute
force (:func:`~fairmetric.neighbors.search.search_rows_exact`, the same float64 re-ranking and
tie rule), and their Recall@1 hits compared (a group on the rows sampled for it alone, which are
a uniform sample of it; the brute-force search runs once over the union). ``|ΔRecall@1|`` of a group is at most the share of
its queries whose hit differs; the check's bound is the one-sided 95% Clopper–Pearson upper bound
of that share (for a group searched in full, the measured difference itself: nothing is
sampled). The index keeps its promise when every group's bound is within ``tolerance``.

An index is calibrated with it: IVF's ``nprobe`` and HNSW's ``efSearch`` double until the check
passes (or a limit is reached). IVF-PQ has two knobs; each step doubles the one that the
disagreeing queries point at: ``nprobe`` when most of them had their exact nearest neighbour in a
list the search did not visit, ``refine_factor`` (candidates re-scored exactly) when the list was
visited but the compressed codes ranked the neighbour too low. The sampled queries are searched as
deep as the audit searches (``k``), so the candidates re-scored are the audit's. The check is on
what the audit reports, Recall@1 per group, not on finding every exact nearest neighbour: a query
whose true nearest neighbour is missed but whose found neighbour is of the same class scores the
same hit, so far fewer lists are usually needed than for neighbour recall. :func:`check_index`
returns the measurement, which the audit records in ``metadata["index_agreement"]``; the audit
refuses an index that fails (``"auto"`` falls back to exact search instead)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import beta

from fairmetric.audit.metrics import NeighbourStats
from fairmetric.embeddings import EmbeddingSet
from fairmetric.neighbors.index import NeighborIndex
from fairmetric.neighbors.search import search_rows, search_rows_exact

__all__ = ["DEFAULT_TOLERANCE", "IndexDisagrees", "agreement", "check_index", "refusal"]

#: the largest per-group |ΔRecall@1| against exact search the audit accepts from an index
DEFAULT_TOLERANCE = 0.005
#: sampled queries per group (one-sided 95% bound with no disagreement: 3/1000)
DEFAULT_PER_GROUP = 1000
#: the largest HNSW efSearch the calibration tries
MAX_EF_SEARCH = 4096
#: the largest IVF-PQ refine_factor the calibration tries
MAX_REFINE_FACTOR = 32


class IndexDisagrees(ValueError):
    """An approximate index whose measured per-group Recall@1 is not within the tolerance."""


def _upper(x: int, m: int, level: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound of a share of ``x`` in ``m``."""
    return 1.0 if x >= m else float(beta.ppf(level, x + 1, m - x))


def _samples(
    data: EmbeddingSet, attributes: Sequence[str], per_group: int, seed: int
) -> tuple[np.ndarray, dict[str, dict[int, np.ndarray]]]:
    """The union of the per-group samples (sorted, unique) and, per attribute and group code,
    the rows sampled for that group: up to ``per_group`` of it, a seeded uniform sample without
    replacement (all rows of a smaller group)."""
    rng = np.random.default_rng([seed, 7])
    per: dict[str, dict[int, np.ndarray]] = {}
    for a in attributes:
        codes = data.attribute(a)
        per[a] = {}
        for g in np.unique(codes):
            members = np.flatnonzero(codes == g)
            if len(members) > per_group:
                members = np.sort(rng.choice(members, per_group, replace=False))
            per[a][int(g)] = members
    chosen = [m for groups in per.values() for m in groups.values()]
    if not chosen:  # no attribute: a sample of the whole set
        n = len(data)
        return np.sort(rng.choice(n, min(n, per_group), replace=False)), per
    return np.unique(np.concatenate(chosen)), per


def sample_rows(
    data: EmbeddingSet, attributes: Sequence[str], per_group: int, seed: int
) -> np.ndarray:
    """The sampled rows (sorted, unique): up to ``per_group`` of every group of every
    attribute, a seeded uniform sample without replacement (all rows of a smaller group)."""
    return _samples(data, attributes, per_group, seed)[0]


def _hits(nb: Any, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    stats = NeighbourStats(labels, {}, ks=(1,), homophily_k=1, leakage_k=1)
    stats.add(nb)
    return stats.hits[1][rows]


def agreement(
    index: NeighborIndex,
    data: EmbeddingSet,
    attributes: Sequence[str],
    *,
    per_group: int = DEFAULT_PER_GROUP,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    k: int = 1,
    exact: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Per-group Recall@1 of ``index`` against brute force on sampled rows (module docstring).

    ``k``: neighbours the index is asked for per query (the audit's depth; Recall@1 is read from
    the first). ``exact``: the brute-force result of the sample, when already measured
    (calibration).
    """
    least = int(np.ceil(np.log(0.05) / np.log1p(-tolerance)))  # 0 of m differ passes
    if per_group < least:
        raise ValueError(
            f"per_group={per_group} sampled queries cannot show |ΔRecall@1| <= {tolerance} at "
            f"95% even when none differs; sample at least {least}"
        )
    labels = np.asarray(data.labels, dtype=np.int64)
    rows, per = _samples(data, attributes, per_group, seed)
    approx = _hits(search_rows(index, rows, min(k, index.n - 1)), labels, rows)
    if exact is None:
        nb = search_rows_exact(index, rows, 1)
        exact = {"hits": _hits(nb, labels, rows), "first": nb.ids[:, 0]}
    exact_hits = exact["hits"]
    differ = approx != exact_hits
    groups: dict[str, dict[str, Any]] = {}
    passed = True
    for a in attributes:
        codes = data.attribute(a)
        names = data.attribute_value_names[a]
        groups[a] = {}
        for g, own in per[a].items():
            # only the rows sampled for this group: a uniform sample of it (rows sampled for
            # another attribute's groups would weight its members unequally)
            in_group = np.searchsorted(rows, own)
            m = len(own)
            whole = m == int((codes == g).sum())
            x = int(differ[in_group].sum())
            delta = float(approx[in_group].mean() - exact_hits[in_group].mean())
            bound = abs(delta) if whole else _upper(x, m)
            ok = bound <= tolerance
            passed &= ok
            groups[a][names[int(g)]] = {
                "queries": m,
                "whole_group": whole,
                "differing": x,
                "recall@1_index": float(approx[in_group].mean()),
                "recall@1_exact": float(exact_hits[in_group].mean()),
                "bound": bound,
                "ok": ok,
            }
    return {
        "index": index.description,
        "tolerance": tolerance,
        "sample_queries": int(len(rows)),
        "per_group": per_group,
        "passed": bool(passed),
        "groups": groups,
        "_exact": exact,
        "_differ": (rows[differ], exact["first"][differ]),
    }


def _ivfpq_step(
    index: NeighborIndex, result: dict[str, Any], nprobe_limit: int
) -> tuple[str, int] | None:
    """The IVF-PQ knob to double next and its new value (module docstring), or ``None`` when
    both are at their limits."""
    nprobe, factor = int(index.params["nprobe"]), int(index.params["refine_factor"])
    rows, first = result["_differ"]
    found = first >= 0
    need = index.probes_needed(rows[found], first[found]) if found.any() else first[:0]
    list_misses = int((need > nprobe).sum())
    lists = list_misses >= len(need) - list_misses
    can_lists, can_factor = nprobe < nprobe_limit, factor < MAX_REFINE_FACTOR
    if can_lists and (lists or not can_factor):
        return "nprobe", min(2 * nprobe, nprobe_limit)
    if can_factor:
        return "refine_factor", min(2 * factor, MAX_REFINE_FACTOR)
    return None


def check_index(
    index: NeighborIndex,
    data: EmbeddingSet,
    attributes: Sequence[str],
    *,
    per_group: int = DEFAULT_PER_GROUP,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    max_nprobe: int | None = None,
    k: int = 1,
) -> dict[str, Any]:
    """Measure and calibrate an approximate index's agreement with exact search: IVF's
    ``nprobe`` and HNSW's ``efSearch`` double from their current values until every group
    agrees (IVF-PQ: ``nprobe`` or ``refine_factor``, module docstring); returns the measurement
    (``passed`` says whether it keeps the promise).

    ``max_nprobe``: the most IVF lists to try (default: all). ``k``: the neighbours per query
    the index will be asked for (the check searches as deep).
    """

    def measure(exact: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        return agreement(
            index,
            data,
            attributes,
            per_group=per_group,
            tolerance=tolerance,
            seed=seed,
            k=k,
            exact=exact,
        )

    def done(result: dict[str, Any]) -> dict[str, Any]:
        result["search_depth"] = k
        result.pop("_exact")
        result.pop("_differ")
        return result

    result = measure()
    if index.index_used == "ivfpq":
        limit = int(index.params["nlist"]) if max_nprobe is None else max_nprobe
        tried = [(int(index.params["nprobe"]), int(index.params["refine_factor"]))]
        while not result["passed"]:
            step = _ivfpq_step(index, result, limit)
            if step is None:
                break
            (index.set_nprobe if step[0] == "nprobe" else index.set_refine_factor)(step[1])
            tried.append((int(index.params["nprobe"]), int(index.params["refine_factor"])))
            result = measure(result["_exact"])
        result["nprobe_tried"] = [t[0] for t in tried]
        result["refine_factor_tried"] = [t[1] for t in tried]
        return done(result)
    if index.index_used == "ivf":  # the effort knob, its start, its limit and its setter
        knob, value = "nprobe", int(index.params["nprobe"])
        limit = int(index.params["nlist"]) if max_nprobe is None else max_nprobe
        setter = index.set_nprobe
    elif index.index_used == "hnsw":
        knob, value = "ef_search", index.params["ef_search"]
        # the beam the check's one-neighbour searches used: the default's floor (the audit's
        # deeper searches then get at least this beam)
        value = value if isinstance(value, int) else 64
        limit, setter = MAX_EF_SEARCH, index.set_ef_search
    else:
        return done(result)
    tried = [value]
    while not result["passed"] and value < limit:
        value = min(2 * value, limit)
        setter(value)
        tried.append(value)
        result = measure(result["_exact"])
    result[f"{knob}_tried"] = tried
    return done(result)


def refusal(result: dict[str, Any]) -> str:
    """The message that refuses an index whose agreement check failed."""
    worst = max(
        ((a, g, v) for a, gs in result["groups"].items() for g, v in gs.items()),
        key=lambda t: t[2]["bound"],
    )
    a, g, v = worst
    return (
        f"the index {result['index']} does not keep the audit's promise: for {a}={g}, Recall@1 "
        f"{v['recall@1_index']:.4f} against {v['recall@1_exact']:.4f} by exact search on "
        f"{v['queries']} sampled queries ({v['differing']} differ; |difference| up to "
        f"{v['bound']:.4f} at 95%, more than the tolerance {result['tolerance']}); use "
        "index='exact' (--index exact), or give the approximate index more effort "
        "(index_options nprobe / ef_search)"
    )
