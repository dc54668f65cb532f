"""``fairmetric posthoc``: fit a post-hoc score fix on calibration identities and judge it on held-out ones."""

from __future__ import annotations

import argparse

from fairmetric.cli.common import EXIT_STATUS, Formatter, check_output, fmr_list, positive_int

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from fairmetric.audit.verification import cli as posthoc_cli

    p = sub.add_parser(
        "posthoc",
        help="fit a post-hoc score fix for a released model and judge it on held-out identities",
        formatter_class=Formatter,
        description=(
            "Fix a model that cannot be retrained, at the score level: split SOURCE's "
            "identities into a calibration part and a held-out part, fit the fix on the first "
            "and run the verification audit on the second before and after it (same pairs, "
            "same thresholds rule), with ECE / KS / Brier of P(genuine) per group. OUT gets "
            "fix.json (JSON, no pickle; ship it beside the model and apply it with 'fairmetric "
            "audit SOURCE --verification --score-transform fix.json'), comparison.json and the "
            "before/ and after/ reports.\n\n"
            "fixes: per_group_threshold and score_normalisation use the attribute; fsn "
            "(Terhörst et al. 2020) and faircal (Salvador et al. 2022) use k-means clusters "
            "of the embeddings instead. Formulas: docs/posthoc.md.\n\n"
            + EXIT_STATUS
            + "\n\nexample:\n"
            "  fairmetric posthoc runs/demo/baseline/test_embeddings.npz --fix faircal --out runs/faircal"
        ),
    )
    posthoc_cli.add_arguments(p, fmr_list, positive_int)
    p.set_defaults(run=_run_posthoc)


def _run_posthoc(args: argparse.Namespace) -> int:
    from fairmetric.audit.verification import cli as posthoc_cli
    from fairmetric.sources import load_source

    check_output(args.out)
    return posthoc_cli.run_from_args(args, lambda source: load_source(source, progress=False))
