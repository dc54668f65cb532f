"""Distributed training (Gloo, 2 CPU processes) equals one process training on the combined batch.

The step test runs the trainer's own :class:`TrainStep` under DistributedDataParallel in two
processes, each holding half of a combined batch, and compares loss, every gradient (backbone,
head, PARADE's attribute head) and Group DRO's ``q`` with one process given the whole batch. The
end-to-end tests launch ``fairmetric train --nproc 2`` (torchrun) and resume on one process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate

from fairmetric.losses import GroupDROReducer
from fairmetric.models import embed_dataset, load_embedder
from fairmetric.sampling import MPerClassBatchSampler
from fairmetric.train import load_config
from fairmetric.train.checkpoint import load_checkpoint
from fairmetric.train.distributed import (
    DistributedContext,
    all_gather_cat,
    init_distributed,
    torchrun_command,
)
from fairmetric.train.evaluate import evaluate_embeddings
from fairmetric.train.objectives import build_objective, build_training_loss
from fairmetric.train.trainer import (
    TrainStep,
    build_data,
    build_model,
    training_groups,
)
from fairmetric.utils import seed_everything
from tests.conftest import GAUSSIAN

WORLD = 2
STEPS = 3

# LayerNorm: BatchNorm's statistics are per process on CPU (SyncBatchNorm needs CUDA)
MLP = GAUSSIAN + ["model.backbone_kwargs={hidden: 32, layers: 2, norm: layer}"]
PLAIN = MLP
PARADE_DRO = MLP + [
    "data.group_attribute=group",
    "objective.group_dro.enabled=true",
    "objective.group_dro.eta=0.5",
    "objective.parade.attributes=[group]",
    "objective.parade.rho=1",  # rv (the default): at 10 float32 rounding reaches 2e-6
    "objective.parade.attribute_dim=4",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _combined_batches(overrides: list[str]) -> list[np.ndarray]:
    """``STEPS`` combined batches: global sampler batches ``2k`` and ``2k + 1`` side by side, what
    ranks 0 and 1 of a 2-process run train on together at step ``k``."""
    cfg = load_config(None, overrides)
    train_set = build_data(cfg)["train"]
    sampler = MPerClassBatchSampler(
        train_set.labels,
        m=cfg.train.m_per_class,
        batch_size=cfg.train.batch_size,
        num_batches=2 * STEPS,
        seed=3,
    )
    batches = [np.asarray(b) for b in sampler][: 2 * STEPS]
    return [np.concatenate(batches[2 * k : 2 * k + 2]) for k in range(STEPS)]


def _run_steps(overrides: list[str], combined: list[np.ndarray], ctx: DistributedContext):
    """Train ``len(combined)`` SGD steps; this rank takes its half of every combined batch."""
    cfg = load_config(None, overrides)
    seed_everything(cfg.train.seed)
    train_set = build_data(cfg)["train"]
    model = build_model(cfg, tuple(train_set.input_shape))
    groups = training_groups(cfg, train_set)
    n_classes = len(np.unique(train_set.labels))
    loss_fn = build_training_loss(cfg, train_set, groups, num_classes=n_classes, log=lambda s: s)
    objective = build_objective(cfg, train_set, loss_fn, feature_dim=model.feature_dim)
    step = TrainStep(model, objective, attribute_names=list(train_set.attribute_names), ctx=ctx)
    runner = DistributedDataParallel(step) if ctx.enabled else step
    params = dict(step.named_parameters())
    optimizer = torch.optim.SGD(params.values(), lr=0.05)
    col = train_set.attribute_index("group")
    record = {"loss": [], "parts": [], "grads": [], "q": None}
    for idx in combined:
        mine = np.array_split(idx, ctx.world_size)[ctx.rank]
        x, y, attrs = default_collate([train_set[int(i)] for i in mine])
        attrs = attrs.long()
        loss, parts, _ = runner(x, y, attrs, attrs[:, col])
        optimizer.zero_grad()
        loss.backward()
        record["loss"].append(float(loss.detach()))
        record["parts"].append({k: float(v) for k, v in parts.items()})
        record["grads"].append({k: p.grad.clone() for k, p in params.items() if p.grad is not None})
        optimizer.step()
    dro = [m for m in objective.modules() if isinstance(m, GroupDROReducer)]
    if dro:
        record["q"] = dro[0].q.clone()
    return record


def _worker(rank: int, port: int, overrides, combined, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)
    ctx = init_distributed(torch.device("cpu"), "gloo")
    try:
        assert (ctx.rank, ctx.world_size) == (rank, WORLD)
        if overrides is None:  # the gather alone
            x = torch.arange(6.0).reshape(3, 2).add(10 * rank).requires_grad_()
            full = all_gather_cat(x, ctx)
            (full * torch.arange(12.0).reshape(6, 2)).sum().backward()
            bn = torch.nn.BatchNorm1d(2)
            bn.running_mean.fill_(float(rank + 1))
            ctx.broadcast_buffers(bn)
            res = {
                "full": full.detach(),
                "grad": x.grad,
                "gathered": ctx.gather_object({"rank": rank}),
                "broadcast": ctx.broadcast_object(f"from {rank}"),
                "running_mean": bn.running_mean.clone(),
            }
            torch.save(res, f"{out_dir}/rank{rank}.pt")
        else:
            torch.save(_run_steps(overrides, combined, ctx), f"{out_dir}/rank{rank}.pt")
    finally:
        ctx.close()


def _spawn(tmp_path, overrides, combined=None) -> list[dict]:
    mp.spawn(
        _worker, args=(_free_port(), overrides, combined, str(tmp_path)), nprocs=WORLD, join=True
    )
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_gather_and_broadcast_across_two_processes(tmp_path):
    out = _spawn(tmp_path, None)
    expected = torch.cat([torch.arange(6.0).reshape(3, 2) + 10 * r for r in range(WORLD)])
    weight = torch.arange(12.0).reshape(6, 2)
    for rank, res in enumerate(out):
        torch.testing.assert_close(res["full"], expected)
        # both ranks back-propagate the same weights: each slice gets their sum over the 2 ranks
        torch.testing.assert_close(res["grad"], WORLD * weight[3 * rank : 3 * rank + 3])
        # objects gather on rank 0 only; broadcasts and buffers come from rank 0
        assert res["gathered"] == ([{"rank": r} for r in range(WORLD)] if rank == 0 else None)
        assert res["broadcast"] == "from 0"
        torch.testing.assert_close(res["running_mean"], torch.ones(2))


def test_single_process_context_collectives_are_identities():
    ctx = DistributedContext()
    bn = torch.nn.BatchNorm1d(2)
    ctx.broadcast_buffers(bn)
    assert ctx.gather_object(3) == [3] and ctx.broadcast_object("x") == "x"
    x = torch.ones(2, requires_grad=True)
    assert all_gather_cat(x, ctx) is x


@pytest.mark.parametrize("overrides", [PLAIN, PARADE_DRO], ids=["plain", "parade_group_dro"])
def test_two_processes_equal_one_process_on_the_combined_batch(tmp_path, overrides):
    combined = _combined_batches(overrides)
    single = _run_steps(overrides, combined, DistributedContext())
    ranks = _spawn(tmp_path, overrides, combined)
    assert single["loss"][0] > 0
    names = set(single["grads"][0])
    if overrides is PARADE_DRO:  # the attribute head is trained (and so compared) too
        assert any(n.startswith("objective.terms.0.head") for n in names)
        assert set(single["parts"][0]) >= {"metric", "parade/group/decorrelation"}
    for res in ranks:
        for k in range(STEPS):
            assert res["loss"][k] == pytest.approx(single["loss"][k], rel=1e-5, abs=1e-7)
            assert res["parts"][k] == pytest.approx(single["parts"][k], rel=1e-5, abs=1e-7)
            assert set(res["grads"][k]) == names
            for name, grad in single["grads"][k].items():
                torch.testing.assert_close(
                    res["grads"][k][name], grad, rtol=1e-4, atol=1e-6, msg=name
                )
        if single["q"] is not None:  # Group DRO's q moved, and the same way on every rank
            assert not torch.allclose(single["q"], torch.full_like(single["q"], 0.5))
            torch.testing.assert_close(res["q"], single["q"], rtol=1e-6, atol=1e-9)


def test_torchrun_command():
    cmd = torchrun_command(4, ["train", "--out", "runs/x", "train.epochs=2"], python="py")
    assert cmd == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=4",
        "-m",
        "fairmetric",
        "train",
        "--out",
        "runs/x",
        "train.epochs=2",
    ]
    with pytest.raises(ValueError, match="--nproc must be at least 1"):
        torchrun_command(0, ["train"])


def test_init_distributed_without_torchrun_is_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed(torch.device("cpu"))
    assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)
    with pytest.raises(ValueError, match="train.backend must be one of"):
        init_distributed(torch.device("cpu"), "mpi")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="launch with torchrun"):
        init_distributed(torch.device("cpu"))


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(
        [sys.executable, "-m", "fairmetric", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_nproc_2_trains_writes_from_rank_0_and_resumes_on_one_process(tmp_path):
    out = tmp_path / "run"
    args = [*GAUSSIAN, "train.epochs=2", "train.checkpoint_every=1", "--out", str(out)]
    run = _cli("train", "--nproc", "2", "--no-progress", *args)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("epoch 2 |") == 1  # rank 0 alone reports
    assert run.stdout.count("run folder:") == 1
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert all(h["world_size"] == 2 for h in history[1:])
    # 2 processes × batch_size per step; the epoch covers the sampler's global batches once
    cfg = load_config(None, GAUSSIAN)
    n_train = len(build_data(cfg)["train"])
    global_batches = n_train // cfg.train.batch_size
    steps = -(-global_batches // 2)
    assert history[1]["images"] == steps * 2 * cfg.train.batch_size
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["world_size"], len(ckpt["ranks"])) == (2, 2, 2)
    # the shared evaluation (each rank embeds half the test split) scored the exported model
    model = load_embedder(out / "model")
    emb = embed_dataset(model, build_data(cfg)["test"], device="cpu")
    assert evaluate_embeddings(emb, cfg.train.recall_k) == history[2]["metrics"]

    more = _cli(
        "train", "--no-progress", *args[:-2], "train.epochs=3", "--out", str(out), "--resume"
    )
    assert more.returncode == 0, more.stderr[-3000:]
    assert "2 processes before, 1 now" in more.stdout
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history[3]["world_size"] == 1
    assert history[3]["images"] == global_batches * cfg.train.batch_size


def test_bad_uses_of_the_launcher_and_gather_are_clear_errors(monkeypatch):
    from fairmetric.losses import Batch
    from fairmetric.train.distributed import gather_batch, launch

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="drop --nproc when using torchrun"):
        launch(2, ["train"])
    e = torch.zeros(4, 3)
    batch = Batch(
        features=e,
        raw=e,
        embeddings=e,
        labels=torch.zeros(4, dtype=torch.long),
        attributes=torch.zeros(4, 1, dtype=torch.long),
        attribute_names=["a"],
        extra_embeddings=e,
    )
    two = DistributedContext(rank=0, world_size=2)
    with pytest.raises(ValueError, match="gather before adding synthetic rows"):
        gather_batch(batch, two)
    assert gather_batch(batch, DistributedContext()) is batch
