"""The audit across processes (``torchrun``): each process searches a contiguous shard of the
queries, and :func:`gather_shards` puts the per-query results back together in row order on
every process, so rank 0 computes the metrics from exactly the arrays one process would have.

The per-query arrays of :class:`~fairmetric.audit.metrics.NeighbourStats` (Recall@k hits, AP,
homophily, the k-NN vote) hold, on each process, the values of its own rows ``lo..hi-1``; the
gathered array is the concatenation of the shards in rank order. The search of one query does
not depend on which other queries share its chunk (candidates are re-ranked in float64 and
near-ties at the cut-off searched exactly), so the gathered arrays equal a single process's bit
for bit. Counters (tied queries, re-ranked and expanded queries) are summed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["gather_shards", "join_process_group", "leave_process_group"]

#: whether join_process_group created the default process group (leave_process_group ends it)
_JOINED = False


def _per_query_arrays(stats: Any) -> list[tuple[dict[Any, np.ndarray] | None, Any]]:
    """``(container, key)`` of every per-query array of ``stats`` (``container`` ``None``:
    the attribute ``key`` of ``stats`` itself)."""
    out: list[tuple[dict[Any, np.ndarray] | None, Any]] = [(None, "ap")]
    out += [(stats.hits, k) for k in stats.hits]
    out += [(stats.homophily, a) for a in stats.homophily]
    out += [(stats.vote, a) for a in stats.vote]
    return out


def gather_shards(stats: Any, lo: int, hi: int, reranked: int, expanded: int) -> tuple[int, int]:
    """Replace every per-query array of ``stats`` by the rows of all processes (this one's
    are ``lo..hi-1``) and sum the counters; returns the summed ``(reranked, expanded)``.

    A collective call: every process of the default group must make it.
    """
    import torch.distributed as dist

    arrays = _per_query_arrays(stats)
    mine = {
        "lo": lo,
        "hi": hi,
        "arrays": [
            (getattr(stats, key) if box is None else box[key])[lo:hi] for box, key in arrays
        ],
        "counts": (int(stats.tied_queries), int(reranked), int(expanded)),
    }
    shards: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(shards, mine)
    shards.sort(key=lambda s: s["lo"])
    n = len(stats.labels)
    covered = [(s["lo"], s["hi"]) for s in shards]
    if (
        covered[0][0] != 0
        or covered[-1][1] != n
        or any(a[1] != b[0] for a, b in zip(covered, covered[1:]))
    ):
        raise RuntimeError(f"the processes' query shards {covered} do not cover rows 0..{n - 1}")
    for i, (box, key) in enumerate(arrays):
        full = np.concatenate([s["arrays"][i] for s in shards])
        if box is None:
            setattr(stats, key, full)
        else:
            box[key] = full
    totals = np.sum([s["counts"] for s in shards], axis=0)
    stats.tied_queries = int(totals[0])
    return int(totals[1]), int(totals[2])


def join_process_group() -> tuple[int, int]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), initialise the default process
    group if nobody has (NCCL when CUDA is available, Gloo otherwise); returns ``(rank, world
    size)``, ``(0, 1)`` outside ``torchrun``."""
    import os

    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        global _JOINED
        _JOINED = True
    return dist.get_rank(), dist.get_world_size()


def leave_process_group() -> None:
    """After a successful distributed audit: wait for every process (rank 0 writes the reports),
    then destroy the process group :func:`join_process_group` created (none else)."""
    global _JOINED
    if not _JOINED:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _JOINED = False
