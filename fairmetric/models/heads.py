r"""Training-time heads: gradient reversal, attribute embedding heads, small MLPs.

Nothing here is part of the exported :class:`~fairmetric.models.Embedder`: these modules live
beside it during training (PARADE's attribute heads :math:`\psi_s`, DANN's adversary, the
decorrelation network :math:`\xi`) and are dropped at export.

Gradient reversal (Ganin & Lempitsky 2015) is the identity in the forward pass and multiplies the
gradient by :math:`-\alpha` in the backward pass:

.. math::

    R_\alpha(x) = x, \qquad \frac{\partial L}{\partial x} = -\alpha \,
    \frac{\partial L}{\partial R_\alpha(x)}.

A module placed *after* the reversal (a classifier, :math:`\xi`) therefore minimises ``L`` while
every module *before* it receives the gradient of :math:`-\alpha L` and maximises it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["grad_reverse", "GradientReversal", "AttributeHead", "MLP", "check_alpha"]


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """Return ``alpha`` as a float after checking it is a finite number ``>= 0``.

    Raises:
        ValueError: naming ``name`` when ``alpha`` is not a real number, is NaN/inf or negative.
    """
    if isinstance(alpha, torch.Tensor):
        if alpha.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(alpha.shape)}")
        alpha = alpha.item()
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"{name} must be a real number, got {type(alpha).__name__} {alpha!r}")
    alpha = float(alpha)
    if not math.isfinite(alpha):
        raise ValueError(f"{name} must be finite, got {alpha}; pass a number such as 1.0")
    if alpha < 0:
        raise ValueError(
            f"{name} must be >= 0, got {alpha} (the reversal already flips the sign; a negative "
            f"{name} would undo it)"
        )
    return alpha


class _GradReverse(torch.autograd.Function):
    """Identity forward; ``-alpha * grad`` backward (no gradient for ``alpha``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output * (-ctx.alpha), None


def grad_reverse(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    r"""Gradient reversal :math:`R_\alpha`: returns ``x``; the backward pass multiplies by ``-alpha``.

    Args:
        x: any tensor.
        alpha: finite scale ``>= 0`` of the reversed gradient (0 blocks the gradient).
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return _GradReverse.apply(x, check_alpha(alpha))


class GradientReversal(nn.Module):
    """Module wrapper of :func:`grad_reverse`; ``alpha`` can be changed during training.

    DANN schedules ``alpha`` from 0 to 1 over training: set ``module.alpha = value`` each step.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_alpha(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self._alpha)

    def extra_repr(self) -> str:
        return f"alpha={self._alpha}"


def _check_dim(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class AttributeHead(nn.Module):
    r"""PARADE's attribute head :math:`\psi_s`: backbone features ``h`` → attribute embedding.

    Built like the :class:`~fairmetric.models.Embedder` head: :math:`e^s = \mathrm{normalize}(W_s h
    + b_s)` with an ``nn.Linear`` named ``head``, and the same ``project`` / ``finalize`` split, so
    a trainer can use the raw (pre-normalisation) output where it needs it.

    Args:
        in_features: width of the backbone features (``Embedder.feature_dim``).
        embedding_dim: size of the attribute embedding.
        normalize: L2-normalise the output.
    """

    def __init__(self, in_features: int, embedding_dim: int, *, normalize: bool = True) -> None:
        super().__init__()
        self.in_features = _check_dim(in_features, "in_features")
        self.embedding_dim = _check_dim(embedding_dim, "embedding_dim")
        self.normalize = bool(normalize)
        self.head = nn.Linear(self.in_features, self.embedding_dim)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The raw attribute embedding ``W_s h + b_s``."""
        if h.ndim != 2 or h.shape[1] != self.in_features:
            raise ValueError(
                f"h must have shape (N, {self.in_features}) (the backbone features), got "
                f"{tuple(h.shape)}"
            )
        return self.head(h)

    def finalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Apply the output normalisation to a raw attribute embedding."""
        return F.normalize(raw, dim=1) if self.normalize else raw

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.finalize(self.project(h))


class MLP(nn.Sequential):
    """``layers`` linear layers with ReLU between them: Linear-ReLU-...-Linear.

    ``layers=1`` is a single ``Linear(in_features, out_features)``; every hidden layer has width
    ``hidden``. No activation after the last layer.
    """

    def __init__(
        self, in_features: int, out_features: int, *, hidden: int = 512, layers: int = 2
    ) -> None:
        in_features = _check_dim(in_features, "in_features")
        out_features = _check_dim(out_features, "out_features")
        hidden = _check_dim(hidden, "hidden")
        layers = _check_dim(layers, "layers")
        widths = [in_features] + [hidden] * (layers - 1) + [out_features]
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks.append(nn.Linear(widths[i], widths[i + 1]))
            if i < layers - 1:
                blocks.append(nn.ReLU())
        super().__init__(*blocks)
        self.in_features, self.out_features = in_features, out_features
