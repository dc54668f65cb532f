"""Turn a dataset into an :class:`~fairmetric.embeddings.EmbeddingSet` with a model.

Inference runs batched under :func:`torch.inference_mode` with the speed settings training uses:
mixed precision (``precision``: autocast to bfloat16 or float16), the channels-last (NHWC) memory
layout for image models, and DataLoader workers with pinned memory. The defaults (float32,
contiguous layout, no workers) compute exactly what a plain ``model(x)`` call in eval mode does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fairmetric.data.dataset import AttributeDataset
from fairmetric.embeddings import EmbeddingSet
from fairmetric.utils import autocast, check_precision, resolve_device

__all__ = ["dataset_embeddings", "embed_dataset", "embed_tensors", "inference_settings"]


def inference_settings(train: Any) -> dict[str, Any]:
    """The inference speed settings of a ``train`` config section (a :class:`TrainConfig`).

    Returns the keyword arguments ``precision``, ``channels_last``, ``num_workers``,
    ``pin_memory`` and ``prefetch_factor`` of :func:`embed_dataset`, so that a model is embedded
    the way it was trained. Keys an older config lacks fall back to the defaults (float32,
    contiguous layout, no workers).
    """
    return {
        "precision": getattr(train, "precision", None) or "fp32",
        "channels_last": bool(getattr(train, "channels_last", False)),
        "num_workers": int(getattr(train, "num_workers", 0) or 0),
        "pin_memory": getattr(train, "pin_memory", None),
        "prefetch_factor": getattr(train, "prefetch_factor", None),
    }


@torch.inference_mode()
def embed_tensors(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    progress: bool = False,
    desc: str = "embed",
    precision: str = "fp32",
    channels_last: bool = False,
) -> np.ndarray:
    """Run ``model`` over the batches ``(x, ...)`` of ``loader``; returns ``(N, D)`` float32.

    Args:
        model: maps a batch of inputs to ``(B, D)`` embeddings; it should already be on
            ``device``. It runs in eval mode; its train/eval flag is restored afterwards.
        loader: an iterable of batches: tensors, or tuples/lists whose first item is the input.
        device: where the batches are moved.
        progress: show a progress bar.
        desc: the progress bar's label.
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` to run the forward pass under
            :func:`torch.autocast` (the embeddings are returned as float32 either way).
        channels_last: move 4-D (image) batches to the channels-last memory layout, and the
            model's 4-D (convolution) weights too. Converting the model is in place and changes
            only how those weights are laid out in memory, not their values, so it is harmless
            for later use; it is not undone.
    """
    check_precision(precision, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for batch in tqdm(loader, desc=desc, disable=None if progress else True, leave=False):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            x = x.to(device, non_blocking=True)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                out = model(x)
            chunks.append(out.float().cpu())
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("nothing to embed: the dataset is empty")
    return torch.cat(chunks).numpy()


def embed_dataset(
    model: nn.Module,
    dataset: AttributeDataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    progress: bool = False,
    metadata: dict[str, Any] | None = None,
    allow_invalid: bool = False,
    precision: str = "fp32",
    channels_last: bool = False,
    pin_memory: bool | None = None,
    prefetch_factor: int | None = None,
    distributed: bool | None = False,
) -> EmbeddingSet:
    """Embed every sample of ``dataset`` (in order) and keep its labels and attributes.

    Args:
        model: maps a batch of inputs to ``(B, D)`` embeddings (e.g. an :class:`Embedder`).
        dataset: the samples to embed.
        batch_size: inference batch size.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        num_workers: DataLoader worker processes that load and decode samples in parallel
            (0: in the main process). Worker processes are not kept alive (one pass only).
        progress: show a progress bar.
        metadata: stored in the returned set (e.g. model and split names).
        allow_invalid: keep rows whose embedding has NaN/Inf (for audits that report or drop
            them) instead of raising.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: autocast the forward pass to
            bfloat16 / float16 (faster on GPUs; bf16 needs Ampere or newer). The embeddings are
            float32 either way, close to but not bit-identical with fp32 ones.
        channels_last: channels-last (NHWC) layout for image batches and the model's
            convolution weights (faster convolutions on GPUs, same values; the model is
            converted in place, see :func:`embed_tensors`).
        pin_memory: page-locked host batches for faster copies to the GPU; ``None``: on when
            ``device`` is CUDA.
        prefetch_factor: batches each worker loads ahead (``None``: PyTorch's default); used
            only when ``num_workers > 0``.
        distributed: share the work among the processes of the initialised
            ``torch.distributed`` process group (under ``torchrun``): each embeds a contiguous
            run of whole batches and every process receives all embeddings, in order. The
            batches are those of one process, so the embeddings are the same. ``None``: when a
            group of more than one process is initialised (the audit's sources); ``False``
            (default): this process embeds all of ``dataset`` (a caller that shards the data
            itself, as training's evaluation does).
    """
    dev = resolve_device(device)
    check_precision(precision, dev)  # before any work
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    model.to(dev)
    loader_kwargs: dict[str, Any] = {}
    if num_workers > 0 and prefetch_factor is not None:
        loader_kwargs["prefetch_factor"] = prefetch_factor
    rank, world = _process_group(distributed)
    part: Any = dataset
    if world > 1:  # this process's whole batches (the same batches as one process would run)
        batches = -(-len(dataset) // batch_size)
        lo = min(batches * rank // world * batch_size, len(dataset))
        hi = min(batches * (rank + 1) // world * batch_size, len(dataset))
        part = torch.utils.data.Subset(dataset, range(lo, hi))
    loader = DataLoader(
        part,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda" if pin_memory is None else pin_memory,
        **loader_kwargs,
    )
    emb = (
        embed_tensors(
            model,
            loader,
            device=dev,
            progress=progress and rank == 0,
            precision=precision,
            channels_last=channels_last,
        )
        if world == 1 or len(part)
        else None  # a process with no whole batch of its own (more processes than batches)
    )
    if world > 1:
        emb = _gather_rows(emb)
    return dataset_embeddings(dataset, emb, metadata=metadata, allow_invalid=allow_invalid)


def dataset_embeddings(
    dataset: AttributeDataset,
    embeddings: np.ndarray,
    *,
    metadata: dict[str, Any] | None = None,
    allow_invalid: bool = False,
) -> EmbeddingSet:
    """An :class:`EmbeddingSet` of ``embeddings`` (one row per sample of ``dataset``, in order)
    with the dataset's labels, attributes and names.

    The dataset's ``sample_ids`` (an image dataset's paths relative to its folder) become the
    set's ids when they are unique; a table listing one image twice gives a set without ids
    rather than an error, since ids are needed only to match files that name samples.
    """
    ids = getattr(dataset, "sample_ids", None)
    if ids is not None and len(set(ids)) != len(ids):
        ids = None
    return EmbeddingSet(
        embeddings=embeddings,
        labels=dataset.labels,
        attributes=dataset.attributes,
        attribute_names=dataset.attribute_names,
        label_names=dataset.label_names,
        attribute_value_names=dataset.attribute_value_names,
        metadata={"dataset": dataset.name, **(metadata or {})},
        allow_invalid=allow_invalid,
        ids=ids,
    )


def _process_group(distributed: bool | None) -> tuple[int, int]:
    """``(rank, world size)`` when embedding is shared among processes, ``(0, 1)`` otherwise."""
    if distributed is False:
        return 0, 1
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        if distributed:
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group (run "
                "under torchrun and call torch.distributed.init_process_group first)"
            )
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _gather_rows(mine: np.ndarray | None) -> np.ndarray:
    """Every process's rows, in rank order, on every process (a collective call)."""
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, mine)
    return np.concatenate([p for p in parts if p is not None])
