"""``fairmetric demo``: the end-to-end story on coloured digits, in a few minutes on a CPU."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.train.config import load_config
from fairmetric.train.evaluate import recall_by_group

__all__ = ["run_demo", "format_group_table", "format_audit_table"]

_MARKER = ".fairmetric-demo"


def format_group_table(
    title: str, attribute: str, counts: dict[str, int], columns: dict[str, dict[str, Any]]
) -> str:
    """A plain-text table of one metric per group, one column per model, with the gap row.

    Args:
        title: printed above the table.
        attribute: the attribute whose groups are rows.
        counts: test samples per group.
        columns: ``{column_name: recall_by_group(...)["recall@k"]}``.
    """
    names = list(columns)
    width = max(10, *(len(n) for n in names))
    header = f"{attribute:<12}{'n':>7}" + "".join(f"{n:>{width + 2}}" for n in names)
    rows = [title, header, "-" * len(header)]
    for group, n in counts.items():
        cells = []
        for name in names:
            v = columns[name]["by_group"][attribute].get(group)
            cells.append(f"{'n/a' if v is None else f'{v:.3f}':>{width + 2}}")
        rows.append(f"{group:<12}{n:>7}" + "".join(cells))
    rows.append("-" * len(header))
    for label, key in (("overall", "overall"), ("gap", "gap")):
        cells = []
        for name in names:
            v = columns[name][key] if key == "overall" else columns[name]["gap"][attribute]
            cells.append(f"{'n/a' if v is None else f'{v:.3f}':>{width + 2}}")
        rows.append(f"{label:<12}{'':>7}" + "".join(cells))
    return "\n".join(rows)


def format_audit_table(report: Any, attribute: str) -> str:
    """A few headline audit metrics per group of ``attribute``, with 95% intervals."""
    names = ["recall@1", "map@r", "intra_class_alignment", "inter_class_alignment", "uniformity"]
    names = [n for n in names if n in report.metrics]
    groups = list(report.metrics[names[0]].by_group[attribute])
    rows = [f"Audit of the trained embedding by {attribute} (95% bootstrap intervals):"]
    header = f"{'metric':<24}" + "".join(f"{g:>26}" for g in groups) + f"{'gap':>9}  better"
    rows += [header, "-" * len(header)]
    for name in names:
        m = report.metrics[name]
        cells = []
        for g in groups:
            e = m.by_group[attribute][g]
            if e.value is None:
                cells.append(f"{'n/a':>26}")
            elif e.ci_low is None:
                cells.append(f"{e.value:>26.3f}")
            else:
                cells.append(f"{f'{e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]':>26}")
        gap = m.difference(attribute)
        better = "higher" if m.higher_is_better else "lower"
        rows.append(
            f"{name:<24}" + "".join(cells) + f"{'n/a' if gap is None else f'{gap:.3f}':>9}"
            f"  {better}"
        )
    return "\n".join(rows)


def run_demo(out: str | Path, *, overrides: list[str] | None = None, progress: bool = True) -> dict:
    """Train a baseline on colour-imbalanced coloured digits and report Recall@1 per colour group.

    Writes into ``out``: the training run (``run/``), the test embeddings (``test_embeddings.npz``),
    the fairness audit of the test embeddings (``audit/report.{json,md,html}``) and
    ``summary.json``. A folder left by an earlier demo is replaced; any other existing folder is
    left alone and an error raised.
    """
    from fairmetric.models.embed import embed_dataset
    from fairmetric.models.embedder import load_embedder
    from fairmetric.train.trainer import build_data, train

    out = Path(out)
    if out.exists():
        if not (out / _MARKER).is_file():
            raise FileExistsError(
                f"{out} exists and was not written by 'fairmetric demo'; choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / _MARKER).write_text("written by fairmetric demo; replaced by the next demo run\n")

    cfg = load_config(None, ["name=demo", *(overrides or [])])
    t0 = time.perf_counter()
    print("fairmetric demo: coloured digits, colour is the sensitive attribute.")
    splits = build_data(cfg)
    train_set, test_set = splits["train"], splits["test"]
    print(train_set.describe())
    print(test_set.describe())
    print(
        f"training {cfg.model.backbone} -> {cfg.model.embedding_dim}-d embedding with "
        f"{cfg.loss.name} for {cfg.train.epochs} epochs on {train_set.name} ..."
    )
    result = train(cfg, out / "run", progress=progress)

    model = load_embedder(result["model_dir"])
    emb = embed_dataset(model, test_set, metadata={"split": "test", "model": result["model_dir"]})
    emb_path = emb.save(out / "test_embeddings.npz")
    trained = recall_by_group(emb, [1])["recall@1"]
    untrained = result["history"][0]["metrics"]["recall@1"]

    attribute = "colour"
    col = emb.attribute(attribute)
    names = emb.attribute_value_names[attribute]
    counts = {names[v]: int(c) for v, c in enumerate(np.bincount(col, minlength=len(names)))}
    train_counts = np.bincount(train_set.attribute(attribute), minlength=len(names))
    share = ", ".join(
        f"{names[v]} {c / train_counts.sum():.0%}" for v, c in enumerate(train_counts)
    )
    print()
    print(
        format_group_table(
            f"Recall@1 per colour group on the test split (digits unseen in training; training "
            f"colours: {share})",
            attribute,
            counts,
            {"untrained": untrained, "trained": trained},
        )
    )
    from fairmetric.audit import audit

    report = audit(emb, bootstrap=200, seed=cfg.train.seed, source=str(emb_path))
    report.save(out / "audit")
    print()
    print(format_audit_table(report, attribute))
    summary = {
        "train_colour_share": {names[v]: int(c) for v, c in enumerate(train_counts)},
        "test_counts": counts,
        "recall@1": {"untrained": untrained, "trained": trained},
        "seconds": time.perf_counter() - t0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print()
    print(
        f"outputs in {out}/: run/ (config, checkpoint, metrics.jsonl, exported model/), "
        f"{Path(emb_path).name}, summary.json, and the fairness audit audit/report.html "
        f"(open it in a browser) with report.json and report.md  [{summary['seconds']:.0f} s]"
    )
    return summary
