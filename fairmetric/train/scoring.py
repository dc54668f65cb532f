"""The per-epoch evaluation of a training run: Recall@k and the embedding spread (mean resultant
length, effective rank) on the test split, in one process or with every process embedding a shard
(rank 0's weights and buffers) and rank 0 scoring them all."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fairmetric.data.dataset import AttributeDataset
from fairmetric.models.embed import dataset_embeddings, embed_dataset, inference_settings
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE
from fairmetric.train.distributed import DistributedContext
from fairmetric.train.evaluate import evaluate_embeddings

__all__ = ["evaluate_model", "score_test_split"]


def evaluate_model(
    model: torch.nn.Module,
    dataset: AttributeDataset,
    *,
    ks: list[int],
    attributes: list[str] | None,
    device: torch.device,
    batch_size: int = 256,
    progress: bool = False,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    **settings: Any,
) -> dict[str, Any]:
    """Exact Recall@k of ``model`` on ``dataset``, overall and per attribute value, with the
    embedding spread beside it (:func:`~fairmetric.train.evaluate.evaluate_embeddings`).

    ``settings`` are :func:`~fairmetric.models.embed.embed_dataset`'s speed settings
    (``precision``, ``channels_last``, ``num_workers``, ...); the trainer passes its own.
    """
    emb = embed_dataset(
        model, dataset, batch_size=batch_size, device=device, progress=progress, **settings
    )
    return evaluate_embeddings(emb, ks, attributes, min_group_size=min_group_size)


def score_test_split(
    model: torch.nn.Module,
    test_set: AttributeDataset,
    tc: Any,
    ctx: DistributedContext,
    *,
    attributes: list[str] | None,
    device: torch.device,
) -> dict[str, Any]:
    """Recall@k (``tc.recall_k``) and the embedding spread of ``model`` on ``test_set`` with the
    run's speed settings (``tc``: the ``train`` config section); ``{}`` on every rank but 0."""
    settings = dict(batch_size=tc.eval_batch_size, device=device, **inference_settings(tc))
    if not ctx.enabled or len(test_set) < ctx.world_size:
        if not ctx.is_main:
            return {}
        return evaluate_model(
            model,
            test_set,
            ks=tc.recall_k,
            attributes=attributes,
            min_group_size=tc.min_group_size,
            **settings,
        )
    ctx.broadcast_buffers(model)
    shard = np.array_split(np.arange(len(test_set)), ctx.world_size)[ctx.rank]
    part = embed_dataset(model, test_set.subset(shard), **settings)
    pieces = ctx.gather_object(part.embeddings)
    if not ctx.is_main:
        return {}
    emb = dataset_embeddings(test_set, np.concatenate(pieces))
    return evaluate_embeddings(emb, tc.recall_k, attributes, min_group_size=tc.min_group_size)
