"""Per-sample losses from any sample-indexed pytorch-metric-learning loss.

Hard-example mining ranks the samples of a candidate batch by their loss. A PML loss reports its
unreduced elements (tuples) to its reducer; :func:`per_sample_losses` intercepts that dictionary and
gives every sample the mean loss of the elements (tuples) it anchors, summed over sub-losses
(PML sums its sub-losses too). A sample that anchors no element gets 0. Regularisation sub-losses,
which do not belong to any sample, are left out.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_metric_learning.reducers import BaseReducer

from fairmetric.losses.reducers import UNWEIGHTED_SUB_LOSSES, anchor_indices, check_sample_indexed

__all__ = ["per_sample_losses"]


class _Capture(BaseReducer):
    """Records the loss dictionary instead of reducing it."""

    def __init__(self) -> None:
        super().__init__()
        self.loss_dict: dict[str, Any] | None = None

    def forward(self, loss_dict, embeddings, labels):
        self.loss_dict = loss_dict
        return embeddings.sum() * 0


def per_sample_losses(
    loss_fn: torch.nn.Module,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    indices_tuple: Any = None,
) -> torch.Tensor:
    """Loss of every sample of the batch: the mean over the elements it anchors, summed over sub-losses.

    Args:
        loss_fn: a PML loss (``BaseMetricLossFunction``) whose elements are indexed by sample.
        embeddings: ``(N, D)`` batch.
        labels: ``(N,)`` labels.
        indices_tuple: optional tuples from a PML miner, as for the loss itself.

    Returns:
        ``(N,)`` tensor, differentiable when ``embeddings`` is.

    Raises:
        ValueError: the loss's elements are classes (``ProxyAnchorLoss``) or it reports its main
            loss already reduced (e.g. ``HistogramLoss``, ``ManifoldLoss``),
            so there is no per-sample loss to rank.
    """
    check_sample_indexed(loss_fn, "per-sample loss (hard-example mining)")
    capture = _Capture()
    original = loss_fn.reducer
    loss_fn.reducer = capture
    try:
        loss_fn(embeddings, labels, indices_tuple)
    finally:
        loss_fn.reducer = original
    n = len(embeddings)
    out = embeddings.new_zeros(n)
    for name, info in (capture.loss_dict or {}).items():
        losses, kind = info["losses"], info["reduction_type"]
        if not torch.is_tensor(losses):  # PML's zero loss: no tuples at all
            continue
        if kind == "already_reduced":
            if name in UNWEIGHTED_SUB_LOSSES:
                continue
            raise ValueError(
                f"{type(loss_fn).__name__} reports its sub-loss {name!r} already reduced to a "
                "scalar, so samples cannot be ranked by loss; use a per-sample, pair or triplet "
                "loss for hard-example mining"
            )
        if losses.numel() == 0:
            continue
        flat = losses.reshape(len(losses), -1)
        if flat.shape[1] != 1:
            raise ValueError(
                f"sub-loss {name!r} has per-element losses of shape {tuple(losses.shape)}; "
                "expected one value per element"
            )
        anchors = anchor_indices(info["indices"], kind).to(flat.device).long()
        if int(anchors.min()) < 0 or int(anchors.max()) >= n:
            raise ValueError(
                f"sub-loss {name!r} has element indices outside the batch of {n}: they do not "
                "index samples"
            )
        total = out.new_zeros(n).index_add(0, anchors, flat[:, 0].to(out.dtype))
        count = out.new_zeros(n).index_add(0, anchors, torch.ones_like(flat[:, 0], dtype=out.dtype))
        out = out + total / count.clamp_min(1)
    return out
