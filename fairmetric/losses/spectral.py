r"""Spectral decoupling (Pezeshki et al. 2021, "Gradient Starvation: A Learning Proclivity in
Neural Networks").

Gradient starvation: cross-entropy stops pushing once a few strong features separate the data, so
weaker features (often the ones that generalise across subgroups) are never learned. Spectral
decoupling replaces the implicit weight decay of logistic regression by an explicit L2 penalty on
the network outputs, which decouples the learning dynamics of the features:

.. math::

    L_{SD} = \lambda \cdot \frac{1}{N K} \sum_{i=1}^N \sum_{k=1}^K (\hat y_{ik} - \gamma_{y_i})^2,

with offsets :math:`\gamma = 0` (plain SD), one scalar, or one per class (the paper's CelebA
variant). Reference values: :math:`\lambda = 2 \cdot 10^{-5}` on Colored MNIST, 0.1 with offsets
on CelebA.

In deep metric learning the outputs :math:`\hat y` are the class logits of a classification loss
when it has them (:func:`loss_logits`), otherwise the pre-normalisation embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from pytorch_metric_learning.losses import NCALoss, SoftTripleLoss

from fairmetric.models.heads import check_alpha

__all__ = ["SpectralDecoupling", "loss_logits", "spectral_decoupling"]

Offsets = float | Sequence[float] | torch.Tensor | None


def _as_offsets(offsets: Offsets, like: torch.Tensor) -> torch.Tensor | None:
    """``offsets`` as a float tensor on ``like``'s device: 0-d (scalar), (C,) or (C, K)."""
    if offsets is None:
        return None
    if isinstance(offsets, bool):
        raise ValueError("offsets must be a number, a sequence of numbers or a tensor, got a bool")
    try:
        gamma = torch.as_tensor(offsets, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(
            f"offsets must be a number, a sequence of per-class numbers or a tensor ({e})"
        ) from None
    if gamma.ndim > 2 or (gamma.ndim >= 1 and gamma.shape[0] == 0):
        raise ValueError(
            "offsets must be a scalar, one value per class (C,) or one row per class (C, K); "
            f"got shape {tuple(gamma.shape)}"
        )
    if not bool(torch.isfinite(gamma).all()):
        raise ValueError("offsets contain NaN or inf values")
    return gamma


def spectral_decoupling(
    outputs: torch.Tensor,
    labels: torch.Tensor | None = None,
    offsets: Offsets = None,
) -> torch.Tensor:
    r"""Unweighted spectral-decoupling penalty :math:`\mathrm{mean}((\hat y - \gamma)^2)`.

    Args:
        outputs: network outputs ``(N, K)`` (logits or raw embeddings) or ``(N,)`` (one logit).
        labels: class codes ``(N,)`` in ``[0, C)``; needed only for per-class offsets.
        offsets: ``None`` (:math:`\gamma = 0`), a scalar :math:`\gamma`, per-class offsets
            :math:`\gamma_c` of shape ``(C,)`` — subtracted from every output of a sample of
            class ``c`` — or ``(C, K)`` with one offset per class and output.

    Returns:
        A 0-d tensor; multiply it by :math:`\lambda`.
    """
    if not isinstance(outputs, torch.Tensor) or not outputs.is_floating_point():
        raise ValueError("outputs must be a floating-point torch.Tensor of shape (N, K) or (N,)")
    if outputs.ndim not in (1, 2) or outputs.shape[0] == 0:
        raise ValueError(f"outputs must have shape (N, K) or (N,) with N >= 1, got {outputs.shape}")
    if not bool(torch.isfinite(outputs).all()):
        raise ValueError("outputs contain NaN or inf values; check the model and learning rate")
    y = outputs if outputs.ndim == 2 else outputs.unsqueeze(1)
    gamma = _as_offsets(offsets, y)
    if gamma is None:
        return y.pow(2).mean()
    if gamma.ndim == 0:
        return (y - gamma).pow(2).mean()
    if gamma.ndim == 2 and gamma.shape[1] != y.shape[1]:
        raise ValueError(
            f"offsets of shape (C, K) must have K = {y.shape[1]} (the outputs' width), got "
            f"{tuple(gamma.shape)}"
        )
    if labels is None:
        raise ValueError("per-class offsets need labels: pass the class codes of the batch")
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    if labels.shape != (y.shape[0],):
        raise ValueError(
            f"labels must have shape ({y.shape[0]},) (one per output row), got "
            f"{tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class codes, got {labels.dtype}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= gamma.shape[0]:
        raise ValueError(
            f"labels must lie in [0, {gamma.shape[0]}) to index the {gamma.shape[0]} per-class "
            f"offsets, got values in [{lo}, {hi}]; give one offset per class"
        )
    g = gamma[labels.to(gamma.device)]
    if g.ndim == 1:
        g = g.unsqueeze(1)  # one offset per sample, broadcast over the outputs
    return (y - g).pow(2).mean()


class SpectralDecoupling(nn.Module):
    r"""``coefficient`` × :func:`spectral_decoupling`; the offsets move with ``.to(device)``.

    Args:
        coefficient: :math:`\lambda`, finite and ``>= 0``.
        offsets: as in :func:`spectral_decoupling`.
    """

    def __init__(self, coefficient: float, offsets: Offsets = None) -> None:
        super().__init__()
        self.coefficient = check_alpha(coefficient, "coefficient")
        gamma = _as_offsets(offsets, torch.zeros((), dtype=torch.float32))
        self.register_buffer("offsets", gamma)

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.coefficient * spectral_decoupling(outputs, labels, self.offsets)

    def extra_repr(self) -> str:
        shape = None if self.offsets is None else tuple(self.offsets.shape)
        return f"coefficient={self.coefficient}, offsets_shape={shape}"


def loss_logits(loss_fn: Any, embeddings: torch.Tensor) -> torch.Tensor | None:
    """The class logits a PML classification loss computes from ``embeddings``, else ``None``.

    PML's classification losses expose ``get_logits(embeddings)`` (PML 2.9:
    ``LargeMarginSoftmaxLoss`` and its subclasses ``ArcFaceLoss``, ``CosFaceLoss``,
    ``SphereFaceLoss``, ``SubCenterArcFaceLoss``; ``NormalizedSoftmaxLoss``, ``ProxyNCALoss``,
    ``ProxyAnchorLoss``, ``SoftTripleLoss``). This returns what the loss feeds its softmax,
    without the target-class margin, so ``cross_entropy(logits, labels)`` is the loss at margin 0:

    - most losses: their own ``get_logits`` (ArcFace/CosFace: ``scale · cos``, NormalizedSoftmax:
      ``similarity / temperature``);
    - ``ProxyNCALoss`` (any ``NCALoss`` subclass): ``get_logits`` returns the *distance* to
      each proxy; the softmax input is ``softmax_scale · (−distance)`` (sign flipped only for
      non-inverted distances such as the default squared Euclidean);
    - ``SoftTripleLoss``: ``get_logits`` omits the ``la`` scale the loss applies; it is included.
    - ``ProxyAnchorLoss`` has no softmax: its ``get_logits`` (cosine to each proxy) is returned.

    Pair and triplet losses (``TripletMarginLoss``, ``MultiSimilarityLoss``, ...), losses without
    ``get_logits`` (``P2SGradLoss``) and wrappers (``CrossBatchMemory``, ``MultipleLosses``)
    give ``None``: apply the penalty to the pre-normalisation embedding instead.
    """
    get_logits = getattr(loss_fn, "get_logits", None)
    if not callable(get_logits):
        return None
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        raise ValueError("embeddings must be a tensor of shape (N, D)")
    cast = getattr(loss_fn, "cast_types", None)
    if callable(cast):  # the loss's own forward moves its weights to the batch's dtype/device
        cast(embeddings.dtype, embeddings.device)
    logits = get_logits(embeddings)
    if isinstance(loss_fn, NCALoss):
        if not loss_fn.distance.is_inverted:
            logits = -logits
        logits = loss_fn.softmax_scale * logits
    elif isinstance(loss_fn, SoftTripleLoss):
        logits = loss_fn.la * logits
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError(f"{type(loss_fn).__name__}.get_logits did not return (N, C) logits")
    return logits
