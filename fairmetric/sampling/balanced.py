"""Group-balanced batch samplers: epoch-level re-sampling and per-batch group quotas.

Both are m-per-class batch samplers (``DataLoader(dataset, batch_sampler=...)``) that also control
how often each sensitive group (e.g. a colour or an ethnicity) is seen:

* :class:`EpochBalancedBatchSampler` re-samples the *epoch*: each epoch it over-samples small groups
  (or under-samples large ones) until the groups reach a target distribution, then builds
  m-per-class batches from that pool. Batch compositions vary around the target.
* :class:`GroupQuotaBatchSampler` fixes the *batch*: every batch holds exactly ``quotas[g]``
  samples of group ``g`` and exactly ``m`` samples of each of its ``batch_size // m`` classes.

Like :class:`~fairmetric.sampling.MPerClassBatchSampler`, batches are a pure function of
``(seed, epoch)`` (no global random state), :meth:`set_epoch` selects the epoch, and with
``world_size > 1`` every rank computes the same global sequence and rank ``r`` takes batches
``r, r + world_size, ...`` (``ceil(num_batches / world_size)`` each, the sequence continued to pad).
``set_epoch(epoch, start_batch=k)`` resumes mid-epoch after ``k`` global batches (``steps_done *
world_size`` of the saving run; the resumed run's world size may differ), bit-identically;
``state_dict()`` / ``load_state_dict()`` save and restore ``(epoch, start_batch)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fairmetric.sampling.m_per_class import (
    _FLOOR,
    ShardedBatchSampler,
    _ClassStream,
    check_epoch,
    check_sampler_args,
    m_per_class_batches,
)

__all__ = ["EpochBalancedBatchSampler", "GroupQuotaBatchSampler"]

_MAX_GROUPS = 16
"""Feasibility checks enumerate subsets of groups: 2**G of them."""


# --------------------------------------------------------------------------------------------
# shared validation


def _codes(values: Sequence[Any] | np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to sample")
    uniq, codes = np.unique(arr, return_inverse=True)
    return uniq, codes.reshape(-1)


def _check_common(
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    m: int,
    batch_size: int,
    num_batches: int | None,
    seed: int,
    rank: int,
    world_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Label and group codes, group values and classes per batch; ValueError on bad arguments."""
    _, label_codes = _codes(labels, "labels")
    group_values, group_codes = _codes(groups, "groups")
    if len(group_codes) != len(label_codes):
        raise ValueError(
            f"groups has {len(group_codes)} entries but labels has {len(label_codes)}; give one "
            "group value per sample"
        )
    if len(group_values) > _MAX_GROUPS:
        raise ValueError(
            f"groups has {len(group_values)} distinct values; at most {_MAX_GROUPS} are supported "
            "(merge rare values into an 'other' group)"
        )
    n_classes = int(label_codes.max()) + 1
    k = check_sampler_args(n_classes, m, batch_size, num_batches, seed, rank, world_size)
    return label_codes, group_codes, group_values, k


