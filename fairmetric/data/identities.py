r"""Synthetic identities: a many-identity benchmark whose subgroup gap is *learned* (no download).

Each identity is a procedurally drawn pattern: a random ``grid × grid`` field of logits, read
bilinearly and squashed by a sigmoid into a smooth blob figure. Every image of an identity shows
its pattern under random nuisances -- pose (rotation), scale, shift, stroke jitter (a fresh
perturbation of the logits, so strokes thicken, thin and break) and pixel noise -- so telling
identities apart is a metric-learning problem, and test identities are never seen in training.

The sensitive attribute ``palette`` is an appearance change that carries **exactly the same
identity information** as the majority rendering (``appearance``):

- ``"swap"`` (default): the minority palette is the majority one inverted and with its colour
  channels reversed, ``x' = 1 - x[::-1]`` before noise -- a bijective per-pixel map with the same
  contrast in every channel, and the same noise is added after it. Any gap a model shows between
  the palettes is therefore *learned* from the imbalance, not intrinsic: train on balanced data
  (``p_majority = 0.5``, the oracle) and most of it goes.
- ``"none"`` (the **null control**): the minority is rendered exactly like the majority; the
  attribute is a random label, so no method may show a gap.
- ``"low_contrast"`` (the **intrinsic-difficulty control**): the minority keeps the majority's
  background and a fifth of its contrast under the same noise, as coloured digits' dark group; it
  carries *less* identity information, and balanced training data leaves most of its gap.

``attribute_level``: ``"image"`` (each image drawn in a palette independently, like lighting) or
``"identity"`` (all images of an identity share it, the face case: skin tone belongs to the
person). ``p_majority`` is the imbalance knob of the training split; the test split is always
50:50. Counts are exact: ``round((1 - p_majority) · n)`` images (or identities) are minority.

``flatten=True`` returns vectors (``3 · image_size²``) for the ``mlp`` backbone, so a training run
takes seconds on a CPU; images at ``image_size = 32`` suit small CNNs such as timm's
``test_resnet``.
"""

from __future__ import annotations

import numpy as np
import torch

from fairmetric.data.dataset import TensorAttributeDataset

__all__ = ["APPEARANCES", "ATTRIBUTE_LEVELS", "PALETTES", "make_identities", "render_identities"]

#: the majority palette: (foreground RGB, background RGB)
_MAJORITY = ((0.95, 0.80, 0.60), (0.10, 0.15, 0.30))


