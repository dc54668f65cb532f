"""What a config builds before training starts: the data splits, the embedder, the training groups,
the batch sampler (from :data:`~fairmetric.sampling.SAMPLERS`) and the in-loop batch hooks (from
:data:`~fairmetric.train.hooks.HOOKS`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fairmetric.data.dataset import AttributeDataset
from fairmetric.data.registry import build_splits
from fairmetric.losses import REDUCERS, TERMS, Objective
from fairmetric.models.embedder import Embedder
from fairmetric.sampling import SAMPLERS, SamplerContext
from fairmetric.train.config import ExperimentConfig
from fairmetric.train.hooks import HOOKS, BatchHook, HookContext

__all__ = [
    "SAMPLING_MODES",
    "build_data",
    "build_epoch_sampler",
    "build_hooks",
    "build_model",
    "build_sampler",
    "group_users",
    "training_groups",
]

SAMPLING_MODES = ("over", "under")


def build_data(cfg: ExperimentConfig) -> dict[str, AttributeDataset]:
    """The splits an experiment config describes."""
    d = cfg.data
    return build_splits(
        d.name,
        root=d.root,
        image_size=d.image_size,
        split=d.split,
        test_fraction=d.test_fraction,
        imbalance=d.imbalance,
        seed=cfg.train.seed,
        params=d.params,
    )


def build_model(cfg: ExperimentConfig, input_size: tuple[int, ...]) -> Embedder:
    """The embedder an experiment config describes, for inputs of ``input_size``."""
    m = cfg.model
    return Embedder(
        backbone=m.backbone,
        embedding_dim=m.embedding_dim,
        normalize=m.normalize,
        input_size=input_size,
        pretrained_weights=m.pretrained_weights,
        backbone_kwargs=m.backbone_kwargs,
    )


def _wants_groups(plugin: type, config: object) -> bool:
    fn = getattr(plugin, "needs_groups", None)
    return bool(fn(config)) if callable(fn) else False


def group_users(cfg: ExperimentConfig) -> list[str]:
    """The config keys of every enabled plug-in that needs ``data.group_attribute``."""
    samp = cfg.sampling
    users = []
    if _wants_groups(SAMPLERS.get(samp.name), samp):
        users.append(f"sampling.name={samp.name}")
    if cfg.reducer.name is not None:
        plugin = REDUCERS.get(cfg.reducer.name)
        if _wants_groups(plugin, cfg.reducer.config()):
            users.append(getattr(plugin, "legacy_key", None) or f"reducer.name={cfg.reducer.name}")
    for kind, registry, section in (
        ("mitigation", HOOKS, cfg.mitigation),
        ("objective", TERMS, cfg.objective),
    ):
        for name in registry:
            config = getattr(section, name, None)
            if config is not None and _wants_groups(registry.get(name), config):
                users.append(f"{kind}.{name}")
    return users


def training_groups(cfg: ExperimentConfig, train_set: AttributeDataset) -> np.ndarray | None:
    """The group code of every training sample (``data.group_attribute``), checked against what
    the config needs; ``None`` when no enabled plug-in needs groups."""
    samp = cfg.sampling
    if samp.name not in SAMPLERS:
        raise ValueError(
            f"sampling.name must be one of {', '.join(SAMPLERS.names())}, got {samp.name!r}"
        )
    if samp.mode not in SAMPLING_MODES:
        raise ValueError(f"sampling.mode must be 'over' or 'under', got {samp.mode!r}")
    users = group_users(cfg)
    attr = cfg.data.group_attribute
    if attr is not None:  # a typo fails even while no plug-in uses the groups
        try:
            train_set.attribute_index(attr)
        except ValueError as e:
            raise ValueError(f"data.group_attribute: {e}") from None
    if not users:
        return None
    if attr is None:
        names = ", ".join(train_set.attribute_names) or "none"
        raise ValueError(
            f"{' and '.join(users)} needs the groups to balance: set data.group_attribute to one "
            f"of the dataset's attributes ({names})"
        )
    return train_set.attributes[:, train_set.attribute_index(attr)].astype(np.int64)


def build_sampler(
    cfg: ExperimentConfig,
    train_set: AttributeDataset,
    groups: np.ndarray | None,
    *,
    batch_size: int,
    num_batches: int | None,
    rank: int = 0,
    world_size: int = 1,
):
    """The batch sampler ``cfg.sampling`` names, drawing ``batch_size`` samples per batch."""
    context = SamplerContext(
        train_set=train_set,
        groups=groups,
        group_attribute=cfg.data.group_attribute if groups is not None else None,
        m=cfg.train.m_per_class,
        batch_size=batch_size,
        num_batches=num_batches,
        seed=cfg.train.seed,
        rank=rank,
        world_size=world_size,
    )
    return SAMPLERS.get(cfg.sampling.name).from_config(cfg.sampling, context)


def build_epoch_sampler(
    cfg: ExperimentConfig,
    train_set: AttributeDataset,
    groups: np.ndarray | None,
    *,
    hooks: list[BatchHook],
    rank: int = 0,
    world_size: int = 1,
):
    """The training run's sampler: :func:`build_sampler` at the batch size the hooks draw per
    step (hard mining: its candidates), with as many steps per epoch as without them."""
    tc = cfg.train
    sampler_batch = tc.batch_size
    for hook in hooks:
        sampler_batch = hook.sampler_batch_size(sampler_batch)

    def make(batches: int | None):
        return build_sampler(
            cfg,
            train_set,
            groups,
            batch_size=sampler_batch,
            num_batches=batches,
            rank=rank,
            world_size=world_size,
        )

    sampler = make(tc.batches_per_epoch)
    if sampler_batch != tc.batch_size and tc.batches_per_epoch is None:
        # as many steps per epoch as at train.batch_size: the extra samples are candidates
        counts = getattr(sampler, "group_counts", None)  # epoch_balanced: the resampled size
        total = int(np.sum(counts)) if counts is not None else len(train_set)
        sampler = make(max(1, total // tc.batch_size))
    return sampler


def build_hooks(
    cfg: ExperimentConfig,
    *,
    model: Embedder,
    objective: Objective,
    train_set: AttributeDataset,
    groups: np.ndarray | None,
    rank: int = 0,
    world_size: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, BatchHook]:
    """Every in-loop batch hook the ``mitigation`` section turns on, by name, in registration
    order (the order the trainer calls them)."""
    context = HookContext(
        model=model,
        objective=objective,
        train_set=train_set,
        groups=groups,
        batch_size=cfg.train.batch_size,
        seed=cfg.train.seed,
        rank=rank,
        world_size=world_size,
        precision=cfg.train.precision,
        normalize=cfg.model.normalize,
        log=log,
    )
    hooks = {}
    for name in HOOKS:
        config = getattr(cfg.mitigation, name, None)
        hook = HOOKS.get(name).from_config(config, context) if config is not None else None
        if hook is not None:
            hooks[name] = hook
    return hooks
