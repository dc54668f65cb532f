r"""Group DRO (Sagawa et al. 2020) as a pytorch-metric-learning reducer over anchor groups.

Group distributionally robust optimisation keeps a weight :math:`q_g` per group across steps and
minimises the :math:`q`-weighted group losses, moving :math:`q` towards the groups that currently
do worst. Per training step, following the reference implementation (``LossComputer`` in
``kohpangwei/group_DRO``):

.. math::

    \ell_g &= \sum_{s} \operatorname{mean}\{\, \ell_i : \text{element } i \text{ of sub-loss } s
              \text{ anchored in group } g \,\}
              \qquad (0 \text{ if } g \text{ anchors no element of } s)\\
    q_g &\leftarrow q_g \exp\!\big(\eta\, (\operatorname{sg}[\ell_g] + C / \sqrt{n_g})\big),
    \qquad q \leftarrow q / \textstyle\sum_h q_h\\
    L &= \textstyle\sum_g q_g\, \ell_g \;+\; \text{regularisation sub-losses}

with :math:`n_g` the number of *training* samples of group :math:`g`, :math:`\eta` the step size
and :math:`C` the generalisation adjustment (``sg`` = stop-gradient: :math:`q` is a constant for
back-propagation). The loss uses the *updated* :math:`q`, as the reference does.

* An element's group is the group of its **anchor** (see :mod:`fairmetric.losses.reducers`).
* ``base="mean"`` averages every element of a group; ``base="avg_nonzero"`` only those with a
  positive loss (PML's ``AvgNonZeroReducer``, the default of triplet/contrastive losses).
* **Groups absent from a batch** (or anchoring no element) get :math:`\ell_g = 0`, exactly as the
  reference code does: their weight still receives the :math:`C/\sqrt{n_g}` adjustment and is
  otherwise only renormalised, so it *decreases* relative to groups with positive loss. Batches
  holding every group (group-balanced sampling) avoid that drift.
* ``q`` is a float64 buffer: it is part of the loss's ``state_dict`` and so of every checkpoint,
  and a resumed run continues with exactly the same weights. The update runs in log space
  (log-sum-exp normalisation), so large :math:`\eta \ell` cannot overflow.
* ``q`` is only updated in training mode; in ``eval()`` mode the loss uses the current ``q``.
* Regularisation sub-losses (``embedding_reg_loss``, ...) are added unweighted; any other sub-loss
  reported already reduced cannot be split by group and raises ``ValueError``.

Unlike the reference, the returned value is :math:`\sum_g q_g \ell_g` without the adjustment: the
reference adds :math:`C/\sqrt{n_g}` to its group losses *in place* before the weighted sum, which
shifts the reported loss by a constant but leaves every gradient unchanged.

Installing it on a loss
-----------------------
Group DRO reweights each group's *total* loss, so the reducer must see all sub-losses of a loss at
once. PML's ``set_reducer`` deep-copies a reducer once per sub-loss (``MultipleReducers``) unless
it is a ``MultipleReducers``; :class:`GroupDROReducer` is one, so PML uses the very object you pass,
for any loss, with no copy::

    dro = GroupDROReducer(train_group_counts, eta=0.01, group_names=["light", "dark"])
    loss_fn = install_group_dro(ContrastiveLoss(), dro)  # validates the loss; same as reducer=dro
    with batch_groups(loss_fn, groups_of_batch):
        loss = loss_fn(embeddings, labels, miner(embeddings, labels))
    log(dro.q_dict())  # {"light": 0.47, "dark": 0.53}

:func:`install_group_dro` also rejects class-indexed losses (``ProxyAnchorLoss``), which
``reducer=`` cannot check. Because PML does not copy the reducer, one reducer must not be shared by
two losses (it would update ``q`` twice per step, each time from a different loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.reducers import MultipleReducers

from fairmetric.bounds import bounded
from fairmetric.losses.reducers import (
    UNWEIGHTED_SUB_LOSSES,
    GroupAwareReducer,
    check_sample_indexed,
    reduction_base,
)
from fairmetric.losses.registry import ObjectiveContext, register_reducer

__all__ = ["GroupDROConfig", "GroupDROReducer", "install_group_dro"]


@dataclass
class GroupDROConfig:
    """Group DRO over the anchor groups of ``data.group_attribute`` (``reducer.name=group_dro``):
    step size ``eta``, generalisation adjustment ``C``; ``q`` is logged every epoch (under
    ``group_dro`` in ``metrics.jsonl``) and checkpointed."""

    eta: float = bounded(0.01, gt=0)
    C: float = bounded(0.0, ge=0)
    base: str = "auto"


_BASES = ("mean", "avg_nonzero")


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"GroupDROReducer: {name} must be a number, got {value!r}") from None


@register_reducer("group_dro")
class GroupDROReducer(GroupAwareReducer, MultipleReducers):
    r"""Group DRO over the anchor groups of a PML loss (see the module docstring for the update).

    It subclasses PML's ``MultipleReducers`` only so that ``set_reducer`` / ``reducer=`` install
    this object as it is (no per-sub-loss deep copies); its own :meth:`forward` reduces the whole
    loss dictionary. Set the batch's groups with :func:`~fairmetric.losses.reducers.batch_groups`.

    Args:
        group_counts: ``(G,)`` number of training samples of each group code ``0..G-1``; every
            count must be positive (a group absent from the training set has no
            :math:`C/\sqrt{n_g}` and no place in Group DRO).
        eta: step size :math:`\eta > 0` of the exponentiated-gradient update (reference: 0.01).
        C: generalisation adjustment :math:`C \ge 0` (reference: 0).
        base: per-group mean of every element (``"mean"``) or of the positive ones only
            (``"avg_nonzero"``).
        group_names: optional name of each group code, for messages and :meth:`q_dict`.

    Attributes:
        q: ``(G,)`` float64 buffer, the group weights (uniform at start; in ``state_dict``).
        last_group_loss: ``(G,)`` float64, detached :math:`\ell_g` of the last call.
        last_group_count: ``(G,)`` float64, number of elements each group anchored in the last
            call, summed over sub-losses (positive elements only for ``"avg_nonzero"``).
    """

    def __init__(
        self,
        group_counts: Sequence[float] | np.ndarray | torch.Tensor,
        *,
        eta: float = 0.01,
        C: float = 0.0,
        base: str = "mean",
        group_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(reducers={})  # MultipleReducers: empty, unused
        if torch.is_tensor(group_counts):
            counts = group_counts.detach().to("cpu", torch.float64)
        else:
            counts = torch.as_tensor(np.asarray(group_counts, dtype=np.float64))
        if counts.ndim != 1 or counts.numel() == 0:
            raise ValueError(
                "GroupDROReducer: group_counts must be a non-empty 1-D sequence, the number of "
                "training samples of each group code"
            )
        g_total = counts.numel()
        if group_names is not None:
            group_names = [str(n) for n in group_names]
            if len(group_names) != g_total:
                raise ValueError(
                    f"GroupDROReducer: {len(group_names)} group_names for {g_total} group counts"
                )
        self.group_names: list[str] | None = group_names
        if not torch.isfinite(counts).all() or (counts < 0).any():
            raise ValueError("GroupDROReducer: group_counts must be finite and non-negative")
        absent = [g for g in range(g_total) if counts[g] == 0]
        if absent:
            names = ", ".join(self._describe(g) for g in absent)
            raise ValueError(
                f"GroupDROReducer: group {names} has no training samples (count 0). Group DRO "
                "weights every group and its adjustment C/sqrt(n_g) needs n_g > 0: drop that "
                "group (re-code the groups so only groups present in the training set remain) "
                "or choose another group attribute"
            )
        eta, C = _number(eta, "eta"), _number(C, "C")
        if not math.isfinite(eta) or eta <= 0:
            raise ValueError(f"GroupDROReducer: eta must be a finite number > 0, got {eta!r}")
        if not math.isfinite(C) or C < 0:
            raise ValueError(f"GroupDROReducer: C must be a finite number >= 0, got {C!r}")
        if base not in _BASES:
            raise ValueError(f"GroupDROReducer: base must be 'mean' or 'avg_nonzero', not {base!r}")
        self.eta = eta
        self.C = C
        self.base = base
        self.register_buffer("group_counts", counts, persistent=False)
        self.register_buffer("q", torch.full((g_total,), 1.0 / g_total, dtype=torch.float64))
        self.register_buffer("last_group_loss", torch.zeros(g_total, dtype=torch.float64), False)
        self.register_buffer("last_group_count", torch.zeros(g_total, dtype=torch.float64), False)

    config_class = GroupDROConfig
    #: the config section that switched it on before ``reducer`` existed
    legacy_key = "objective.group_dro"
    bench_methods = {"group_dro": ["data.group_attribute={attr}", "reducer.name=group_dro"]}

    @classmethod
    def needs_groups(cls, config: Any) -> bool:
        return True

    @classmethod
    def from_config(cls, config: GroupDROConfig, context: ObjectiveContext) -> GroupDROReducer:
        """Group DRO over the training groups, on the metric loss's reduction."""
        loss_fn = context.metric_loss
        check_sample_indexed(loss_fn, "reducer group_dro (objective.group_dro)")
        groups = context.require_groups("reducer group_dro")
        values = context.group_names()
        reducer = cls.from_groups(
            groups,
            num_groups=len(values),
            eta=config.eta,
            C=config.C,
            base=reduction_base(loss_fn, config.base, "reducer.base"),
            group_names=values,
        )
        context.log(f"Group DRO over {context.group_attribute}: eta {config.eta}, C {config.C}")
        return reducer

    @staticmethod
    def install(loss_fn: torch.nn.Module, reducer: GroupDROReducer) -> None:
        """:func:`install_group_dro`: this very object, for every sub-loss."""
        install_group_dro(loss_fn, reducer)

    def state_log(self) -> dict[str, Any]:
        """``{"group_dro": {"q": ..., "group_loss": ...}}``, logged every epoch."""
        return {"group_dro": {"q": self.q_dict(), "group_loss": self.group_loss_dict()}}

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[int] | np.ndarray | torch.Tensor,
        num_groups: int | None = None,
        **kwargs: Any,
    ) -> GroupDROReducer:
        """Build it from the training set's group code per sample (counts by ``bincount``).

        ``num_groups`` (default ``max(groups) + 1``) lets an absent trailing code be reported.
        """
        g = np.asarray(groups).reshape(-1)
        if g.size == 0:
            raise ValueError("GroupDROReducer.from_groups: groups is empty")
        integral = np.issubdtype(g.dtype, np.integer) or (
            np.issubdtype(g.dtype, np.floating) and bool(np.all(np.mod(g, 1) == 0))
        )
        if not integral or g.min() < 0:
            raise ValueError("GroupDROReducer.from_groups: groups must be non-negative integers")
        g = g.astype(np.int64)
        counts = np.bincount(g, minlength=num_groups or 0)
        if num_groups is not None and len(counts) > num_groups:
            raise ValueError(
                f"GroupDROReducer.from_groups: group code {len(counts) - 1} >= num_groups "
                f"{num_groups}"
            )
        return cls(counts, **kwargs)

    # ------------------------------------------------------------------------------------------
    # logging
    # ------------------------------------------------------------------------------------------

    @property
    def num_groups(self) -> int:
        return len(self.q)

    def _name(self, g: int) -> str:
        return self.group_names[g] if self.group_names is not None else str(g)

    def _describe(self, g: int) -> str:
        return f"{self.group_names[g]!r} (code {g})" if self.group_names is not None else str(g)

    def q_dict(self) -> dict[str, float]:
        """Current group weights ``{group name (or code as a string): q_g}``, for logging."""
        return {self._name(g): float(v) for g, v in enumerate(self.q.tolist())}

    def group_loss_dict(self) -> dict[str, float]:
        """The per-group losses :math:`\\ell_g` of the last call, for logging."""
        return {self._name(g): float(v) for g, v in enumerate(self.last_group_loss.tolist())}

    def extra_repr(self) -> str:
        return f"num_groups={self.num_groups}, eta={self.eta}, C={self.C}, base={self.base!r}"

    # ------------------------------------------------------------------------------------------
    # reduction
    # ------------------------------------------------------------------------------------------

    def group_statistics(
        self, loss_dict: dict[str, dict], embeddings: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, list[torch.Tensor]]:
        """Per-group sums and counts of every sample-indexed sub-loss, and the regularisers.

        This is the only place that looks at the batch's elements: a distributed version only
        needs to all-reduce ``sums`` and ``counts`` (both additive over ranks) here.

        Returns:
            ``sums``: ``(S, G)`` sum of the (counted) element losses of sub-loss ``s`` anchored in
            group ``g``, differentiable; ``counts``: ``(S, G)`` number of those elements;
            ``regularisers``: the already reduced regularisation sub-losses. ``sums`` and
            ``counts`` are ``None`` when no sub-loss has elements.
        """
        self._check_groups(embeddings)
        g_total = self.num_groups
        sums, counts, regularisers = [], [], []
        for name, info in loss_dict.items():
            self._sub_loss = name
            losses, indices, kind = info["losses"], info["indices"], info["reduction_type"]
            if not torch.is_tensor(losses):  # PML's zero loss: no tuples in this batch
                if losses == 0:
                    continue
                raise ValueError(f"sub-loss {name!r}: losses must be a tensor, got {losses!r}")
            if kind == "already_reduced":
                if name in UNWEIGHTED_SUB_LOSSES:
                    regularisers.append(losses.reshape(()))
                    continue
                raise ValueError(
                    f"GroupDROReducer: sub-loss {name!r} arrives already reduced to a scalar, so "
                    "it cannot be split by group; use group-balanced sampling with this loss, or "
                    "a pair/triplet/per-sample loss"
                )
            self.assert_sizes(losses, indices, kind)
            if losses.numel() == 0:
                continue
            flat, anchors = self._anchored(losses, indices, kind, embeddings)
            anchor_groups = self.groups.to(flat.device)[anchors]
            if len(anchor_groups) and int(anchor_groups.max()) >= g_total:
                raise ValueError(
                    f"GroupDROReducer: group code {int(anchor_groups.max())} in the batch, but "
                    f"group_counts covers {g_total} groups; build the reducer from the training "
                    "set's groups"
                )
            if self.base == "avg_nonzero":
                keep = flat > 0
                flat, anchor_groups = flat[keep], anchor_groups[keep]
            zeros = flat.new_zeros(g_total)
            sums.append(zeros.index_add(0, anchor_groups, flat))
            counts.append(zeros.detach().index_add(0, anchor_groups, torch.ones_like(flat)))
        if not sums:
            return None, None, regularisers
        return torch.stack(sums), torch.stack(counts).detach(), regularisers

    def forward(self, loss_dict, embeddings, labels):
        self.reset_stats()
        sums, counts, regularisers = self.group_statistics(loss_dict, embeddings)
        if sums is None:
            group_loss = embeddings.new_zeros(self.num_groups)
            group_count = torch.zeros_like(self.q)
        else:
            group_loss = (sums / counts.clamp_min(1)).sum(dim=0)
            group_count = counts.sum(dim=0)
        with torch.no_grad():
            if self.training:
                adjusted = group_loss.detach().to(self.q.device, torch.float64)
                adjusted = adjusted + self.C / self.group_counts.sqrt()
                log_q = self.q.double().log() + self.eta * adjusted
                self.q.copy_(torch.softmax(log_q, dim=0))
            self.last_group_loss.copy_(group_loss.detach())
            self.last_group_count.copy_(group_count)
        total = self.zero_loss(embeddings)
        q = self.q.to(group_loss.device, group_loss.dtype)
        total = total + (q * group_loss).sum()
        for reg in regularisers:
            total = total + reg
        return total


def install_group_dro(loss_fn: torch.nn.Module, reducer: GroupDROReducer) -> torch.nn.Module:
    """Make ``reducer`` the reducer of the PML loss ``loss_fn`` (in place) and return the loss.

    Equivalent to ``loss_fn.set_reducer(reducer)`` (PML keeps this very object, since it is a
    ``MultipleReducers``), after checking that the loss's elements are indexed by sample: class-
    indexed losses such as ``ProxyAnchorLoss`` raise ``ValueError``.
    """
    if not isinstance(reducer, GroupDROReducer):
        raise TypeError(f"install_group_dro: expected a GroupDROReducer, got {type(reducer)}")
    check_sample_indexed(loss_fn, "Group DRO")
    loss_fn.reducer = reducer
    return loss_fn
