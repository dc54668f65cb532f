"""Training-time augmentation of image datasets: timm's random resized crop and horizontal flip.

:class:`AugmentedDataset` wraps a training split whose inputs are image tensors ``(C, H, W)``
and, on every load, crops a random region and resizes it back to ``H × W`` (the algorithm of
timm's ``RandomResizedCropAndInterpolation``, the crop of its ``transforms_imagenet_train``:
area share drawn from ``scale``, aspect ratio log-uniform in ``ratio``, ten tries, then a centre
crop), then flips it horizontally with probability ``flip``. No colour jitter and no
normalisation are added, so augmented training inputs stay on the scale of the evaluation inputs
(evaluation splits are never wrapped).

The random draws come from a generator seeded by ``(seed, epoch, sample index)``, not from a
global random state: the same seed gives the same augmented batches whatever the number of
DataLoader workers or processes, a sample is cropped differently in each epoch
(:meth:`AugmentedDataset.set_epoch`, which the trainer calls), and a run resumed from a
checkpoint — even mid-epoch — sees exactly the crops of a run trained straight through. The epoch
lives in a shared-memory tensor, so persistent DataLoader workers see it change.

The crop is taken from the image as the dataset loads it (resized to ``data.image_size``) and
resized back to that size; train at a larger ``data.image_size`` to crop from more pixels.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fairmetric.data.dataset import AttributeDataset

__all__ = ["AugmentedDataset", "crop_params"]


def crop_params(
    rng: random.Random,
    width: int,
    height: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a random resized crop (timm's
    ``RandomResizedCropAndInterpolation.get_params``, drawing from ``rng``)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if w <= width and h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height  # fallback: a centre crop
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class AugmentedDataset(AttributeDataset):
    """A training split whose image tensors are randomly cropped and flipped on every load.

    Args:
        dataset: the split; ``load_input`` must return ``(C, H, W)`` tensors.
        seed: the run's seed.
        scale: range of the crop's share of the image area.
        ratio: range of the crop's aspect ratio (width / height).
        flip: probability of a horizontal flip.

    Raises:
        ValueError: a dataset whose inputs are not images, or a bad ``scale``/``ratio``/``flip``.
    """

    def __init__(
        self,
        dataset: AttributeDataset,
        *,
        seed: int = 0,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
    ) -> None:
        shape = tuple(getattr(dataset, "input_shape", ()))
        if len(shape) != 3:
            raise ValueError(
                f"data.augment applies to image datasets; {dataset.name} has inputs of shape "
                f"{shape or 'unknown'}: set data.augment=false"
            )
        scale, ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"data.augment_scale must be [low, high] in (0, 1], got {scale}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(
                f"the crop ratio must be [low, high] with 0 < low <= high, got {ratio}"
            )
        if not 0 <= flip <= 1:
            raise ValueError(f"the flip probability must lie in [0, 1], got {flip}")
        self.dataset = dataset
        self.seed, self.scale, self.ratio, self.flip = int(seed), scale, ratio, float(flip)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.labels = dataset.labels
        self.label_names = dataset.label_names
        self.attributes = dataset.attributes
        self.attribute_names = dataset.attribute_names
        self.attribute_value_names = dataset.attribute_value_names
        self.name = dataset.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.dataset.input_shape)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops of epoch ``epoch`` from now on (also in persistent workers)."""
        self._epoch[0] = int(epoch)

    def rng(self, index: int) -> random.Random:
        """The generator of sample ``index``'s augmentation in the current epoch."""
        key = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(2)
        return random.Random(int(key[0]) << 32 | int(key[1]))

    def load_input(self, index: int) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        x = self.dataset.load_input(index)
        rng = self.rng(index)
        _, height, width = x.shape
        top, left, h, w = crop_params(rng, width, height, self.scale, self.ratio)
        x = F.resized_crop(
            x, top, left, h, w, [height, width], InterpolationMode.BILINEAR, antialias=True
        )
        if rng.random() < self.flip:
            x = F.hflip(x)
        return x.contiguous()

    def subset(self, indices: Sequence[int] | np.ndarray) -> AttributeDataset:
        raise NotImplementedError(
            "subset the dataset before augmenting it: AugmentedDataset(dataset.subset(...))"
        )

    def __getattr__(self, item: str) -> Any:
        if item in ("dataset", "_epoch"):
            raise AttributeError(item)
        return getattr(self.dataset, item)
