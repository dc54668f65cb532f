"""How many IVF lists the audit's promise needs (issue 17): an IVF index is built on the
``audit_speed`` generators and calibrated by :func:`fairmetric.audit.agreement.check_index`
(``nprobe`` doubling from 1 until every group's Recall@1 agrees with exact search within 0.005,
one-sided 95%), printing the lists tried, the build and check times and the per-group result.

    python benchmarks/index_agreement.py --n 200000 --structure flat
    python benchmarks/index_agreement.py --n 20000 --structure nested   # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_speed import make_data  # noqa: E402

from fairmetric.audit.agreement import check_index  # noqa: E402
from fairmetric.neighbors import NeighborIndex  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--structure", choices=("flat", "nested"), default="flat")
    parser.add_argument("--noise", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    data = make_data(args.n, args.dim, structure=args.structure, noise=args.noise)
    t = time.perf_counter()
    index = NeighborIndex(
        data.embeddings, metric="cosine", index="ivf", nprobe=1, threads=args.threads
    )
    build = time.perf_counter() - t
    t = time.perf_counter()
    result = check_index(index, data, data.attribute_names)
    check = time.perf_counter() - t
    print(
        f"{args.n} x {args.dim} {args.structure}: nlist {index.params['nlist']}, nprobe tried "
        f"{result['nprobe_tried']}, passed {result['passed']}, {result['sample_queries']} sampled "
        f"queries; build {build:.1f} s, check {check:.1f} s"
    )
    for a, groups in result["groups"].items():
        for g, v in groups.items():
            print(
                f"  {a}={g}: {v['queries']} queries, {v['differing']} differ, Recall@1 "
                f"{v['recall@1_index']:.4f} vs {v['recall@1_exact']:.4f} exact, bound {v['bound']:.4f}"
            )


if __name__ == "__main__":
    main()
