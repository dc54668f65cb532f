r"""m-per-class batches whose classes show all their groups: cross-group positives in every batch.

Under plain m-per-class sampling a class's ``m`` samples are drawn from its images at random, so a
class with one minority image among ten shows it in ``m / 10`` of its picks, and a batch at 95:5
holds a handful of minority images. What teaches a metric to ignore the attribute is a *positive
pair across groups* (the same identity in both palettes): the metric loss then pulls the two
renderings together. :class:`ClassMixedBatchSampler` puts those pairs in every batch:

* **within a class**, each group present in the class gets
  :math:`q_{cg} = \min(n_{cg}, \lfloor m / G_c \rfloor)` of the class's ``m`` slots (at least one
  per group when ``m >= G_c``), :math:`G_c` the number of groups the class holds and
  :math:`n_{cg}` its samples in group :math:`g`; the remaining slots go to the class's other
  samples in proportion to what they have left. A group's samples are never repeated within a
  batch to fill a quota (a duplicate pair teaches nothing), so a class with one minority image
  shows it every time the class is picked;
* **across classes**, a share ``mixed_share`` (config: ``sampling.proportions: {mixed: a,
  pure: b}``) of each batch's ``K = batch_size // m`` classes is
  drawn from the *mixed* classes (those holding at least two groups), the rest from the others
  (``None``: classes drawn as :class:`~fairmetric.sampling.MPerClassBatchSampler` draws them,
  whatever their groups). Within each kind, classes are picked with the m-per-class weights
  ``max(0, n_c - m t_c) + 1e-3``.

Each (class, group) cell keeps its own shuffled stream (reshuffled when it runs out), so within a
cell samples are seen in turn. Where every class holds one group (a per-identity attribute),
nothing is mixed and the sampler is plain m-per-class batching; use ``batch_balanced`` for that
case. Batches are a pure function of ``(seed, epoch)``; ``set_epoch``, resumption and sharding
work as in :class:`~fairmetric.sampling.MPerClassBatchSampler`.

This is *not* SMOTE-like synthesis and changes no label: it only chooses which real samples share
a batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fairmetric.sampling.m_per_class import (
    _FLOOR,
    ShardedBatchSampler,
    _ClassStream,
    check_sampler_args,
)
from fairmetric.sampling.registry import SamplerContext, register_sampler

__all__ = ["ClassMixedBatchSampler", "mixed_share_from_proportions", "within_class_quotas"]


def within_class_quotas(cell_sizes: np.ndarray, m: int) -> np.ndarray:
    r"""Slots per group for one class: :math:`\min(n_g, \lfloor m / G \rfloor)` for each of the
    :math:`G` groups present, the rest filled group by group in proportion to the samples each has
    beyond its quota (largest remainders; never beyond a group's size while the class has ``m``
    samples; a class with fewer than ``m`` samples repeats its largest group's).

    Args:
        cell_sizes: ``(G,)`` samples of the class in each group.
        m: slots of the class in a batch.

    Returns:
        ``(G,)`` integer quotas summing to ``m``.
    """
    sizes = np.asarray(cell_sizes, dtype=np.int64)
    present = sizes > 0
    q = np.zeros_like(sizes)
    q[present] = np.minimum(sizes[present], m // max(1, int(present.sum())))
    rest = m - int(q.sum())
    if rest > 0:
        spare = sizes - q
        if spare.sum() >= rest:
            share = rest * spare / spare.sum()
            add = np.floor(share).astype(np.int64)
            left = rest - int(add.sum())
            order = np.argsort(-(share - add), kind="stable")
            for g in order:
                if left == 0:
                    break
                if add[g] < spare[g]:
                    add[g] += 1
                    left -= 1
            q += add
        else:  # fewer than m samples in the class: all of them, then repeats of the largest group
            q += spare
            q[int(np.argmax(sizes))] += rest - int(spare.sum())
    return q


def mixed_share_from_proportions(proportions: dict[str, float] | None) -> float | None:
    """``sampling.proportions`` of ``class_mixed``: shares of the two *kinds of class* in a batch,
    ``{mixed: a, pure: b}`` (either may be omitted, then the other's share is 1); ``null``: no
    preference. Returns the mixed share ``a / (a + b)`` or ``None``."""
    if proportions is None:
        return None
    unknown = sorted(set(map(str, proportions)) - {"mixed", "pure"})
    if unknown:
        raise ValueError(
            f"sampling.proportions of class_mixed names the kinds of class, mixed and pure "
            f"(e.g. {{mixed: 0.5, pure: 0.5}}), got {unknown}"
        )
    a = float(proportions.get("mixed", 0.0))
    b = float(proportions.get("pure", 0.0))
    if a < 0 or b < 0 or a + b <= 0 or not np.isfinite(a + b):
        raise ValueError(
            f"sampling.proportions of class_mixed must be >= 0 and not all 0, got {proportions}"
        )
    return a / (a + b)


@register_sampler("class_mixed")
class ClassMixedBatchSampler(ShardedBatchSampler):
    """m-per-class batches in which each class shows every group it has (see the module docstring).

    Args:
        labels: class label per dataset index.
        groups: group value per dataset index (e.g. a palette attribute column).
        m: samples per class in a batch.
        batch_size: samples per batch; a multiple of ``m``.
        mixed_share: share of a batch's classes taken from mixed classes, in ``[0, 1]``, or
            ``None`` (classes drawn regardless of their groups). Rounded to whole classes; capped
            by the number of mixed (and pure) classes available.
        num_batches: global batches per epoch; default ``max(1, len(labels) // batch_size)``.
        seed, rank, world_size: as :class:`~fairmetric.sampling.MPerClassBatchSampler`.

    Attributes:
        cell_sizes: ``(classes, groups)`` sample counts.
        mixed: ``(classes,)`` whether a class holds at least two groups.
        mixed_per_batch: mixed classes per batch (``None``: not controlled).
    """

    bench_methods = {
        "class_mixed": ["data.group_attribute={attr}", "sampling.name=class_mixed"],
    }

    def __init__(
        self,
        labels: Sequence[Any] | np.ndarray,
        groups: Sequence[Any] | np.ndarray,
        *,
        m: int,
        batch_size: int,
        mixed_share: float | None = None,
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        lab, grp = np.asarray(labels), np.asarray(groups)
        if lab.ndim != 1 or lab.size == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {lab.shape}")
        if grp.shape != lab.shape:
            raise ValueError(
                f"groups must have one value per label ({lab.shape[0]}), got shape {grp.shape}"
            )
        _, codes = np.unique(lab, return_inverse=True)
        _, gcodes = np.unique(grp, return_inverse=True)
        n_classes, n_groups = int(codes.max()) + 1, int(gcodes.max()) + 1
        k = check_sampler_args(n_classes, m, batch_size, num_batches, seed, rank, world_size)
        self.m, self.batch_size, self.classes_per_batch = int(m), int(batch_size), k
        self.cell_sizes = np.zeros((n_classes, n_groups), dtype=np.int64)
        np.add.at(self.cell_sizes, (codes, gcodes), 1)
        self.mixed = (self.cell_sizes > 0).sum(axis=1) >= 2
        self._cells = [
            [np.flatnonzero((codes == c) & (gcodes == g)) for g in range(n_groups)]
            for c in range(n_classes)
        ]
        self._quotas = np.stack([within_class_quotas(s, self.m) for s in self.cell_sizes])
        if mixed_share is None:
            self.mixed_per_batch = None
        else:
            share = float(mixed_share)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"mixed_share must lie in [0, 1] or be None, got {mixed_share!r}")
            want = int(round(share * k))
            n_mixed, n_pure = int(self.mixed.sum()), int((~self.mixed).sum())
            self.mixed_per_batch = min(max(want, k - n_pure), n_mixed)
        self._init_sharding(
            num_batches if num_batches is not None else max(1, len(lab) // batch_size),
            seed,
            rank,
            world_size,
        )

    @classmethod
    def needs_groups(cls, config: Any) -> bool:
        return True

    @classmethod
    def from_config(cls, config: Any, context: SamplerContext) -> ClassMixedBatchSampler:
        """``sampling.name=class_mixed``; ``sampling.proportions`` ``{mixed: a, pure: b}`` sets
        the share of mixed classes in each batch (null: no preference)."""
        return cls(
            context.labels,
            context.groups,
            mixed_share=mixed_share_from_proportions(config.proportions),
            **context.common(),
        )

    def _pick(self, candidates: np.ndarray, count: int, sizes, picks, rng) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        w = np.maximum(sizes[candidates] - self.m * picks[candidates], 0) + _FLOOR
        return rng.choice(candidates, size=count, replace=False, p=w / w.sum())

    def batches(self, rng: np.random.Generator, num_batches: int) -> Iterator[np.ndarray]:
        """The global batch sequence from ``rng`` (``num_batches`` of them)."""
        streams = [
            [_ClassStream(cell, rng) if len(cell) else None for cell in row] for row in self._cells
        ]
        sizes = self.cell_sizes.sum(axis=1)
        picks = np.zeros(len(sizes), dtype=np.int64)
        all_classes = np.arange(len(sizes))
        mixed, pure = all_classes[self.mixed], all_classes[~self.mixed]
        k = self.classes_per_batch
        for _ in range(num_batches):
            if self.mixed_per_batch is None:
                classes = self._pick(all_classes, k, sizes, picks, rng)
            else:
                classes = np.concatenate(
                    [
                        self._pick(mixed, self.mixed_per_batch, sizes, picks, rng),
                        self._pick(pure, k - self.mixed_per_batch, sizes, picks, rng),
                    ]
                )
            picks[classes] += 1
            parts = []
            for c in classes:
                for g, q in enumerate(self._quotas[c]):
                    if q:
                        parts.append(streams[c][g].take(int(q)))
            yield np.concatenate(parts)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 2])
        yield from self._shard(self.batches(rng, self._global_stop()))