def _shares(spec: Any, values: np.ndarray, name: str) -> np.ndarray:
    """Normalised positive shares aligned with ``values`` (sorted unique group values).

    ``spec``: ``None`` (uniform), ``{group value: share}`` naming every group, or a sequence of
    shares in the order of the sorted group values.
    """
    present = values.tolist()
    if spec is None:
        return np.full(len(present), 1.0 / len(present))
    if isinstance(spec, Mapping):
        lookup = {v: i for i, v in enumerate(present)}
        unknown = [k for k in spec if k not in lookup]
        if unknown:
            raise ValueError(
                f"{name} names group(s) {unknown} with no samples; the groups present are "
                f"{present}. Drop those keys (a group with no samples cannot be drawn)"
            )
        missing = [v for v in present if v not in spec]
        if missing:
            raise ValueError(
                f"{name} gives no share for group(s) {missing}; give every group present "
                f"({present}) a positive share, or remove those samples from the dataset"
            )
        raw = np.array([float(spec[v]) for v in present])
    else:
        raw = np.asarray(spec, dtype=np.float64).reshape(-1)
        if len(raw) != len(present):
            raise ValueError(
                f"{name} has {len(raw)} shares but there are {len(present)} groups "
                f"{present} (a sequence is aligned with the sorted group values); give "
                f"{len(present)} shares or a dict {{group: share}}"
            )
    if not np.all(np.isfinite(raw)) or np.any(raw < 0):
        raise ValueError(f"{name} shares must be finite and non-negative, got {raw.tolist()}")
    if raw.sum() <= 0:
        raise ValueError(f"{name} shares sum to zero; give every group a positive share")
    if np.any(raw == 0):
        zero = [present[i] for i in np.flatnonzero(raw == 0)]
        raise ValueError(
            f"{name} gives group(s) {zero} a zero share; shares must be positive (to leave a "
            "group out, remove its samples from the dataset)"
        )
    return raw / raw.sum()


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Integers summing to ``total``, each the floor or ceiling of ``total * share``.

    The units left after the floors go to the largest fractional parts (ties: lower group first).
    """
    exact = total * shares
    out = np.floor(exact + 1e-9).astype(np.int64)
    rest = total - int(out.sum())
    if rest > 0:
        frac = np.round(exact - out, 9)  # equal fractions tie exactly despite float error
        out[np.argsort(-frac, kind="stable")[:rest]] += 1
    return out


# --------------------------------------------------------------------------------------------
# epoch level


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


# --------------------------------------------------------------------------------------------
# batch level


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


# --------------------------------------------------------------------------------------------
# batch-level helpers


class _QuotaFeasibility:
    """Which mixes of K classes can take the quotas? Classes are reduced to support patterns.

    A class's *pattern* is the bitmask of the groups it has samples in. With
    ``need[S] = ceil(quotas[S] / m)``, K chosen classes can take the quotas iff every group set
    ``S`` is touched by at least ``need[S]`` of them (Hall), which depends only on the number of
    chosen classes per pattern, ``n``. :meth:`solve` finds one such ``n`` (or proves there is
    none) by a depth-first search that branches only on patterns touching a violated ``S`` and
    not dominated by a superset pattern with classes left, memoising dead ends.
    """

    def __init__(
        self, support: np.ndarray, quotas: np.ndarray, m: int, k: int, budget: int = 200_000
    ) -> None:
        n_groups = support.shape[1]
        bits = (support.astype(np.int64) << np.arange(n_groups)).sum(axis=1)
        self.patterns, inverse = np.unique(bits, return_inverse=True)
        self.pattern_of_class = inverse.reshape(-1)
        self.n_patterns = len(self.patterns)
        self.class_counts = np.bincount(self.pattern_of_class, minlength=self.n_patterns)
        subsets = np.arange(1 << n_groups)
        self.covers = (self.patterns[:, None] & subsets[None, :]) != 0  # (P, 2^G)
        member = (subsets[:, None] >> np.arange(n_groups)) & 1  # (2^G, G)
        self.quota_of = member @ quotas
        self.need = -(-self.quota_of // m)
        self.k = k
        self.budget = budget
        pat = self.patterns
        self._width = np.array([bin(int(b)).count("1") for b in pat])
        self._supersets = [
            [j for j in range(self.n_patterns) if j != i and pat[j] & pat[i] == pat[i]]
            for i in range(self.n_patterns)
        ]
        # any K classes work iff the worst K-set touches every S often enough
        worst = np.maximum(0, k - (self.class_counts @ ~self.covers))
        self.any_set_works = bool(np.all(worst >= self.need))

    def ok(self, counts: np.ndarray) -> bool:
        """Is the full choice ``counts`` (classes per pattern, summing to K) feasible?"""
        return bool(np.all(counts @ self.covers >= self.need))

    def solve(self) -> np.ndarray | None:
        """Classes per pattern of one feasible K-set, or None if there is none.

        Raises:
            ValueError: the search exceeded its budget of states without an answer.
        """
        self._dead: set[tuple[int, ...]] = set()
        found = self._search(np.zeros(self.n_patterns, dtype=np.int64))
        return found

    def feasible(self) -> bool:
        return self.solve() is not None

    def _search(self, s: np.ndarray) -> np.ndarray | None:
        key = tuple(s.tolist())
        if key in self._dead:
            return None
        if len(self._dead) > self.budget:
            raise ValueError(
                f"could not decide within {self.budget} search states whether the quotas fit "
                f"({self.n_patterns} class support patterns, {self.k} classes per batch); merge "
                "groups, or use fewer classes per batch"
            )
        left = self.class_counts - s
        slots = self.k - int(s.sum())
        cov = s @ self.covers
        deficit = cov < self.need
        if not deficit.any():  # any classes complete it: prefer broad patterns
            if int(left.sum()) < slots:
                self._dead.add(key)
                return None
            out = s.copy()
            for p in np.argsort(-self._width, kind="stable"):
                take = min(slots, int(left[p]))
                out[p] += take
                slots -= take
            return out
        if slots == 0 or np.any(cov + np.minimum(slots, left @ self.covers) < self.need):
            self._dead.add(key)
            return None
        useful = [
            p for p in range(self.n_patterns) if left[p] > 0 and self.covers[p, deficit].any()
        ]
        for p in useful:
            if any(left[j] > 0 for j in self._supersets[p]):
                continue  # a superset pattern with classes left serves at least as well
            s[p] += 1
            found = self._search(s)
            s[p] -= 1
            if found is not None:
                return found
        self._dead.add(key)
        return None

    def walk(self, counts: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """From feasible ``counts`` towards ``target`` by feasible one-class exchanges.

        Each step moves one class from a pattern above its target to one below, chosen at random
        among the exchanges that keep every Hall condition; stops when none is left.
        """
        counts = counts.copy()
        cov = counts @ self.covers
        while True:
            over = np.flatnonzero(counts > target)
            under = np.flatnonzero(counts < target)
            if not len(over) or not len(under):
                return counts
            # cov after moving one class from over[i] to under[j], for every S
            new = (
                cov[None, None, :] - self.covers[over][:, None, :] + self.covers[under][None, :, :]
            )
            good = np.argwhere(np.all(new >= self.need, axis=2))
            if not len(good):
                return counts
            i, j = good[rng.integers(len(good))]
            counts[over[i]] -= 1
            counts[under[j]] += 1
            cov = new[i, j]


def _closest_feasible_whole_quotas(
    support: np.ndarray, shares: np.ndarray, m: int, k: int, max_candidates: int = 200_000
) -> np.ndarray | None:
    """Feasible quotas ``m * (k_1, ..., k_G)``, all ``k_g >= 1``, closest (L1) to ``shares``."""
    n_groups = len(shares)
    if n_groups > k or math.comb(k - 1, n_groups - 1) > max_candidates:
        return None
    cuts = np.array(list(itertools.combinations(range(1, k), n_groups - 1)), dtype=np.int64)
    cuts = cuts.reshape(len(cuts), n_groups - 1)
    bounds = np.hstack([np.zeros((len(cuts), 1), np.int64), cuts, np.full((len(cuts), 1), k)])
    parts = np.diff(bounds, axis=1)  # every composition of k into G positive parts
    order = np.argsort(np.abs(parts / k - shares).sum(axis=1), kind="stable")
    for i in order[:100]:
        if _quietly_feasible(support, m * parts[i], m, k):
            return m * parts[i]
    return None


def _quietly_feasible(support: np.ndarray, quotas: np.ndarray, m: int, k: int) -> bool:
    """Feasibility for suggestions: a smaller search budget, undecided counts as infeasible."""
    try:
        return _QuotaFeasibility(support, quotas, m, k, budget=20_000).feasible()
    except ValueError:
        return False


def _capped_split(
    total: int, weights: np.ndarray, caps: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Split ``total`` units over cells in proportion to ``weights``, at most ``caps[i]`` each.

    Each cell gets the floor of its proportional share, plus one more unit with probability
    equal to the fractional part (systematic randomised rounding: exactly the right number of
    extra units, no cell gets two); overflow above a cap is re-split among cells with room. May
    give out less than ``total`` when the caps are too small.
    """
    out = np.zeros(len(caps), dtype=np.int64)
    left = total
    while left > 0:
        room = caps - out
        w = np.where(room > 0, weights, 0.0)
        w_sum = w.sum()
        if w_sum <= 0:
            break
        exact = (left / w_sum) * w
        share = np.floor(exact).astype(np.int64)
        rest = left - int(share.sum())
        if rest > 0:
            cum = np.cumsum(exact - share)
            points = rng.random() * (cum[-1] / rest) + np.arange(rest) * (cum[-1] / rest)
            share[np.minimum(np.searchsorted(cum, points, side="right"), len(cum) - 1)] += 1
        got = np.minimum(share, room)
        out += got
        left -= int(got.sum())
    return out


