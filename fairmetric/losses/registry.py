"""The objective's plug-in registries: fairness terms and the metric loss's reducers.

A **fairness term** is a :class:`~fairmetric.losses.objective.Term` subclass registered under the
name of its config section, ``objective.<name>``. It declares its typed config dataclass
(``config_class``, every field with a default that means *off*) and how terms are built from it
(``from_config(config, context)``: a list, empty when the config leaves it off)::

    @dataclass
    class CentroidConfig:
        attribute: str | None = None
        weight: float = 1.0

    @register_term("centroid")
    class CentroidTerm(Term):
        config_class = CentroidConfig
        bench_methods = {"centroid": ["objective.centroid.attribute={attr}"]}

        @classmethod
        def from_config(cls, config, context):
            if config.attribute is None:
                return []
            context.check_attribute(config.attribute, "objective.centroid.attribute")
            return [cls(config.attribute, weight=config.weight)]

That is all: ``objective.centroid.attribute=colour`` now configures it, the trainer builds it,
its values are logged under ``terms``, and the bench can run it as the method ``centroid``.

A **reducer** replaces the metric loss's PML reducer (only one can). It is registered under the
value of ``reducer.name`` and declares ``config_class`` (its parameters, the other keys of the
``reducer`` section), ``from_config(config, context)`` (returning the reducer) and optionally
``install(loss_fn, reducer)``, ``legacy_key`` (an older config section that still switches it on,
``{enabled: true, ...params}``) and ``bench_methods``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch.nn as nn

from fairmetric.data.dataset import AttributeDataset
from fairmetric.registry import Registry

__all__ = ["TERMS", "REDUCERS", "ObjectiveContext", "register_term", "register_reducer"]

#: ``objective.<name>`` → :class:`~fairmetric.losses.objective.Term` subclass
TERMS: Registry[type] = Registry("fairness term")
#: ``reducer.name`` → group-aware PML reducer class
REDUCERS: Registry[type] = Registry("reducer")


def register_term(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Class decorator: register a :class:`~fairmetric.losses.objective.Term` as
    ``objective.<name>`` (its ``config_class`` becomes that config section)."""

    def add(cls: type) -> type:
        _check_plugin(cls, "fairness term", name)
        return TERMS.register(name, cls, replace=replace)

    return add


def register_reducer(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Class decorator: register a reducer as ``reducer.name=<name>``."""

    def add(cls: type) -> type:
        _check_plugin(cls, "reducer", name)
        return REDUCERS.register(name, cls, replace=replace)

    return add


def _check_plugin(cls: type, kind: str, name: str) -> None:
    import dataclasses

    config = getattr(cls, "config_class", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise TypeError(
            f"{kind} {name!r} ({cls.__name__}) must declare config_class, a dataclass whose "
            "fields (all with defaults) are its config keys"
        )
    missing = [
        f.name
        for f in dataclasses.fields(config)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise TypeError(f"{kind} {name!r}: config field(s) {missing} need a default")
    if not callable(getattr(cls, "from_config", None)):
        raise TypeError(f"{kind} {name!r} ({cls.__name__}) must define from_config")


@dataclass
class ObjectiveContext:
    """What a term or reducer may use to build itself from its config.

    Attributes:
        train_set: the training split (attribute names and values, labels).
        embedding_dim: width of the target embedding ``e``.
        normalize: whether embeddings are L2-normalised.
        feature_dim: width of the backbone features ``h`` (terms only; ``None`` for reducers).
        metric_loss: the PML metric loss (terms: with its reducer installed).
        groups: group code of every training sample (``data.group_attribute``), or ``None``.
        group_attribute: the name of that attribute, or ``None``.
        num_classes: number of training classes.
        log: where to report what was built (one line each).
    """

    train_set: AttributeDataset
    embedding_dim: int
    normalize: bool = True
    feature_dim: int | None = None
    metric_loss: nn.Module | None = None
    groups: np.ndarray | None = None
    group_attribute: str | None = None
    num_classes: int | None = None
    log: Callable[[str], None] = field(default=print, repr=False)

    def check_attribute(self, attribute: str, key: str) -> int:
        """The number of values of ``attribute``; a ``ValueError`` naming ``key`` when the
        dataset has no such attribute."""
        ds = self.train_set
        if attribute not in ds.attribute_names:
            have = ", ".join(ds.attribute_names) or "none"
            raise ValueError(
                f"{key} names {attribute!r}, which dataset {ds.name} does not have; its "
                f"attributes are: {have}"
            )
        return len(ds.attribute_value_names[attribute])

    def require_groups(self, key: str) -> np.ndarray:
        """The training groups; a ``ValueError`` naming ``key`` when none are configured."""
        if self.groups is None or self.group_attribute is None:
            names = ", ".join(self.train_set.attribute_names) or "none"
            raise ValueError(
                f"{key} needs the groups: set data.group_attribute to one of the dataset's "
                f"attributes ({names})"
            )
        return self.groups

    def group_names(self) -> list[str]:
        """The value names of ``group_attribute``."""
        return list(self.train_set.attribute_value_names[self.group_attribute])
