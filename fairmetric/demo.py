"""``fairmetric demo``: the end-to-end story on coloured digits, in a few minutes on a CPU.

A baseline and a PARADE embedding are trained on colour-imbalanced digits, both are audited, a
downstream probe is trained on colour-balanced data on top of each, and the two are compared side
by side in the terminal and in ``compare.html``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.train.config import load_config
from fairmetric.train.evaluate import recall_by_group

__all__ = [
    "run_demo",
    "format_group_table",
    "format_audit_table",
    "format_comparison",
    "format_summary",
]

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


ARMS = {
    "baseline": [],
    "PARADE": ["objective.parade.attributes=[colour]"],
}
"""The two embeddings the demo compares: the same config, with and without PARADE on colour."""


def _arm_numbers(report: Any, downstream: Any, attribute: str) -> dict[str, Any]:
    """The headline numbers of one arm: audit gaps and the downstream probe's accuracy."""
    r1 = report.metrics["recall@1"]
    worst = r1.worst_group(attribute)
    acc = downstream.report.metrics["accuracy"]
    d_worst = acc.worst_group(attribute)

    def gap(name: str) -> float | None:
        return report.metrics[name].difference(attribute) if name in report.metrics else None

    def overall(name: str) -> float | None:
        m = report.metrics.get(name)
        return None if m is None else m.overall.value

    return {
        "recall@1": r1.overall.value,
        "recall@1 worst group": worst[1] if worst else None,
        "recall@1 worst group name": worst[0] if worst else None,
        "recall@1 gap": gap("recall@1"),
        "recall@1 gap interval": list(r1.gap_interval("difference", attribute)),
        "intra-class alignment gap": gap("intra_class_alignment"),
        "uniformity gap": gap("uniformity"),
        f"{attribute} leakage (k-NN)": overall(f"leakage_knn:{attribute}"),
        f"{attribute} leakage (linear)": overall(f"leakage_linear:{attribute}"),
        "downstream accuracy": acc.overall.value,
        "downstream worst group": d_worst[1] if d_worst else None,
        "downstream gap": acc.difference(attribute),
        "downstream gap interval": list(acc.gap_interval("difference", attribute)),
    }


_ROWS = [
    ("recall@1", "Recall@1, overall", "higher"),
    ("recall@1 worst group", "Recall@1, worst colour", "higher"),
    ("recall@1 gap", "Recall@1 gap (light - dark)", "lower"),
    ("intra-class alignment gap", "alignment gap", "lower"),
    ("uniformity gap", "uniformity gap", "lower"),
    ("colour leakage (k-NN)", "colour leakage, k-NN", "lower"),
    ("colour leakage (linear)", "colour leakage, linear probe", "lower"),
    ("downstream accuracy", "downstream accuracy", "higher"),
    ("downstream worst group", "downstream, worst colour", "higher"),
    ("downstream gap", "downstream accuracy gap", "lower"),
]


