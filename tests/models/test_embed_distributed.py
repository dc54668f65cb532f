"""Embedding shared among processes (as under torchrun): two Gloo processes each embed whole
batches and both receive every embedding, equal to one process's bit for bit."""

from __future__ import annotations

import socket

import numpy as np
import torch

from fairmetric.data.dataset import TensorAttributeDataset
from fairmetric.models.embed import embed_dataset
from fairmetric.models.embedder import Embedder

N, BATCH = 37, 8  # 5 batches: 2 for rank 0, 3 for rank 1 (the last one short)


def _setup():
    torch.manual_seed(0)
    model = Embedder(backbone="test_resnet", embedding_dim=16, input_size=(3, 16, 16))
    images = torch.rand((N, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    data = TensorAttributeDataset(
        images, labels=np.arange(N) % 5, attributes={"g": np.arange(N) % 2}
    )
    return model, data


def _worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model, data = _setup()
        seen = []
        model.register_forward_hook(lambda m, args, output: seen.append(len(args[0])))
        emb = embed_dataset(model, data, batch_size=BATCH, device="cpu", distributed=None)
        np.save(f"{out}{rank}.npy", emb.embeddings)
        np.save(f"{out}{rank}-batches.npy", np.array(seen))
    finally:
        dist.destroy_process_group()


def test_two_processes_embed_what_one_does(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path / "rank")), nprocs=2, join=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the same kernels (restored: later tests compare
    try:  # in-process runs with subprocesses at the default thread count)
        model, data = _setup()
        single = embed_dataset(model, data, batch_size=BATCH, device="cpu").embeddings
    finally:
        torch.set_num_threads(threads)
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npy", allow_pickle=False)
        np.testing.assert_array_equal(got, single)
    # each process ran only its own whole batches
    assert np.load(tmp_path / "rank0-batches.npy").tolist() == [8, 8]
    assert np.load(tmp_path / "rank1-batches.npy").tolist() == [8, 8, 5]
