"""Training-step overhead: PARADE + Group DRO + batch-balanced sampling against a plain PML step.

Target (issue): a training step with PARADE + Group DRO + batch-level balanced sampling costs at
most 1.10x a plain pytorch-metric-learning triplet step with the same backbone and batch.

Both steps are measured side by side in one run, on the coloured-digits training split, with
models of the same architecture and the same initial weights:

- ``plain PML``: ``Embedder`` forward ``model(x)``, PML ``TripletMarginMiner(margin=0.2,
  type_of_triplets="semihard")`` + ``TripletMarginLoss(margin=0.2)``, backward, Adam step; batches
  from PML's ``MPerClassSampler`` (``--plain-sampler pml``, default) or fairmetric's
  ``MPerClassBatchSampler`` (``--plain-sampler fairmetric``), same batch size and m, one epoch
  = ``len(train) // batch`` batches;
- ``fairmetric``: exactly what ``fairmetric.train.trainer.train`` does per step, built from the
  trainer's own pieces (``build_data``, ``build_model``, ``training_groups``,
  ``build_training_loss``, ``build_objective``, ``build_sampler``, Adam over the model and
  ``objective.param_groups``) for ``data.group_attribute=colour``,
  ``sampling.name=batch_balanced``, ``objective.group_dro.enabled=true`` and
  ``objective.parade.attributes=[colour]`` (the library's default PARADE estimator, rho, xi width
  and learning rate: see the header line): next batch, ``model.features`` -> ``project`` ->
  ``finalize`` into a ``Batch``, ``objective(batch)``, backward, Adam step.

Each step is split by wall-clock stage timers (CPU ops are synchronous): ``data`` (sampler,
dataset reads, collation), ``forward`` (the model), ``loss`` (miner + metric loss, and for
fairmetric every objective term), ``backward`` and ``optim`` (Adam step + reading the loss).
Variants run interleaved, after ``--warmup`` untimed steps each: every round runs ``--steps``
steps of each variant, the order reversed every other round (ABBA), so plain and fairmetric steps
sit next to each other; on a shared machine load comes in bursts of seconds, which blocks of many
steps catch on one side only, hence the default of 100 rounds of 1 step. The table reports median
wall and process-CPU seconds per step, their ratios to plain, and the median (and IQR) of the
per-round ratios. A separate instrumented pass (forward hooks, after the timed rounds) splits the
``loss`` stage into miner, metric loss, reducer (Group DRO vs PML's ``AvgNonZeroReducer``) and the
PARADE term's parts; the samplers' index generation is timed alone as well.

``--ladder`` adds variants built through the trainer with one feature at a time (Objective path
only; + batch-balanced sampling; + Group DRO), and ``--variant KEY=VALUE ...`` (repeatable) a full
fairmetric step with other settings, e.g. the adversarial estimator, all in the same rounds.

    python benchmarks/train_overhead.py                       # test_resnet@32 px and resnet18@64 px
    python benchmarks/train_overhead.py --backbone test_resnet --image-size 32 --ladder
    python benchmarks/train_overhead.py --backbone resnet18 --image-size 96 --rounds 50
    python benchmarks/train_overhead.py --variant objective.parade.decorrelation=adversarial \
        objective.parade.rho=100
    python benchmarks/train_overhead.py --quick               # tiny smoke run (seconds)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

TARGET = 1.10
STAGES = ("data", "forward", "loss", "backward", "optim")
PRESETS = (("test_resnet", 32), ("resnet18", 64))  # the default run: tiny and realistic backbone
FAIR_OVERRIDES = [
    "data.group_attribute=colour",
    "sampling.name=batch_balanced",
    "objective.group_dro.enabled=true",
    "objective.parade.attributes=[colour]",
]
LADDER = (  # (name, overrides on top of the common ones), cumulative
    ("trainer path only", []),
    ("+ batch_balanced", FAIR_OVERRIDES[:2]),
    ("+ Group DRO", FAIR_OVERRIDES[:3]),
)
FULL = "fairmetric"
PLAIN = "plain PML"


class Batches:
    """Endless batches from a DataLoader; a new epoch (``set_epoch``) when one runs out."""

    def __init__(self, loader, sampler) -> None:
        self.loader, self.sampler, self.epoch = loader, sampler, 0
        self.it = iter(loader)

    def next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.epoch += 1
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(self.epoch)
            self.it = iter(self.loader)
            return next(self.it)


@dataclass
class Variant:
    """One kind of training step; ``step()`` returns its stage durations in seconds."""

    name: str
    step: Callable[[], tuple[float, ...]]
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)  # for the hook pass
    sampler: object = None
    complete: bool = False  # a step with all three features (the target applies)
    wall: list[float] = field(default_factory=list)  # per timed step: wall seconds
    cpu: list[float] = field(default_factory=list)  # per timed step: process CPU seconds
    stages: list[np.ndarray] = field(default_factory=list)  # per timed step: stage seconds


def make_config(args, overrides: list[str]):
    from fairmetric.train.config import load_config

    common = [
        "data.name=colored_digits",
        f"model.backbone={args.backbone}",
        f"data.image_size={args.image_size}",
        f"train.batch_size={args.batch_size}",
        f"train.m_per_class={args.m}",
        "train.device=cpu",
    ]
    if args.quick:
        common += [
            "data.params.copies=1",
            "model.embedding_dim=16",
            "objective.parade.xi_hidden=32",
        ]
    return load_config(None, common + overrides)


def make_trainer_variant(name: str, args, train_set, overrides: list[str]) -> Variant:
    """A step built exactly as ``fairmetric.train.trainer.train`` builds and runs it."""
    from torch.utils.data import DataLoader

    from fairmetric.train.trainer import (
        build_model,
        build_objective,
        build_sampler,
        build_training_loss,
        forward_batch,
        training_groups,
    )
    from fairmetric.utils import seed_everything

    cfg = make_config(args, overrides)
    tc = cfg.train
    seed_everything(tc.seed)
    device = torch.device("cpu")
    model = build_model(cfg, tuple(train_set.input_shape)).to(device)
    classes = np.unique(train_set.labels)
    lut = torch.full((int(train_set.labels.max()) + 1,), -1, dtype=torch.long)
    lut[torch.from_numpy(classes)] = torch.arange(len(classes))
    groups_np = training_groups(cfg, train_set)
    loss_fn = build_training_loss(
        cfg, train_set, groups_np, num_classes=len(classes), log=lambda _msg: None
    )
    objective = build_objective(cfg, train_set, loss_fn, feature_dim=model.feature_dim).to(device)
    param_groups = [{"params": list(model.parameters()), "lr": cfg.optim.lr}]
    param_groups += objective.param_groups(cfg.optim.lr, cfg.optim.loss_lr)
    optimizer = torch.optim.Adam(param_groups, weight_decay=cfg.optim.weight_decay)
    sampler = build_sampler(
        cfg, train_set, groups_np, batch_size=tc.batch_size, num_batches=tc.batches_per_epoch
    )
    group_col = (
        train_set.attribute_index(cfg.data.group_attribute) if groups_np is not None else None
    )
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=0)
    batches = Batches(loader, sampler)
    attribute_names = list(train_set.attribute_names)
    model.train()
    objective.train()
    totals = {"loss": 0.0, "parts": {}}

    def step() -> tuple[float, ...]:
        t0 = time.perf_counter()
        x, y, attrs = batches.next()
        x = x.to(device, non_blocking=True)
        y = lut[y].to(device, non_blocking=True)
        attrs = attrs.long().to(device, non_blocking=True)
        g = attrs[:, group_col] if group_col is not None else None
        t1 = time.perf_counter()
        batch = forward_batch(model, x, y, attrs, attribute_names, g)
        t2 = time.perf_counter()
        loss, parts = objective(batch)
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        optimizer.step()
        totals["loss"] += float(loss.detach())
        for key, value in parts.items():
            totals["parts"][key] = totals["parts"].get(key, 0.0) + value
        t5 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4

    modules = {
        "miner": objective.miner,
        "metric loss (incl. reducer)": objective.metric_loss,
        "  reducer": objective.metric_loss.reducer,
    }
    for term in objective.terms:
        prefix = getattr(term, "prefix", type(term).__name__)
        modules[f"{prefix} term (whole)"] = term
        for child in ("head", "attribute_miner", "attribute_loss", "decorrelation"):
            if getattr(term, child, None) is not None:
                modules[f"  {child}"] = getattr(term, child)
        xi = getattr(getattr(term, "decorrelation", None), "xi", None)
        if xi is not None:
            modules["    of which xi MLP"] = xi
    return Variant(name, step, modules, sampler)


def make_plain_variant(args, train_set) -> Variant:
    """A plain PML triplet step on the same architecture and initial weights."""
    from pytorch_metric_learning import losses, miners, samplers
    from torch.utils.data import DataLoader

    from fairmetric.sampling.m_per_class import MPerClassBatchSampler
    from fairmetric.train.trainer import build_model
    from fairmetric.utils import seed_everything

    cfg = make_config(args, [])
    tc = cfg.train
    seed_everything(tc.seed)
    model = build_model(cfg, tuple(train_set.input_shape))
    loss_fn = losses.TripletMarginLoss(margin=0.2)
    miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    if args.plain_sampler == "pml":
        epoch = len(train_set) // tc.batch_size * tc.batch_size
        sampler = samplers.MPerClassSampler(
            train_set.labels, m=tc.m_per_class, batch_size=tc.batch_size,
            length_before_new_iter=epoch,
        )  # fmt: skip
        loader = DataLoader(train_set, batch_size=tc.batch_size, sampler=sampler, num_workers=0)
    else:
        sampler = MPerClassBatchSampler(
            train_set.labels, m=tc.m_per_class, batch_size=tc.batch_size, seed=tc.seed
        )
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=0)
    batches = Batches(loader, sampler)
    model.train()
    totals = {"loss": 0.0}

    def step() -> tuple[float, ...]:
        t0 = time.perf_counter()
        x, y, _attrs = batches.next()
        t1 = time.perf_counter()
        emb = model(x)
        t2 = time.perf_counter()
        loss = loss_fn(emb, y, miner(emb, y))
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        optimizer.step()
        totals["loss"] += float(loss.detach())
        t5 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4

    modules = {
        "miner": miner,
        "metric loss (incl. reducer)": loss_fn,
        "  reducer": loss_fn.reducer,
    }
    return Variant(PLAIN, step, modules, sampler)


def run_steps(variant: Variant, n: int, record: bool = True) -> np.ndarray:
    """Run ``n`` steps (recording wall, CPU and stage times when ``record``); mean stages."""
    total = np.zeros(len(STAGES))
    for _ in range(n):
        c = time.process_time()
        stages = np.asarray(variant.step())
        cpu = time.process_time() - c
        total += stages
        if record:
            variant.wall.append(float(stages.sum()))
            variant.cpu.append(cpu)
            variant.stages.append(stages)
    return total / max(n, 1)


def hook_pass(variant: Variant, n: int) -> dict[str, float]:
    """Mean seconds per step spent inside each of ``variant.modules`` (forward only)."""
    import fairmetric.losses.terms.parade as terms_module

    spent = dict.fromkeys(variant.modules, 0.0)
    starts: dict[str, float] = {}
    handles = []
    for name, module in variant.modules.items():

        def pre(_m, _inp, name=name):
            starts[name] = time.perf_counter()

        def post(_m, _inp, _out, name=name):
            spent[name] += time.perf_counter() - starts[name]

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    original = terms_module.embedding_correlation
    corr_key = "  correlation diagnostic (no_grad)"

    def timed_correlation(*a, **k):
        t = time.perf_counter()
        out = original(*a, **k)
        spent[corr_key] = spent.get(corr_key, 0.0) + time.perf_counter() - t
        return out

    terms_module.embedding_correlation = timed_correlation
    try:
        stages = run_steps(variant, n, record=False)
    finally:
        terms_module.embedding_correlation = original
        for h in handles:
            h.remove()
    out = {k: v / n for k, v in spent.items()}
    whole = float(stages[STAGES.index("loss")])
    top = [v for k, v in out.items() if not k.startswith(" ")]
    out["other (Objective bookkeeping)"] = whole - sum(top)
    out["loss stage (all)"] = whole
    return out


def sampler_cost(variant: Variant, n: int) -> float:
    """Seconds per batch to produce indices alone (no data), over ``n`` batches."""
    sampler = variant.sampler
    t = time.perf_counter()
    done, epoch = 0, 50_000
    while done < n:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        epoch += 1
        if hasattr(sampler, "batch_size") and not hasattr(sampler, "set_epoch"):  # PML sampler
            idx = list(iter(sampler))
            done += len(idx) // sampler.batch_size
            continue
        for _batch in sampler:
            done += 1
            if done >= n:
                break
    return (time.perf_counter() - t) / done


def machine_line() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads; load average {load}"
    )


def bench_backbone(args) -> dict:
    from fairmetric.train.trainer import build_data

    cfg = make_config(args, FAIR_OVERRIDES)
    train_set = build_data(cfg)["train"]
    plain = make_plain_variant(args, train_set)
    par = cfg.objective.parade
    full = make_trainer_variant(
        f"{FULL} ({par.decorrelation}, rho {par.rho:g})", args, train_set, FAIR_OVERRIDES
    )
    full.complete = True
    variants = [plain, full]
    if args.ladder:
        variants += [make_trainer_variant(n, args, train_set, o) for n, o in LADDER]
    for extra in args.variant or []:
        short = (o.removeprefix("objective.parade.").removeprefix("objective.") for o in extra)
        name = "fairmetric, " + " ".join(short)
        variants.append(make_trainer_variant(name, args, train_set, FAIR_OVERRIDES + extra))
        variants[-1].complete = True
    colour = np.asarray(train_set.attributes[:, train_set.attribute_index("colour")])
    print(
        f"\n== {args.backbone} @ {args.image_size} px: coloured digits train split "
        f"{len(train_set)} samples, {len(np.unique(train_set.labels))} classes, colour groups "
        f"{np.bincount(colour).tolist()}; batch {args.batch_size}, m {args.m}; embedding "
        f"{cfg.model.embedding_dim}; PARADE {par.decorrelation}, rho {par.rho:g}, attribute dim "
        f"{par.attribute_dim}, xi width {par.xi_hidden}; plain sampler: "
        f"{'PML MPerClassSampler' if args.plain_sampler == 'pml' else 'MPerClassBatchSampler'}"
    )
    t = time.perf_counter()
    for v in variants:
        run_steps(v, args.warmup, record=False)
    warm = time.perf_counter() - t
    print(f"   warm-up: {args.warmup} steps per variant ({warm:.1f} s)", flush=True)
    n = args.steps
    for r in range(args.rounds):  # ABBA: plain and fairmetric adjacent, order reversed each round
        for v in variants if r % 2 == 0 else variants[::-1]:
            run_steps(v, n)
        if (r + 1) % max(args.rounds // 5, 1) == 0 or r + 1 == args.rounds:
            k = max(args.rounds // 5, 1) * n  # the steps since the last line
            per_round = " ".join(f"{1e3 * np.median(v.wall[-k:]):.1f}" for v in variants)
            print(f"   rounds to {r + 1}/{args.rounds}: median ms/step {per_round}", flush=True)

    def per_round(values: list, ref: list, op) -> np.ndarray:
        """``op(round median of values, round median of ref)`` for every round."""
        v, r = np.asarray(values), np.asarray(ref)
        return np.array(
            [op(np.median(v[i : i + n], axis=0), np.median(r[i : i + n], axis=0)) for i in
             range(0, len(r), n)]
        )  # fmt: skip

    def summary(v: Variant) -> dict:
        wall = per_round(v.wall, plain.wall, np.divide)
        return {
            "wall": float(np.median(v.wall)),
            "cpu": float(np.median(v.cpu)),
            "ratio": float(np.median(wall)),
            "range": "{:.2f}-{:.2f}".format(*np.percentile(wall, [25, 75])),
            "cpu_ratio": float(np.median(per_round(v.cpu, plain.cpu, np.divide))),
            "medians": float(np.median(v.wall) / np.median(plain.wall)),
            "stages": np.median(np.stack(v.stages), axis=0),
            "extra": np.median(per_round(v.stages, plain.stages, np.subtract), axis=0),
        }

    res = {v.name: summary(v) for v in variants}
    print(
        f"\n{'':48s} {'wall ms':>8s} {'cpu ms':>8s} {'ratio':>6s} {'IQR':>9s} {'cpu':>6s} "
        f"{'medians':>7s}  " + " ".join(f"{s:>8s}" for s in STAGES)
    )
    for v in variants:
        x = res[v.name]
        print(
            f"{v.name[:48]:48s} {1e3 * x['wall']:8.2f} {1e3 * x['cpu']:8.2f} {x['ratio']:6.3f} "
            f"{x['range']:>9s} {x['cpu_ratio']:6.3f} {x['medians']:7.3f}  "
            + " ".join(f"{1e3 * s:8.2f}" for s in x["stages"])
        )
    f = res[full.name]
    print(
        f"{'extra per step (fairmetric - plain, paired)':48s} {'':>8s} {'':>8s} {'':>6s} {'':>9s} "
        f"{'':>6s} {'':>7s}  " + " ".join(f"{1e3 * s:8.2f}" for s in f["extra"])
    )
    print(
        f"(wall / cpu ms: median wall-clock / process-CPU ms per step over {args.rounds} "
        f"interleaved rounds of {n} step(s); ratio / IQR: median / interquartile range over "
        f"rounds of the round's wall time over the plain step(s) of the same round -- the "
        f"verdict; cpu: the same for CPU time; medians: ratio of the two median wall times, "
        f"unpaired; stage columns: median wall ms per stage, which need not add up to the median "
        f"step; extra: median over rounds of the per-stage difference)"
    )
    print(
        f"fairmetric / plain = {f['ratio']:.3f} (IQR {f['range']}; cpu {f['cpu_ratio']:.3f}); "
        f"target <= {TARGET:.2f}: {'PASS' if f['ratio'] <= TARGET else 'FAIL'}"
    )

    # where the loss stage goes: forward hooks on the objective's modules, separate pass
    n_hook = max(min(args.rounds * args.steps, 10), 1)
    split = [v for v in variants if v is plain or v.complete]
    hooks = [hook_pass(v, n_hook) for v in split]
    keys: list[str] = []
    for h in hooks:  # merge the row orders: a key missing so far goes after its predecessor
        for i, key in enumerate(h):
            if key not in keys:
                prev = list(h)[i - 1] if i else None
                keys.insert(keys.index(prev) + 1 if prev in keys else len(keys), key)
    print(f"\nloss stage split (forward only; instrumented pass of {n_hook} steps each, ms/step):")
    cols = ["plain"] + [f"[{i}]" for i in range(1, len(split))]
    print(f"  {'':44s} " + " ".join(f"{c:>8s}" for c in cols))
    for key in keys:
        cells = [f"{1e3 * h[key]:8.2f}" if key in h else f"{'-':>8s}" for h in hooks]
        print(f"  {key:44s} " + " ".join(cells))
    for i, v in enumerate(split[1:], 1):
        print(f"  [{i}] {v.name}")

    n_idx = 20 if args.quick else 450
    print(f"\nsampler alone (indices only, {n_idx} batches):")
    for v in (plain, full):
        s = sampler_cost(v, n_idx)
        print(f"  {type(v.sampler).__name__:44s} {1e3 * s:8.3f} ms/batch  ({v.name})")
    rows = []
    for v in variants:
        if v.complete:
            rows.append(
                {
                    "backbone": f"{args.backbone}@{args.image_size}",
                    "step": v.name,
                    "plain": res[plain.name]["wall"],
                    **res[v.name],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default=None, help="timm name or test_resnet (default: both "
                    "presets, test_resnet@32 and resnet18@64)")  # fmt: skip
    ap.add_argument("--image-size", type=int, default=None, help="pixels (default: the preset's)")
    ap.add_argument("--batch-size", type=int, default=40)
    ap.add_argument("--m", type=int, default=8, help="samples per class in a batch")
    ap.add_argument("--steps", type=int, default=1, help="steps per variant per round")
    ap.add_argument("--rounds", type=int, default=100, help="interleaved rounds")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per variant first")
    ap.add_argument("--plain-sampler", choices=("pml", "fairmetric"), default="pml")
    ap.add_argument("--ladder", action="store_true", help="also time the intermediate variants")
    ap.add_argument(
        "--variant",
        action="append",
        nargs="+",
        metavar="KEY=VALUE",
        help="also time the fairmetric step with these config overrides (repeatable), e.g. "
        "objective.parade.decorrelation=adversarial",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument(
        "--quick", action="store_true", help="tiny smoke run: 16 px, 4 rounds of 1 step"
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.backbone is None:
        presets = [PRESETS[0]] if args.quick else list(PRESETS)
        if args.image_size is not None:
            presets = [(b, args.image_size) for b, _ in presets]
    else:
        size = args.image_size or dict(PRESETS).get(args.backbone, 32)
        presets = [(args.backbone, size)]
    if args.quick:
        presets = [(b, 16) for b, _ in presets]
        args.steps, args.rounds, args.warmup = 1, 4, 1

    print(machine_line())
    t = time.perf_counter()
    results = []
    for backbone, size in presets:
        args.backbone, args.image_size = backbone, size
        results += bench_backbone(args)

    print(f"\nsummary: fairmetric step <= {TARGET:.2f} x plain PML triplet step")
    print(
        f"{'backbone':16s} {'fairmetric step':48s} {'plain s':>8s} {'fair s':>8s} {'ratio':>6s} "
        f"{'IQR':>9s} {'cpu':>6s} {'target':>7s}  result"
    )
    for r in results:
        print(
            f"{r['backbone']:16s} {r['step'][:48]:48s} {r['plain']:8.4f} {r['wall']:8.4f} "
            f"{r['ratio']:6.3f} {r['range']:>9s} {r['cpu_ratio']:6.3f} "
            f"{'<= ' + format(TARGET, '.2f'):>7s}  {'PASS' if r['ratio'] <= TARGET else 'FAIL'}"
        )
    print("(s: median seconds per step; ratio: median per-round ratio, see above)")
    print(f"total {time.perf_counter() - t:.0f} s; " + machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
