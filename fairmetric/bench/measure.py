"""Running one cell: train (or resume), audit the test embeddings, evaluate downstream.

The numbers go to the cell's ``cell.json``, written once its run is measured; a ``cell.json``
for the same config is reused as is, so an interrupted suite continues where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.bench.cells import Cell
from fairmetric.bench.methods import DATASETS
from fairmetric.train.config import ExperimentConfig, config_to_dict
from fairmetric.utils import atomic_write_bytes

__all__ = ["CELL_FILE", "run_cell", "write_json"]

CELL_FILE = "cell.json"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path``, atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


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
    # the spread (METHODS.md §5): Recall@1 is blind to a group collapsing into a small cap
    for key, column, pick in (
        ("mean_resultant_length", "max_mean_resultant_length", max),
        ("effective_rank", "min_effective_rank", min),
    ):
        by_group = report[key].values(attr) if key in report.metrics else {}
        found = [v for v in (_value(x) for x in by_group.values()) if v is not None]
        out[column] = pick(found) if found else None
        out[f"{key}_by_group"] = by_group
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
        # every group compared, as when the committed benchmark tables were measured; the
        # audit side keeps its default (its groups are the whole test split)
        min_group_size=1,
    )
    acc = result.report["accuracy"]
    return {
        "downstream_accuracy": _value(acc.overall.value),
        "downstream_gap": _value(acc.difference(attr)),
        "downstream_worst": _value(acc.group_min(attr)),
        "downstream_by_group": acc.values(attr),
        "downstream_balance_per_class": per_class,
    }


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
    write_json(cell_path, result)
    return {**result, "cached": False}
