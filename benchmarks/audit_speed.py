"""Audit speed: the full fairmetric audit against PML's AccuracyCalculator and bare faiss search.

Measured side by side in one run on the same clustered data (D=128, classes of 20 samples, two
sensitive attributes):

- ``bare faiss``: IndexFlatL2 add + search of every point for k+1 neighbours (the floor);
- ``PML``: ``AccuracyCalculator(include=(precision_at_1, mean_average_precision_at_r), k=K)``,
  overall values only;
- ``fairmetric``: ``audit(metric="l2", index="exact", bootstrap=0)``: Recall@{1,2,4,8}, MAP@R,
  intra/inter-class alignment, uniformity, homophily and k-NN + linear-probe attribute leakage,
  for every group of both attributes and their intersection.

All three search the same K neighbours. ``--million`` also audits 1M embeddings with the
approximate index (what ``index="auto"`` picks at that size): wall time, peak memory over the
embedding matrix, and Recall@1 per group against exact search on a 10k-query sample.

    python benchmarks/audit_speed.py                 # N = 20k and 100k
    python benchmarks/audit_speed.py --sizes 20000 --repeats 3
    python benchmarks/audit_speed.py --million [--structure nested|flat]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def make_data(n: int, dim: int, seed: int = 0, structure: str = "flat", noise: float | None = None):
    """Clustered unit vectors: classes of 20 samples; a class-level and a sample-level attribute.

    ``flat``: independent class centres, noise 0.9 per coordinate (relative to centres of scale
    1): at 1M points this is close to uniform on the sphere locally, the hard case for any
    approximate index. ``nested``: classes grouped 10 to a super-cluster (class centre = super
    centre + 0.5 noise, sample = class centre + 0.65 noise), the multi-scale structure of trained
    embeddings, where similar classes sit near each other.
    """
    from fairmetric.embeddings import EmbeddingSet

    rng = np.random.default_rng(seed)
    n_classes = n // 20
    labels = np.repeat(np.arange(n_classes), 20)[:n]
    x = np.empty((n, dim), dtype=np.float32)
    if structure == "flat":
        centres = rng.standard_normal((n_classes, dim)).astype(np.float32)
        noise = 0.9 if noise is None else noise
    elif structure == "nested":
        supers = rng.standard_normal((max(n_classes // 10, 1), dim)).astype(np.float32)
        parent = np.arange(n_classes) % len(supers)
        centres = supers[parent] + 0.5 * rng.standard_normal((n_classes, dim)).astype(np.float32)
        noise = 0.65 if noise is None else noise
    else:
        raise ValueError(f"structure must be 'flat' or 'nested', got {structure!r}")
    for s in range(0, n, 100_000):  # in blocks: no float64 temporaries of the whole matrix
        e = min(s + 100_000, n)
        block = centres[labels[s:e]] + noise * rng.standard_normal((e - s, dim)).astype(np.float32)
        x[s:e] = block / np.linalg.norm(block, axis=1, keepdims=True)
    group = (rng.random(n_classes) < 0.2).astype(np.int64)[labels]  # a minority of classes
    tone = rng.integers(0, 3, size=n)
    return EmbeddingSet(embeddings=x, labels=labels, attributes={"group": group, "tone": tone})


def time_bare(x: np.ndarray, k: int) -> float:
    import faiss

    t = time.perf_counter()
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    index.search(x, k + 1)
    return time.perf_counter() - t


def time_pml(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, dict]:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), k=k, device=torch.device("cpu")
    )
    t = time.perf_counter()
    emb, lab = torch.from_numpy(x), torch.from_numpy(labels)
    out = calc.get_accuracy(emb, lab, emb, lab, ref_includes_query=True)
    return time.perf_counter() - t, out


def time_audit(data, seed: int = 0) -> tuple[float, object]:
    from fairmetric.audit import audit

    t = time.perf_counter()
    report = audit(data, metric="l2", index="exact", bootstrap=0, seed=seed)
    return time.perf_counter() - t, report


def run_sizes(sizes: list[int], dim: int, repeats: int) -> None:
    import faiss

    print(
        f"machine: {platform.processor() or platform.machine()}, faiss threads "
        f"{faiss.omp_get_max_threads()}, repeats {repeats} (best of)"
    )
    header = (
        f"{'N':>8} {'K':>3} {'bare faiss s':>13} {'PML s':>8} {'audit s':>8} "
        f"{'audit/PML':>10} {'audit/bare':>11}  check"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        data = make_data(n, dim)
        _, probe = time_audit(make_data(200, dim))  # warm imports and code paths
        del probe
        k = None
        bare, pml, aud = [], [], []
        for _ in range(repeats):
            t_a, report = time_audit(data)
            k = report.metadata["k_search"]
            aud.append(t_a)
            bare.append(time_bare(data.embeddings, k))
            t_p, pml_out = time_pml(data.embeddings, data.labels, k)
            pml.append(t_p)
        # the two tools agree where they measure the same thing
        same = (
            abs(pml_out["precision_at_1"] - report["recall@1"].overall.value) < 1e-6
            and abs(pml_out["mean_average_precision_at_r"] - report["map@r"].overall.value) < 1e-6
        )
        b, p, a = min(bare), min(pml), min(aud)
        print(
            f"{n:>8} {k:>3} {b:>13.2f} {p:>8.2f} {a:>8.2f} {a / p:>10.2f} {a / b:>11.2f}  "
            f"{'R@1 and MAP@R equal PML' if same else 'MISMATCH with PML'}"
        )


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_million(dim: int, structure: str, noise: float | None, queries: int = 10_000) -> None:
    import faiss

    from fairmetric.audit import audit
    from fairmetric.neighbors.index import NeighborIndex
    from fairmetric.neighbors.search import search_rows

    n = 1_000_000
    data = make_data(n, dim, structure=structure, noise=noise)
    matrix_mb = data.embeddings.nbytes / 2**20
    try:  # reset the peak-RSS counter so only the audit's own peak is measured
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = _rss_mb("VmRSS")
    t = time.perf_counter()
    report = audit(data, metric="l2", index="auto", bootstrap=0, progress=False)
    seconds = time.perf_counter() - t
    peak = _rss_mb("VmHWM")
    print(
        f"N = {n:,} x {dim}, {structure} clusters (noise {noise}): "
        f"index {report.metadata['index_description']}"
    )
    print(
        f"  full audit (no bootstrap): {seconds:.1f} s "
        f"(index and its agreement check {report.metadata['seconds']['index']:.1f} s, "
        f"search {report.metadata['seconds']['search']:.1f} s)"
    )
    print(
        f"  peak memory above the start: {peak - before:.0f} MB = "
        f"{(peak - before) / matrix_mb:.2f}x the {matrix_mb:.0f} MB embedding matrix"
    )

    # Recall@1 per group, approximate (the audit's index settings) vs exact, on a query sample
    rng = np.random.default_rng(1)
    q = np.sort(rng.choice(n, size=queries, replace=False))
    x, labels = data.embeddings, data.labels
    exact = faiss.IndexFlatL2(dim)
    exact.add(x)
    _, ids = exact.search(x[q], 2)
    nn_exact = np.where(ids[:, 0] == q, ids[:, 1], ids[:, 0])
    approx_index = NeighborIndex(
        x,
        metric="l2",
        index=report.metadata["index"],
        **{
            k: v
            for k, v in report.metadata["index_params"].items()
            if k in ("nlist", "nprobe", "pq_m", "refine_factor", "train_size")
        },
    )
    # searched as the audit searches: as deep (its k), re-ranked in float64
    depth = report.metadata["index_agreement"]["search_depth"]
    ids_a = search_rows(approx_index, q, depth).ids
    hit_e = labels[nn_exact] == labels[q]
    hit_a = labels[ids_a[:, 0]] == labels[q]
    print(f"  Recall@1 on {queries:,} queries, approximate vs exact:")
    worst = 0.0
    for attr in data.attribute_names:
        codes = data.attribute(attr)[q]
        for v in np.unique(codes):
            m = codes == v
            diff = abs(hit_a[m].mean() - hit_e[m].mean())
            worst = max(worst, diff)
            print(
                f"    {attr}={v}: exact {hit_e[m].mean():.4f}  approximate "
                f"{hit_a[m].mean():.4f}  |diff| {diff:.4f}  (n={m.sum()})"
            )
    print(f"  largest per-group |difference|: {worst:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000", help="comma-separated N")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--million", action="store_true", help="run the 1M approximate audit")
    parser.add_argument(
        "--structure",
        choices=["flat", "nested"],
        default="nested",
        help="cluster structure of the 1M data (see make_data)",
    )
    parser.add_argument(
        "--noise", type=float, default=None, help="within-class noise of the 1M data"
    )
    args = parser.parse_args()
    if args.million:
        run_million(args.dim, args.structure, args.noise)
    else:
        run_sizes([int(s) for s in args.sizes.split(",")], args.dim, args.repeats)


if __name__ == "__main__":
    main()
