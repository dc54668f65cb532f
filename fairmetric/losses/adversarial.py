r"""Adversarial attribute removal (DANN; Ganin & Lempitsky 2015).

An attribute classifier :math:`c` reads the embedding through gradient reversal
:math:`R_\alpha`:

.. math::

    L_{adv} = \mathrm{CE}\big(c(R_\alpha(e)), a\big).

The caller minimises ``L_metric + L_adv`` (optionally weighted): :math:`c` gets the plain gradient
and learns to predict the attribute :math:`a`; the embedding (and everything before it) gets
:math:`-\alpha` times the gradient, so it *maximises* the classifier's loss and learns to hide the
attribute entirely. Unlike PARADE, this removes all attribute information, not only what a second
attribute metric captures.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fairmetric.losses.decorrelation import check_embedding_batch
from fairmetric.models.heads import MLP, GradientReversal, _check_dim

__all__ = ["AttributeAdversary"]


class AttributeAdversary(nn.Module):
    """Attribute classifier on the embedding, behind a gradient-reversal layer.

    Args:
        embedding_dim: size of the embedding ``e``.
        num_values: number of attribute values (classes of the adversary), ``>= 2``.
        alpha: scale of the reversed gradient; settable during training (``adv.alpha = x``).
        hidden: ``None`` for a linear classifier, else the width of a two-layer MLP.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_values: int,
        alpha: float = 1.0,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = _check_dim(embedding_dim, "embedding_dim")
        num_values = _check_dim(num_values, "num_values")
        if num_values < 2:
            raise ValueError(
                f"num_values must be >= 2 (an attribute with values), got {num_values}"
            )
        self.num_values = num_values
        self.reversal = GradientReversal(alpha)
        if hidden is None:
            self.classifier: nn.Module = nn.Linear(self.embedding_dim, num_values)
        else:
            self.classifier = MLP(self.embedding_dim, num_values, hidden=hidden, layers=2)

    @property
    def alpha(self) -> float:
        return self.reversal.alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.reversal.alpha = value

    def _check(self, e: torch.Tensor, attribute_codes: torch.Tensor) -> torch.Tensor:
        check_embedding_batch(e, "e", dim=self.embedding_dim)
        if not isinstance(attribute_codes, torch.Tensor):
            attribute_codes = torch.as_tensor(attribute_codes)
        if attribute_codes.shape != (e.shape[0],):
            raise ValueError(
                f"attribute_codes must have shape ({e.shape[0]},) (one per embedding), got "
                f"{tuple(attribute_codes.shape)}"
            )
        if attribute_codes.is_floating_point() or attribute_codes.dtype == torch.bool:
            raise ValueError(f"attribute_codes must be integer codes, got {attribute_codes.dtype}")
        lo, hi = int(attribute_codes.min()), int(attribute_codes.max())
        if lo < 0 or hi >= self.num_values:
            raise ValueError(
                f"attribute_codes must lie in [0, {self.num_values}) (num_values), got values in "
                f"[{lo}, {hi}]; drop samples with unknown attributes or raise num_values"
            )
        return attribute_codes.to(device=e.device, dtype=torch.long)

    def logits(self, e: torch.Tensor) -> torch.Tensor:
        """Attribute logits ``c(R_alpha(e))``, shape ``(N, num_values)``."""
        return self.classifier(self.reversal(e))

    def forward(self, e: torch.Tensor, attribute_codes: torch.Tensor) -> torch.Tensor:
        """Unweighted mean cross-entropy of the adversary (reversed gradient towards ``e``)."""
        codes = self._check(e, attribute_codes)
        return F.cross_entropy(self.logits(e), codes)

    @torch.no_grad()
    def accuracy(self, e: torch.Tensor, attribute_codes: torch.Tensor) -> float:
        """Fraction of samples whose attribute the adversary predicts (for logging)."""
        codes = self._check(e, attribute_codes)
        return float((self.classifier(e).argmax(dim=1) == codes).float().mean())
