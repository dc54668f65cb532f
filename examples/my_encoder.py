"""A stand-in for a released model, exposed as ``module:function`` for ``fairmetric audit``.

``fairmetric audit my_encoder:embed --config CONFIG`` imports this module and calls ``embed`` on
batches of the config's data: a float tensor, images in ``[0, 1]`` of shape ``(B, 3, H, W)`` (or
vectors ``(B, D)``). It must return one embedding row per input, as a tensor or numpy array.

Here the "released" network is a fairmetric :class:`~fairmetric.Embedder` with seeded random
weights, or, when the environment variable ``MY_ENCODER_MODEL`` names a fairmetric run folder or
exported model folder, that trained model. Replace :func:`build_encoder` with the code that loads
your own network (a face-recognition model, a sentence encoder, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["build_encoder", "embed"]

_MODEL: torch.nn.Module | None = None


def build_encoder() -> torch.nn.Module:
    """The network to audit, in eval mode."""
    from fairmetric import Embedder, load_embedder

    path = os.environ.get("MY_ENCODER_MODEL")
    if path:
        folder = Path(path)
        if (folder / "model" / "config.json").is_file():  # a training run: its exported model
            folder = folder / "model"
        return load_embedder(folder).eval()
    torch.manual_seed(0)  # the same "released" weights on every call
    model = Embedder(backbone="test_resnet", embedding_dim=64, input_size=(3, 32, 32))
    return model.eval()


@torch.no_grad()
def embed(batch: torch.Tensor) -> np.ndarray:
    """Map a batch of inputs to ``(B, D)`` embeddings (the model is built on first use)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = build_encoder()
    _MODEL.to(batch.device)
    return _MODEL(batch).cpu().numpy()