def _minority_palette(appearance: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    fg, bg = (np.array(c, dtype=np.float64) for c in _MAJORITY)
    if appearance == "swap":  # inverted, channels reversed: same contrast, permuted
        return tuple(1.0 - fg[::-1]), tuple(1.0 - bg[::-1])
    if appearance == "none":
        return tuple(fg), tuple(bg)
    if appearance == "low_contrast":  # same background, a fifth of the contrast
        return tuple(bg + 0.2 * (fg - bg)), tuple(bg)
    raise ValueError(f"appearance must be one of {', '.join(APPEARANCES)}, got {appearance!r}")


#: appearance of the minority palette: ``swap`` (the benchmark), ``none`` (null control),
#: ``low_contrast`` (intrinsic-difficulty control)
APPEARANCES = ("swap", "none", "low_contrast")
#: whether the palette is drawn per image or per identity
ATTRIBUTE_LEVELS = ("image", "identity")
#: appearance → ``[(fg, bg) of the majority, (fg, bg) of the minority]``
PALETTES = {a: [_MAJORITY, _minority_palette(a)] for a in APPEARANCES}


def _bilinear(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample per-image grids ``field`` ``(N, G, G)`` at float positions ``(N, H, W)``; positions
    outside the grid read the nearest edge value (the grids are padded with background)."""
    n, g, _ = field.shape
    rows = np.clip(rows, 0.0, g - 1.0)
    cols = np.clip(cols, 0.0, g - 1.0)
    r0 = np.minimum(np.floor(rows).astype(np.int64), g - 2)
    c0 = np.minimum(np.floor(cols).astype(np.int64), g - 2)
    fr, fc = rows - r0, cols - c0
    idx = np.arange(n)[:, None, None]
    top = field[idx, r0, c0] * (1 - fc) + field[idx, r0, c0 + 1] * fc
    bottom = field[idx, r0 + 1, c0] * (1 - fc) + field[idx, r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def render_identities(
    patterns: np.ndarray,
    palettes: np.ndarray,
    *,
    image_size: int = 32,
    appearance: str = "swap",
    max_rotation: float = 20.0,
    scale_range: tuple[float, float] = (0.85, 1.15),
    max_shift: float = 0.08,
    jitter: float = 0.35,
    sharpness: float = 3.0,
    noise: float = 0.1,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Render one image per row of ``patterns`` as ``(N, 3, image_size, image_size)`` floats.

    Args:
        patterns: ``(N, G, G)`` identity logits (the row's identity pattern, repeated per image).
        palettes: ``(N,)`` 0 (majority) or 1 (minority) per image.
        image_size: side in pixels (>= 8).
        appearance: the minority palette, one of :data:`APPEARANCES`.
        max_rotation: pose, a rotation drawn uniformly in ``±max_rotation`` degrees.
        scale_range: the pattern's scale is drawn uniformly in this range.
        max_shift: shift drawn uniformly in ``±max_shift`` of the image side, per axis.
        jitter: standard deviation of the per-image perturbation of the pattern's logits.
        sharpness: slope of the sigmoid that turns logits into stroke intensity.
        noise: standard deviation of the Gaussian pixel noise, added after the palette and not
            clipped (so both palettes carry exactly the same information).
        rng: the random generator of every nuisance.
    """
    patterns = np.asarray(patterns, dtype=np.float64)
    palettes = np.asarray(palettes)
    if patterns.ndim != 3 or patterns.shape[1] != patterns.shape[2] or patterns.shape[1] < 2:
        raise ValueError(f"patterns must have shape (N, G, G) with G >= 2, got {patterns.shape}")
    n, g = patterns.shape[0], patterns.shape[1]
    if palettes.shape != (n,) or (n and not np.isin(palettes, (0, 1)).all()):
        raise ValueError(f"palettes must be {n} values of 0 (majority) or 1 (minority)")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    low, high = (float(s) for s in scale_range)
    if not 0 < low <= high:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
    for name, value in (
        ("max_rotation", max_rotation),
        ("max_shift", max_shift),
        ("jitter", jitter),
        ("sharpness", sharpness),
        ("noise", noise),
    ):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    size = int(image_size)
    # logits with a background border, then the per-image stroke jitter
    field = np.full((n, g + 2, g + 2), -3.0)
    field[:, 1:-1, 1:-1] = patterns + jitter * rng.standard_normal((n, g, g))
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))
    scale = rng.uniform(low, high, n)
    shift = rng.uniform(-max_shift, max_shift, (n, 2)) * 2.0  # in [-1, 1] image coordinates
    # output pixel centres in [-1, 1]; the pattern spans [-0.8, 0.8] at scale 1
    u = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(u, u, indexing="ij")
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    yy = y[None] - shift[:, 0, None, None]
    xx = x[None] - shift[:, 1, None, None]
    src_y = (cos * yy - sin * xx) / scale[:, None, None]
    src_x = (sin * yy + cos * xx) / scale[:, None, None]
    # [-0.8, 0.8] → grid positions 1 .. g (the border cells 0 and g + 1 are background)
    to_grid = (g - 1) / 1.6
    logits = _bilinear(field, (src_y + 0.8) * to_grid + 1.0, (src_x + 0.8) * to_grid + 1.0)
    strokes = 1.0 / (1.0 + np.exp(-sharpness * logits))
    if appearance not in PALETTES:
        raise ValueError(f"appearance must be one of {', '.join(APPEARANCES)}, got {appearance!r}")
    colours = np.array(PALETTES[appearance])  # (2 palettes, fg/bg, RGB)
    fg = colours[palettes, 0][:, :, None, None]  # (N, 3, 1, 1)
    bg = colours[palettes, 1][:, :, None, None]
    images = bg + strokes[:, None] * (fg - bg)
    if noise > 0:
        images = images + noise * rng.standard_normal(images.shape)
    return torch.from_numpy(images.astype(np.float32))


