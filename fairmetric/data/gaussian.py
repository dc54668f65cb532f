"""Gaussian group mixtures: a vector-valued biased benchmark, fast enough for unit tests.

Each class is a Gaussian cluster in ``dim`` dimensions and belongs to one group (like an identity
belongs to one demographic group). Group geometry differs the way embeddings of an under-represented
group tend to: the class centres of group ``g`` are pulled towards the group's common centre by
``group_shrink[g]`` (different identities of the group lie closer together) and their clusters are
wider by ``group_noise[g]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairmetric.data.dataset import TensorAttributeDataset

__all__ = ["make_gaussian_groups"]


def make_gaussian_groups(
    *,
    n_classes: int = 20,
    samples_per_class: int = 20,
    dim: int = 16,
    group_probs: Sequence[float] = (0.8, 0.2),
    group_shrink: Sequence[float] = (1.0, 0.4),
    group_noise: Sequence[float] = (0.3, 0.45),
    nuisance_dim: int = 16,
    nuisance_scale: float = 0.5,
    class_offset: int = 0,
    seed: int = 0,
) -> TensorAttributeDataset:
    """Sample a Gaussian group-mixture dataset.

    Class ``c`` has a centre ``m_g + s_g u_c`` with ``u_c`` a random unit direction,
    ``m_g`` the centre of its group ``g`` and ``s_g = group_shrink[g]``; samples are the centre plus
    isotropic noise of scale ``group_noise[g] / sqrt(dim)`` per coordinate, followed by
    ``nuisance_dim`` coordinates of class-independent noise.

    Args:
        n_classes: number of classes.
        samples_per_class: samples drawn per class.
        dim: dimension of the vectors.
        group_probs: probability of a class belonging to each group (at least one class per group
            whenever ``n_classes >= len(group_probs)``).
        group_shrink: per group, how far class centres spread around the group centre (1 = fully).
        group_noise: per group, the within-class spread.
        nuisance_dim: extra coordinates of pure noise (std ``nuisance_scale``) appended to each
            vector: they carry no class information, so a metric must learn to ignore them.
        nuisance_scale: standard deviation of the nuisance coordinates.
        class_offset: first label (use different offsets to build class-disjoint splits).
        seed: random seed.

    Returns:
        A :class:`TensorAttributeDataset` of ``(dim + nuisance_dim,)`` vectors with one attribute, ``group``.
    """
    n_groups = len(group_probs)
    if n_groups < 1 or len(group_shrink) != n_groups or len(group_noise) != n_groups:
        raise ValueError(
            "group_probs, group_shrink and group_noise must have one entry per group, got lengths "
            f"{len(group_probs)}, {len(group_shrink)}, {len(group_noise)}"
        )
    probs = np.asarray(group_probs, dtype=np.float64)
    if np.any(probs < 0) or probs.sum() <= 0:
        raise ValueError(f"group_probs must be non-negative with a positive sum, got {group_probs}")
    if n_classes < 1 or samples_per_class < 1 or dim < 1:
        raise ValueError("n_classes, samples_per_class and dim must all be >= 1")
    if nuisance_dim < 0 or nuisance_scale < 0:
        raise ValueError("nuisance_dim and nuisance_scale must be >= 0")
    probs = probs / probs.sum()
    rng = np.random.default_rng(seed)

    # group per class: guarantee one class per group when possible, the rest drawn by probability
    class_group = rng.choice(n_groups, size=n_classes, p=probs)
    if n_classes >= n_groups:
        class_group[rng.permutation(n_classes)[:n_groups]] = np.arange(n_groups)
    group_centres = rng.standard_normal((n_groups, dim)) * 0.5
    directions = rng.standard_normal((n_classes, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    shrink = np.asarray(group_shrink, dtype=np.float64)[class_group][:, None]
    centres = group_centres[class_group] + shrink * directions
    noise = np.asarray(group_noise, dtype=np.float64)[class_group][:, None] / np.sqrt(dim)

    labels = np.repeat(np.arange(n_classes), samples_per_class)
    x = centres[labels] + noise[labels] * rng.standard_normal((len(labels), dim))
    if nuisance_dim:
        x = np.hstack([x, nuisance_scale * rng.standard_normal((len(labels), nuisance_dim))])
    return TensorAttributeDataset(
        x.astype(np.float32),
        labels=labels + class_offset,
        attributes={"group": class_group[labels].astype(np.int64)},
        attribute_value_names={"group": [f"g{g}" for g in range(n_groups)]},
        name="gaussian_groups",
    )
