"""The batch-sampler registry: ``sampling.name`` → sampler class.

A sampler plug-in is a batch sampler class (``DataLoader(dataset, batch_sampler=...)``; subclass
:class:`~fairmetric.sampling.m_per_class.ShardedBatchSampler` for ``set_epoch``, resumption and
distributed sharding) registered with :func:`register_sampler`, that declares how it is built from
the ``sampling`` config section::

    @register_sampler("round_robin")
    class RoundRobinSampler(ShardedBatchSampler):
        bench_methods = {"round_robin": ["sampling.name=round_robin"]}

        @classmethod
        def from_config(cls, config, context):
            return cls(context.labels, **context.common())

``needs_groups(config)`` (optional) says whether it needs ``data.group_attribute``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairmetric.data.dataset import AttributeDataset
from fairmetric.registry import Registry

__all__ = ["SAMPLERS", "SamplerContext", "register_sampler"]

#: ``sampling.name`` → batch sampler class
SAMPLERS: Registry[type] = Registry("batch sampler")


def register_sampler(name: str, *, replace: bool = False) -> Callable[[type], type]:
    """Class decorator: register a batch sampler as ``sampling.name=<name>``."""

    def add(cls: type) -> type:
        if not callable(getattr(cls, "from_config", None)):
            raise TypeError(f"batch sampler {name!r} ({cls.__name__}) must define from_config")
        return SAMPLERS.register(name, cls, replace=replace)

    return add


@dataclass
class SamplerContext:
    """What a sampler may use to build itself.

    Attributes:
        train_set: the training split.
        groups: group code of every training sample (``data.group_attribute``), or ``None``.
        group_attribute: the name of that attribute, or ``None``.
        m: samples per class in a batch (``train.m_per_class``).
        batch_size: samples per batch the sampler must draw.
        num_batches: batches per epoch (``None``: the sampler's natural epoch).
        seed: ``train.seed``.
        rank / world_size: this process and the number of processes.
    """

    train_set: AttributeDataset
    groups: np.ndarray | None
    group_attribute: str | None
    m: int
    batch_size: int
    num_batches: int | None
    seed: int
    rank: int = 0
    world_size: int = 1

    @property
    def labels(self) -> np.ndarray:
        return self.train_set.labels

    def common(self) -> dict[str, Any]:
        """The keyword arguments every sharded sampler takes."""
        return dict(
            m=self.m,
            batch_size=self.batch_size,
            num_batches=self.num_batches,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
        )

    def proportions(self, shares: dict[str, float] | None, key: str) -> dict[int, float] | None:
        """``{group value name: share}`` as ``{group code: share}``; a ``ValueError`` naming
        ``key`` for a name that is not a value of the group attribute."""
        if shares is None:
            return None
        attr = self.group_attribute
        names = self.train_set.attribute_value_names[attr]
        out = {}
        for name, share in shares.items():
            if str(name) not in names:
                raise ValueError(
                    f"{key} names {name!r}, which is not a value of {attr!r}; its values are "
                    f"{', '.join(names)}"
                )
            out[names.index(str(name))] = float(share)
        return out
