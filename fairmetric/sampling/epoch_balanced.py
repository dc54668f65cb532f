"""Epoch-level group balancing: each epoch over- or under-samples the groups to a target
distribution, then builds m-per-class batches from that pool (see :mod:`fairmetric.sampling.balanced`
for what both balanced samplers share)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fairmetric.sampling.groups import _check_common, _shares
from fairmetric.sampling.m_per_class import ShardedBatchSampler, check_epoch, m_per_class_batches
from fairmetric.sampling.registry import SamplerContext, register_sampler

__all__ = ["EpochBalancedBatchSampler"]


@register_sampler("epoch_balanced")
class EpochBalancedBatchSampler(ShardedBatchSampler):
    r"""m-per-class batches from an epoch re-sampled so that groups reach a target distribution.

    Each epoch draws a multiset of dataset indices (the *pool*, :meth:`epoch_indices`) in which
    group :math:`g` appears exactly :math:`c_g` times (:attr:`group_counts`), then batches it like
    :class:`~fairmetric.sampling.MPerClassBatchSampler`: ``batch_size // m`` distinct classes per
    batch, ``m`` samples each, classes picked in proportion to their unused pool entries.

    With target shares :math:`p_g` (normalised) and group sizes :math:`n_g`:

    * ``mode="over"``: total :math:`T = \max_g n_g / p_g`, :math:`c_g = \mathrm{round}(T p_g)
      \ge n_g`. Every sample of group :math:`g` appears :math:`\lfloor c_g / n_g \rfloor` times,
      plus a without-replacement subset of :math:`c_g \bmod n_g` of them (lower variance than
      i.i.d. draws with replacement; every sample is in the pool).
    * ``mode="under"``: :math:`T = \min_g n_g / p_g`; :math:`c_g` samples of each group drawn
      without replacement (the pool never repeats an index).

    The without-replacement subsets are *stratified by class* (systematic sampling over the
    group's samples laid out class by class in a random class order), so each class keeps its
    share of the group up to one sample, and every sample of the group has the same inclusion
    probability. Both the pool and the batches are redrawn every epoch from ``(seed, epoch)``.

    Within a class the pool's copies of an index are spread out (copy ``j`` of ``k`` sorted by
    ``(j + U) / k``), so a class's stream mixes its groups evenly over the epoch and a batch holds
    an index at most once while its class has at least ``m`` distinct indices in the pool (with
    fewer, the class is drawn with replacement, as in ``MPerClassBatchSampler``). The groups'
    frequencies in the batches of one epoch therefore match the target up to the batches'
    rounding (``num_batches * batch_size`` need not equal the pool size, and classes are picked at
    random), well within binomial sampling error; ``tests/sampling/test_balanced.py`` checks both
    the exact pool counts and the batch frequencies.

    Call :meth:`set_epoch` every epoch, or ``set_epoch(epoch, start_batch=steps_done *
    world_size)`` to resume mid-epoch (see :class:`~fairmetric.sampling.MPerClassBatchSampler`).

    Args:
        labels: class label per dataset index (any hashable values).
        groups: group value per dataset index (e.g. a colour attribute column).
        m: samples per class in a batch.
        batch_size: samples per batch; a multiple of ``m``.
        target: group shares: ``None`` for uniform over the groups present, a dict
            ``{group value: share}`` naming every group, or a sequence of shares aligned with the
            sorted unique group values. Positive; normalised to sum to 1.
        mode: ``"over"`` or ``"under"``.
        num_batches: global batches per epoch; default ``max(1, pool size // batch_size)``.
        seed: seed shared by all ranks.
        rank: this process's rank.
        world_size: number of processes.

    Attributes:
        group_values: the sorted unique group values (the order of the arrays below).
        target: the normalised target shares.
        group_sizes: samples per group in the dataset, :math:`n_g`.
        group_counts: pool entries per group in every epoch, :math:`c_g` (for logging).
        pool_size: ``group_counts.sum()``.

    Raises:
        ValueError: bad labels/groups, ``m``, ``batch_size``, ``num_batches``, ``seed``,
            ``rank`` or ``world_size`` (as ``MPerClassBatchSampler``); an unknown ``mode``; a
            target that names an unknown group, misses a group, has the wrong length, or has
            zero, negative or non-finite shares; under-sampling so deep that a group keeps no
            sample or fewer than ``batch_size // m`` classes are sure to keep one.
    """

    def __init__(
        self,
        labels: Sequence[Any] | np.ndarray,
        groups: Sequence[Any] | np.ndarray,
        *,
        m: int,
        batch_size: int,
        target: Mapping[Any, float] | Sequence[float] | np.ndarray | None = None,
        mode: str = "over",
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        label_codes, group_codes, group_values, k = _check_common(
            labels, groups, m, batch_size, num_batches, seed, rank, world_size
        )
        if mode not in ("over", "under"):
            raise ValueError(f"mode must be 'over' or 'under', got {mode!r}")
        self.group_values: list[Any] = group_values.tolist()
        self.target = _shares(target, group_values, "target")
        self.group_sizes = np.bincount(group_codes, minlength=len(group_values))
        ratio = self.group_sizes / self.target
        total = ratio.max() if mode == "over" else ratio.min()
        counts = np.rint(total * self.target).astype(np.int64)
        if mode == "over":
            counts = np.maximum(counts, self.group_sizes)
        else:
            counts = np.minimum(counts, self.group_sizes)
        if np.any(counts < 1):
            g = int(np.argmin(counts))
            shares = dict(zip(self.group_values, self.target.round(4).tolist()))
            raise ValueError(
                f"under-sampling to target {shares} keeps no sample of group "
                f"{self.group_values[g]!r} (its share times the smallest group's size rounds to "
                "0); raise its share or use mode='over'"
            )
        self.group_counts = counts
        self.pool_size = int(counts.sum())
        self.mode = mode
        self.m = int(m)
        self.batch_size = int(batch_size)
        self.classes_per_batch = k
        n_classes = int(label_codes.max()) + 1

        # per group: its indices laid out class by class (for the stratified subsets)
        self._group_indices = []
        self._group_class_sizes = []
        for g in range(len(group_values)):
            idx = np.flatnonzero(group_codes == g)
            idx = idx[np.argsort(label_codes[idx], kind="stable")]
            self._group_indices.append(idx)
            self._group_class_sizes.append(np.bincount(label_codes[idx], minlength=n_classes))
        self._labels = label_codes
        self._n_classes = n_classes

        # classes sure to keep a pool entry every epoch: k classes are needed per batch
        kept = np.zeros(n_classes, dtype=bool)
        for g in range(len(group_values)):
            whole, rest = divmod(int(counts[g]), int(self.group_sizes[g]))
            sizes = self._group_class_sizes[g]
            if whole:
                kept |= sizes > 0
            elif rest:
                kept |= sizes >= self.group_sizes[g] / rest
        if kept.sum() < k:
            raise ValueError(
                f"under-sampling to {self.pool_size} samples may leave fewer than the {k} "
                f"classes a batch needs (only {int(kept.sum())} classes are sure to keep a "
                f"sample); use mode='over', a smaller batch_size or a larger m"
            )

        self._init_sharding(
            num_batches if num_batches is not None else max(1, self.pool_size // batch_size),
            seed,
            rank,
            world_size,
        )

    bench_methods = {
        "epoch_balanced": ["data.group_attribute={attr}", "sampling.name=epoch_balanced"]
    }

    @classmethod
    def needs_groups(cls, config: Any) -> bool:
        return True

    @classmethod
    def from_config(cls, config: Any, context: SamplerContext) -> EpochBalancedBatchSampler:
        """``sampling.name=epoch_balanced``: groups re-sampled to ``sampling.proportions``
        (uniform when null) with ``sampling.mode``."""
        return cls(
            context.labels,
            context.groups,
            target=context.proportions(config.proportions, "sampling.proportions"),
            mode=config.mode,
            **context.common(),
        )

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The re-sampled multiset of dataset indices of ``epoch``, sorted."""
        epoch = check_epoch(epoch)
        return np.sort(self._pool(np.random.default_rng([self.seed, epoch, 0])))

    def _pool(self, rng: np.random.Generator) -> np.ndarray:
        parts = []
        for g, idx in enumerate(self._group_indices):
            whole, rest = divmod(int(self.group_counts[g]), len(idx))
            parts.extend([idx] * whole)
            if rest:
                parts.append(self._stratified(g, rest, rng))
        return np.concatenate(parts)

    def _stratified(self, g: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` of group ``g``'s samples without replacement, each class its share ± 1."""
        idx = self._group_indices[g]
        cls = self._labels[idx]
        class_rank = rng.permutation(self._n_classes)
        laid_out = idx[np.lexsort((rng.random(len(idx)), class_rank[cls]))]
        step = len(idx) / count
        pos = np.floor(rng.random() * step + np.arange(count) * step).astype(np.int64)
        return laid_out[np.minimum(pos, len(idx) - 1)]

    def __iter__(self) -> Iterator[list[int]]:
        pool = self._pool(np.random.default_rng([self.seed, self.epoch, 0]))
        order = np.argsort(self._labels[pool], kind="stable")
        sizes = np.bincount(self._labels[pool], minlength=self._n_classes)
        pools = np.split(pool[order], np.cumsum(sizes)[:-1])
        batches = m_per_class_batches(
            pools,
            m=self.m,
            classes_per_batch=self.classes_per_batch,
            num_batches=self._global_stop(),
            rng=np.random.default_rng([self.seed, self.epoch, 1]),
        )
        yield from self._shard(batches)
