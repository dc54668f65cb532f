"""A small classification head trained with cross-entropy and Adam on frozen embeddings.

The head is linear (``logits = W z + b``) or, with ``hidden``, one hidden ReLU layer, on the
embedding ``e`` standardised with the training statistics, ``z = (e - μ) / σ`` (a fixed first layer,
so the trained head maps raw embeddings to logits; ``standardize=False`` uses ``z = e``). It minimises
the mean cross-entropy :math:`-\\frac{1}{N}\\sum_i \\log \\mathrm{softmax}(f(e_i))_{y_i}` over
seeded shuffled mini-batches; :func:`~fairmetric.downstream.finetune.finetune` uses the same head
when it trains end to end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fairmetric.downstream.base import DownstreamClassifier
from fairmetric.utils import resolve_device

__all__ = ["HeadClassifier", "Standardize", "make_head"]


class Standardize(nn.Module):
    """The fixed affine map ``(e - mean) / std`` (statistics stored as buffers)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_head(
    in_features: int,
    n_classes: int,
    *,
    hidden: int | None = None,
    seed: int = 0,
    standardize: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> nn.Module:
    """A linear head, or ``Linear → ReLU → Linear`` with ``hidden`` units, seeded initialisation.

    ``standardize=(mean, std)`` puts a fixed :class:`Standardize` in front, so the head maps raw
    embeddings to logits.
    """
    if hidden is not None and (not isinstance(hidden, int) or hidden < 1):
        raise ValueError(f"hidden must be None or a positive integer, got {hidden!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hidden is None:
            layers: list[nn.Module] = [nn.Linear(in_features, n_classes)]
        else:
            layers = [nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)]
    if standardize is None:
        return layers[0] if len(layers) == 1 else nn.Sequential(*layers)
    return nn.Sequential(Standardize(*standardize), *layers)


def check_training_args(epochs: Any, lr: Any, batch_size: Any, weight_decay: Any) -> None:
    """Shared validation of the optimisation settings of a head or a finetuning run."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")


class HeadClassifier(DownstreamClassifier):
    """A torch classification head fitted on frozen embeddings (cross-entropy, Adam).

    Args:
        epochs: passes over the training embeddings.
        lr: Adam learning rate.
        batch_size: mini-batch size (the last batch may be smaller).
        weight_decay: Adam weight decay.
        hidden: hidden units of a one-hidden-layer head (``None``: linear head).
        standardize: standardise each embedding dimension with the training mean and standard
            deviation (a fixed first layer of the head). Unit-norm embeddings have per-dimension
            scales of about ``1/sqrt(D)``, often much less after training, which makes a head
            on the raw values learn slowly.
        seed: seeds the initialisation and the batch order.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Attributes (after :meth:`fit`):
        head_: the trained ``nn.Module`` (in eval mode, on the CPU).
        history_: mean training loss of each epoch.
    """

    name = "head"

    def __init__(
        self,
        *,
        epochs: int = 100,
        lr: float = 1e-2,
        batch_size: int = 256,
        weight_decay: float = 0.0,
        hidden: int | None = None,
        standardize: bool = True,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        check_training_args(epochs, lr, batch_size, weight_decay)
        if hidden is not None and (not isinstance(hidden, int) or hidden < 1):
            raise ValueError(f"hidden must be None or a positive integer, got {hidden!r}")
        self.epochs = epochs
        self.lr = float(lr)
        self.batch_size = batch_size
        self.weight_decay = float(weight_decay)
        self.hidden = hidden
        self.standardize = bool(standardize)
        self.seed = int(seed)
        self.device = device

    def _fit(self, x: np.ndarray, codes: np.ndarray) -> None:
        device = resolve_device(self.device)
        xt = torch.from_numpy(x).to(device)
        stats = None
        if self.standardize:
            x64 = xt.double()
            stats = (x64.mean(dim=0).float(), x64.std(dim=0, unbiased=False).float() + 1e-8)
        head = make_head(
            x.shape[1], len(self.classes_), hidden=self.hidden, seed=self.seed, standardize=stats
        )
        head.to(device).train()
        opt = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        yt = torch.from_numpy(codes).to(device)
        gen = torch.Generator().manual_seed(self.seed)
        self.history_: list[float] = []
        for _ in range(self.epochs):
            order = torch.randperm(len(xt), generator=gen).to(device)
            total = 0.0
            for start in range(0, len(xt), self.batch_size):
                idx = order[start : start + self.batch_size]
                loss = F.cross_entropy(head(xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            self.history_.append(total / len(xt))
        self.head_ = head.cpu().eval()

    @torch.no_grad()
    def decision_function(self, x: Any) -> np.ndarray:
        """``(N, K)`` logits, columns in the order of :attr:`classes_`."""
        return self.head_(torch.from_numpy(self._check_query(x))).numpy()

    def _predict_codes(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.head_(torch.from_numpy(x)).argmax(dim=1).numpy().astype(np.int64)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "weight_decay": self.weight_decay,
            "hidden": self.hidden,
            "standardize": self.standardize,
        }