def _minority_mask(count: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(share · count)`` of ``count`` positions True, at random."""
    mask = np.zeros(count, dtype=bool)
    mask[rng.permutation(count)[: int(round(share * count))]] = True
    return mask


def make_identities(
    *,
    split: str = "train",
    n_train_identities: int = 200,
    n_test_identities: int = 100,
    images_per_identity: int = 10,
    p_majority: float = 0.95,
    attribute_level: str = "image",
    appearance: str = "swap",
    image_size: int = 32,
    flatten: bool = False,
    grid: int = 6,
    max_rotation: float = 20.0,
    scale_range: tuple[float, float] = (0.85, 1.15),
    max_shift: float = 0.08,
    jitter: float = 0.35,
    sharpness: float = 3.0,
    noise: float = 0.1,
    seed: int = 0,
) -> TensorAttributeDataset:
    """Build one split of the synthetic-identities benchmark (see the module docstring).

    Args:
        split: ``"train"`` (``p_majority`` majority palette) or ``"test"`` (50:50, identities
            disjoint from training).
        n_train_identities, n_test_identities: identities per split (labels ``0..n_train-1``
            for training, then the test identities).
        images_per_identity: images drawn per identity, in both splits.
        p_majority: share of majority-palette images (or identities) in the training split.
        attribute_level: ``"image"`` or ``"identity"`` (:data:`ATTRIBUTE_LEVELS`).
        appearance: ``"swap"``, ``"none"`` (null control) or ``"low_contrast"`` (intrinsic
            control), :data:`APPEARANCES`.
        image_size: side of the images.
        flatten: return ``(3 · image_size²,)`` vectors instead of images.
        grid: side of an identity's logit grid (more: finer patterns).
        max_rotation, scale_range, max_shift, jitter, sharpness, noise: the nuisances, see
            :func:`render_identities`.
        seed: draws the identities, palettes and nuisances (the split is mixed in; the patterns
            of the two splits come from separate streams, so they never coincide).

    Returns:
        A :class:`TensorAttributeDataset` with one attribute, ``palette``
        (``majority``/``minority``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if attribute_level not in ATTRIBUTE_LEVELS:
        raise ValueError(
            f"attribute_level must be one of {', '.join(ATTRIBUTE_LEVELS)}, got {attribute_level!r}"
        )
    if appearance not in APPEARANCES:
        raise ValueError(f"appearance must be one of {', '.join(APPEARANCES)}, got {appearance!r}")
    if not 0.0 <= float(p_majority) <= 1.0:
        raise ValueError(f"p_majority must lie in [0, 1], got {p_majority}")
    for name, value, least in (
        ("n_train_identities", n_train_identities, 2),
        ("n_test_identities", n_test_identities, 2),
        ("images_per_identity", images_per_identity, 2),
        ("grid", grid, 2),
    ):
        if int(value) != value or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value}")
    n_ids = int(n_train_identities if split == "train" else n_test_identities)
    per = int(images_per_identity)
    offset = 0 if split == "train" else int(n_train_identities)
    stream = 0 if split == "train" else 1
    patterns = np.random.default_rng([seed, stream, 0]).standard_normal((n_ids, grid, grid))
    rng = np.random.default_rng([seed, stream, 1])
    share = 1.0 - float(p_majority) if split == "train" else 0.5
    if attribute_level == "identity":
        palette = np.repeat(_minority_mask(n_ids, share, rng), per)
    else:
        palette = _minority_mask(n_ids * per, share, rng)
    labels = np.repeat(np.arange(n_ids), per)
    x = render_identities(
        patterns[labels],
        palette.astype(np.int64),
        image_size=image_size,
        appearance=appearance,
        max_rotation=max_rotation,
        scale_range=tuple(scale_range),
        max_shift=max_shift,
        jitter=jitter,
        sharpness=sharpness,
        noise=noise,
        rng=rng,
    )
    if flatten:
        x = x.reshape(len(x), -1)
    n_all = int(n_train_identities) + int(n_test_identities)
    return TensorAttributeDataset(
        x,
        labels=(labels + offset).astype(np.int64),
        label_names=[f"id{i}" for i in range(n_all)],
        attributes={"palette": palette.astype(np.int64)},
        attribute_value_names={"palette": ["majority", "minority"]},
        name=f"identities/{split}",
    )
