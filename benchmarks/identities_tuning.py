"""Tuning mitigation methods on the synthetic-identities benchmark's *training* draws.

The benchmark is reported on seeds 0-4; everything here runs on other draws of the generator
(seeds 100-109 by default: entirely different identities), so the settings chosen here are not
chosen on the reported numbers. Each arm is trained with the same seeds as the baseline (same data
draw, same initialisation) and compared *paired*: mean change in the Recall@1 gap and in overall
Recall@1 with a 95% t interval over the seeds.

Per run it records overall and per-group Recall@1 on the (50:50) test identities, each group's
mean resultant length ``||mean of unit embeddings||`` (a method that only raises the minority's is
collapsing it), and a balanced downstream probe: a linear probe (identity) trained on half of each
test identity's images and scored per palette group on the other half.

Results are cached per (config, level, arm, seed) as JSON, so re-running only trains what is
missing::

    OMP_NUM_THREADS=1 python benchmarks/identities_tuning.py                      # all arms, MLP
    OMP_NUM_THREADS=1 python benchmarks/identities_tuning.py --arms baseline,oracle --level identity
    python benchmarks/identities_tuning.py --table-only                           # print the table
    OMP_NUM_THREADS=1 python benchmarks/identities_tuning.py --config identities_baseline \\
        --seeds 100-102 --arms baseline,epoch_balanced                            # CNN check

Every arm over ten seeds takes about 45 minutes on one thread (an MLP run is ~7-12 s).

Findings when this was written (issue 13, MLP, per-image palette, baseline gap 0.244 over seeds
100-109): the oracle removes 83% of the gap; no training-time method halves it at <= 2 points of
Recall@1. Best significant cuts: batch_balanced -18% (-0.8 points), class_mixed -12% (+0.4
points), group_dro -21% (-4.7 points); DANN widens it (+17%). PARADE alone collapses the
embedding (mean resultant length ~1); epoch_balanced + PARADE (rho 1) moved nothing after the rv
chance level was detached (b6b3f7f). The cache is keyed by arm and seed only: delete an arm's
files after changing the code it runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ATTR = "palette"
EB = ["data.group_attribute=palette", "sampling.name=epoch_balanced"]
BB = ["data.group_attribute=palette", "sampling.name=batch_balanced"]
DRO = ["data.group_attribute=palette", "reducer.name=group_dro"]
ADV = ["objective.adversary.attribute=palette", "objective.adversary.hidden=64"]
GM = ["mitigation.group_mixup.enabled=true"]
CM = ["data.group_attribute=palette", "sampling.name=class_mixed"]
HM = ["mitigation.hard_mining.candidates_per_batch=128", "train.m_per_class=8"]
PARADE = [
    "objective.parade.attributes=[palette]",
    "objective.parade.decorrelation=rv",
    "objective.parade.detach_features=true",
    "objective.parade.balance=true",
]

#: arm name -> config overrides (on top of the config and ``data.params.attribute_level``)
ARMS: dict[str, list[str]] = {
    "baseline": [],
    "oracle": ["data.params.p_majority=0.5"],
    # sampling
    "epoch_balanced": EB,
    "epoch_balanced_0.7:0.3": EB + ["sampling.proportions={majority: 0.7, minority: 0.3}"],
    "epoch_balanced_0.8:0.2": EB + ["sampling.proportions={majority: 0.8, minority: 0.2}"],
    "batch_balanced": BB,
    "batch_balanced_0.75:0.25": BB + ["sampling.proportions={majority: 0.75, minority: 0.25}"],
    "hard_mining": HM,
    "class_mixed": CM,
    "class_mixed_0.5": CM + ["sampling.proportions={mixed: 0.5, pure: 0.5}"],
    "class_mixed_1.0": CM + ["sampling.proportions={mixed: 1.0}"],
    # loss-side methods (item 5 of issue 13)
    "reweight": ["data.group_attribute=palette", "reducer.name=group_weighted"],
    "reweight_sqrt": [
        "data.group_attribute=palette",
        "reducer.name=group_weighted",
        "reducer.beta=0.5",
    ],
    "reweight_old_normalisation": [
        "data.group_attribute=palette",
        "reducer.name=group_weighted",
        "reducer.normalise=all",
    ],
    "group_dro": DRO,
    "group_dro_eta0.001": DRO + ["reducer.eta=0.001"],
    "group_dro_eta0.1": DRO + ["reducer.eta=0.1"],
    "group_dro_C2": DRO + ["reducer.C=2"],
    "group_dro_eta0.001_C2": DRO + ["reducer.eta=0.001", "reducer.C=2"],
    "adversarial": ADV,
    "adversarial_unbalanced": ADV + ["objective.adversary.balanced=false"],
    "adversarial_alpha0.1": ADV + ["objective.adversary.alpha=0.1"],
    "smote": ["data.group_attribute=palette", "mitigation.smote.enabled=true"],
    "smote_batch_scope": [
        "data.group_attribute=palette",
        "mitigation.smote.enabled=true",
        "mitigation.smote.scope=batch",
    ],
    "class_mixed_m8+smote": CM + ["train.m_per_class=8", "mitigation.smote.enabled=true"],
    "class_mixed_m8": CM + ["train.m_per_class=8"],
    "group_mixup": CM + GM,
    "group_mixup_p1": CM + GM + ["mitigation.group_mixup.p=1.0"],
    "group_mixup_p0.25": CM + GM + ["mitigation.group_mixup.p=0.25"],
    "group_mixup_plain_batches": ["data.group_attribute=palette", *GM],
    "group_mixup+epoch_balanced": EB + GM,
    # combinations
    "epoch_balanced+parade_rho1": EB + PARADE + ["objective.parade.rho=1.0"],
    "epoch_balanced+parade_rho3": EB + PARADE + ["objective.parade.rho=3.0"],
    "epoch_balanced+parade_rho10": EB + PARADE + ["objective.parade.rho=10.0"],
    "parade_rho1": PARADE + ["objective.parade.rho=1.0"],
    "group_mixup+parade_rho1": CM + GM + PARADE + ["objective.parade.rho=1.0"],
    "group_mixup+epoch_balanced+parade_rho1": EB + GM + PARADE + ["objective.parade.rho=1.0"],
    "epoch_balanced+hard_mining": EB + HM,
    "epoch_balanced+adversarial": EB + ADV,
    "epoch_balanced_0.8:0.2+parade_rho1": EB
    + PARADE
    + ["objective.parade.rho=1.0", "sampling.proportions={majority: 0.8, minority: 0.2}"],
    "epoch_balanced_0.7:0.3+parade_rho1": EB
    + PARADE
    + ["objective.parade.rho=1.0", "sampling.proportions={majority: 0.7, minority: 0.3}"],
    # compute controls: epoch_balanced's pool doubles the epoch (59 batches instead of 31)
    "baseline_59batches": ["train.batches_per_epoch=59"],
    "parade_rho1_59batches": PARADE + ["objective.parade.rho=1.0", "train.batches_per_epoch=59"],
    "epoch_balanced_31batches+parade_rho1": EB
    + PARADE
    + ["objective.parade.rho=1.0", "train.batches_per_epoch=31"],
    "epoch_balanced+parade_rho0.3": EB + PARADE + ["objective.parade.rho=0.3"],
    "class_mixed+hard_mining": CM + HM,
    "class_mixed_0.5+hard_mining": CM + HM + ["sampling.proportions={mixed: 0.5, pure: 0.5}"],
    "class_mixed+parade_rho1": CM + PARADE + ["objective.parade.rho=1.0"],
}


def _parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def _mrl(e: np.ndarray) -> float:
    u = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return float(np.linalg.norm(u.mean(axis=0)))


def _probe(e: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, float]:
    """Linear identity probe: half of each identity's test images train it, the rest score it."""
    from fairmetric.downstream.probe import LinearProbe

    rng = np.random.default_rng(seed)
    train = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        train[idx[: len(idx) // 2]] = True
    probe = LinearProbe().fit(e[train], labels[train])
    correct = probe.predict(e[~train]) == labels[~train]
    g = groups[~train]
    return {"probe_acc": float(correct.mean())} | {
        f"probe_acc_{v}": float(correct[g == v].mean()) for v in (0, 1)
    }


def run_one(config: str, overrides: list[str], seed: int) -> dict[str, float]:
    """Train one arm at one seed and measure it (one torch thread)."""
    import torch

    torch.set_num_threads(1)
    from fairmetric.audit import audit
    from fairmetric.models import embed_dataset, load_embedder
    from fairmetric.train import load_config, train
    from fairmetric.train.trainer import build_data

    out = tempfile.mkdtemp(prefix="identities_tuning_")
    try:
        t0 = time.time()
        cfg = load_config(config, [f"train.seed={seed}", *overrides])
        train(cfg, out, progress=False, log=lambda s: None)
        test = build_data(cfg)["test"]
        emb = embed_dataset(load_embedder(out + "/model"), test, batch_size=256, device="cpu")
        rep = audit(emb, attributes=[ATTR], ks=[1], bootstrap=0, seed=0)
        r = rep["recall@1"]
        by = r.values(ATTR)
        e = np.asarray(emb.embeddings, dtype=np.float64)
        a = np.asarray(test.attribute(ATTR))
        row = {
            "r1": float(r.overall.value),
            "r1_majority": float(by["majority"]),
            "r1_minority": float(by["minority"]),
            "gap": float(r.difference(ATTR)),
            "mrl_majority": _mrl(e[a == 0]),
            "mrl_minority": _mrl(e[a == 1]),
            "mrl_all": _mrl(e),
        }
        row |= _probe(e, np.asarray(test.labels), a, seed)
        row["probe_gap"] = row["probe_acc_0"] - row["probe_acc_1"]
        row["seconds"] = time.time() - t0
        return row
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _t_interval(d: np.ndarray) -> tuple[float, float, float]:
    from scipy import stats

    m = float(d.mean())
    if len(d) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return m, m - h, m + h


def table(results: dict[str, dict[int, dict]], arms: list[str], seeds: list[int]) -> str:
    base = results.get("baseline", {})
    lines = [
        f"{'arm':34s} {'n':>2s} {'R@1':>6s} {'gap':>6s}  {'Δgap [95% CI]':>24s} {'Δgap%':>6s}  "
        f"{'ΔR@1 [95% CI]':>24s}  {'MRLmin':>6s} {'MRLmaj':>6s} {'probe':>6s} {'pgap':>6s} "
        f"{'Δpgap':>6s}"
    ]
    for arm in arms:
        rows = results.get(arm, {})
        ss = [s for s in seeds if s in rows]
        if not ss:
            continue

        def get(k, src=rows, ss=ss):
            return np.array([src[s][k] for s in ss])

        line = f"{arm:34s} {len(ss):2d} {get('r1').mean():6.3f} {get('gap').mean():6.3f}  "
        paired = [s for s in ss if s in base]
        if arm != "baseline" and len(paired) >= 2:

            def pb(k, paired=paired):
                return get(k, base, paired)

            def pa(k, paired=paired, rows=rows):
                return get(k, rows, paired)

            dg = _t_interval(pa("gap") - pb("gap"))
            dr = _t_interval(pa("r1") - pb("r1"))
            dp = (pa("probe_gap") - pb("probe_gap")).mean()
            rel = 100 * dg[0] / pb("gap").mean()
            line += (
                f"{dg[0]:+.3f} [{dg[1]:+.3f}, {dg[2]:+.3f}] {rel:+5.0f}%  "
                f"{dr[0]:+.3f} [{dr[1]:+.3f}, {dr[2]:+.3f}]  "
            )
        else:
            line += f"{'':24s} {'':6s}  {'':24s}  "
            dp = float("nan")
        line += (
            f"{get('mrl_minority').mean():6.3f} {get('mrl_majority').mean():6.3f} "
            f"{get('probe_acc').mean():6.3f} {get('probe_gap').mean():6.3f} {dp:+6.3f}"
        )
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="identities_mlp_baseline")
    parser.add_argument("--level", default="image", choices=["image", "identity"])
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arm names")
    parser.add_argument("--seeds", default="100-109", help="e.g. 100-109 or 100,101")
    parser.add_argument("--cache", default="runs/identities_tuning")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    seeds = _parse_seeds(args.seeds)
    if any(0 <= s <= 4 for s in seeds):
        parser.error("seeds 0-4 are the reported benchmark; tune on other seeds (e.g. 100-109)")
    cache = Path(args.cache) / f"{args.config}-{args.level}"
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[int, dict]] = {}
    todo = ["baseline"] + [a for a in arms if a != "baseline"]
    for arm in todo:
        results[arm] = {}
        for seed in seeds:
            path = cache / f"{arm}-{seed}.json"
            if path.exists():
                results[arm][seed] = json.loads(path.read_text())
            elif not args.table_only:
                overrides = [f"data.params.attribute_level={args.level}", *ARMS[arm]]
                row = run_one(args.config, overrides, seed) | {"overrides": overrides}
                path.write_text(json.dumps(row, indent=1))
                results[arm][seed] = row
                print(
                    f"{arm} seed {seed}: R@1 {row['r1']:.3f} gap {row['gap']:.3f} "
                    f"({row['seconds']:.0f}s)",
                    file=sys.stderr,
                    flush=True,
                )
    print(f"{args.config}, attribute_level={args.level}, seeds {args.seeds} (paired vs baseline)")
    print(table(results, todo, seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
