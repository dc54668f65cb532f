r"""`Objective`: a PML metric loss composed with weighted fairness terms, each reported separately.

A training step produces a :class:`Batch` -- backbone features ``h``, the pre-normalisation target
embedding, the target embedding ``e``, labels, the sensitive attributes -- and the objective
returns

.. math:: L = L_\text{metric}(e, y) + \sum_t w_t \, L_t(\text{batch})

together with the value of every term (the metric loss under ``"metric"``), so the trainer can log
them per epoch. Terms are :class:`Term` modules: they may own parameters (attribute heads, an
adversary) that the optimiser trains with them, and that are *not* part of the exported
embedder. Write your own by subclassing :class:`Term`::

    class CentroidGap(Term):
        '''Pull the per-group embedding means together.'''

        def forward(self, batch):
            g = batch.attribute("colour")
            means = [batch.embeddings[g == v].mean(0) for v in g.unique()]
            return {"centroid_gap": torch.stack(means).var(0).sum()}

    objective = Objective(metric_loss, miner, terms=[CentroidGap(weight=0.1)])

Group-aware reducers of the metric loss (reweighting, Group DRO) get the batch's groups through
:func:`~fairmetric.losses.reducers.batch_groups` from ``batch.groups``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from fairmetric.losses.reducers import batch_groups

__all__ = ["Batch", "Term", "Objective"]


@dataclass
class Batch:
    """What one training step knows about its samples.

    Attributes:
        features: ``(N, F)`` backbone features ``h`` (input of the heads).
        raw: ``(N, D)`` target embedding before L2 normalisation.
        embeddings: ``(N, D)`` target embedding ``e`` the metric loss sees.
        labels: ``(N,)`` class labels (contiguous codes).
        attributes: ``(N, A)`` integer codes of every sensitive attribute.
        attribute_names: names of the columns of ``attributes``.
        groups: ``(N,)`` codes of the group attribute for group-aware reducers, or ``None``.
        extra_embeddings / extra_labels / extra_groups: synthetic rows (SMOTE) that join the
            metric loss's batch only.
        indices_tuple: tuples mined on the metric loss's batch, if a miner ran.
    """

    features: torch.Tensor
    raw: torch.Tensor
    embeddings: torch.Tensor
    labels: torch.Tensor
    attributes: torch.Tensor
    attribute_names: list[str]
    groups: torch.Tensor | None = None
    extra_embeddings: torch.Tensor | None = None
    extra_labels: torch.Tensor | None = None
    extra_groups: torch.Tensor | None = None
    indices_tuple: Any = None
    cache: dict[str, Any] = field(default_factory=dict)

    def attribute(self, name: str) -> torch.Tensor:
        """The ``(N,)`` codes of attribute ``name``."""
        if name not in self.attribute_names:
            raise ValueError(
                f"unknown attribute {name!r}; the batch has {', '.join(self.attribute_names)}"
            )
        return self.attributes[:, self.attribute_names.index(name)]


class Term(nn.Module):
    """One weighted fairness term of an :class:`Objective`.

    Subclasses implement :meth:`forward`, returning a mapping ``{name: unweighted scalar}``; the
    objective adds ``weight × value`` of each entry to the total and logs every entry. A term may
    also return *diagnostics* (logged, not optimised) by naming them with a leading ``"@"``.

    To make a term configurable, declare its config dataclass as ``config_class``, build it in
    :meth:`from_config` and register it with
    :func:`~fairmetric.losses.registry.register_term` (see :mod:`fairmetric.losses.registry`).

    Args:
        weight: multiplier of the term's values in the total; ``>= 0``.
        lr: optional learning rate for this term's own parameters (``None``: the model's).
    """

    #: the typed config of ``objective.<name>`` (a dataclass whose defaults leave the term off)
    config_class: ClassVar[type | None] = None
    #: bench methods this term defines: ``{method name: config overrides}`` (``{attr}``: the
    #: dataset's sensitive attribute)
    bench_methods: ClassVar[dict[str, list[str]]] = {}

    @classmethod
    def from_config(cls, config: Any, context: Any) -> list[Term]:
        """The terms ``config`` (an instance of ``config_class``) asks for; empty when it is off.

        Args:
            config: the term's config section.
            context: an :class:`~fairmetric.losses.registry.ObjectiveContext`.
        """
        raise NotImplementedError(f"{cls.__name__} does not define from_config")

    @classmethod
    def needs_groups(cls, config: Any) -> bool:
        """Whether this config needs ``data.group_attribute`` (the training groups)."""
        return False

    def __init__(self, weight: float = 1.0, lr: float | None = None) -> None:
        super().__init__()
        if not math.isfinite(float(weight)) or weight < 0:
            raise ValueError(
                f"{type(self).__name__}: weight must be a finite number >= 0, got {weight}"
            )
        if lr is not None and not (math.isfinite(float(lr)) and lr > 0):
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr}")
        self.weight = float(weight)
        self.lr = lr

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def weight_of(self, name: str) -> float:
        """The weight of entry ``name`` in the total (``weight`` unless a term overrides it)."""
        return self.weight

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups for this term's parameters (``lr`` only when set)."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        return [{"params": params, **({"lr": self.lr} if self.lr is not None else {})}]

    def state_log(self) -> dict[str, Any]:
        """Extra per-epoch state to log (e.g. Group DRO's ``q``); empty by default."""
        return {}


class Objective(nn.Module):
    """The metric loss plus weighted :class:`Term`\\ s, with every part reported.

    Args:
        metric_loss: a PML loss (``BaseMetricLossFunction``), possibly with a group-aware reducer.
        miner: an optional PML miner run on the metric loss's batch.
        terms: the fairness terms.
    """

    def __init__(
        self,
        metric_loss: nn.Module,
        miner: nn.Module | None = None,
        terms: Iterable[Term] = (),
    ) -> None:
        super().__init__()
        self.metric_loss = metric_loss
        self.miner = miner
        self.terms = nn.ModuleList(terms)

    def metric(self, batch: Batch) -> torch.Tensor:
        """The metric loss on the batch (plus synthetic rows), groups handed to its reducers."""
        emb, labels, groups = batch.embeddings, batch.labels, batch.groups
        if batch.extra_embeddings is not None and len(batch.extra_embeddings):
            emb = torch.cat([emb, batch.extra_embeddings])
            labels = torch.cat([labels, batch.extra_labels])
            if groups is not None:
                extra = batch.extra_groups
                if extra is None:
                    raise ValueError("synthetic rows need groups when the batch has groups")
                groups = torch.cat([groups, extra])
        indices = self.miner(emb, labels) if self.miner is not None else None
        batch.indices_tuple = indices
        with batch_groups(self.metric_loss, groups):
            return self.metric_loss(emb, labels, indices)

    def forward(
        self, batch: Batch, *, sync: bool = True
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """``(total loss, {part: value})``; parts are ``metric`` and every term's entries.

        With ``sync=False`` the parts are detached 0-d tensors and no value is checked for being
        finite: nothing waits for the device, so a GPU training loop can accumulate the parts and
        check them every few steps (what the trainer does, see ``train.log_every``).
        """
        total = self.metric(batch)
        parts: dict[str, Any] = {"metric": total.detach()}
        for term in self.terms:
            for name, value in term(batch).items():
                diagnostic = name.startswith("@")
                key = name[1:] if diagnostic else name
                if key in parts:
                    raise ValueError(
                        f"two objective terms report {key!r}; give them distinct names"
                    )
                if diagnostic:
                    parts[key] = (
                        value.detach() if torch.is_tensor(value) else torch.tensor(float(value))
                    )
                    continue
                if sync and not torch.isfinite(value):
                    raise FloatingPointError(
                        f"objective term {key!r} is {float(value.detach())}; lower its weight or the "
                        "learning rate"
                    )
                parts[key] = value.detach()
                total = total + term.weight_of(key) * value
        if sync:
            parts = {k: float(v) for k, v in parts.items()}
        return total, parts

    def param_groups(self, default_lr: float, loss_lr: float | None = None) -> list[dict[str, Any]]:
        """Optimiser groups: the metric loss's own parameters (proxies) and every term's."""
        groups = []
        loss_params = [p for p in self.metric_loss.parameters() if p.requires_grad]
        if loss_params:
            groups.append({"params": loss_params, "lr": loss_lr or default_lr})
        for term in self.terms:
            for g in term.param_groups():
                groups.append({"lr": default_lr, **g})
        return groups

    def state_log(self) -> dict[str, Any]:
        """Per-epoch state of the terms and of the metric loss's reducers (e.g. Group DRO ``q``)."""
        out: dict[str, Any] = {}
        for module in self.modules():
            if module is self:
                continue
            fn = getattr(module, "state_log", None)
            if callable(fn) and not isinstance(module, Objective):
                out.update(fn())
        return out
