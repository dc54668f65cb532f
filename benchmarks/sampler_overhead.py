"""Sampler overhead: iterating one epoch of batch indices against one epoch of training.

On the default coloured-digits baseline (``ExperimentConfig()``: test_resnet backbone, batch 40,
m 8, PML ``TripletMarginLoss`` + semi-hard ``TripletMarginMiner``, Adam) it measures, in one run:

- ``train epoch``: one plain training epoch -- data loading, forward, miner, loss, backward and
  Adam step over ``MPerClassBatchSampler`` batches -- built directly with torch and PML;
- for each sampler (``MPerClassBatchSampler``, ``EpochBalancedBatchSampler`` over/under on the
  colour attribute, ``GroupQuotaBatchSampler`` with colour quotas 50:50): the time to iterate one
  epoch of batch indices (no data), after construction (timed separately).

Samplers yield different numbers of batches per epoch (over-sampling makes the epoch longer), so
the overhead is reported per batch: sampler seconds per batch / training seconds per batch, i.e.
the share of an epoch of that sampler's length spent producing indices. Target: below 1 %.

    python benchmarks/sampler_overhead.py                     # 3 repeats of 1 epoch each
    python benchmarks/sampler_overhead.py --repeats 5 --epochs 2
    python benchmarks/sampler_overhead.py --quick             # tiny smoke run (seconds)
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def build(quick: bool):
    from fairmetric.train.config import ExperimentConfig
    from fairmetric.train.trainer import build_data, build_model

    cfg = ExperimentConfig()
    if quick:
        cfg.data.image_size = 16
        cfg.data.params = {"p_majority": 0.95, "copies": 1}
        cfg.model.embedding_dim = 16
    train_set = build_data(cfg)["train"]
    model = build_model(cfg, tuple(train_set.input_shape))
    return cfg, train_set, model


def time_training(cfg, train_set, model, epochs: int, repeats: int, max_batches: int | None):
    """Seconds per training epoch (median over repeats) and batches per epoch."""
    from pytorch_metric_learning import losses, miners
    from torch.utils.data import DataLoader

    from fairmetric.sampling.m_per_class import MPerClassBatchSampler

    tc = cfg.train
    sampler = MPerClassBatchSampler(
        train_set.labels,
        m=tc.m_per_class,
        batch_size=tc.batch_size,
        num_batches=max_batches,
        seed=tc.seed,
    )
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=0)
    loss_fn = losses.TripletMarginLoss(**cfg.loss.params)
    miner = miners.TripletMarginMiner(**cfg.miner.params)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    model.train()

    def epoch(e: int) -> float:
        sampler.set_epoch(e)
        t = time.perf_counter()
        for x, y, _attrs in loader:
            emb = model(x)
            loss = loss_fn(emb, y, miner(emb, y))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - t

    epoch(10_000)  # warm-up: lazy initialisation, allocator, first-touch of the data
    times = [np.mean([epoch(r * epochs + e) for e in range(epochs)]) for r in range(repeats)]
    return float(np.median(times)), len(sampler)


def time_sampler(make, epochs: int, repeats: int) -> tuple[float, float, int]:
    """(construction seconds, seconds per epoch of indices, batches per epoch)."""
    t = time.perf_counter()
    sampler = make()
    built = time.perf_counter() - t
    per_epoch = []
    for r in range(repeats):
        t = time.perf_counter()
        for e in range(epochs):
            sampler.set_epoch(r * epochs + e)
            for _batch in sampler:
                pass
        per_epoch.append((time.perf_counter() - t) / epochs)
    return built, float(np.median(per_epoch)), len(sampler)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timings per measurement (median)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per timing (averaged)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: 16 px, 3 batches")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    epochs = 1 if args.quick else args.epochs

    from fairmetric.sampling.balanced import EpochBalancedBatchSampler, GroupQuotaBatchSampler
    from fairmetric.sampling.m_per_class import MPerClassBatchSampler

    torch.manual_seed(0)
    cfg, train_set, model = build(args.quick)
    labels = np.asarray(train_set.labels)
    colour = np.asarray(train_set.attributes[:, train_set.attribute_index("colour")])
    m, bs, seed = cfg.train.m_per_class, cfg.train.batch_size, cfg.train.seed
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    sizes = np.bincount(colour)
    print(
        f"coloured digits train split: {len(labels)} samples, {len(np.unique(labels))} classes, "
        f"colour groups {sizes.tolist()}; {cfg.model.backbone}, batch {bs}, m {m}, "
        f"{cfg.loss.name} + {cfg.miner.name}"
    )

    train_s, train_batches = time_training(
        cfg, train_set, model, epochs, repeats, 3 if args.quick else None
    )
    per_batch = train_s / train_batches

    common = dict(m=m, batch_size=bs, seed=seed)
    samplers = {
        "MPerClassBatchSampler": lambda: MPerClassBatchSampler(labels, **common),
        "EpochBalanced (over)": lambda: EpochBalancedBatchSampler(
            labels, colour, mode="over", **common
        ),
        "EpochBalanced (under)": lambda: EpochBalancedBatchSampler(
            labels, colour, mode="under", **common
        ),
        "GroupQuota (50:50)": lambda: GroupQuotaBatchSampler(labels, colour, **common),
    }
    rows = [(name, *time_sampler(make, epochs, repeats)) for name, make in samplers.items()]

    print()
    head = ("batches", "build s", "s/epoch", "ms/batch", "overhead")
    print(f"{'':24s} {head[0]:>8s} " + " ".join(f"{h:>9s}" for h in head[1:]))
    print(
        f"{'train epoch (MPerClass)':24s} {train_batches:8d} {'':>9s} {train_s:9.3f} "
        f"{1e3 * per_batch:9.2f} {'':>9s}"
    )
    for name, built, secs, batches in rows:
        overhead = 100 * (secs / batches) / per_batch
        print(
            f"{name:24s} {batches:8d} {built:9.4f} {secs:9.4f} {1e3 * secs / batches:9.3f} "
            f"{overhead:8.2f}%"
        )
    print(
        f"\noverhead = (sampler s per batch) / (training s per batch); median of {repeats} "
        f"repeat(s) of {epochs} epoch(s)"
    )


if __name__ == "__main__":
    main()
