"""Finetuning for a downstream classification task: the head only, or the embedder end to end.

``mode="head"`` embeds the data once with the frozen embedder (eval mode) and trains a
:class:`~fairmetric.downstream.head.HeadClassifier` on the embeddings. ``mode="end_to_end"``
trains a **copy** of the embedder together with a new head on the images: ``logits = f(g(x))``
with ``g`` the embedder (its output normalisation included) and ``f`` the head, minimising the mean
cross-entropy with Adam — the embedder at ``backbone_lr``, the head at ``lr``. The embedder passed
in is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fairmetric.data.dataset import AttributeDataset
from fairmetric.downstream.evaluate import evaluate_downstream, groups_of
from fairmetric.downstream.head import HeadClassifier, check_training_args, make_head
from fairmetric.models.embed import embed_dataset
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE
from fairmetric.report.result import AuditReport
from fairmetric.utils import resolve_device

__all__ = ["FinetuneMode", "FinetuneResult", "finetune"]

FinetuneMode = Literal["head", "end_to_end"]


@dataclass
class FinetuneResult:
    """What :func:`finetune` trained and, with a test set, how it did per group.

    Attributes:
        mode: ``"head"`` or ``"end_to_end"``.
        model: the embedder: the one passed in (``"head"``, untouched) or its finetuned copy.
        head: the trained head (``nn.Module``, eval mode, CPU); it maps embeddings to logits.
        classes: the label of each head output.
        history: mean training loss of each epoch.
        predictions: predicted labels of the test set (``None`` without one).
        report: per-group accuracy of the test set (``None`` without one).
    """

    mode: str
    model: nn.Module
    head: nn.Module
    classes: np.ndarray
    history: list[float] = field(default_factory=list)
    predictions: np.ndarray | None = None
    report: AuditReport | None = None

    def predict(
        self, dataset: AttributeDataset, *, batch_size: int = 256, device: str = "auto"
    ) -> np.ndarray:
        """Predicted labels of every sample of ``dataset`` (embedder, then head)."""
        emb = embed_dataset(self.model, dataset, batch_size=batch_size, device=device)
        with torch.no_grad():
            logits = self.head(torch.from_numpy(emb.embeddings))
        return self.classes[logits.argmax(dim=1).numpy()]


def _train_end_to_end(
    model: nn.Module,
    head: nn.Module,
    dataset: AttributeDataset,
    classes: np.ndarray,
    *,
    epochs: int,
    lr: float,
    backbone_lr: float,
    batch_size: int,
    weight_decay: float,
    seed: int,
    device: torch.device,
    num_workers: int,
    progress: bool,
) -> list[float]:
    lut = torch.full((int(classes.max()) + 1,), -1, dtype=torch.long)
    lut[torch.from_numpy(classes)] = torch.arange(len(classes))
    opt = torch.optim.Adam(
        [
            {"params": list(model.parameters()), "lr": backbone_lr},
            {"params": list(head.parameters()), "lr": lr},
        ],
        weight_decay=weight_decay,
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        num_workers=num_workers,
        drop_last=len(dataset) % batch_size == 1,  # a batch of one breaks batch norm
    )
    model.to(device).train()
    head.to(device).train()
    history = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in tqdm(range(epochs), desc="finetune", disable=None if progress else True):
            total, count = 0.0, 0
            for x, y, _attrs in loader:
                x, y = x.to(device), lut[y].to(device)
                loss = F.cross_entropy(head(model(x)), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(y)
                count += len(y)
            history.append(total / max(count, 1))
    model.eval()
    head.cpu().eval()
    return history


def finetune(
    embedder: nn.Module,
    train_set: AttributeDataset,
    test_set: AttributeDataset | None = None,
    *,
    mode: FinetuneMode = "head",
    epochs: int = 10,
    lr: float = 1e-2,
    backbone_lr: float = 1e-4,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    hidden: int | None = None,
    standardize: bool = True,
    seed: int = 0,
    device: str = "auto",
    attributes: Sequence[str] | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    num_workers: int = 0,
    progress: bool = False,
) -> FinetuneResult:
    """Train a classification head (and, end to end, the embedder) on ``train_set``'s labels.

    Args:
        embedder: maps a batch of inputs to ``(B, D)`` embeddings (an exported
            :class:`~fairmetric.models.Embedder`).
        train_set: the downstream training samples (already balanced as wanted).
        test_set: the downstream test samples; when given, the result holds their predictions and
            the per-group accuracy report.
        mode: ``"head"`` (frozen embedder) or ``"end_to_end"``.
        epochs: passes over the training set.
        lr: Adam learning rate of the head.
        backbone_lr: Adam learning rate of the embedder (``"end_to_end"`` only).
        batch_size: mini-batch size.
        weight_decay: Adam weight decay (all parameters).
        hidden: hidden units of a one-hidden-layer head (``None``: linear).
        standardize: ``"head"`` mode: standardise the frozen embeddings with their training
            statistics (a fixed first layer of the head, see :class:`HeadClassifier`). Ignored
            end to end, where the embeddings change while the head trains.
        seed: seeds the head's initialisation and the batch order.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        attributes: attributes to evaluate by (default: all of ``test_set``'s).
        n_boot: bootstrap replicates of the report.
        level: interval coverage of the report.
        min_group_size: groups with fewer test samples are reported but kept out of the gap.
        num_workers: DataLoader workers.
        progress: show progress bars.
    """
    if mode not in get_args(FinetuneMode):
        raise ValueError(f"unknown finetune mode {mode!r}; valid values: 'head', 'end_to_end'")
    check_training_args(epochs, lr, batch_size, weight_decay)
    if not isinstance(backbone_lr, (int, float)) or not backbone_lr > 0:
        raise ValueError(f"backbone_lr must be a positive number, got {backbone_lr!r}")
    if not isinstance(train_set, AttributeDataset) or len(train_set) == 0:
        raise ValueError("train_set must be a non-empty AttributeDataset")
    if test_set is not None and not isinstance(test_set, AttributeDataset):
        raise ValueError("test_set must be an AttributeDataset (or None)")
    if attributes is not None and test_set is not None:
        for a in attributes:
            test_set.attribute_index(a)  # clear error for an unknown attribute
    classes = np.unique(train_set.labels)
    if len(classes) < 2:
        raise ValueError(
            f"train_set holds a single class ({int(classes[0])}); a classifier needs at least "
            "two: check the downstream split and the balancing"
        )
    dev = resolve_device(device)

    if mode == "head":
        emb = embed_dataset(embedder, train_set, device=dev, num_workers=num_workers)
        clf = HeadClassifier(
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            weight_decay=weight_decay,
            hidden=hidden,
            standardize=standardize,
            seed=seed,
            device=str(dev),
        ).fit(emb.embeddings, emb.labels)
        result = FinetuneResult(mode, embedder, clf.head_, clf.classes_, clf.history_)
    else:
        model = copy.deepcopy(embedder)
        with torch.no_grad():
            model.eval()
            dim = model(train_set[0][0].unsqueeze(0).to(next(model.parameters()).device)).shape[1]
        head = make_head(int(dim), len(classes), hidden=hidden, seed=seed)
        history = _train_end_to_end(
            model,
            head,
            train_set,
            classes,
            epochs=epochs,
            lr=lr,
            backbone_lr=backbone_lr,
            batch_size=batch_size,
            weight_decay=weight_decay,
            seed=seed,
            device=dev,
            num_workers=num_workers,
            progress=progress,
        )
        result = FinetuneResult(mode, model, head, classes, history)

    if test_set is not None:
        result.predictions = result.predict(test_set, device=str(dev))
        groups, names = groups_of(test_set, attributes)
        result.report = evaluate_downstream(
            test_set.labels,
            result.predictions,
            groups,
            group_names=names,
            n_boot=n_boot,
            seed=seed,
            level=level,
            min_group_size=min_group_size,
            metadata={
                "task": f"classify the {len(classes)} classes of {train_set.name}",
                "classifier": f"finetune ({mode})",
                "n_train": len(train_set),
                "n_test": len(test_set),
            },
        )
    return result
