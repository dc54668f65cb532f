"""PML losses and miners by class name: moved to :mod:`fairmetric.losses.factories` (the fairness
terms build their own losses from their configs); re-exported here for existing imports."""

from fairmetric.losses.factories import build_loss, build_miner, list_losses, list_miners

__all__ = ["build_loss", "build_miner", "list_losses", "list_miners"]
