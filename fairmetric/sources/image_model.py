"""What a released image model is to fairmetric: a network and the transform that prepares its
inputs (:class:`ImageModel`), and the check of a local weights file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["WEIGHTS_KINDS", "ImageModel", "check_weights_file"]

#: what a weights file may be, for messages
WEIGHTS_KINDS = "a local .safetensors, .pth or .bin state dict; fairmetric never downloads weights"


@dataclass(frozen=True)
class ImageModel:
    """A released image model ready to embed.

    Attributes:
        module: maps a batch of preprocessed images ``(B, C, H, W)`` to embeddings ``(B, D)``.
        transform: maps one image (a PIL image, or a ``(C, H, W)`` float tensor in ``[0, 1]``)
            to the module's input tensor.
        input_size: ``(C, H, W)`` of the module's input.
        name: the source's name (``test_resnet``, ``open_clip:ViT-B-32``), kept in metadata.
        weights: the weights file, or ``None`` for a randomly initialised network.
    """

    module: nn.Module
    transform: Callable[[Any], torch.Tensor]
    input_size: tuple[int, int, int]
    name: str
    weights: str | None


def check_weights_file(weights: str | Path, what: str) -> Path:
    """``weights`` as a path to an existing file, or a ``FileNotFoundError`` naming ``what``."""
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file for {what} not found: {path} ({WEIGHTS_KINDS})")
    return path
