"""Distributed training on PyTorch's own engine: ``torchrun`` processes, DistributedDataParallel.

Launch with ``torchrun --nproc_per_node=N -m fairmetric train ...`` (or ``fairmetric train
--nproc N``, which runs exactly that). torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :func:`init_distributed` reads them and joins the process group (NCCL on GPUs,
Gloo on CPUs).

How every method stays correct across ranks
-------------------------------------------
Each process embeds its own ``train.batch_size`` samples. Before the objective runs, every tensor of
the :class:`~fairmetric.losses.Batch` (backbone features, raw and normalised embeddings, labels,
attributes, groups) is all-gathered with :func:`all_gather_cat`, so the metric loss, its miner,
PARADE's attribute head and decorrelation, SMOTE, reweighting and Group DRO all compute on the
*combined* batch -- identically on every rank. Group DRO's per-group losses and counts, and so its
``q`` update, therefore come from all ranks' samples.

The gather is differentiable: in the backward pass each rank's slice receives the *sum over ranks*
of the gradients flowing into it. Every rank computes the same loss ``L`` on the same combined batch,
so rank ``r``'s backbone gradient is ``N · ∂L/∂θ`` restricted to its own samples, and
DistributedDataParallel's gradient *average* over ranks gives exactly ``∂L/∂θ`` -- the gradient of
one process training on the combined batch. Parameters used after the gather (attribute heads,
adversaries, proxies) get ``∂L/∂ψ`` on every rank, which the average leaves unchanged.
``tests/train/test_distributed.py`` checks loss and gradients against one process with Gloo.

Caveats: BatchNorm computes statistics per process unless ``train.sync_batchnorm`` converts it
(CUDA only); hard-example mining selects within each process's candidates.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fairmetric.errors import SetupError
from fairmetric.losses.objective import Batch

__all__ = [
    "DistributedContext",
    "init_distributed",
    "all_gather_cat",
    "gather_batch",
    "torchrun_command",
    "launch",
]

_BACKENDS = ("auto", "nccl", "gloo")


@dataclass
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size``, its device, the gather group; and
    the few collectives the trainer needs (all no-ops in a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    group: Any = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; ``None`` on the other ranks."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers of ``module`` (e.g. BatchNorm running statistics,
        which each process updates from its own batches)."""
        if self.enabled:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the process group if :func:`init_distributed` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def init_distributed(
    device: torch.device, backend: str = "auto", timeout_minutes: float = 30.0
) -> DistributedContext:
    """Join the process group torchrun describes (``WORLD_SIZE > 1``); a no-op otherwise.

    Args:
        device: the device :func:`~fairmetric.utils.resolve_device` chose; on CUDA each process
            takes GPU ``LOCAL_RANK``.
        backend: ``auto`` (NCCL for CUDA, Gloo otherwise), ``nccl`` or ``gloo``.
        timeout_minutes: collective timeout (the other ranks wait while rank 0 scores the
            evaluation and writes checkpoints).
    """
    if backend not in _BACKENDS:
        raise ValueError(f"train.backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
    initialised = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if initialised else _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistributedContext(device=device)
    if not dist.is_available():
        raise SetupError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local_rank = _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if device.index is None:
            if local_rank >= torch.cuda.device_count():
                raise SetupError(
                    f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are "
                    "visible; launch at most one process per GPU (--nproc_per_node)"
                )
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    chosen = backend if backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if chosen == "nccl" and device.type != "cuda":
        raise ValueError("train.backend=nccl needs GPUs; use gloo (or auto) on CPU")
    owns = False
    if not initialised:
        for var in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
            if var not in os.environ:
                raise SetupError(
                    f"WORLD_SIZE={world} but {var} is not set: launch with torchrun "
                    "(`torchrun --nproc_per_node=N -m fairmetric train ...`) or "
                    "`fairmetric train --nproc N ...`"
                )
        kwargs: dict[str, Any] = {"timeout": datetime.timedelta(minutes=timeout_minutes)}
        if device.type == "cuda":
            kwargs["device_id"] = device
        dist.init_process_group(chosen, **kwargs)
        owns = True
    rank, world = dist.get_rank(), dist.get_world_size()
    # a separate group for the embedding gathers, so they never interleave with DDP's buckets
    group = dist.new_group(backend=chosen)
    return DistributedContext(
        rank=rank,
        world_size=world,
        local_rank=local_rank,
        device=device,
        group=group,
        owns_group=owns,
    )


class _GatherCat(torch.autograd.Function):
    """All-gather along dim 0; backward sums the incoming gradients over ranks (all-reduce) and
    returns this rank's slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: Any, world: int, rank: int) -> torch.Tensor:
        ctx.group, ctx.rank, ctx.n = group, rank, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        start = ctx.rank * ctx.n
        return grad[start : start + ctx.n], None, None, None


def all_gather_cat(tensor: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along dim 0 (rank order); differentiable.

    All ranks must pass the same shape (fairmetric's samplers give every rank ``batch_size``
    samples). Integer tensors are gathered without autograd.
    """
    if not ctx.enabled:
        return tensor
    if tensor.requires_grad:
        return _GatherCat.apply(tensor, ctx.group, ctx.world_size, ctx.rank)
    parts = [torch.empty_like(tensor) for _ in range(ctx.world_size)]
    dist.all_gather(parts, tensor.contiguous(), group=ctx.group)
    return torch.cat(parts)


def gather_batch(batch: Batch, ctx: DistributedContext, *, features: bool = True) -> Batch:
    """The combined batch of all ranks (rank 0's samples first), gradients flowing back to each
    rank's own samples. Synthetic rows and mined tuples are not gathered (they are made after).

    ``features=False`` skips the backbone features (wide; only the objective's terms read them)
    and leaves ``features`` as ``None``."""
    if not ctx.enabled:
        return batch
    if batch.extra_embeddings is not None or batch.indices_tuple is not None:
        raise ValueError("gather_batch: gather before adding synthetic rows or mining")

    def cat(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else all_gather_cat(t, ctx)

    return Batch(
        features=cat(batch.features) if features else None,
        raw=cat(batch.raw),
        embeddings=cat(batch.embeddings),
        labels=cat(batch.labels),
        attributes=cat(batch.attributes),
        attribute_names=batch.attribute_names,
        groups=cat(batch.groups),
    )


def torchrun_command(
    nproc: int, argv: Sequence[str], *, nnodes: int = 1, python: str | None = None
) -> list[str]:
    """The ``torchrun`` command line that runs ``fairmetric <argv>`` in ``nproc`` processes."""
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    cmd = [python or sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1:
        cmd.append("--standalone")
    cmd += [f"--nproc_per_node={nproc}", "-m", "fairmetric", *argv]
    return cmd


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``fairmetric <argv>`` under torchrun with ``nproc`` local processes; its exit code."""
    if os.environ.get("WORLD_SIZE") not in (None, "", "1"):
        raise SetupError("--nproc inside a torchrun process: drop --nproc when using torchrun")
    return run_forwarding_signals(torchrun_command(nproc, argv))


def run_forwarding_signals(cmd: Sequence[str]) -> int:
    """Run ``cmd`` and wait for it, passing SIGTERM and SIGINT on to it (a scheduler or ``kill``
    that signals only this launcher must not leave the training processes running unseen).

    Returns the command's exit status, or ``128 + signum`` when this process was signalled (the
    training processes have then checkpointed and stopped; their messages say where).
    """
    import signal

    # its own session: a terminal's Ctrl-C reaches torchrun once, through this process
    child = subprocess.Popen(list(cmd), start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, forward) for s in stop_signals}
    try:
        status = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        name = signal.Signals(received[0]).name
        print(
            f"fairmetric: {name} passed on to torchrun, whose processes stopped (their messages "
            "above say where the checkpoint stands); rerun the same command with --resume",
            file=sys.stderr,
        )
        return 128 + received[0]
    return status
