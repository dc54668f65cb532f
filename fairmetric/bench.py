"""The fairness benchmark suite: methods × datasets × seeds in one call, resumable.

    from fairmetric.bench import run_suite
    run_suite(datasets=["colored_digits", "gaussian"], seeds=[0, 1, 2], out="runs/bench")

Every cell (dataset, method, seed) is a training run in ``OUT/DATASET/METHOD/seedK/`` (the usual
run folder: ``config.yaml``, ``checkpoint.pt``, ``metrics.jsonl``, ``model/``). Once trained, its
test embeddings are audited for the dataset's sensitive attribute and a linear probe is trained
downstream on attribute-balanced data; the numbers go to ``cell.json``. A cell with a
``cell.json`` for the same config is not recomputed, and a cell whose run has a checkpoint but no
``cell.json`` resumes its training, so an interrupted suite is continued by running it again.

Per dataset, ``OUT/DATASET/table.{md,json,png}`` holds one row per method with mean ± standard
deviation over seeds of: overall Recall@1, worst-group Recall@1, the Recall@1 gap, the
(intra-class) alignment gap, the uniformity gap, the attribute leakage (balanced accuracy of a
linear probe), and the downstream accuracy and accuracy gap. A ``rho_sweep`` trains PARADE at
several ρ and writes ``OUT/DATASET/rho_sweep.{md,json,png}``, the accuracy-vs-gap trade-off.

Methods whose set-up a dataset cannot satisfy (e.g. group quotas that no batch can meet) are
skipped with the error as the recorded reason, rather than stopping the suite.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.train.config import ExperimentConfig, config_to_dict, load_config

__all__ = [
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
    "run_cell",
    "run_from_args",
    "run_suite",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CELL_FILE = "cell.json"

#: method name → config overrides on top of a dataset's baseline config. ``{attr}`` is the
#: dataset's sensitive attribute; ``{candidates}`` and ``{m2}`` are twice the resolved
#: ``train.batch_size`` and ``train.m_per_class`` (hard mining scores twice the batch, with as
#: many classes per candidate batch as the baseline has per batch). Coloured digits uses the
#: shipped ``configs/colored_digits_<method>.yaml`` instead.
METHODS: dict[str, list[str]] = {
    "baseline": [],
    "reweight": ["data.group_attribute={attr}", "mitigation.reweight.enabled=true"],
    "epoch_balanced": ["data.group_attribute={attr}", "sampling.name=epoch_balanced"],
    "batch_balanced": ["data.group_attribute={attr}", "sampling.name=batch_balanced"],
    "hard_mining": [
        "mitigation.hard_mining.candidates_per_batch={candidates}",
        "train.m_per_class={m2}",
    ],
    "smote": ["data.group_attribute={attr}", "mitigation.smote.enabled=true"],
    "group_dro": ["data.group_attribute={attr}", "objective.group_dro.enabled=true"],
    "spectral": ["objective.spectral.coefficient=0.01"],
    "adversarial": ["objective.adversary.attribute={attr}", "objective.adversary.hidden=64"],
    "parade": ["objective.parade.attributes=[{attr}]", "objective.parade.rho=10.0"],
}


@dataclass(frozen=True)
class _Dataset:
    config: str  # file name in configs/
    attribute: str  # the sensitive attribute audited and balanced
    method_configs: bool = False  # use configs/<name>_<method>.yaml per method
    needs_root: bool = False


#: dataset name → its baseline config and sensitive attribute
DATASETS: dict[str, _Dataset] = {
    "colored_digits": _Dataset("colored_digits_baseline.yaml", "colour", method_configs=True),
    "gaussian": _Dataset("gaussian_baseline.yaml", "group"),
    "celeba": _Dataset("celeba_baseline.yaml", "Male", needs_root=True),
    "lfw": _Dataset("lfw_baseline.yaml", "Male", needs_root=True),
    "cub": _Dataset("cub_baseline.yaml", "has_primary_color", needs_root=True),
}
REAL_DATASETS = tuple(name for name, d in DATASETS.items() if d.needs_root)

#: table columns: key in cell.json → header
COLUMNS: dict[str, str] = {
    "recall@1": "Recall@1",
    "worst_recall@1": "worst-group Recall@1",
    "recall@1_gap": "Recall@1 gap",
    "alignment_gap": "alignment gap",
    "uniformity_gap": "uniformity gap",
    "leakage": "attribute leakage",
    "downstream_accuracy": "downstream accuracy",
    "downstream_gap": "downstream accuracy gap",
}


@dataclass(frozen=True)
class Cell:
    """One (dataset, method, seed) training run; ``rho`` is set for ρ-sweep cells."""

    dataset: str
    method: str
    seed: int
    rho: float | None = None

    def folder(self, out: Path) -> Path:
        if self.rho is None:
            return out / self.dataset / self.method / f"seed{self.seed}"
        return out / self.dataset / "rho_sweep" / f"rho{self.rho:g}" / f"seed{self.seed}"

    @property
    def label(self) -> str:
        arm = self.method if self.rho is None else f"parade rho={self.rho:g}"
        return f"{self.dataset}/{arm}/seed{self.seed}"


# -- validation ----------------------------------------------------------------------------------


def _check_names(kind: str, given: Sequence[str], valid: Sequence[str]) -> list[str]:
    given = [given] if isinstance(given, str) else list(given)
    unknown = [g for g in given if g not in valid]
    if unknown:
        raise ValueError(
            f"unknown {kind} {', '.join(map(repr, unknown))}; valid {kind}s: {', '.join(valid)}"
        )
    if not given:
        raise ValueError(f"no {kind} given; valid {kind}s: {', '.join(valid)}")
    if len(set(given)) != len(given):
        raise ValueError(f"{kind}s listed twice: {given}")
    return given


def _check_roots(datasets: Sequence[str], data_roots: Mapping[str, str | Path]) -> None:
    unknown = [k for k in data_roots if k not in REAL_DATASETS]
    if unknown:
        raise ValueError(
            f"data_roots names {', '.join(map(repr, unknown))}; only on-disk datasets take a "
            f"root: {', '.join(REAL_DATASETS)}"
        )
    for name in datasets:
        if not DATASETS[name].needs_root:
            continue
        if name not in data_roots or data_roots[name] in (None, ""):
            raise ValueError(
                f"dataset {name!r} is read from a local copy: give its folder with "
                f"data_roots={{{name!r}: PATH}} (command line: --data-root {name}=PATH)"
            )
        if not Path(data_roots[name]).is_dir():
            raise FileNotFoundError(f"data root of {name!r} is not a folder: {data_roots[name]}")


# -- configs -------------------------------------------------------------------------------------


_DERIVED = ("{candidates}", "{m2}")


def _split_method_overrides(method: str, attr: str | None = None) -> tuple[list[str], list[str]]:
    """``METHODS[method]`` as (static, derived): derived ones depend on the resolved batch."""
    static = [o for o in METHODS[method] if not any(d in o for d in _DERIVED)]
    derived = [o for o in METHODS[method] if any(d in o for d in _DERIVED)]
    if attr is not None:
        static = [o.replace("{attr}", attr) for o in static]
    return static, derived


def method_overrides(dataset: str, method: str, base: ExperimentConfig) -> list[str]:
    """The overrides that turn ``dataset``'s resolved baseline config ``base`` into ``method``
    (for datasets with per-method config files, the differences live in those files instead)."""
    _check_names("dataset", [dataset], list(DATASETS))
    _check_names("method", [method], list(METHODS))
    fill = {
        "attr": DATASETS[dataset].attribute,
        "candidates": 2 * base.train.batch_size,
        "m2": 2 * base.train.m_per_class,
    }
    return [o.format(**fill) for o in METHODS[method]]


def cell_config(
    cell: Cell,
    *,
    overrides: Sequence[str] = (),
    data_roots: Mapping[str, str | Path] | None = None,
    epochs: int | None = None,
    config_dir: Path = CONFIG_DIR,
) -> ExperimentConfig:
    """The resolved config of one cell, applied in this order: the baseline config (or, for
    coloured digits, ``configs/colored_digits_<method>.yaml``), the method's overrides, ``name``,
    the user's ``overrides``, ``data.root``, ρ, ``train.seed``, ``train.epochs``; then the
    overrides derived from the resolved batch (hard mining's candidates and m per class)."""
    spec = DATASETS[cell.dataset]
    tail = [f"name=bench_{cell.dataset}_{cell.method}", *overrides]
    root = (data_roots or {}).get(cell.dataset)
    if root is not None:
        tail.append(f"data.root={Path(root)}")
    if cell.rho is not None:
        tail.append(f"objective.parade.rho={float(cell.rho)}")
    tail.append(f"train.seed={cell.seed}")
    if epochs is not None:
        tail.append(f"train.epochs={int(epochs)}")
    if spec.method_configs:
        stem = spec.config.removesuffix("_baseline.yaml")
        return load_config(config_dir / f"{stem}_{cell.method}.yaml", tail)
    path = config_dir / spec.config
    static, derived = _split_method_overrides(cell.method, spec.attribute)
    base = load_config(path, [*static, *tail])
    fill = {
        "candidates": 2 * base.train.batch_size,
        "m2": 2 * base.train.m_per_class,
    }
    return load_config(path, [*static, *tail, *(o.format(**fill) for o in derived)])


# -- one cell ------------------------------------------------------------------------------------


def _value(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _audit_numbers(report: Any, attr: str) -> dict[str, Any]:
    r1 = report["recall@1"]
    leak_name = (
        f"leakage_linear:{attr}" if f"leakage_linear:{attr}" in report.metrics else None
    ) or (f"leakage_knn:{attr}" if f"leakage_knn:{attr}" in report.metrics else None)
    out = {
        "recall@1": _value(r1.overall.value),
        "worst_recall@1": _value(r1.group_min(attr)),
        "recall@1_gap": _value(r1.difference(attr)),
        "alignment_gap": _value(report["intra_class_alignment"].difference(attr)),
        "inter_class_alignment_gap": _value(report["inter_class_alignment"].difference(attr)),
        "uniformity_gap": _value(report["uniformity"].difference(attr)),
        "leakage": _value(report[leak_name].overall.value) if leak_name else None,
        "leakage_metric": leak_name,
        "leakage_chance": report.metadata["leakage_chance"].get(attr),
        "recall@1_by_group": r1.values(attr),
    }
    worst = r1.worst_group(attr)
    out["worst_group"] = worst[0] if worst else None
    return out


def _downstream_numbers(
    model_dir: Path, pool: Any, attr: str, seed: int, device: str
) -> dict[str, Any]:
    from fairmetric.downstream.run import run_downstream

    column = pool.attribute(attr)
    # balance within classes when every class holds every value; else over the whole pool
    per_class = all(
        len(np.unique(column[pool.labels == c])) == len(np.unique(column))
        for c in np.unique(pool.labels)
    )
    result = run_downstream(
        model_dir,
        data=pool,
        classifier="probe",
        balance="attribute",
        balance_attribute=attr,
        balance_per_class=per_class,
        attributes=[attr],
        n_boot=0,
        seed=seed,
        device=device,
    )
    acc = result.report["accuracy"]
    return {
        "downstream_accuracy": _value(acc.overall.value),
        "downstream_gap": _value(acc.difference(attr)),
        "downstream_worst": _value(acc.group_min(attr)),
        "downstream_by_group": acc.values(attr),
        "downstream_balance_per_class": per_class,
    }


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def run_cell(
    cell: Cell,
    cfg: ExperimentConfig,
    out: Path,
    *,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Train (or resume), audit and evaluate downstream one cell; returns its ``cell.json`` dict.

    A ``cell.json`` written for the same config is returned as is. A setup error of the
    training (a ``ValueError`` before any checkpoint exists, e.g. group quotas no batch can meet)
    gives ``{"status": "skipped", "reason": ...}``, which is not cached.
    """
    from fairmetric.audit import audit
    from fairmetric.models import embed_dataset, load_embedder
    from fairmetric.train.checkpoint import CHECKPOINT_FILE
    from fairmetric.train.trainer import build_data, train

    folder = cell.folder(out)
    cell_path = folder / CELL_FILE
    wanted = config_to_dict(cfg)
    if cell_path.is_file():
        done = json.loads(cell_path.read_text())
        if done.get("config") == wanted:
            done["cached"] = True
            return done
    attr = DATASETS[cell.dataset].attribute
    base = {
        "dataset": cell.dataset,
        "method": cell.method,
        "seed": cell.seed,
        "rho": cell.rho,
        "attribute": attr,
        "run": str(folder.relative_to(out)),
    }
    resume = (folder / CHECKPOINT_FILE).is_file()
    t0 = time.perf_counter()
    try:
        train(cfg, folder, resume=resume, progress=False, log=log)
    except ValueError as e:
        if resume or (folder / CHECKPOINT_FILE).is_file():
            raise  # not a set-up problem: e.g. the config differs from the checkpoint's
        log(f"{cell.label}: skipped ({e})")
        return {**base, "status": "skipped", "reason": str(e), "cached": False}
    t_train = time.perf_counter() - t0

    device = cfg.train.device
    test_set = build_data(cfg)["test"]
    model_dir = folder / "model"
    emb = embed_dataset(
        load_embedder(model_dir), test_set, batch_size=cfg.train.eval_batch_size, device=device
    )
    report = audit(emb, attributes=[attr], ks=[1], bootstrap=0, seed=cell.seed)
    numbers = _audit_numbers(report, attr)
    try:
        numbers.update(_downstream_numbers(model_dir, test_set, attr, cell.seed, device))
    except ValueError as e:  # e.g. a group absent from the test classes: nothing to balance
        numbers.update({"downstream_accuracy": None, "downstream_gap": None})
        numbers["downstream_error"] = str(e)
    result = {
        **base,
        "status": "ok",
        "epochs": cfg.train.epochs,
        "resumed": resume,
        "seconds": {"train": round(t_train, 3), "total": round(time.perf_counter() - t0, 3)},
        **numbers,
        "config": wanted,
    }
    _write_json(cell_path, result)
    return {**result, "cached": False}


# -- aggregation ---------------------------------------------------------------------------------


def _mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.mean(vals), "std": std, "n": len(vals), "values": vals}


def aggregate(cells: Sequence[Mapping[str, Any]], key: str = "method") -> dict[str, Any]:
    """Rows ``{key value: {status, seeds, reason, <column>: {mean, std, n, values}}}`` in order of
    first appearance; ``std`` is the sample standard deviation over seeds (0 for one seed)."""
    rows: dict[str, Any] = {}
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for c in cells:
        grouped.setdefault(str(c[key]), []).append(c)
    for name, members in grouped.items():
        ok = [c for c in members if c.get("status") == "ok"]
        skipped = [c for c in members if c.get("status") != "ok"]
        row: dict[str, Any] = {
            "status": "ok" if ok else "skipped",
            "seeds": [c["seed"] for c in ok],
            "reason": skipped[0].get("reason") if skipped else None,
        }
        for col in COLUMNS:
            row[col] = _mean_std([c.get(col) for c in ok])
        rows[name] = row
    return rows


def _fmt(stat: Mapping[str, Any]) -> str:
    if stat["mean"] is None:
        return "n/a"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _markdown(title: str, rows: Mapping[str, Any], first: str, note: str) -> str:
    lines = [f"# {title}", "", note, ""]
    lines.append(f"| {first} | seeds | " + " | ".join(COLUMNS.values()) + " |")
    lines.append("|---|---:|" + "---:|" * len(COLUMNS))
    skipped = []
    for name, row in rows.items():
        if row["status"] != "ok":
            skipped.append(f"- **{name}**: skipped: {row['reason']}")
            lines.append(f"| {name} | 0 | " + " | ".join("skipped" for _ in COLUMNS) + " |")
            continue
        cells = " | ".join(_fmt(row[c]) for c in COLUMNS)
        lines.append(f"| {name} | {len(row['seeds'])} | {cells} |")
    if skipped:
        lines += ["", *skipped]
    return "\n".join(lines) + "\n"


def _figure(ncols: int) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * ncols, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


_PANELS = (
    ("recall@1", "recall@1_gap", "overall Recall@1", "Recall@1 gap (max − min over groups)"),
    (
        "downstream_accuracy",
        "downstream_gap",
        "downstream accuracy (balanced training)",
        "downstream accuracy gap",
    ),
)


def _plot_points(path: Path, rows: Mapping[str, Any], title: str, line: bool = False) -> None:
    fig, axes = _figure(len(_PANELS))
    for ax, (xk, yk, xl, yl) in zip(axes, _PANELS):
        xs, ys = [], []
        for name, row in rows.items():
            x, y = row[xk], row[yk]
            if row["status"] != "ok" or x["mean"] is None or y["mean"] is None:
                continue
            ax.errorbar(
                x["mean"], y["mean"], xerr=x["std"], yerr=y["std"], fmt="o", capsize=3, label=name
            )
            ax.annotate(name, (x["mean"], y["mean"]), textcoords="offset points", xytext=(5, 5))
            xs.append(x["mean"])
            ys.append(y["mean"])
        if line and len(xs) > 1:
            ax.plot(xs, ys, color="0.6", lw=1, zorder=0)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)


def _write_table(
    folder: Path, stem: str, title: str, rows: dict[str, Any], meta: dict[str, Any], first: str
) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    note = (
        f"Sensitive attribute `{meta['attribute']}`; mean ± standard deviation over seeds "
        f"{meta['seeds']}. Gaps are max − min over the attribute's groups on the test split "
        "(unseen classes); leakage is the balanced accuracy of a linear probe predicting the "
        "attribute from the embedding; the downstream probe is trained on attribute-balanced data."
    )
    paths = {
        "md": folder / f"{stem}.md",
        "json": folder / f"{stem}.json",
        "png": folder / f"{stem}.png",
    }
    paths["md"].write_text(_markdown(title, rows, first, note))
    _write_json(paths["json"], {**meta, "columns": COLUMNS, "rows": rows})
    _plot_points(paths["png"], rows, title, line=stem == "rho_sweep")
    return paths


# -- the suite -----------------------------------------------------------------------------------


def run_suite(
    *,
    datasets: Sequence[str] = ("colored_digits",),
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    out: str | Path = "runs/bench",
    overrides: Sequence[str] = (),
    rho_sweep: Sequence[float] | None = None,
    data_roots: Mapping[str, str | Path] | None = None,
    epochs: int | None = None,
    progress: bool = True,
    config_dir: str | Path = CONFIG_DIR,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark suite (see the module docstring) and write its tables and plots.

    Args:
        datasets: names from :data:`DATASETS`; the on-disk ones (:data:`REAL_DATASETS`) need
            ``data_roots``.
        methods: names from :data:`METHODS` (default: all).
        seeds: training seeds; every (dataset, method) is trained once per seed.
        out: the suite folder (re-run with the same folder to resume).
        overrides: ``key=value`` config overrides applied to every cell.
        rho_sweep: ρ values at which PARADE is trained per seed (``None``: no sweep).
        data_roots: ``{dataset: folder}`` of the on-disk datasets.
        epochs: ``train.epochs`` of every cell (default: each config's own).
        progress: a progress bar across cells.
        config_dir: where the baseline and method configs live.
        log: where per-cell messages go (default: nowhere; the progress bar shows the cell).

    Returns:
        ``{"out", "cells": [cell dicts], "datasets": {name: {"table", "files", "rho_sweep"}}}``,
        where ``table`` and ``rho_sweep["table"]`` are :func:`aggregate` rows.
    """
    from tqdm.auto import tqdm

    datasets = _check_names("dataset", datasets, list(DATASETS))
    methods = list(METHODS) if methods is None else _check_names("method", methods, list(METHODS))
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
    _check_roots(datasets, data_roots)
    out = Path(out)
    config_dir = Path(config_dir)
    log = log or (lambda s: None)

    cells = [Cell(d, m, s) for d in datasets for m in methods for s in seeds]
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
    for c in bar:
        bar.set_postfix_str(c.label)
        results[c] = run_cell(c, configs[c], out, log=log)
        r = results[c]
        if r["status"] == "ok" and not r["cached"]:
            log(f"{c.label}: Recall@1 {r['recall@1']:.3f}, gap {r['recall@1_gap']}")
    bar.close()

    summary: dict[str, Any] = {"out": str(out), "cells": list(results.values()), "datasets": {}}
    for d in datasets:
        attr = DATASETS[d].attribute
        meta = {"dataset": d, "attribute": attr, "seeds": seeds, "epochs": epochs}
        main_cells = [results[c] for c in cells if c.dataset == d and c.rho is None]
        rows = aggregate(main_cells)
        files = _write_table(out / d, "table", f"{d}: methods", rows, meta, "method")
        entry: dict[str, Any] = {"table": rows, "files": files, "rho_sweep": None}
        if rhos is not None:
            sweep = [
                {**results[c], "rho_label": f"rho={c.rho:g}"}
                for c in cells
                if c.dataset == d and c.rho is not None
            ]
            sweep_rows = aggregate(sweep, key="rho_label")
            sweep_files = _write_table(
                out / d,
                "rho_sweep",
                f"{d}: PARADE ρ sweep",
                sweep_rows,
                {**meta, "rho": rhos},
                "ρ",
            )
            entry["rho_sweep"] = {"table": sweep_rows, "files": sweep_files}
        summary["datasets"][d] = entry
    return summary


# -- command line ----------------------------------------------------------------------------------


def _data_root(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH, got {item!r}")
    return name, path


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the suite's options to ``parser`` (e.g. a ``fairmetric bench`` sub-parser)."""
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides for every cell"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["colored_digits"],
        metavar="NAME",
        help=f"datasets: {', '.join(DATASETS)}",
    )
    parser.add_argument(
        "--methods", nargs="+", default=None, metavar="NAME", help=f"methods: {', '.join(METHODS)}"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="K")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="suite folder")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs of every cell")
    parser.add_argument(
        "--rho-sweep",
        nargs="+",
        type=float,
        default=None,
        metavar="RHO",
        help="also train PARADE at these ρ values (e.g. 0 1 10 100)",
    )
    parser.add_argument(
        "--data-root",
        action="append",
        type=_data_root,
        default=[],
        metavar="DATASET=PATH",
        help=f"local copy of an on-disk dataset ({', '.join(REAL_DATASETS)}); repeatable",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def build_arg_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with :func:`add_arguments`'s options."""
    return add_arguments(
        argparse.ArgumentParser(prog="fairmetric bench", description=__doc__.splitlines()[0])
    )


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run_suite` keyword arguments from parsed options."""
    return {
        "datasets": args.datasets,
        "methods": args.methods,
        "seeds": args.seeds,
        "out": args.out,
        "overrides": list(args.overrides),
        "rho_sweep": args.rho_sweep,
        "data_roots": dict(args.data_root),
        "epochs": args.epochs,
        "progress": not args.no_progress,
    }


def run_from_args(args: argparse.Namespace) -> int:
    """Run the suite from parsed options and print where the tables went."""
    summary = run_suite(**options_from_args(args), log=print)
    for name, entry in summary["datasets"].items():
        print(f"{name}: {entry['files']['md']}")
        if entry["rho_sweep"]:
            print(f"{name}: {entry['rho_sweep']['files']['md']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_arg_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