def format_comparison(numbers: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table of the demo's arms."""
    names = list(numbers)
    header = f"{'':<32}" + "".join(f"{n:>12}" for n in names) + "   better"
    rows = [header, "-" * len(header)]
    for key, label, better in _ROWS:
        cells = []
        for n in names:
            v = numbers[n].get(key)
            cells.append(f"{'n/a' if v is None else f'{v:.3f}':>12}")
        rows.append(f"{label:<32}" + "".join(cells) + f"   {better}")
    return "\n".join(rows)


def format_summary(summary: dict[str, Any], attribute: str = "colour") -> str:
    """The tables the demo prints at the end, rendered from its ``summary.json``.

    ``run_demo`` prints exactly this text, so a record of a run renders the same tables as the run
    printed (the README's demo block is checked this way, see ``tests/test_readme.py``).
    """
    shares = summary["train_colour_share"]
    total = sum(shares.values())
    share = ", ".join(f"{name} {count / total:.0%}" for name, count in shares.items())
    table = format_group_table(
        f"Recall@1 per colour group on the test split (digits unseen in training; training "
        f"colours: {share})",
        attribute,
        summary["test_counts"],
        summary["recall@1"],
    )
    return (
        f"{table}\n\n"
        "Baseline vs PARADE (embedding audit and a downstream probe trained on balanced data):\n"
        f"{format_comparison(summary['comparison'])}"
    )


def _comparison_html(
    numbers: dict[str, dict[str, Any]], per_group: dict[str, Any], out: Path
) -> str:
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fairmetric.report.plots import figure_to_data_uri

    names = list(numbers)
    groups = list(next(iter(per_group.values()))["recall"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    width = 0.8 / len(names)
    for ax, key, title in (
        (axes[0], "recall", "Recall@1 (embedding)"),
        (axes[1], "downstream", "downstream accuracy (balanced probe)"),
    ):
        for i, n in enumerate(names):
            values = [per_group[n][key].get(g) or 0.0 for g in groups]
            ax.bar([j + i * width for j in range(len(groups))], values, width, label=n)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(groups))], groups)
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    img = figure_to_data_uri(fig)
    plt.close(fig)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for key, label, better in _ROWS:
        cells = "".join(
            f"<td>{'n/a' if numbers[n].get(key) is None else f'{numbers[n][key]:.3f}'}</td>"
            for n in names
        )
        body.append(f"<tr><th>{html.escape(label)}</th>{cells}<td>{better}</td></tr>")
    links = "".join(
        f'<li>{html.escape(n)}: <a href="{n.lower()}/audit/report.html">embedding audit</a>, '
        f'<a href="{n.lower()}/downstream/report.html">downstream report</a>, '
        f'<a href="{n.lower()}/run/metrics.jsonl">training log</a></li>'
        for n in names
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fairmetric demo: baseline vs PARADE</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
th:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>fairmetric demo: baseline vs PARADE on coloured digits</h1>
<p>Both embeddings were trained on digits 0-4 rendered 95% in the light colour and 5% in the dark
one, and are evaluated on the unseen digits 5-9 in both colours equally. PARADE adds a colour head
on the shared backbone and decorrelates the digit embedding from it (cross-covariance, weight
&rho;). "Downstream" is a logistic-regression probe of the digits 5-9 trained on a colour-balanced
half of the test split and evaluated on the other half. One seed: see benchmarks/RESULTS.md for how
much these numbers vary between seeds.</p>
<table><tr><th></th>{head}<th>better</th></tr>{"".join(body)}</table>
<p><img alt="per-group Recall@1 and downstream accuracy" src="{img}"></p>
<ul>{links}</ul></body></html>
"""


DEMO_THREADS = 1
"""CPU threads of the demo's torch, BLAS and OpenMP work. torch's CPU kernels sum in an order that
depends on the number of threads, and eight epochs of training turn that rounding into visible
differences in the printed numbers (Recall@1 moves in the second decimal between one and two
threads). With the count pinned, ``make demo`` prints the same tables on any number of cores (the
README shows them). The model is small, so one thread costs little; on a busy machine it is
faster."""


def run_demo(
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    progress: bool = True,
    threads: int | None = DEMO_THREADS,
) -> dict:
    """Train a baseline and a PARADE embedding on colour-imbalanced coloured digits and compare.

    For each arm (``baseline``, ``PARADE``) writes into ``out/<arm>/``: the training run
    (``run/``), the test embeddings (``test_embeddings.npz``), the fairness audit
    (``audit/report.{json,md,html}``) and a downstream probe trained on colour-balanced data
    (``downstream/report.*``). Then prints the side-by-side table and writes ``compare.html`` and
    ``summary.json``. A folder left by an earlier demo is replaced; any other existing folder is
    left alone and an error raised.

    ``threads`` pins the CPU threads of torch, BLAS and OpenMP for the run (see
    :data:`DEMO_THREADS`; ``None`` leaves them as they are); they are restored afterwards.
    """
    if threads is None:
        return _run_demo(out, overrides=overrides, progress=progress)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    import torch
    from threadpoolctl import threadpool_limits

    # load every library with a thread pool (faiss, BLAS of numpy and scipy) before limiting them
    import fairmetric.audit  # noqa: F401
    import fairmetric.downstream  # noqa: F401

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            return _run_demo(out, overrides=overrides, progress=progress)
    finally:
        torch.set_num_threads(before)


def _run_demo(out: str | Path, *, overrides: list[str] | None, progress: bool) -> dict:
    from fairmetric.audit import audit
    from fairmetric.downstream import run_downstream
    from fairmetric.models.embed import embed_dataset
    from fairmetric.models.embedder import load_embedder
    from fairmetric.report import write_report
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

    t0 = time.perf_counter()
    attribute = "colour"
    print("fairmetric demo: coloured digits, colour is the sensitive attribute.")
    base_cfg = load_config(None, ["name=demo_baseline", *(overrides or [])])
    splits = build_data(base_cfg)
    train_set, test_set = splits["train"], splits["test"]
    print(train_set.describe())
    print(test_set.describe())
    names = test_set.attribute_value_names[attribute]
    train_counts = np.bincount(train_set.attribute(attribute), minlength=len(names))
    test_counts = np.bincount(test_set.attribute(attribute), minlength=len(names))
    counts = {names[v]: int(c) for v, c in enumerate(test_counts)}

    numbers: dict[str, dict[str, Any]] = {}
    recalls: dict[str, Any] = {}
    per_group: dict[str, Any] = {}
    for arm, extra in ARMS.items():
        cfg = load_config(None, [f"name=demo_{arm.lower()}", *extra, *(overrides or [])])
        folder = out / arm.lower()
        print(
            f"\n[{arm}] training {cfg.model.backbone} -> {cfg.model.embedding_dim}-d embedding, "
            f"{cfg.loss.name}, {cfg.train.epochs} epochs"
            + (
                f", PARADE on colour (rho {cfg.objective.parade.rho:g}, "
                f"{cfg.objective.parade.decorrelation})"
                if cfg.objective.parade.attributes
                else ""
            )
            + " ..."
        )
        result = train(cfg, folder / "run", progress=progress)
        model = load_embedder(result["model_dir"])
        emb = embed_dataset(
            model, test_set, metadata={"split": "test", "model": result["model_dir"]}
        )
        emb_path = emb.save(folder / "test_embeddings.npz")
        recalls[arm] = recall_by_group(emb, [1])["recall@1"]
        if "untrained" not in recalls:
            recalls = {"untrained": result["history"][0]["metrics"]["recall@1"], **recalls}
        report = audit(emb, bootstrap=200, seed=cfg.train.seed, source=str(emb_path))
        write_report(report, folder / "audit")
        print(f"[{arm}] auditing and fitting a downstream probe on colour-balanced data ...")
        downstream = run_downstream(
            model,
            data=cfg.data.name,
            data_params=dict(cfg.data.params),
            image_size=cfg.data.image_size,
            classifier="probe",
            balance="attribute",
            balance_attribute=attribute,
            seed=cfg.train.seed,
            out_dir=folder / "downstream",
        )
        numbers[arm] = _arm_numbers(report, downstream, attribute)
        acc = downstream.report.metrics["accuracy"]
        per_group[arm] = {
            "recall": dict(recalls[arm]["by_group"][attribute]),
            "downstream": {g: e.value for g, e in acc.by_group[attribute].items()},
        }

    summary = {
        "train_colour_share": {names[v]: int(c) for v, c in enumerate(train_counts)},
        "test_counts": counts,
        "recall@1": recalls,
        "comparison": numbers,
    }
    summary = json.loads(json.dumps(summary))  # what summary.json holds, so both render alike
    print()
    print(format_summary(summary, attribute))
    (out / "compare.html").write_text(_comparison_html(numbers, per_group, out))
    summary["seconds"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print()
    print(
        f"outputs in {out}/: compare.html (open it in a browser: the two embeddings side by "
        f"side), and per arm: run/, test_embeddings.npz, audit/report.html, "
        f"downstream/report.html  [{summary['seconds']:.0f} s]"
    )
    return summary
