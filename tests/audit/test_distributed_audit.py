"""The audit across processes: two Gloo processes (as under torchrun, on the CPU) give rank 0 the
single-process report exactly, with and without a gallery; the other rank gets None."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from fairmetric import EmbeddingSet
from fairmetric.audit import audit

SETTINGS = dict(ks=(1, 2, 4), bootstrap=30, seed=3, homophily_k=5, leakage_k=5)


def _data(n: int = 301, seed: int = 0) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[10] = x[11]  # duplicates: real ties, where the tie rule decides
    x[100] = x[50]
    return EmbeddingSet(
        embeddings=x,
        labels=rng.integers(0, 30, size=n),
        attributes={"g": rng.integers(0, 3, size=n), "h": rng.integers(0, 2, size=n)},
    )


def _comparable(report) -> dict:
    d = json.loads(report.to_json())
    d["metadata"].pop("seconds")
    return d


def _worker(rank: int, port: int, out: str, gallery: bool) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        data = _data()
        kwargs = dict(SETTINGS, gallery=_data(120, seed=1) if gallery else None)
        report = audit(data, **kwargs)
        if rank == 0:
            with open(out, "w") as f:
                json.dump(_comparable(report), f)
        else:
            assert report is None
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("gallery", [False, True])
def test_two_processes_give_the_single_process_report(tmp_path, gallery):
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "rank0.json"
    mp.spawn(_worker, args=(port, str(out), gallery), nprocs=2, join=True)
    single = audit(_data(), **dict(SETTINGS, gallery=_data(120, seed=1) if gallery else None))
    assert json.loads(out.read_text()) == _comparable(single)
    if not gallery:
        assert single.metadata["tied_queries"] > 0  # the tie rule was exercised


def test_distributed_true_without_a_process_group_is_a_clear_error():
    with pytest.raises(ValueError, match="initialised torch.distributed process group"):
        audit(_data(), ks=(1,), bootstrap=0, distributed=True)


def test_the_command_line_under_torchrun_writes_the_single_process_report(tmp_path):
    import subprocess
    import sys

    _data().save(tmp_path / "emb.npz")
    flags = ["--k", "1,2", "--bootstrap", "20", "--no-progress", "--no-linear-probe"]
    # one thread in both runs (torchrun sets it for its processes): the report records it
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "fairmetric", "audit", str(tmp_path / "emb.npz"), *flags]
    done = subprocess.run(
        [*single, "--out", str(tmp_path / "one")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    launch += ["-m", "fairmetric", "audit", str(tmp_path / "emb.npz"), *flags]
    done = subprocess.run(
        [*launch, "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports

    def load(name):
        d = json.loads((tmp_path / name / "report.json").read_text())
        d["metadata"].pop("seconds")
        return d

    assert load("two") == load("one")
