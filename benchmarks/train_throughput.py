"""Training throughput: fairmetric's training loop against a plain timm + PML loop (issue 7).

Target (issue): ``fairmetric.train.trainer.train`` trains at least 0.9x as many images per second
as the loop a user would write by hand with timm and pytorch-metric-learning, for the same model,
batch and precision.

Both loops run in one process, on the coloured-digits training split, for the same number of
epochs of ``--steps`` steps each; the first epoch of every run is a warm-up and is dropped:

- ``fairmetric``: the real ``train(cfg, out_dir, progress=False)`` with the default config
  (``TripletMarginLoss(margin=0.2)`` + semihard ``TripletMarginMiner(margin=0.2)``, fairmetric's
  ``MPerClassBatchSampler``, Adam) and ``model.backbone``, ``data.image_size``,
  ``train.batch_size``, ``train.precision``, ``train.channels_last``, ``train.num_workers``,
  ``train.device`` from the command line and ``train.batches_per_epoch = --steps``. Its images/s
  is the trainer's own: every history record (one per epoch) holds ``images`` and ``seconds``,
  the wall time of the epoch's training steps (evaluation, checkpoints and export are not timed;
  they do take wall time, so the test split is kept small: ``data.params.copies=1`` and
  ``train_classes`` digits 0-7, leaving digits 8 and 9, 354 images, for testing);
- ``plain``: ``timm.create_model(backbone, pretrained=False, num_classes=0)`` + ``nn.Linear`` to
  the same embedding size + ``F.normalize`` (its parameter count is checked equal to fairmetric's
  ``Embedder``), the inputs standardised with the backbone's mean / std inside the loop (the
  ``Embedder`` does the same inside its forward, so both pay for it), PML's
  ``MPerClassSampler(labels, m, batch_size, length_before_new_iter=steps * batch)`` over the same
  dataset object (``build_data(cfg)["train"]``, samples are ``(x, y, attributes)``), a DataLoader
  with the same ``num_workers`` (and, like the trainer, persistent workers and pinned memory on
  CUDA), the same miner and loss, Adam at the same learning rate, ``torch.autocast`` at the same
  precision around the model (fp16 with a ``GradScaler``), channels-last when asked. An epoch is
  timed with ``time.perf_counter()`` around its loop only (after ``torch.cuda.synchronize()`` on
  a GPU; the trainer synchronises at the end of an epoch through its loss finiteness check).

Each run builds its model, optimiser and loader afresh from the same seed. Runs are interleaved,
``--rounds`` rounds of one plain and one fairmetric run, the order reversed every other round
(ABBA), because load on a shared machine comes in bursts. A run's images/s is its images over its
seconds, warm-up epoch excluded. The report gives the median images/s of each loop, and the
verdict: the median (and IQR) over rounds of fairmetric's images/s over the plain run's of the
same round, against the 0.9 target. ``--profile N`` then runs each loop once more under cProfile
and prints its N most expensive functions (own time), to find where fairmetric's time goes.

    python benchmarks/train_throughput.py                                   # test_resnet @ 32 px
    python benchmarks/train_throughput.py --backbone resnet18 --image-size 64 --steps 10
    python benchmarks/train_throughput.py --precision bf16 --channels-last --num-workers 1
    python benchmarks/train_throughput.py --quick                           # smoke run (seconds)

bf16 / fp16 on a CPU without native bfloat16 / float16 arithmetic (no AVX512-BF16 or AMX) is
emulated and many times slower than fp32; the trainer also evaluates at ``train.precision``, so
such runs take long in wall time (use few ``--steps`` and ``--rounds``).

On a GPU (the realistic setting: a large backbone, mixed precision, loader workers):

    python benchmarks/train_throughput.py --device cuda --backbone resnet50 --image-size 224 \\
        --precision bf16 --channels-last --num-workers 4 --batch-size 64 --steps 50
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TARGET = 0.90
MARGIN = 0.2  # the default config's loss and miner margin; checked below
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_config(args):
    from fairmetric.train.config import load_config

    cfg = load_config(
        None,
        [
            "data.name=colored_digits",
            # a small test split (digits 8 and 9, one rendering each): the trainer evaluates on
            # it between epochs, untimed but not free; batches hold 5 of the 8 training digits
            "data.params.copies=1",
            "data.params.train_classes=[0,1,2,3,4,5,6,7]",
            f"model.backbone={args.backbone}",
            f"data.image_size={args.image_size}",
            f"train.batch_size={args.batch_size}",
            f"train.m_per_class={args.m}",
            f"train.batches_per_epoch={args.steps}",
            f"train.epochs={args.epochs}",
            f"train.precision={args.precision}",
            f"train.channels_last={str(args.channels_last).lower()}",
            f"train.num_workers={args.num_workers}",
            f"train.device={args.device}",
        ],
    )
    expected = (
        ("loss", "TripletMarginLoss", {"margin": MARGIN}),
        ("miner", "TripletMarginMiner", {"margin": MARGIN, "type_of_triplets": "semihard"}),
    )
    for key, name, params in expected:  # the plain loop hard-codes what a user would write
        part = getattr(cfg, key)
        if (part.name, part.params) != (name, params):
            raise SystemExit(f"the default config's {key} changed ({part}); update this benchmark")
    return cfg


def run_fairmetric(cfg, work: Path) -> dict:
    """One call of the real trainer; per-epoch images and seconds from its history."""
    from fairmetric.train.trainer import train

    out = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    t = time.perf_counter()
    try:
        result = train(cfg, out, progress=False, log=lambda _msg: None)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    epochs = result["history"][1:]
    return {
        "images": [int(r["images"]) for r in epochs],
        "seconds": [float(r["seconds"]) for r in epochs],
        "wall": time.perf_counter() - t,
    }


def build_plain(cfg, train_set, device: torch.device):
    """The reference a user writes: timm backbone + Linear + L2 normalisation, PML, Adam."""
    import timm
    import torch.nn as nn
    from pytorch_metric_learning import losses, miners

    from fairmetric.train.trainer import build_model
    from fairmetric.utils import seed_everything

    seed_everything(cfg.train.seed)
    c = train_set.input_shape[0]
    backbone = timm.create_model(cfg.model.backbone, pretrained=False, num_classes=0, in_chans=c)
    head = nn.Linear(backbone.num_features, cfg.model.embedding_dim)
    pcfg = backbone.pretrained_cfg  # standardise as the Embedder does (and timm's transforms)
    mean = torch.tensor(pcfg.get("mean", (0.0,) * c), device=device).view(1, -1, 1, 1)
    std = torch.tensor(pcfg.get("std", (1.0,) * c), device=device).view(1, -1, 1, 1)
    if mean.shape[1] != c:  # e.g. grey input to an RGB backbone: the channel average
        mean, std = mean.mean().expand(1, c, 1, 1), std.mean().expand(1, c, 1, 1)
    model = nn.Sequential(backbone, head).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mine = sum(p.numel() for p in model.parameters())
    theirs = sum(p.numel() for p in build_model(cfg, tuple(train_set.input_shape)).parameters())
    if mine != theirs:
        raise SystemExit(f"plain model has {mine} parameters, fairmetric's Embedder {theirs}")
    return {
        "model": model,
        "mean": mean,
        "std": std,
        "loss": losses.TripletMarginLoss(margin=MARGIN),
        "miner": miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard"),
        "optimizer": torch.optim.Adam(
            model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        ),
        "params": mine,
    }


def run_plain(cfg, train_set, device: torch.device) -> dict:
    """The plain loop, ``train.epochs`` epochs of ``train.batches_per_epoch`` steps."""
    import torch.nn.functional as F
    from pytorch_metric_learning import samplers
    from torch.utils.data import DataLoader

    t = time.perf_counter()
    tc = cfg.train
    p = build_plain(cfg, train_set, device)
    model, loss_fn, miner, optimizer = p["model"], p["loss"], p["miner"], p["optimizer"]
    mean, std = p["mean"], p["std"]
    sampler = samplers.MPerClassSampler(
        train_set.labels,
        tc.m_per_class,
        batch_size=tc.batch_size,
        length_before_new_iter=tc.batches_per_epoch * tc.batch_size,
    )
    cuda = device.type == "cuda"
    loader = DataLoader(
        train_set,
        batch_size=tc.batch_size,
        sampler=sampler,
        num_workers=tc.num_workers,
        pin_memory=cuda,
        persistent_workers=tc.num_workers > 0,
    )
    dtype = DTYPES[tc.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
    fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
    images, seconds = [], []
    for _epoch in range(tc.epochs):
        model.train()
        n = 0
        t0 = time.perf_counter()
        for x, y, _attrs in loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
                emb = model((x - mean) / std)
            emb = F.normalize(emb.float(), dim=1)
            loss = loss_fn(emb, y, miner(emb, y))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n += len(x)
        if cuda:
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - t0)
        images.append(n)
    return {"images": images, "seconds": seconds, "wall": time.perf_counter() - t}


def rate(run: dict) -> float:
    """Images per second over the run's epochs after the first (warm-up)."""
    return sum(run["images"][1:]) / sum(run["seconds"][1:])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: torch.device) -> str:
    import pytorch_metric_learning
    import timm

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}){gpu}, python "
        f"{platform.python_version()}, torch {torch.__version__}, timm {timm.__version__}, "
        f"pytorch-metric-learning {pytorch_metric_learning.__version__}, "
        f"{torch.get_num_threads()} torch threads; load average {load}"
    )


