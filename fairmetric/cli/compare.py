"""``fairmetric compare``: is model B fairer than model A? Two models on the same samples, with
paired bootstrap intervals on every difference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fairmetric.cli.common import (
    EXIT_STATUS,
    Formatter,
    add_list_argument,
    check_output,
    nonnegative_int,
    positive_int,
)

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="is model B fairer than model A? paired bootstrap intervals on every difference",
        formatter_class=Formatter,
        description=(
            "Audit two models' embeddings of the same samples and compare them: for every "
            "metric, the difference B - A overall, per group of each attribute, and of each gap "
            "(max - min over groups), with a 95% *paired* bootstrap interval. Each bootstrap "
            "replicate resamples the same rows for both models (within each group, as the "
            "audit's own intervals do), so the noise both models share cancels; a gap "
            "difference whose interval lies below 0 means B's gap is smaller: 'B fairer'. "
            "See docs/compare.md.\n\n"
            "A and B are embedding sources of the same samples, as for 'fairmetric audit':\n"
            "  emb.npz | emb.safetensors      EmbeddingSet files of the same test set\n"
            "  emb.npy --labels labels.csv    a matrix + CSV (the same CSV serves both)\n"
            "  runs/NAME                      fairmetric run folders (embedded on --split)\n"
            "With ids in both (e.g. image paths), rows are matched by id; otherwise by position. "
            "Every row must have the same label and attribute values in A and B, or the command "
            "stops with exit status 2.\n\n" + EXIT_STATUS + "\n\n"
            "examples:\n"
            "  fairmetric compare runs/baseline/test_embeddings.npz runs/parade/test_embeddings.npz"
            " --name-a baseline --name-b parade --out compare/\n"
            "  fairmetric compare runs/baseline runs/parade --attributes palette --k 1 4\n"
            "  fairmetric compare released.npz candidate.npz --fail-if-less-fair recall@1\n\n"
            "compare exits 1 when a --fail-if-less-fair or --fail-unless-fairer gate fails "
            "(each failure is printed to stderr as FAIL ...)."
        ),
    )
    p.add_argument("a", help="model A's embeddings (the reference, e.g. the baseline)")
    p.add_argument("b", help="model B's embeddings of the same samples")
    p.add_argument("--name-a", default="A", help="name of model A in the output")
    p.add_argument("--name-b", default="B", help="name of model B in the output")
    add_list_argument(
        p,
        "--attributes",
        what="attribute names",
        example="colour,sex",
        metavar="ATTR",
        help="attributes to compare (default: all of A's)",
    )
    add_list_argument(
        p,
        "--k",
        item=positive_int,
        what="positive integers",
        example="1,2,4,8",
        default=[1, 2, 4, 8],
        metavar="K",
        help="Recall@k cut-offs",
    )
    p.add_argument(
        "--bootstrap",
        type=nonnegative_int,
        default=200,
        help="paired bootstrap replicates (0: differences without intervals)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (shared by A and B)")
    p.add_argument("--metric", choices=["cosine", "l2", "ip"], default="cosine", help="similarity")
    p.add_argument(
        "--min-group-size",
        type=int,
        default=10,
        metavar="N",
        help="groups with fewer samples are kept out of the gaps (as in 'fairmetric audit')",
    )
    p.add_argument(
        "--no-intersectional", action="store_true", help="skip the intersection of attributes"
    )
    p.add_argument(
        "--no-linear-probe", action="store_true", help="skip the linear-probe leakage metric"
    )
    p.add_argument("--out", type=Path, help="folder for compare.json, compare.md, compare.html")
    p.add_argument(
        "--fail-if-less-fair",
        action="append",
        default=[],
        metavar="METRIC",
        help="exit 1 if B's gap in METRIC (any attribute) is larger than A's and the paired "
        "interval excludes zero: a CI gate against a fairness regression (A: the released "
        "model, B: the candidate); 'all' checks every metric; repeatable",
    )
    p.add_argument(
        "--fail-unless-fairer",
        action="append",
        default=[],
        metavar="METRIC",
        help="exit 1 unless B's gap in METRIC is smaller than A's with the paired interval "
        "excluding zero, for every attribute; repeatable",
    )
    p.add_argument(
        "--labels", type=Path, help="CSV of labels/attributes for .npy sources (shared by A and B)"
    )
    p.add_argument("--split", default="test", help="data split to embed (run-folder sources)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (run-folder sources)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from fairmetric.audit.compare import compare
    from fairmetric.errors import UserError
    from fairmetric.report.compare_writers import render_compare_text, write_comparison
    from fairmetric.report.frame import check_min_group_size
    from fairmetric.sources import load_source

    check_min_group_size(args.min_group_size)
    if args.name_a == args.name_b:
        raise UserError(f"--name-a and --name-b are both {args.name_a!r}: give two names")
    if args.out is not None:
        check_output(args.out)
    progress = not args.no_progress
    sets = [
        load_source(
            s,
            split=args.split,
            labels_csv=args.labels,
            device=args.device,
            progress=progress,
        )
        for s in (args.a, args.b)
    ]
    result = compare(
        sets[0],
        sets[1],
        attributes=args.attributes,
        ks=args.k,
        bootstrap=args.bootstrap,
        seed=args.seed,
        names=(args.name_a, args.name_b),
        sources=(str(args.a), str(args.b)),
        min_group_size=args.min_group_size,
        metric=args.metric,
        intersectional=not args.no_intersectional,
        linear_probe=not args.no_linear_probe,
        progress=progress,
    )
    failures = _gates(result, args.fail_if_less_fair, args.fail_unless_fairer)
    print(render_compare_text(result))
    if args.out is not None:
        paths = write_comparison(result, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    else:
        print("(pass --out DIR to write compare.json, compare.md and compare.html)")
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


def _gates(result: Any, less_fair: list[str], unless_fairer: list[str]) -> list[str]:
    """The failed gates, one line each (after checking every named metric exists)."""
    from fairmetric.errors import UserError

    def metrics(names: list[str]) -> list[str]:
        out = []
        for name in names:
            if name == "all":
                out += list(result.metrics)
            elif name not in result.metrics:
                raise UserError(
                    f"no metric {name!r} to gate on; compared: {', '.join(result.metrics)}"
                )
            else:
                out.append(name)
        return out

    na, nb = result.names
    failures = []
    for name in metrics(less_fair):
        for a, d in result.metrics[name].gap.items():
            if d.sign > 0:
                failures.append(
                    f"{name} gap over {a}: {nb} {d.b:.4g} vs {na} {d.a:.4g}, difference "
                    f"{d.difference:+.4g} [{d.ci_low:+.4g}, {d.ci_high:+.4g}] (--fail-if-less-fair)"
                )
    for name in metrics(unless_fairer):
        for a, d in result.metrics[name].gap.items():
            if d.sign >= 0:
                what = (
                    "no gap to compare"
                    if d.difference is None
                    else "no interval (bootstrap 0)"
                    if d.ci_low is None
                    else f"difference {d.difference:+.4g} [{d.ci_low:+.4g}, {d.ci_high:+.4g}]"
                )
                failures.append(
                    f"{name} gap over {a}: {nb} is not fairer than {na}: {what} "
                    "(--fail-unless-fairer)"
                )
    return failures
