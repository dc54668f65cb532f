"""open_clip image towers from a local checkpoint: ``open_clip:ARCH`` with ``weights=FILE``.

The model is built by ``open_clip.create_model_and_transforms(ARCH, pretrained=FILE)`` with
``FILE`` an absolute path to an existing file, which open_clip loads strictly
(``weights_only=True``) without looking anything up: an absolute path is never taken for one of
its download tags. Architectures whose text tower is a Hugging Face model (``hf_model_name`` in
the config, e.g. ``xlm-roberta-base-ViT-B-32``) are refused, since building them reads that
model's config from the Hub. The embedding is ``model.encode_image(x)`` (not normalised) on the
tensors of open_clip's evaluation transform (resize, centre crop, normalisation at the tower's
image size). Needs the ``clip`` extra (``pip install 'fairmetric[clip]'``).

An architecture of your own: register its JSON config first with
``open_clip.add_model_config(path)`` (a file named ``ARCH.json``, or a folder of them).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from fairmetric.errors import UserError
from fairmetric.models.embedder import read_weights
from fairmetric.sources.image_model import ImageModel, check_weights_file

__all__ = ["EXTRA_HINT", "open_clip_image_model"]

EXTRA_HINT = "pip install 'fairmetric[clip]'"


class _ImageTower(nn.Module):
    """``model.encode_image`` as a module's forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


def _import_open_clip():
    try:
        import open_clip
    except ImportError as e:
        raise UserError(
            f"open_clip image towers need the open_clip package, which is not installed ({e}); "
            f"{EXTRA_HINT}"
        ) from None
    return open_clip


def open_clip_image_model(arch: str, *, weights: str | Path | None) -> ImageModel:
    """The image tower of an open_clip model, with a local checkpoint and its eval transform.

    Args:
        arch: an open_clip architecture name (``open_clip.list_models()``, e.g. ``ViT-B-32``).
        weights: the checkpoint file (e.g. ``open_clip_pytorch_model.bin``, a ``.safetensors``).

    Raises:
        UserError: open_clip missing (names the extra), no weights, an unknown architecture or
            one that would fetch a Hugging Face text model.
        FileNotFoundError: no file at ``weights``.
        ValueError: a corrupt checkpoint, or one of another architecture (names both).
    """
    open_clip = _import_open_clip()
    what = f"open_clip:{arch}"
    if arch.startswith(("hf-hub:", "local-dir:")) or arch not in open_clip.list_models():
        raise UserError(
            f"{what}: not an open_clip architecture name; known names are open_clip.list_models() "
            "(e.g. ViT-B-32, RN50); register your own config with open_clip.add_model_config"
        )
    if open_clip.get_model_config(arch).get("text_cfg", {}).get("hf_model_name"):
        raise UserError(
            f"{what}: its text tower is a Hugging Face model that open_clip would look up on the "
            "Hub, and fairmetric never downloads; embed it with a module:function encoder instead"
        )
    if weights is None:
        raise UserError(
            f"{what} needs its checkpoint: pass --weights FILE (weights=... in Python), e.g. a "
            "local open_clip_pytorch_model.bin; fairmetric never downloads weights"
        )
    path = check_weights_file(weights, what).resolve()
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=str(path), weights_only=True
        )
    except Exception as e:  # corrupt files and mismatched state dicts raise many types
        text = str(e)
        try:  # a file that reads as a state dict is one of another architecture
            readable = bool(read_weights(path))
        except ValueError:
            readable = False
        if readable:
            problem = "does not fit this architecture (is it a checkpoint of another one?)"
        else:
            problem = "is corrupt or not an open_clip checkpoint (a state dict of tensors)"
        raise ValueError(
            f"{what}: the checkpoint {path} {problem} ({type(e).__name__}: {text[:300]})"
        ) from None
    model.eval()
    size = model.visual.image_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return ImageModel(
        module=_ImageTower(model),
        transform=preprocess,
        input_size=(3, int(height), int(width)),
        name=what,
        weights=str(path),
    )
