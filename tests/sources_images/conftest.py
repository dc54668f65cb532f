"""Tiny offline fixtures for image-model sources: 16x16 PNGs with a CSV whose columns have their
own names, timm ``test_*`` weights saved as a released checkpoint would be, no network."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

N_IMAGES = 12
HEADER = "file,person,skin,sex,note"


def write_folder(root: Path, n: int = N_IMAGES) -> Path:
    """``root/img/<i>.png`` (random 16x16 RGB) listed in ``root/people.csv`` as
    ``file,person,skin,sex,note``: six people, two images each."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = [HEADER]
    for i in range(n):
        pixels = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
        skin = "dark" if (i // 2) % 2 else "light"
        sex = "f" if (i // 2) % 3 else "m"
        rows.append(f"img/{i}.png,p{i // 2:02d},{skin},{sex},n{i}")
    (root / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_folder(tmp_path / "faces")


def save_timm_weights(path: Path, name: str = "test_resnet", seed: int = 1) -> dict:
    """A timm model's full state dict (classifier included, as released checkpoints are),
    seeded so it differs from a fresh random model; returns it."""
    import timm

    torch.manual_seed(seed)
    state = timm.create_model(name, pretrained=False).state_dict()
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


@pytest.fixture
def timm_weights(tmp_path) -> Path:
    path = tmp_path / "test_resnet.pth"
    save_timm_weights(path)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Offline: Hugging Face libraries told so, and any socket connection fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