def fmt(rate: float) -> str:
    """Images per second with 3 or more significant digits."""
    return f"{rate:.{0 if rate >= 100 else 1 if rate >= 10 else 2}f}"


def iqr(values, rates: bool = False) -> str:
    lo, hi = np.percentile(values, [25, 75])
    return f"{fmt(lo)}-{fmt(hi)}" if rates else f"{lo:.2f}-{hi:.2f}"


def profile(name: str, fn, top: int) -> None:
    """Run ``fn`` under cProfile and print its ``top`` functions by own time."""
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    print(f"\n-- cProfile, {name} (one run, {time.perf_counter() - t:.1f} s wall, top {top}):")
    print("\n".join(lines[start:]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="test_resnet", help="timm model name")
    ap.add_argument("--image-size", type=int, default=32, help="pixels")
    ap.add_argument("--batch-size", type=int, default=40)
    ap.add_argument("--m", type=int, default=8, help="samples per class in a batch")
    ap.add_argument("--precision", choices=tuple(DTYPES), default="fp32")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--steps", type=int, default=40, help="steps per epoch")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run, the first dropped")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (plain + fairmetric)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument(
        "--profile", type=int, default=0, metavar="N", help="afterwards, cProfile one run of "
        "each loop and print its N most expensive functions"
    )  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: 16 px, 2 rounds")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (the first epoch of every run is dropped)")
    if args.quick:
        args.image_size, args.steps, args.epochs, args.rounds = 16, 3, 2, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from fairmetric.train.trainer import build_data
    from fairmetric.utils import resolve_device

    device = resolve_device(args.device)
    print("command: python " + shlex.join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]))
    print(machine_line(device))
    cfg = make_config(args)
    splits = build_data(cfg)
    train_set = splits["train"]
    params = build_plain(cfg, train_set, device)["params"]
    tc = cfg.train
    print(
        f"\n== {args.backbone} @ {args.image_size} px on {device}, {args.precision}"
        f"{', channels-last' if args.channels_last else ''}, {args.num_workers} loader workers: "
        f"coloured digits train split {len(train_set)} samples, "
        f"{len(np.unique(train_set.labels))} classes (test split {len(splits['test'])}); batch "
        f"{tc.batch_size}, m "
        f"{tc.m_per_class}; {params:,} parameters (embedding {cfg.model.embedding_dim}); "
        f"{args.rounds} rounds x {args.epochs} epochs x {args.steps} steps per loop, first epoch "
        f"of each run dropped",
        flush=True,
    )
    plain, fair, ratios = [], [], []
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fairmetric-throughput-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):  # ABBA: the order reversed every other round
            runs = {}
            for name in ("plain", "fairmetric") if r % 2 == 0 else ("fairmetric", "plain"):
                if name == "plain":
                    runs[name] = run_plain(cfg, train_set, device)
                else:
                    runs[name] = run_fairmetric(cfg, work)
            p, f = rate(runs["plain"]), rate(runs["fairmetric"])
            plain.append(p)
            fair.append(f)
            ratios.append(f / p)
            per_epoch = {
                k: " ".join(fmt(i / s) for i, s in zip(v["images"], v["seconds"], strict=True))
                for k, v in runs.items()
            }
            first = "plain" if r % 2 == 0 else "fairmetric"
            print(
                f"   round {r + 1}/{args.rounds} ({first} first): plain {fmt(p):>6s} img/s, "
                f"fairmetric {fmt(f):>6s} img/s, ratio {f / p:.3f}  (epochs: plain "
                f"{per_epoch['plain']}, fairmetric {per_epoch['fairmetric']} img/s; run wall "
                f"plain {runs['plain']['wall']:.1f} s, fairmetric {runs['fairmetric']['wall']:.1f} "
                "s incl. setup, evaluation, checkpoints)",
                flush=True,
            )
        ratio = float(np.median(ratios))
        print(f"\n{'loop':12s} {'images/s':>9s} {'IQR':>15s}")
        print(f"{'plain':12s} {fmt(np.median(plain)):>9s} {iqr(plain, True):>15s}")
        print(f"{'fairmetric':12s} {fmt(np.median(fair)):>9s} {iqr(fair, True):>15s}")
        print(
            f"(median over {args.rounds} rounds of each run's images/s over epochs 2..{args.epochs} "
            f"of {args.steps} steps; ratio: median over rounds of fairmetric / plain in the same "
            f"round)"
        )
        print(
            f"fairmetric / plain = {ratio:.3f} (IQR {iqr(ratios)}; ratio of medians "
            f"{np.median(fair) / np.median(plain):.3f}); target >= {TARGET:.2f}: "
            f"{'PASS' if ratio >= TARGET else 'FAIL'}"
        )
        if args.profile:
            profile("plain", lambda: run_plain(cfg, train_set, device), args.profile)
            profile("fairmetric train()", lambda: run_fairmetric(cfg, work), args.profile)
    print(f"\ntotal {time.perf_counter() - t:.0f} s; " + machine_line(device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
