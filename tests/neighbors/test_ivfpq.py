"""The compressed IVF index (``index="ivfpq"``): 4-bit PQ fast-scan codes whose best candidates are
re-scored exactly, its two effort knobs, the list each query must visit, and ``auto``'s choice.
Checked against brute force on small data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.neighbors import NeighborIndex, search_rows
from fairmetric.neighbors.index import knn_bruteforce
from fairmetric.neighbors.ivf import default_nlist_pq, default_pq_m


def _clustered(n: int = 3000, d: int = 16, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    return (centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=(n, d))).astype(
        np.float32
    )


def test_defaults_follow_the_size_and_dimension():
    assert default_pq_m(128) == 32 and default_pq_m(16) == 4 and default_pq_m(3) == 1
    assert default_pq_m(30) == 6  # the largest divisor of 30 up to 7
    assert default_nlist_pq(1_000_000) == 1000 and default_nlist_pq(2000) == 45
    assert default_nlist_pq(100) == 2  # at least 39 training rows per list


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_every_list_and_every_candidate_rescored_is_exact_search(metric):
    """With every list visited and more candidates re-scored than there are rows, the compressed
    codes only pre-sort: the neighbours and their float32 scores are brute force's."""
    x = _clustered(n=600, d=16)
    index = NeighborIndex(x, metric=metric, index="ivfpq", nlist=8, nprobe=8, refine_factor=100)
    scores, ids = index.search(None, 5)
    ref_scores, ref_ids = knn_bruteforce(x, 5, metric=metric)
    # the same sets of neighbours (order inside float32 near-ties aside)
    assert np.mean(np.sort(ids, axis=1) == np.sort(ref_ids, axis=1)) > 0.999
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    # after the float64 re-ranking the first neighbour is brute force's exactly
    nb = search_rows(index, None, 1)
    np.testing.assert_array_equal(nb.ids[:, 0], ref_ids[:, 0])


def test_params_description_and_the_effort_setters():
    x = _clustered()
    index = NeighborIndex(x, index="ivfpq", nlist=20, nprobe=2)
    p = index.params
    assert index.index_used == p["index"] == "ivfpq"
    assert (p["nlist"], p["nprobe"], p["pq_m"], p["pq_bits"], p["refine_factor"]) == (
        20,
        2,
        4,
        4,
        4,
    )
    json.dumps(p)
    assert index.description == "IndexIVFPQFastScan(nlist=20, nprobe=2, PQ4x4, re-scored 4x, l2)"
    index.set_nprobe(20)
    index.set_refine_factor(8)
    assert index.params["nprobe"] == 20 and index.params["refine_factor"] == 8
    assert "nprobe=20" in index.description and "re-scored 8x" in index.description
    with pytest.raises(ValueError, match="refine_factor"):
        index.set_refine_factor(0)
    with pytest.raises(ValueError, match="refine_factor applies to an IVF-PQ index"):
        NeighborIndex(x, index="exact").set_refine_factor(2)
    # the rows searched are the index's own storage (no second float32 copy under cosine)
    cos = NeighborIndex(x, metric="cosine", index="ivfpq", nlist=20, nprobe=2)
    np.testing.assert_allclose(np.linalg.norm(cos.vectors, axis=1), 1, rtol=1e-6)
    assert cos._x_in_index


def test_more_effort_finds_more_true_neighbours():
    x = _clustered(n=4000, d=32, clusters=400)
    _, ref = knn_bruteforce(x, 1)
    index = NeighborIndex(x, index="ivfpq", nlist=60, nprobe=1, refine_factor=1)
    recall = []
    for nprobe, factor in ((1, 1), (8, 1), (8, 8), (60, 16)):
        index.set_nprobe(nprobe)
        index.set_refine_factor(factor)
        recall.append(np.mean(search_rows(index, None, 1).ids[:, 0] == ref[:, 0]))
    assert recall == sorted(recall) and recall[0] < 0.9 and recall[-1] > 0.99


def test_probes_needed_is_the_rank_of_the_targets_list():
    x = _clustered(n=2000, d=8)
    index = NeighborIndex(x, index="ivfpq", nlist=30, nprobe=1)
    rng = np.random.default_rng(0)
    rows, targets = rng.integers(0, 2000, 50), rng.integers(0, 2000, 50)
    got = index.probes_needed(rows, targets)
    centroids = np.asarray(index._quantizer.reconstruct_n(0, 30), dtype=np.float64)
    xs = x.astype(np.float64)
    for r, t, g in zip(rows, targets, got, strict=True):
        own = int(np.argmin(((centroids - xs[t]) ** 2).sum(axis=1)))  # the target's list
        d = ((centroids - xs[r]) ** 2).sum(axis=1)
        assert g == 1 + int((d < d[own]).sum())
    assert (index.probes_needed(rows, rows) >= 1).all()
    with pytest.raises(ValueError, match="CPU IVF index"):
        NeighborIndex(x, index="exact").probes_needed(rows, targets)


def test_bad_settings_are_refused_by_name():
    x = _clustered(n=500, d=12)
    with pytest.raises(ValueError, match="pq_m must divide the dimension 12"):
        NeighborIndex(x, index="ivfpq", pq_m=5)
    with pytest.raises(ValueError, match="pq_m applies to index='ivfpq' only"):
        NeighborIndex(x, index="ivf", pq_m=4)
    with pytest.raises(ValueError, match="refine_factor applies to index='ivfpq' only"):
        NeighborIndex(x, index="hnsw", refine_factor=2)
    with pytest.raises(ValueError, match="no GPU fast-scan IVF-PQ index"):
        NeighborIndex(x, index="ivfpq", use_gpu=True)
