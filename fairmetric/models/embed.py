"""Turn a dataset into an :class:`~fairmetric.embeddings.EmbeddingSet` with a model."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fairmetric.data.dataset import AttributeDataset
from fairmetric.embeddings import EmbeddingSet
from fairmetric.utils import resolve_device

__all__ = ["embed_dataset", "embed_tensors"]


@torch.inference_mode()
def embed_tensors(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    progress: bool = False,
    desc: str = "embed",
) -> np.ndarray:
    """Run ``model`` over the batches ``(x, ...)`` of ``loader``; returns ``(N, D)`` float32."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for batch in tqdm(loader, desc=desc, disable=None if progress else True, leave=False):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            chunks.append(model(x.to(device, non_blocking=True)).float().cpu())
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
) -> EmbeddingSet:
    """Embed every sample of ``dataset`` (in order) and keep its labels and attributes.

    Args:
        model: maps a batch of inputs to ``(B, D)`` embeddings (e.g. an :class:`Embedder`).
        dataset: the samples to embed.
        batch_size: inference batch size.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        num_workers: DataLoader worker processes.
        progress: show a progress bar.
        metadata: stored in the returned set (e.g. model and split names).
        allow_invalid: keep rows whose embedding has NaN/Inf (for audits that report or drop
            them) instead of raising.
    """
    dev = resolve_device(device)
    model.to(dev)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    emb = embed_tensors(model, loader, device=dev, progress=progress)
    return EmbeddingSet(
        embeddings=emb,
        labels=dataset.labels,
        attributes=dataset.attributes,
        attribute_names=dataset.attribute_names,
        label_names=dataset.label_names,
        attribute_value_names=dataset.attribute_value_names,
        metadata={"dataset": dataset.name, **(metadata or {})},
        allow_invalid=allow_invalid,
    )
