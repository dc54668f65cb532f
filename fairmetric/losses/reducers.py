r"""Group-aware pytorch-metric-learning reducers: weight each loss element by its anchor's group.

A PML loss computes a dictionary of unreduced *sub-losses* (``{"loss": {"losses", "indices",
"reduction_type"}}``) and hands it to its ``reducer``. Each element of a sub-loss is anchored at one
sample of the batch:

====================  =========================  ==========================
``reduction_type``    ``indices``                anchor of element ``i``
====================  =========================  ==========================
``element``           ``(E,)`` sample indices    ``indices[i]``
``pos_pair``          ``(a, p)``                 ``a[i]``
``neg_pair``          ``(a, n)``                 ``a[i]``
``triplet``           ``(a, p, n)``              ``a[i]``
``already_reduced``   ``None``                   none (a scalar)
====================  =========================  ==========================

:class:`GroupWeightedReducer` reduces each sub-loss as a weighted mean with the weight of the
anchor's group. PML reducers only see ``(loss_dict, embeddings, labels)``, so the batch's groups are
handed over before the loss is called, with :func:`batch_groups`::

    loss_fn = TripletMarginLoss(margin=0.2, reducer=GroupWeightedReducer(weights))
    with batch_groups(loss_fn, groups_of_batch):
        loss = loss_fn(embeddings, labels, miner(embeddings, labels))

:func:`batch_groups` finds every group-aware reducer inside the loss (PML deep-copies the reducer
it is given, and wraps one copy per sub-loss in ``MultipleReducers`` when a loss has several), so the
state always lands on the objects the loss actually calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pytorch_metric_learning.reducers import BaseReducer

from fairmetric.bounds import bounded
from fairmetric.losses.registry import ObjectiveContext, register_reducer

__all__ = [
    "GroupAwareReducer",
    "GroupWeightedConfig",
    "reduction_base",
    "GroupWeightedReducer",
    "batch_groups",
    "group_weights",
    "anchor_indices",
    "check_sample_indexed",
    "UNWEIGHTED_SUB_LOSSES",
]

UNWEIGHTED_SUB_LOSSES = frozenset({"embedding_reg_loss", "weight_reg_loss", "beta_reg_loss"})
"""Regularisation sub-losses PML reports already reduced; they pass through unweighted."""

_CLASS_INDEXED_LOSSES = ("ProxyAnchorLoss",)
"""PML losses whose ``element`` sub-losses are indexed by class/proxy, not by sample."""


def group_weights(groups: np.ndarray | torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    r"""Per-group weights :math:`w_g \propto (1/\mathrm{freq}_g)^\beta` from training-set groups.

    ``beta=1`` is inverse frequency, ``beta=0.5`` square-root inverse frequency, ``beta=0``
    uniform. The weights are scaled so their frequency-weighted mean over the training set is 1
    (so an epoch's average weight is 1); the reducers normalise per batch anyway.

    Args:
        groups: non-negative integer group code per training sample.
        beta: exponent, ``>= 0``.

    Returns:
        float32 tensor of shape ``(max(groups) + 1,)``; groups absent from ``groups`` get weight 0.
    """
    g = torch.as_tensor(np.asarray(groups)).long().reshape(-1)
    if g.numel() == 0:
        raise ValueError("group_weights: groups is empty; pass the training set's group column")
    if int(g.min()) < 0:
        raise ValueError("group_weights: group codes must be non-negative integers")
    if not np.isfinite(beta) or beta < 0:
        raise ValueError(f"group_weights: beta must be a finite number >= 0, got {beta}")
    counts = torch.bincount(g).double()
    freq = counts / counts.sum()
    w = torch.zeros_like(freq)
    present = counts > 0
    w[present] = freq[present].pow(-float(beta))
    w = w / (w * freq).sum()
    return w.float()


def anchor_indices(indices: torch.Tensor | tuple, reduction_type: str) -> torch.Tensor:
    """The anchor sample of every element of a PML sub-loss (see the module table)."""
    if reduction_type == "element":
        return indices
    if reduction_type in ("pos_pair", "neg_pair", "triplet"):
        return indices[0]
    raise ValueError(f"sub-losses of type {reduction_type!r} have no per-element anchors")


def check_sample_indexed(loss_fn: torch.nn.Module, purpose: str = "group reweighting") -> None:
    """Raise if ``loss_fn`` is a PML loss whose elements are classes rather than samples.

    ``ProxyAnchorLoss`` reports one element per proxy (class); weighting those by a *sample's*
    group would be silently wrong.
    """
    for module in loss_fn.modules():
        bases = [c.__name__ for c in type(module).__mro__]
        name = next((b for b in bases if b in _CLASS_INDEXED_LOSSES), None)
        if name is not None:
            raise ValueError(
                f"{purpose} is undefined for {type(module).__name__} ({name}): its loss elements are indexed by class "
                "(proxy), not by sample, so they have no anchor group. Use group-balanced sampling "
                "(sampling.name: epoch_balanced or batch_balanced) with this loss, or a pair/"
                "triplet/per-sample loss such as TripletMarginLoss, ContrastiveLoss, "
                "MultiSimilarityLoss, ProxyNCALoss or ArcFaceLoss"
            )


class GroupAwareReducer(BaseReducer):
    """Base for reducers that need the group of every sample in the batch.

    Set the groups with :func:`batch_groups` (or :meth:`set_groups`) before calling the loss.
    Subclasses implement :meth:`reduce_anchored` on flat ``(losses, anchors)`` pairs.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.groups: torch.Tensor | None = None
        self._sub_loss = "loss"

    def set_groups(self, groups: torch.Tensor | None) -> None:
        """The group code of every sample of the next batch (``None`` clears it)."""
        self.groups = None if groups is None else torch.as_tensor(groups).long().reshape(-1)

    # PML calls forward with one sub-loss (directly or from MultipleReducers): remember its name.
    def forward(self, loss_dict, embeddings, labels):
        if len(loss_dict) != 1:
            raise ValueError(
                f"{type(self).__name__} reduces one sub-loss at a time, got {sorted(loss_dict)}; "
                "pass it as the loss's reducer= so PML wraps it per sub-loss"
            )
        self._sub_loss = next(iter(loss_dict))
        self._check_groups(embeddings)
        return super().forward(loss_dict, embeddings, labels)

    def _check_groups(self, embeddings):
        if self.groups is None:
            raise RuntimeError(
                f"{type(self).__name__}: the batch's groups were not set; call the loss inside "
                "`with batch_groups(loss_fn, groups):`"
            )
        n = len(embeddings)
        if len(self.groups) != n:
            raise ValueError(
                f"{type(self).__name__}: {len(self.groups)} group codes for a batch of {n} "
                "embeddings; pass one group per embedding row"
            )
        if len(self.groups) and int(self.groups.min()) < 0:
            raise ValueError(
                f"{type(self).__name__}: negative group code {int(self.groups.min())}; group "
                "codes are non-negative integers (map missing values to their own group or drop "
                "those samples)"
            )

    def _anchored(self, losses, loss_indices, reduction_type, embeddings):
        self._check_groups(embeddings)
        n = len(embeddings)
        losses = losses.reshape(len(losses), -1)  # MultiSimilarityLoss reports (N, 1)
        if losses.shape[1] != 1:
            raise ValueError(
                f"sub-loss {self._sub_loss!r} has per-element losses of shape "
                f"{tuple(losses.shape)}; expected one value per element"
            )
        anchors = anchor_indices(loss_indices, reduction_type).to(losses.device).long()
        if len(anchors) and (int(anchors.min()) < 0 or int(anchors.max()) >= n):
            raise ValueError(
                f"sub-loss {self._sub_loss!r} has element indices outside the batch of {n}: they "
                "do not index samples, so they cannot be weighted by group"
            )
        return losses[:, 0], anchors

    def _reduce(self, losses, loss_indices, reduction_type, embeddings):
        if losses.numel() == 0:
            return self.zero_loss(embeddings)
        flat, anchors = self._anchored(losses, loss_indices, reduction_type, embeddings)
        groups = self.groups.to(flat.device)
        return self.reduce_anchored(flat, groups[anchors], embeddings)

    def reduce_anchored(
        self, losses: torch.Tensor, anchor_groups: torch.Tensor, embeddings: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def element_reduction(self, losses, loss_indices, embeddings, labels):
        return self._reduce(losses, loss_indices, "element", embeddings)

    def pos_pair_reduction(self, losses, loss_indices, embeddings, labels):
        return self._reduce(losses, loss_indices, "pos_pair", embeddings)

    def neg_pair_reduction(self, losses, loss_indices, embeddings, labels):
        return self._reduce(losses, loss_indices, "neg_pair", embeddings)

    def triplet_reduction(self, losses, loss_indices, embeddings, labels):
        return self._reduce(losses, loss_indices, "triplet", embeddings)

    def already_reduced_reduction(self, losses, loss_indices, embeddings, labels):
        if self._sub_loss in UNWEIGHTED_SUB_LOSSES:
            return super().already_reduced_reduction(losses, loss_indices, embeddings, labels)
        raise ValueError(
            f"{type(self).__name__}: sub-loss {self._sub_loss!r} arrives already reduced to a "
            "scalar, so it cannot be weighted per group; use group-balanced sampling with this "
            "loss instead"
        )


def reduction_base(loss_fn: torch.nn.Module, base: str, key: str) -> str:
    """``mean`` or ``avg_nonzero``; ``auto`` follows the loss's own default reducer."""
    if base in ("mean", "avg_nonzero"):
        return base
    if base != "auto":
        raise ValueError(f"{key} must be auto, mean or avg_nonzero, got {base!r}")
    from pytorch_metric_learning.reducers import AvgNonZeroReducer

    default = loss_fn.get_default_reducer()
    return "avg_nonzero" if isinstance(default, AvgNonZeroReducer) else "mean"


@dataclass
class GroupWeightedConfig:
    """Loss reweighting by the anchor's group (``reducer.name=group_weighted``):
    ``w_g ∝ (1/freq_g)^beta``.

    ``base``: ``mean``, ``avg_nonzero`` (PML's default for triplet/contrastive/margin losses), or
    ``auto`` (whichever the loss uses by default). ``normalise``: ``active`` (the weights are
    normalised over the elements with a non-zero loss, the ones actually averaged) or ``all``
    (over every element, zero-loss ones included: fairmetric's behaviour before issue 13).
    """

    beta: float = bounded(1.0, ge=0)
    base: str = "auto"
    normalise: str = "active"


@register_reducer("group_weighted")
class GroupWeightedReducer(GroupAwareReducer):
    r"""Weighted mean of the loss elements, each weighted by its anchor's group.

    With :math:`A` the *active* elements (:math:`\ell_i > 0`; an anchor the miner gave no tuple,
    or whose tuples are all satisfied, has :math:`\ell_i = 0` and no gradient) and :math:`N` the
    base reducer's divisor (all elements for ``base="mean"``, PML's ``MeanReducer``; :math:`|A|`
    for ``base="avg_nonzero"``, PML's ``AvgNonZeroReducer``, the default of triplet, contrastive
    and margin losses):

    .. math:: L = \frac{|A|}{N} \cdot
        \frac{\sum_{i \in A} w_{g(a_i)}\, \ell_i}{\sum_{i \in A} w_{g(a_i)}}

    i.e. the weights are normalised to mean 1 over the elements actually averaged, and the loss
    keeps the base reducer's scale: equal weights reproduce the unweighted PML reducers exactly,
    and the weights only move loss mass between the active elements. (``normalise="all"``, the
    behaviour before issue 13, normalised over every element with ``base="mean"``:
    :math:`\sum_i w_i \ell_i / \sum_i w_i`. There an inactive minority anchor of weight 10 --
    MultiSimilarityLoss with its miner leaves many -- stays in the denominator and shrinks the
    whole batch's loss, majority included, by up to the minority's share of the weight: the
    weights rescaled the learning rate at random instead of moving mass to the minority.)
    Elements anchored in a group with weight 0 are dropped from the numerator; if no active
    weight remains, the loss is 0 (with a gradient graph).

    Args:
        weights: ``(G,)`` weight per group code (e.g. from :func:`group_weights`).
        base: ``"mean"`` or ``"avg_nonzero"``.
        normalise: ``"active"`` or ``"all"`` (see above).
    """

    def __init__(
        self,
        weights: torch.Tensor | np.ndarray,
        base: Literal["mean", "avg_nonzero"] = "mean",
        normalise: Literal["active", "all"] = "active",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        w = torch.as_tensor(weights).detach().to("cpu", torch.float32).reshape(-1)
        if w.numel() == 0 or not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError("GroupWeightedReducer: weights must be finite and non-negative")
        if base not in ("mean", "avg_nonzero"):
            raise ValueError(
                f"GroupWeightedReducer: base must be 'mean' or 'avg_nonzero', not {base!r}"
            )
        if normalise not in ("active", "all"):
            raise ValueError(
                f"GroupWeightedReducer: normalise must be 'active' or 'all', not {normalise!r}"
            )
        self.register_buffer("weights", w)
        self.base = base
        self.normalise = normalise

    config_class = GroupWeightedConfig
    #: the config section that switched it on before ``reducer`` existed
    legacy_key = "mitigation.reweight"
    bench_methods = {"reweight": ["data.group_attribute={attr}", "reducer.name=group_weighted"]}

    @classmethod
    def needs_groups(cls, config: Any) -> bool:
        return True

    @classmethod
    def from_config(
        cls, config: GroupWeightedConfig, context: ObjectiveContext
    ) -> GroupWeightedReducer:
        """Inverse-frequency weights of the training groups, on the metric loss's reduction."""
        loss_fn = context.metric_loss
        check_sample_indexed(loss_fn, "reducer group_weighted (mitigation.reweight)")
        weights = group_weights(context.require_groups("reducer group_weighted"), config.beta)
        base = reduction_base(loss_fn, config.base, "reducer.base")
        names = [
            context.train_set.value_name(context.group_attribute, g) for g in range(len(weights))
        ]
        context.log(
            "reweighting by " + ", ".join(f"{n} {float(w):.3g}" for n, w in zip(names, weights))
        )
        return cls(weights, base=base, normalise=config.normalise)

    @staticmethod
    def install(loss_fn: torch.nn.Module, reducer: BaseReducer) -> None:
        """PML's ``set_reducer`` (one copy per sub-loss)."""
        loss_fn.set_reducer(reducer)

    def reduce_anchored(self, losses, anchor_groups, embeddings):
        if len(anchor_groups) and int(anchor_groups.max()) >= len(self.weights):
            raise ValueError(
                f"group code {int(anchor_groups.max())} has no weight (weights cover "
                f"{len(self.weights)} groups); build the weights from the training set's groups"
            )
        w = self.weights.to(losses.device, losses.dtype)[anchor_groups]
        active = (losses > 0).to(w.dtype)
        if self.normalise == "all" and self.base == "mean":
            total = w.sum()
            return self.zero_loss(embeddings) if total <= 0 else (w * losses).sum() / total
        w = w * active
        total = w.sum()
        if total <= 0:
            return self.zero_loss(embeddings)
        scale = active.sum() / len(losses) if self.base == "mean" else 1.0
        return scale * (w * losses).sum() / total


def _group_aware(loss_fn: torch.nn.Module) -> list[GroupAwareReducer]:
    return [m for m in loss_fn.modules() if isinstance(m, GroupAwareReducer)]


@contextlib.contextmanager
def batch_groups(loss_fn: torch.nn.Module, groups: torch.Tensor | None) -> Iterator[None]:
    """Give every group-aware reducer inside ``loss_fn`` the batch's ``groups`` for one call.

    A no-op for losses without such reducers, so training code can always use it.
    """
    reducers = _group_aware(loss_fn)
    for r in reducers:
        r.set_groups(groups)
    try:
        yield
    finally:
        for r in reducers:
            r.set_groups(None)
