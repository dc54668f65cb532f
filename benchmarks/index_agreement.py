"""How much effort an approximate index needs to keep the audit's promise (issue 17): an index is
built on the ``audit_speed`` generators and calibrated by
:func:`fairmetric.audit.agreement.check_index` (its effort doubling until every group's Recall@1
agrees with exact search within 0.005, one-sided 95%), printing the efforts tried, the build and
check times, the per-group result and the time a full search of every row would take at the
calibrated effort (measured on ``--time-queries`` rows, scaled to N).

    python benchmarks/index_agreement.py --n 200000 --structure flat --index ivf
    python benchmarks/index_agreement.py --n 1000000 --structure nested --noise 1.0 --index hnsw
    python benchmarks/index_agreement.py --n 20000 --structure nested   # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_speed import make_data  # noqa: E402

from fairmetric.audit.agreement import check_index  # noqa: E402
from fairmetric.neighbors import NeighborIndex, search_rows  # noqa: E402

#: neighbours per query the 1M audit searches (classes of 20: MAP@R needs 19, plus the margin)
AUDIT_K = 19


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--structure", choices=("flat", "nested"), default="flat")
    parser.add_argument("--noise", type=float, default=None)
    parser.add_argument("--index", choices=("ivf", "ivfpq", "hnsw"), default="ivf")
    parser.add_argument("--k", type=int, default=AUDIT_K, help="neighbours per query searched")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--time-queries", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    data = make_data(args.n, args.dim, structure=args.structure, noise=args.noise)
    options = {"hnsw_m": args.hnsw_m} if args.index == "hnsw" else {"nprobe": 1}
    t = time.perf_counter()
    index = NeighborIndex(
        data.embeddings, metric="l2", index=args.index, threads=args.threads, **options
    )
    build = time.perf_counter() - t
    t = time.perf_counter()
    result = check_index(index, data, data.attribute_names, k=args.k)
    check = time.perf_counter() - t
    tried = {k: v for k, v in result.items() if k.endswith("_tried")}
    print(
        f"{args.n} x {args.dim} {args.structure} (noise {args.noise}), {index.description}: "
        f"tried {tried}, passed {result['passed']}, {result['sample_queries']} sampled queries; "
        f"build {build:.1f} s, check {check:.1f} s"
    )
    for a, groups in result["groups"].items():
        for g, v in groups.items():
            print(
                f"  {a}={g}: {v['queries']} queries, {v['differing']} differ, Recall@1 "
                f"{v['recall@1_index']:.4f} vs {v['recall@1_exact']:.4f} exact, bound {v['bound']:.4f}"
            )
    rows = np.sort(np.random.default_rng(3).choice(args.n, args.time_queries, replace=False))
    t = time.perf_counter()
    search_rows(index, rows, args.k)
    per_query = (time.perf_counter() - t) / len(rows)
    print(
        f"  full search of {args.n:,} rows at this effort: about {per_query * args.n:.0f} s "
        f"({args.time_queries} rows timed)"
    )


if __name__ == "__main__":
    main()
