"""The suite: every (dataset, method, seed) cell and the ρ sweep, run and tabulated per dataset."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fairmetric.bench.cells import Cell, cell_config, check_names, check_roots
from fairmetric.bench.measure import run_cell
from fairmetric.bench.methods import DATASETS, METHODS, ORACLE, check_methods
from fairmetric.bench.stats import aggregate, paired_changes
from fairmetric.bench.tables import write_table
from fairmetric.train.config import CONFIG_DIR

__all__ = ["BASELINE", "DEFAULT_DATASETS", "DEFAULT_SEEDS", "DEFAULT_THREADS", "run_suite"]

#: the method every other method (and every ρ of the sweep) is compared with, seed by seed
BASELINE = "baseline"
#: five seeds: fewer cannot tell a method's effect from seed noise (docs/bench.md)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
#: the synthetic-identities benchmark with the MLP: seconds per cell, and its gap is learned
DEFAULT_DATASETS = ("identities_mlp",)
#: torch threads while the suite trains: one is several times faster than two for small models
#: on a loaded 2-core machine (0 keeps torch's own setting)
DEFAULT_THREADS = 1


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    if threads == 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_suite(
    *,
    datasets: Sequence[str] = DEFAULT_DATASETS,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    out: str | Path = "runs/bench",
    overrides: Sequence[str] = (),
    rho_sweep: Sequence[float] | None = None,
    data_roots: Mapping[str, str | Path] | None = None,
    epochs: int | None = None,
    progress: bool = True,
    config_dir: str | Path = CONFIG_DIR,
    threads: int = DEFAULT_THREADS,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark suite (see :mod:`fairmetric.bench`) and write its tables and plots.

    Args:
        datasets: names from :data:`DATASETS`; the on-disk ones (:data:`REAL_DATASETS`) need
            ``data_roots``.
        methods: names from :data:`METHODS`, or several joined with ``+`` for a combination
            (``epoch_balanced+parade``); default: all. ``oracle`` trains on attribute-balanced
            data (skipped, with a message, on datasets that define no oracle).
        seeds: training seeds; every (dataset, method) is trained once per seed, and a seed
            fixes the data draw and the initialisation, so cells of one seed are paired.
        out: the suite folder (re-run with the same folder to resume).
        overrides: ``key=value`` config overrides applied to every cell.
        rho_sweep: ρ values at which PARADE is trained per seed (``None``: no sweep).
        data_roots: ``{dataset: folder}`` of the on-disk datasets.
        epochs: ``train.epochs`` of every cell (default: each config's own).
        progress: a progress bar across cells.
        config_dir: where the baseline and method configs live.
        threads: torch threads while training (0: leave torch's setting); restored after.
        log: where per-cell messages go (default: nowhere; the progress bar shows the cell).

    Returns:
        ``{"out", "cells": [cell dicts], "datasets": {name: {"table", "paired", "files",
        "rho_sweep"}}}``, where ``table`` and ``rho_sweep["table"]`` are :func:`aggregate` rows
        and ``paired`` and ``rho_sweep["paired"]`` are :func:`paired_changes` rows against the
        same-seed ``baseline`` cells (None when the baseline is not among ``methods``).
    """
    from tqdm.auto import tqdm

    datasets = check_names("dataset", datasets, list(DATASETS))
    methods = list(METHODS) if methods is None else check_methods(methods)
    if isinstance(threads, bool) or int(threads) != threads or threads < 0:
        raise ValueError(f"threads must be an integer >= 0 (0: torch's own setting), got {threads}")
    seeds = [int(s) for s in ([seeds] if isinstance(seeds, int) else seeds)]
    if not seeds:
        raise ValueError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds listed twice: {seeds}")
    rhos = None if rho_sweep is None else [float(r) for r in rho_sweep]
    if rhos is not None and (not rhos or any(r < 0 or math.isnan(r) for r in rhos)):
        raise ValueError(f"rho_sweep needs one or more values >= 0, got {rho_sweep!r}")
    if epochs is not None and int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    data_roots = dict(data_roots or {})
    check_roots(datasets, data_roots)
    out = Path(out)
    config_dir = Path(config_dir)
    log = log or (lambda s: None)

    cells = []
    for d in datasets:
        for m in methods:
            if m == ORACLE and not DATASETS[d].oracle:
                log(f"{d}: no oracle arm defined (no balanced version of its training data)")
                continue
            cells += [Cell(d, m, s) for s in seeds]
    if rhos is not None:
        cells += [Cell(d, "parade", s, rho=r) for d in datasets for r in rhos for s in seeds]
    # resolve every config up front: a bad override fails before hours of training
    configs = {
        c: cell_config(
            c, overrides=overrides, data_roots=data_roots, epochs=epochs, config_dir=config_dir
        )
        for c in cells
    }
    results: dict[Cell, dict[str, Any]] = {}
    bar = tqdm(cells, desc="bench", unit="cell", disable=None if progress else True)
    with _torch_threads(int(threads)):
        for c in bar:
            bar.set_postfix_str(c.label)
            results[c] = run_cell(c, configs[c], out, log=log)
            r = results[c]
            if r["status"] == "ok" and not r["cached"]:
                log(f"{c.label}: Recall@1 {r['recall@1']:.3f}, gap {r['recall@1_gap']:.3f}")
    bar.close()

    summary: dict[str, Any] = {"out": str(out), "cells": list(results.values()), "datasets": {}}
    for d in datasets:
        attr = DATASETS[d].attribute
        meta = {"dataset": d, "attribute": attr, "seeds": seeds, "epochs": epochs}
        main_cells = [results[c] for c in cells if c.dataset == d and c.rho is None]
        baseline = [r for r in main_cells if r["method"] == BASELINE]
        rows = aggregate(main_cells)
        paired = paired_changes(main_cells, baseline) if baseline else None
        files = write_table(out / d, "table", f"{d}: methods", rows, meta, "method", paired)
        entry: dict[str, Any] = {
            "table": rows,
            "paired": paired,
            "files": files,
            "rho_sweep": None,
        }
        if rhos is not None:
            sweep = [
                {**results[c], "rho_label": f"rho={c.rho:g}"}
                for c in cells
                if c.dataset == d and c.rho is not None
            ]
            sweep_rows = aggregate(sweep, key="rho_label")
            sweep_paired = paired_changes(sweep, baseline, key="rho_label") if baseline else None
            sweep_files = write_table(
                out / d,
                "rho_sweep",
                f"{d}: PARADE ρ sweep",
                sweep_rows,
                {**meta, "rho": rhos},
                "ρ",
                sweep_paired,
            )
            entry["rho_sweep"] = {
                "table": sweep_rows,
                "paired": sweep_paired,
                "files": sweep_files,
            }
        summary["datasets"][d] = entry
    return summary
