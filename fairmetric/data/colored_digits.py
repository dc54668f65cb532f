"""Coloured digits: a biased image benchmark built from scikit-learn's bundled digits (no download).

Each 8×8 digit is upscaled, shifted by a few random pixels, and rendered in one of several colour /
brightness groups — the sensitive attribute ``colour``, an analogue of skin tone. Group 0 ("light")
is a bright, high-contrast rendering; the others have lower contrast — group 1 ("dark") the lowest —
so a model that rarely sees them has to work harder to separate their digits.

The *bias knob* ``p_majority``: in the training split each sample is rendered in the majority group
(group 0) with probability ``p_majority`` and in one of the other groups otherwise. The test split is
balanced (groups uniform). Train and test use disjoint digit classes, as deep-metric-learning
evaluation requires.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fairmetric.data.dataset import TensorAttributeDataset

__all__ = ["COLOUR_GROUPS", "make_colored_digits", "render_digits"]

#: (name, foreground RGB, background RGB) per colour group. Group 0 has the highest contrast
#: (mean |fg - bg| 0.82), then "medium" (0.45), "blue" (0.41) and "dark" (0.17).
COLOUR_GROUPS: list[tuple[str, tuple[float, float, float], tuple[float, float, float]]] = [
    ("light", (1.00, 0.90, 0.75), (0.05, 0.05, 0.10)),
    ("dark", (0.45, 0.32, 0.25), (0.22, 0.16, 0.13)),
    ("medium", (0.70, 0.55, 0.45), (0.15, 0.10, 0.10)),
    ("blue", (0.35, 0.45, 0.90), (0.10, 0.12, 0.25)),
]


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def render_digits(
    images: np.ndarray,
    groups: np.ndarray,
    *,
    image_size: int = 32,
    max_shift: int = 3,
    noise: float = 0.05,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Render grey 8×8 digits as coloured ``(N, 3, image_size, image_size)`` tensors.

    Args:
        images: ``(N, 8, 8)`` intensities in ``[0, 1]``.
        groups: ``(N,)`` colour group of each image (index into :data:`COLOUR_GROUPS`).
        image_size: output side in pixels.
        max_shift: the digit is placed at a random offset of up to this many pixels.
        noise: standard deviation of added Gaussian pixel noise.
        rng: the random generator (shifts and noise).
    """
    n = len(images)
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"got {len(groups)} groups for {n} images")
    if n and (groups.min() < 0 or groups.max() >= len(COLOUR_GROUPS)):
        raise ValueError(f"group values must lie in 0..{len(COLOUR_GROUPS) - 1}")
    inner = image_size - 2 * max_shift
    if inner < 8:
        raise ValueError(
            f"image_size={image_size} leaves no room for max_shift={max_shift}: "
            f"need image_size >= 8 + 2*max_shift"
        )
    grey = torch.from_numpy(images).unsqueeze(1)
    grey = F.interpolate(grey, size=(inner, inner), mode="bilinear", align_corners=False)
    canvas = torch.zeros(n, 1, image_size, image_size)
    offsets = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
    for i, (dy, dx) in enumerate(offsets):
        canvas[i, :, dy : dy + inner, dx : dx + inner] = grey[i]
    fg = torch.tensor([COLOUR_GROUPS[g][1] for g in groups], dtype=torch.float32)[:, :, None, None]
    bg = torch.tensor([COLOUR_GROUPS[g][2] for g in groups], dtype=torch.float32)[:, :, None, None]
    out = bg + canvas * (fg - bg)
    if noise > 0:
        out = out + noise * torch.from_numpy(rng.standard_normal(out.shape).astype(np.float32))
    return out.clamp_(0.0, 1.0)


def make_colored_digits(
    *,
    split: str = "train",
    p_majority: float = 0.95,
    n_groups: int = 2,
    train_classes: Sequence[int] = (0, 1, 2, 3, 4),
    image_size: int = 32,
    copies: int = 1,
    max_shift: int = 3,
    noise: float = 0.05,
    seed: int = 0,
) -> TensorAttributeDataset:
    """Build one split of the coloured-digits benchmark.

    Args:
        split: ``"train"`` (biased: group 0 with probability ``p_majority``) or ``"test"``
            (balanced, the classes not in ``train_classes``).
        p_majority: probability that a training sample is rendered in the majority group.
        n_groups: number of colour groups (2 to 4).
        train_classes: digit classes of the training split; the test split uses the others.
        image_size: side of the rendered images.
        copies: renderings of each source digit (more data, different shifts and noise).
        max_shift: random placement range in pixels.
        noise: pixel-noise standard deviation.
        seed: seed for group assignment, shifts and noise (the split name is mixed in).

    Returns:
        A :class:`TensorAttributeDataset` with one attribute, ``colour``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 2 <= n_groups <= len(COLOUR_GROUPS):
        raise ValueError(f"n_groups must be between 2 and {len(COLOUR_GROUPS)}, got {n_groups}")
    if not 0.0 <= p_majority <= 1.0:
        raise ValueError(f"p_majority must lie in [0, 1], got {p_majority}")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    train_classes = sorted({int(c) for c in train_classes})
    if not train_classes or any(c < 0 or c > 9 for c in train_classes) or len(train_classes) > 8:
        raise ValueError(
            f"train_classes must be 1 to 8 distinct digits in 0..9 (leaving >= 2 for the test "
            f"split), got {train_classes}"
        )

    images, targets = _load_digits()
    keep = np.isin(targets, train_classes)
    if split == "test":
        keep = ~keep
    images = np.repeat(images[keep], copies, axis=0)
    targets = np.repeat(targets[keep], copies, axis=0)

    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    n = len(targets)
    if split == "train":
        minority = rng.integers(1, n_groups, size=n)
        groups = np.where(rng.random(n) < p_majority, 0, minority)
    else:
        groups = rng.integers(0, n_groups, size=n)
    x = render_digits(
        images, groups, image_size=image_size, max_shift=max_shift, noise=noise, rng=rng
    )
    return TensorAttributeDataset(
        x,
        labels=targets,
        label_names=[str(d) for d in range(10)],
        attributes={"colour": groups.astype(np.int64)},
        attribute_value_names={"colour": [COLOUR_GROUPS[g][0] for g in range(n_groups)]},
        name=f"colored_digits/{split}",
    )