def _complete_flow(
    x: np.ndarray,
    support: np.ndarray,
    limit: np.ndarray | None,
    m: int,
    quotas: np.ndarray,
) -> None:
    """Augment ``x`` towards row sums ``m`` and column sums ``quotas`` (in place).

    Augmenting paths run from a class with room to a group short of its quota, along
    ``class → group`` edges (the class has samples of the group and the cell is below ``limit``;
    any amount when ``limit`` is None) and ``group → class`` edges (that class gives up some of
    its allocation in the group). Stops when complete or no path is left; with ``limit=None``
    and feasible quotas (checked up front) it always completes.
    """
    while True:
        row_left = m - x.sum(axis=1)
        col_left = quotas - x.sum(axis=0)
        if not row_left.any():
            return
        grow = support if limit is None else support & (x < limit)
        path = _augmenting_path(x, grow, row_left, col_left)
        if path is None:
            if limit is None:  # pragma: no cover - excluded by the up-front check
                raise RuntimeError("group quotas could not be allocated; please report this")
            return
        start, steps, end = path
        amount = min(int(row_left[start]), int(col_left[end]))
        for sign, r, g in steps:
            if sign < 0:
                amount = min(amount, int(x[r, g]))
            elif limit is not None:
                amount = min(amount, int(limit[r, g] - x[r, g]))
        for sign, r, g in steps:
            x[r, g] += sign * amount


