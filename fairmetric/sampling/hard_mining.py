r"""Loss-based hard-example selection: back-propagate the hardest ``B`` of ``N`` candidates.

No attribute labels are needed: the samples the model currently serves worst -- often those of
under-represented groups -- get the gradient. Each training step draws ``N`` candidates (a larger
batch from the usual sampler), scores them without gradient (per-sample loss, see
:func:`fairmetric.losses.per_sample_losses`) and keeps ``B < N`` of them:

* ``selection="top"``: the ``B`` highest losses (ties broken by position, deterministically);
* ``selection="proportional"``: ``B`` drawn without replacement with probability
  :math:`\propto \ell_i^\tau` (successive draws, as ``torch.multinomial`` does; computed as a
  Gumbel top-k in log space, so tiny losses or a large ``tau`` cannot underflow). Samples with zero
  loss are only taken once every positive-loss sample is in, uniformly at random among themselves.
  ``tau=0`` is uniform selection over the positive-loss samples; a large ``tau`` approaches ``top``.

PML's tuple miners (``TripletMarginMiner``, ``MultiSimilarityMiner``, ...) work beside it: the
trainer runs the miner both when scoring the candidates and on the selected batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["HardExampleSelector", "select_hard"]

SELECTIONS = ("top", "proportional")
_STREAM = 0x4A4D  # separates this generator's seed from the samplers' (seed, epoch) streams


def _check(n: int, k: int, selection: str, tau: float) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if k < 1:
        raise ValueError(f"the number of samples to keep must be at least 1, got {k}")
    if k >= n:
        raise ValueError(
            f"hard-example mining keeps B={k} of N={n} candidates, so B must be smaller than N; "
            "raise hard_mining.candidates_per_batch above train.batch_size"
        )
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite number >= 0, got {tau}")


def select_hard(
    losses: torch.Tensor,
    k: int,
    *,
    selection: str = "top",
    tau: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices of the ``k`` candidates to keep, given their per-sample ``losses`` ``(N,)``.

    Raises:
        ValueError: ``k >= N``, ``k < 1``, an unknown ``selection``, ``tau < 0``, or non-finite
            losses.
    """
    losses = losses.detach().reshape(-1)
    _check(len(losses), k, selection, tau)
    if not torch.isfinite(losses).all():
        raise ValueError("per-sample losses contain NaN or inf; check the model and learning rate")
    if selection == "top":
        return torch.argsort(losses.cpu(), descending=True, stable=True)[:k].to(losses.device)
    scores = losses.cpu().double().clamp_min(0)
    positive = torch.nonzero(scores > 0).reshape(-1)
    take = min(k, len(positive))
    chosen = []
    if take:
        # Gumbel top-k on tau·log(loss): the same law as successive draws with p ∝ loss^tau, but
        # computed in log space so that no weight underflows, whatever the scale of the losses
        u = torch.rand(len(positive), dtype=torch.double, generator=generator)
        keys = tau * scores[positive].log() - torch.log(-torch.log(u.clamp_min(1e-300)))
        chosen.append(positive[torch.argsort(keys, descending=True, stable=True)[:take]])
    if take < k:
        zero = torch.nonzero(scores <= 0).reshape(-1)
        chosen.append(zero[torch.randperm(len(zero), generator=generator)[: k - take]])
    return torch.cat(chosen).to(losses.device)


class HardExampleSelector:
    """Keeps ``batch_size`` of ``candidates`` samples per step; random state seeded per epoch.

    Args:
        candidates: ``N``, samples scored per step.
        batch_size: ``B < N``, samples back-propagated per step.
        selection: ``"top"`` or ``"proportional"``.
        tau: exponent of the proportional selection.
        seed: seed of the proportional draws (``(seed, epoch)`` via :meth:`set_epoch`).
    """

    def __init__(
        self,
        candidates: int,
        batch_size: int,
        *,
        selection: str = "top",
        tau: float = 1.0,
        seed: int = 0,
    ) -> None:
        _check(int(candidates), int(batch_size), selection, float(tau))
        self.candidates = int(candidates)
        self.batch_size = int(batch_size)
        self.selection = selection
        self.tau = float(tau)
        self.seed = int(seed)
        self.generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the proportional draws for ``epoch`` (so a resumed run draws the same)."""
        state = np.random.SeedSequence([self.seed, int(epoch), _STREAM]).generate_state(1)
        self.generator.manual_seed(int(state[0]))

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:
        return select_hard(
            losses,
            self.batch_size,
            selection=self.selection,
            tau=self.tau,
            generator=self.generator,
        )
