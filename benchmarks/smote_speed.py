"""SMOTE speed: fairmetric's EmbeddingSMOTE against imbalanced-learn's SMOTE, side by side.

Same data, same ``k`` and seed, in one run:

- ``imblearn``: ``SMOTE(k_neighbors=k, random_state=seed).fit_resample(X, y)`` (scikit-learn's
  default ``NearestNeighbors``: exact brute-force search, a full ``n_c × n_c`` distance matrix per
  oversampled class);
- ``fairmetric``: ``EmbeddingSMOTE(k_neighbors=k, random_state=seed).fit_resample(X, y)`` (exact
  faiss ``IndexFlatL2`` search inside each oversampled class, for the distinct base samples only).

Data: ``n × dim`` float32 Gaussian rows around one random centre per class, rows shuffled. Binary
by default (``--minority-share 0.25``: a 150k / 50k split at ``n = 200k``); ``--classes C`` gives
a multi-class imbalanced split whose sizes fall geometrically from the largest class to the
smallest, smallest / largest = ``share / (1 − share)``.

imbalanced-learn runs first, before faiss is used in the process: after faiss's OpenMP search,
multi-threaded BLAS / OpenMP code in the same process can slow down badly, which would handicap
the second contender. The per-class output counts of both must be equal (exit status 1 if not);
a sample of the synthetic rows is also checked against a brute-force neighbour search.

    python benchmarks/smote_speed.py                       # 200k x 128, k=5, 150k/50k
    python benchmarks/smote_speed.py --classes 5 --repeats 3
    python benchmarks/smote_speed.py --quick               # smoke run, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np


def class_sizes(n: int, classes: int, minority_share: float) -> np.ndarray:
    """Sizes falling geometrically from the largest class; smallest / largest =
    ``share / (1 - share)`` (for two classes: exactly ``(1 - share) n`` and ``share n``)."""
    if not 0 < minority_share < 0.5:
        raise SystemExit(f"--minority-share must be in (0, 0.5), got {minority_share}")
    if classes < 2:
        raise SystemExit(f"--classes must be >= 2, got {classes}")
    ratio = (minority_share / (1 - minority_share)) ** (1 / (classes - 1))
    weights = ratio ** np.arange(classes)
    sizes = np.round(n * weights / weights.sum()).astype(np.int64)
    sizes[0] += n - sizes.sum()
    return sizes


def make_data(n: int, dim: int, classes: int, share: float, seed: int):
    rng = np.random.default_rng(seed)
    sizes = class_sizes(n, classes, share)
    y = rng.permutation(np.repeat(np.arange(classes), sizes))
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 65536):
        e = min(s + 65536, n)
        x[s:e] = centres[y[s:e]] + rng.standard_normal((e - s, dim), dtype=np.float32)
    return x, y, sizes


def per_class(y: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(y, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def check_sample(x, y, x_res, sm, k: int, sample: int, seed: int) -> tuple[int, int]:
    """Synthetic rows equal to ``x_b + λ (x_j − x_b)`` with ``j`` among the base's exact k
    nearest same-class rows (float64 brute force, ties at the k-th distance admitted), out of a
    seeded sample."""
    from threadpoolctl import threadpool_limits

    m = len(sm.base_indices_)
    rows = np.random.default_rng(seed).choice(m, size=min(sample, m), replace=False)
    ok = 0
    with threadpool_limits(1, user_api="blas"):  # after faiss: keep BLAS single-threaded
        for s in rows:
            b, j = int(sm.base_indices_[s]), int(sm.neighbor_indices_[s])
            members = np.flatnonzero(y == y[b])
            members = members[members != b]
            diff = x[members].astype(np.float64) - x[b].astype(np.float64)
            dist = np.einsum("ij,ij->i", diff, diff)
            kth = np.partition(dist, k - 1)[k - 1]
            pos = min(int(np.searchsorted(members, j)), len(members) - 1)
            own = dist[pos] if members[pos] == j else np.inf
            lam = float(sm.lambdas_[s])
            expected = x[b] + np.float32(lam) * (x[j] - x[b])
            on_segment = np.allclose(x_res[len(x) + s], expected, atol=1e-5)
            ok += bool(own <= kth * (1 + 1e-5) and on_segment)
    return ok, len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="rows (default 200000)")
    ap.add_argument("--dim", type=int, default=128, help="embedding dimension (default 128)")
    ap.add_argument("--k", type=int, default=5, help="k_neighbors (default 5)")
    ap.add_argument("--minority-share", type=float, default=0.25, help="default 0.25")
    ap.add_argument("--classes", type=int, default=2, help="number of classes (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each (best is kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", type=int, default=200, help="synthetic rows to verify (0: none)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (n=4000, dim=16)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.dim = 4000, 16

    x, y, sizes = make_data(args.n, args.dim, args.classes, args.minority_share, args.seed)
    print(
        f"data: {args.n} x {args.dim} float32, {args.classes} classes {sizes.tolist()}, "
        f"k={args.k}, seed={args.seed}, repeats={args.repeats}"
    )

    import imblearn
    import sklearn
    from imblearn.over_sampling import SMOTE

    t_imb = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        _, y_imb = SMOTE(k_neighbors=args.k, random_state=args.seed).fit_resample(x, y)
        t_imb.append(time.perf_counter() - t)

    import faiss

    from fairmetric.sampling.smote import EmbeddingSMOTE

    t_ours = []
    for _ in range(args.repeats):
        sm = EmbeddingSMOTE(k_neighbors=args.k, random_state=args.seed)
        t = time.perf_counter()
        x_ours, y_ours, _ = sm.fit_resample(x, y)
        t_ours.append(time.perf_counter() - t)

    best_imb, best_ours = min(t_imb), min(t_ours)
    ratio = best_imb / best_ours
    fmt = ", ".join
    print()
    print("| method | seconds (best) | all runs | output rows |")
    print("|---|---:|---|---:|")
    print(f"| imblearn SMOTE | {best_imb:.2f} | {fmt(f'{t:.2f}' for t in t_imb)} | {len(y_imb)} |")
    print(
        f"| fairmetric EmbeddingSMOTE | {best_ours:.2f} | {fmt(f'{t:.2f}' for t in t_ours)} | "
        f"{len(y_ours)} |"
    )
    print(f"\nratio imblearn / fairmetric: {ratio:.2f}x (target >= 3x)")
    tm = sm.timings_
    print(
        f"fairmetric breakdown (last run): validation {tm['validate']:.2f} s, neighbour search "
        f"{tm['search']:.2f} s for {sm.n_neighbor_queries_} distinct bases, interpolation and "
        f"output {tm['interpolate']:.2f} s"
    )

    c_in, c_imb, c_ours = per_class(y), per_class(y_imb), per_class(y_ours)
    equal = c_imb == c_ours
    print("\n| class | input | imblearn | fairmetric | equal |")
    print("|---:|---:|---:|---:|---|")
    for c in sorted(set(c_imb) | set(c_ours)):
        a, b = c_imb.get(c, 0), c_ours.get(c, 0)
        print(f"| {c} | {c_in.get(c, 0)} | {a} | {b} | {'yes' if a == b else 'NO'} |")

    if args.check:
        ok, total = check_sample(x, y, x_ours, sm, args.k, args.check, args.seed)
        print(f"\nexact-neighbour check: {ok}/{total} sampled synthetic rows on a segment to one")
        print(f"of the base's {args.k} exact nearest same-class rows (float64 brute force)")
    else:
        ok = total = 0

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {cores} cores available "
        f"(os.cpu_count {os.cpu_count()}), faiss threads {faiss.omp_get_max_threads()}; "
        f"python {platform.python_version()}, numpy {np.__version__}, faiss {faiss.__version__}, "
        f"imbalanced-learn {imblearn.__version__}, scikit-learn {sklearn.__version__}"
    )
    if not equal:
        print("FAIL: per-class output counts differ from imbalanced-learn's", file=sys.stderr)
        return 1
    if ok != total:
        print("FAIL: a synthetic row is not on a segment to an exact neighbour", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