def _augmenting_path(
    x: np.ndarray, grow: np.ndarray, row_left: np.ndarray, col_left: np.ndarray
) -> tuple[int, list[tuple[int, int, int]], int] | None:
    """Breadth-first search of the residual K × G graph; steps are (+1 | -1, row, group)."""
    n_rows, n_groups = x.shape
    grow_rows = [[g for g, ok in enumerate(row) if ok] for row in grow.tolist()]
    holders = [[r for r, v in enumerate(col) if v > 0] for col in x.T.tolist()]
    short = col_left.tolist()
    parent_row: dict[int, int | None] = {}  # row -> group it was reached from (None: a source)
    parent_group: dict[int, int] = {}  # group -> row it was reached from
    frontier = [r for r, v in enumerate(row_left.tolist()) if v > 0]
    for r in frontier:
        parent_row[r] = None
    while frontier:
        nxt = []
        for r in frontier:
            for g in grow_rows[r]:
                if g in parent_group:
                    continue
                parent_group[g] = r
                if short[g] > 0:  # reached a group short of its quota: walk back
                    steps = []
                    gg: int | None = g
                    while True:
                        rr = parent_group[gg]
                        steps.append((1, rr, gg))
                        gg = parent_row[rr]
                        if gg is None:
                            return rr, steps, g
                        steps.append((-1, rr, gg))
                for r2 in holders[g]:
                    if r2 not in parent_row:
                        parent_row[r2] = g
                        nxt.append(r2)
        frontier = nxt
    return None
