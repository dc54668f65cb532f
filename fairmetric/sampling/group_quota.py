"""Batch-level group quotas: every batch holds exactly ``quotas[g]`` samples of group ``g`` and
exactly ``m`` samples of each of its classes (see :mod:`fairmetric.sampling.balanced` for what both
balanced samplers share, and :mod:`fairmetric.sampling.quotas` for the feasibility solver)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fairmetric.sampling.groups import _check_common, _largest_remainder, _shares
from fairmetric.sampling.m_per_class import (
    _FLOOR,
    ShardedBatchSampler,
    _ClassStream,
)
from fairmetric.sampling.quotas import (
    _capped_split,
    _closest_feasible_whole_quotas,
    _complete_flow,
    _quietly_feasible,
    _QuotaFeasibility,
)
from fairmetric.sampling.registry import SamplerContext, register_sampler

__all__ = ["GroupQuotaBatchSampler"]


@register_sampler("batch_balanced")
class GroupQuotaBatchSampler(ShardedBatchSampler):
    r"""Batches with exactly ``m`` samples per class *and* exactly ``quotas[g]`` samples per group.

    Every batch holds ``K = batch_size // m`` distinct classes with ``m`` samples each, and
    ``quotas[g]`` samples of group ``g``, where ``quotas`` is ``batch_size * proportions``
    rounded by **largest remainder** (each quota is the floor or the ceiling of
    ``batch_size * p_g``; the units left after the floors go to the largest fractional parts,
    ties to the earlier group), so the quotas always sum to ``batch_size``.

    **Allocation.** A batch is K classes and an integer matrix ``x[c, g] >= 0`` with row sums
    ``m``, column sums ``quotas`` and ``x[c, g] = 0`` where class ``c`` has no sample of group
    ``g``. By Hall's theorem such a matrix exists iff every set ``S`` of groups is touched by at
    least ``ceil(quotas[S] / m)`` of the chosen classes. This covers both regimes:

    * groups vary within classes (coloured digits: every digit in every colour): any classes do,
      and a class's ``m`` samples are split across groups;
    * each class lies in one group (identities → ethnicity): a batch takes ``quotas[g] / m``
      whole classes of group ``g``, so every quota must be a multiple of ``m``;

    and any mixture. Feasibility depends only on how many chosen classes have each *support
    pattern* (set of groups with samples); ``__init__`` decides it exactly by a small search over
    those counts and raises if no K classes can hold the quotas. Each batch first draws K classes
    (weighted, without replacement); if their pattern mix is infeasible, the previous batch's
    feasible mix moves towards it by random feasible one-class exchanges, and the drawn classes
    are kept where their pattern has room, the rest drawn (weighted) within each pattern. When any
    K classes are feasible (e.g. every class has every group) this is just the weighted draw.
    ``x`` is then filled group by group (groups served by the fewest chosen classes first) in
    proportion to each cell's unseen samples, and completed exactly by augmenting paths (a
    max-flow on the K × G cells): first within the cells' unseen samples, then within their
    sizes, then beyond.

    **Cells.** Each (class, group) cell keeps a shuffled stream of its indices, reshuffled when it
    runs out (as ``MPerClassBatchSampler``'s classes). A cell with fewer samples than a batch asks
    of it is drawn **with replacement** (all its samples plus random repeats): such batches hold
    duplicate indices. The allocation only does this when the chosen classes' cells cannot meet
    the quotas within their sizes (class choice does not look at cell sizes).

    **Coverage.** Classes are picked with weight ``1e-3 + Σ_g unseen[c, g]`` and a group's quota
    is split across the chosen classes in proportion to ``1e-3 + unseen[c, g]``, where
    ``unseen`` counts the cell's samples not drawn yet this epoch. Measured fraction of distinct
    samples seen in one epoch of ``len(labels) // batch_size`` batches (mean over 20 epochs,
    ``tests/sampling/test_balanced.py`` checks lower bounds):

    * balanced, groups within classes (20 classes × 2 groups × 10 samples, ``m=4``,
      ``batch_size=16``, quotas 8:8): 0.99 (min 0.98); ``MPerClassBatchSampler`` on the same
      labels, with no group constraint: 0.998;
    * balanced, one group per class (16 classes of 20 in 2 groups, ``m=4``, ``batch_size=16``,
      quotas 8:8): 0.998 (min 0.99);
    * coloured-digits-like (5 classes of 360, colour 95:5 within every class, ``m=8``,
      ``batch_size=40``, quotas 20:20, 45 batches): the batches take only ``45 * 20 = 900``
      majority samples, so at most ``(900 + 90) / 1800 = 0.550`` of the data can be seen;
      reached: 0.550 in every epoch (every minority sample, no majority sample twice).

    Batches are a pure function of ``(seed, epoch)``; call :meth:`set_epoch` every epoch, or
    ``set_epoch(epoch, start_batch=steps_done * world_size)`` to resume mid-epoch. For
    distributed training rank ``r`` takes batches ``r, r + world_size, ...`` of the common
    sequence, ``ceil(num_batches / world_size)`` each (after the first ``start_batch``).

    Args:
        labels: class label per dataset index (any hashable values).
        groups: group value per dataset index (e.g. an attribute column).
        m: samples per class in a batch.
        batch_size: samples per batch; a multiple of ``m``.
        proportions: group shares in every batch: ``None`` for uniform over the groups present,
            a dict ``{group value: share}`` naming every group, or a sequence of shares aligned
            with the sorted unique group values. Positive; normalised.
        num_batches: global batches per epoch; default ``max(1, len(labels) // batch_size)``.
        seed: seed shared by all ranks.
        rank: this process's rank.
        world_size: number of processes.

    Attributes:
        group_values: the sorted unique group values (the order of ``quotas``).
        proportions: the normalised shares.
        quotas: samples of each group in every batch (sums to ``batch_size``).
        cell_sizes: ``(classes, groups)`` sample counts (classes in sorted label order).

    Raises:
        ValueError: the checks of ``MPerClassBatchSampler`` (including more classes per batch
            than there are classes); bad proportions (unknown or missing group, wrong length,
            zero or negative share); a quota that rounds to 0; in the one-group-per-class regime
            a quota that is not a multiple of ``m``; and any quotas that no set of K classes can
            hold. The message says what is impossible and suggests proportions or an ``m`` that
            work when it finds some. Also more than 16 groups, or a feasibility search that
            exceeds 200 000 states (only conceivable with many groups and support patterns).
    """

    def __init__(
        self,
        labels: Sequence[Any] | np.ndarray,
        groups: Sequence[Any] | np.ndarray,
        *,
        m: int,
        batch_size: int,
        proportions: Mapping[Any, float] | Sequence[float] | np.ndarray | None = None,
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        label_codes, group_codes, group_values, k = _check_common(
            labels, groups, m, batch_size, num_batches, seed, rank, world_size
        )
        self.group_values: list[Any] = group_values.tolist()
        self.proportions = _shares(proportions, group_values, "proportions")
        quotas = _largest_remainder(batch_size, self.proportions)
        if np.any(quotas == 0):
            zero = [self.group_values[g] for g in np.flatnonzero(quotas == 0)]
            need = math.ceil(1 / self.proportions.min() - 1e-9)
            raise ValueError(
                f"batch_size={batch_size} × proportions {self.proportions.round(4).tolist()} "
                f"gives group(s) {zero} a quota of 0 samples per batch; raise their share or "
                f"batch_size (batch_size >= {need} gives every group at least one sample)"
            )
        self.quotas = quotas
        self.m = int(m)
        self.batch_size = int(batch_size)
        self.classes_per_batch = k
        n_classes, n_groups = int(label_codes.max()) + 1, len(group_values)
        self.cell_sizes = np.zeros((n_classes, n_groups), dtype=np.int64)
        np.add.at(self.cell_sizes, (label_codes, group_codes), 1)
        order = np.lexsort((group_codes, label_codes))
        bounds = np.cumsum(self.cell_sizes.reshape(-1))[:-1]
        self._cells = np.split(order, bounds)  # cell (c, g) at c * G + g

        support = self.cell_sizes > 0
        self._feas = _QuotaFeasibility(support, quotas, m, k)
        witness = self._feas.solve()
        if witness is None:
            raise ValueError(self._infeasible_message(support))
        self._witness = witness
        self._classes_of_pattern = [
            np.flatnonzero(self._feas.pattern_of_class == p) for p in range(self._feas.n_patterns)
        ]

        self._init_sharding(
            num_batches if num_batches is not None else max(1, len(label_codes) // batch_size),
            seed,
            rank,
            world_size,
        )

    # -- plug-in declaration (the sampler registry and the bench) --------------------------

    bench_methods = {
        "batch_balanced": ["data.group_attribute={attr}", "sampling.name=batch_balanced"]
    }

    @classmethod
    def needs_groups(cls, config: Any) -> bool:
        return True

    @classmethod
    def from_config(cls, config: Any, context: SamplerContext) -> GroupQuotaBatchSampler:
        """``sampling.name=batch_balanced``: every batch at ``sampling.proportions`` (uniform
        when null)."""
        return cls(
            context.labels,
            context.groups,
            proportions=context.proportions(config.proportions, "sampling.proportions"),
            **context.common(),
        )

    # -- errors --------------------------------------------------------------------------------

    def _infeasible_message(self, support: np.ndarray) -> str:
        m, k, q = self.m, self.classes_per_batch, self.quotas
        names = self.group_values
        quota_text = dict(zip(names, q.tolist()))
        head = f"quotas {quota_text} (batch_size={self.batch_size}, m={m}, {k} classes per batch)"
        pure = bool(np.all(support.sum(axis=1) == 1))
        if pure and np.any(q % m):
            why = (
                f"every class lies in a single group, so a batch holds whole classes of m={m} "
                f"samples and every quota must be a multiple of m, but {head} are not"
            )
        else:
            why = f"no set of {k} classes can hold {head}"
            feas = self._feas
            for s in range(1, 1 << len(names)):
                touching = int(feas.class_counts @ feas.covers[:, s])
                if touching < feas.need[s]:
                    members = [names[g] for g in range(len(names)) if s >> g & 1]
                    why = (
                        f"{head} are impossible: group(s) {members} need {int(feas.quota_of[s])} "
                        f"samples per batch, i.e. at least {int(feas.need[s])} classes with "
                        f"samples in them at m={m}, but only {touching} classes have any"
                    )
                    break
        return f"{why}. {self._suggest(support)}"

    def _suggest(self, support: np.ndarray) -> str:
        m, k, p = self.m, self.classes_per_batch, self.proportions
        hints = []
        # the feasible quotas in whole classes (multiples of m) closest to the proportions
        q_whole = _closest_feasible_whole_quotas(support, p, m, k)
        if q_whole is not None:
            shares = {
                v: round(float(s), 4) for v, s in zip(self.group_values, q_whole / q_whole.sum())
            }
            hints.append(f"proportions={shares} (quotas {q_whole.tolist()})")
        # a smaller m with the same quotas
        for m2 in range(m - 1, 0, -1):
            if self.batch_size % m2 == 0 and self.batch_size // m2 <= len(support):
                if _quietly_feasible(support, self.quotas, m2, self.batch_size // m2):
                    hints.append(f"m={m2} with the same quotas")
                    break
        if not hints:
            return (
                "No nearby setting is feasible: lower batch_size or m, or give the groups with "
                "few classes smaller shares"
            )
        return "Feasible instead: " + "; or ".join(hints)

    # -- sampling ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches(np.random.default_rng([self.seed, self.epoch]))
        yield from self._shard(batches)

    def _batches(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        n_groups = self.cell_sizes.shape[1]
        streams: dict[int, _ClassStream] = {}
        unseen = self.cell_sizes.copy()  # samples of each cell not drawn yet this epoch
        weights = unseen.sum(axis=1) + _FLOOR
        counts = self._witness
        for _ in range(self._global_stop()):
            classes, counts = self._choose_classes(weights, counts, rng)
            x = self._allocate(classes, unseen[classes], rng)
            left = np.maximum(unseen[classes] - x, 0)
            unseen[classes] = left
            weights[classes] = left.sum(axis=1) + _FLOOR
            parts = []
            for c, row in zip(classes.tolist(), x.tolist()):
                for g, amount in enumerate(row):
                    if amount:
                        cell = c * n_groups + g
                        if cell not in streams:
                            streams[cell] = _ClassStream(self._cells[cell], rng)
                        parts.append(streams[cell].take(amount))
            yield np.concatenate(parts)

    def _choose_classes(
        self, weights: np.ndarray, counts: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """K distinct classes (weighted, without replacement) that can take the quotas.

        A plain weighted draw is kept when its mix of support patterns is feasible. Otherwise the
        previous batch's feasible mix ``counts`` walks towards the draw's mix by feasible
        exchanges, the drawn classes are kept where their pattern still has room, and each
        pattern is topped up by a weighted draw among its other classes.
        """
        k, feas = self.classes_per_batch, self._feas
        if k == len(weights):  # every class in every batch
            return rng.permutation(k), counts
        drawn = rng.choice(len(weights), size=k, replace=False, p=weights / weights.sum())
        if feas.any_set_works:
            return drawn, counts
        pattern = feas.pattern_of_class[drawn]
        target = np.bincount(pattern, minlength=feas.n_patterns)
        if feas.ok(target):
            return drawn, target
        counts = feas.walk(counts, target, rng)
        chosen = []
        for p in np.flatnonzero(counts):
            mine = drawn[pattern == p][: counts[p]]
            chosen.append(mine)
            short = int(counts[p]) - len(mine)
            if short:
                pool = np.setdiff1d(self._classes_of_pattern[p], mine, assume_unique=True)
                w = weights[pool]
                chosen.append(rng.choice(pool, size=short, replace=False, p=w / w.sum()))
        return np.concatenate(chosen), counts

    def _allocate(
        self, classes: np.ndarray, unseen: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """``x[row, g]``: row sums m, column sums quotas, zero outside the classes' groups."""
        sizes = self.cell_sizes[classes]
        support = sizes > 0
        m, q = self.m, self.quotas
        x = np.zeros(sizes.shape, dtype=np.int64)
        room = np.full(len(classes), m, dtype=np.int64)
        col = [0] * len(q)
        # scarce groups first: the ones whose quota leans on the fewest chosen classes
        order = np.argsort(-q / np.maximum(support.sum(axis=0), 1), kind="stable").tolist()
        weights = unseen + _FLOOR
        # unseen samples first, then within the cells' sizes, then with replacement
        for limit in (unseen, sizes, None):
            for g in order:
                want = int(q[g]) - col[g]
                if want:
                    cap = room if limit is None else np.minimum(room, limit[:, g] - x[:, g])
                    got = _capped_split(want, weights[:, g], np.where(support[:, g], cap, 0), rng)
                    x[:, g] += got
                    room -= got
                    col[g] += int(got.sum())
            if sum(col) < self.batch_size:  # the greedy split got stuck: augmenting paths
                short = np.asarray(col) < q
                if limit is None or (support & (x < limit))[:, short].any():
                    _complete_flow(x, support, limit, m, q)
                    room = m - x.sum(axis=1)
                    col = x.sum(axis=0).tolist()
            if sum(col) == self.batch_size:
                break
        return x
