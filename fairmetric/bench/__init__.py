"""The fairness benchmark suite: methods × datasets × seeds in one call, resumable.

    from fairmetric.bench import run_suite
    run_suite(datasets=["identities_mlp"], methods=["baseline", "oracle", "parade"], out="runs/bench")

By default: the synthetic-identities benchmark with the MLP (its gap is learned; see
docs/datasets.md), every method, five seeds, one torch thread. ``oracle`` trains on
attribute-balanced data (how much of the gap is learnable at all); ``a+b`` combines two methods.

Every cell (dataset, method, seed) is a training run in ``OUT/DATASET/METHOD/seedK/`` (the usual
run folder: ``config.yaml``, ``checkpoint.pt``, ``metrics.jsonl``, ``model/``). Once trained, its
test embeddings are audited for the dataset's sensitive attribute and a linear probe is trained
downstream on attribute-balanced data; the numbers go to ``cell.json``. A cell with a
``cell.json`` for the same config is not recomputed, and a cell whose run has a checkpoint but no
``cell.json`` resumes its training, so an interrupted suite is continued by running it again.

Per dataset, ``OUT/DATASET/table.{md,json,png}`` holds one row per method with mean ± standard
deviation over seeds of: overall Recall@1, worst-group Recall@1, the Recall@1 gap, the
(intra-class) alignment gap, the uniformity gap, the attribute leakage (balanced accuracy of a
linear probe), the spread (largest group mean resultant length, smallest group effective rank:
Recall@1 is blind to collapse), and the downstream accuracy and accuracy gap. A ``rho_sweep`` trains PARADE at
several ρ and writes ``OUT/DATASET/rho_sweep.{md,json,png}``, the accuracy-vs-gap trade-off.
When the baseline is among the methods, both tables also give each row's paired change against
the same-seed baseline: the mean difference over seeds with its 95% t interval, whether the
interval excludes zero (a fairness claim is such a paired, multi-seed measurement), and for the
gaps the change as a share of the baseline's gap.

Methods whose set-up a dataset cannot satisfy (e.g. group quotas that no batch can meet) are
skipped with the error as the recorded reason, rather than stopping the suite.

The package, one job per module: :mod:`~fairmetric.bench.methods` (what runs: ``METHODS``,
``DATASETS``), :mod:`~fairmetric.bench.cells` (a cell and its config),
:mod:`~fairmetric.bench.measure` (running one cell), :mod:`~fairmetric.bench.stats`
(aggregation over seeds), :mod:`~fairmetric.bench.tables` and :mod:`~fairmetric.bench.plots`
(the outputs), :mod:`~fairmetric.bench.suite` (``run_suite``), :mod:`~fairmetric.bench.cli`
(command-line options).
"""

from fairmetric.bench.cells import Cell, cell_config, method_overrides
from fairmetric.bench.cli import (
    add_arguments,
    build_arg_parser,
    main,
    options_from_args,
    run_from_args,
)
from fairmetric.bench.measure import run_cell
from fairmetric.bench.methods import DATASETS, METHODS, REAL_DATASETS
from fairmetric.bench.stats import COLUMNS, aggregate, paired_changes, paired_interval
from fairmetric.bench.suite import BASELINE, run_suite

__all__ = [
    "BASELINE",
    "COLUMNS",
    "DATASETS",
    "METHODS",
    "REAL_DATASETS",
    "Cell",
    "add_arguments",
    "aggregate",
    "build_arg_parser",
    "cell_config",
    "main",
    "method_overrides",
    "options_from_args",
    "paired_changes",
    "paired_interval",
    "run_cell",
    "run_from_args",
    "run_suite",
]
