"""Typed experiment configuration: dataclasses, loaded from YAML, with ``key=value`` overrides.

The defaults are the coloured-digits baseline (``configs/colored_digits_baseline.yaml`` spells them
out). ``load_config("exp.yaml", ["train.epochs=3", "loss.params.margin=0.1"])`` reads a file and
applies overrides; an unknown key is an error that lists the valid keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fairmetric.losses.factories import LossConfig, MinerConfig
from fairmetric.losses.group_dro import GroupDROConfig
from fairmetric.losses.reducers import GroupWeightedConfig
from fairmetric.losses.terms import AdversaryConfig, ParadeConfig, SpectralConfig
from fairmetric.models.embedder import MAX_EMBEDDING_DIM, MAX_IMAGE_SIDE
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE
from fairmetric.train.config_schema import (
    REDUCER,
    SECTION,
    bounded,
    build,
    check_param_types,
    did_you_mean,
    mapping_keys,
    valid_keys,
)
from fairmetric.train.config_sections import (
    legacy_reducer_keys,
    mitigation_config_class,
    objective_config_class,
    reducer_config_class,
    translate_legacy,
)
from fairmetric.train.hooks import HardMiningConfig, SmoteConfig
from fairmetric.train.tensorboard import check_tensorboard_setting
from fairmetric.utils import atomic_write_bytes

#: ``mitigation.reweight`` is now ``reducer: {name: group_weighted, beta, base}``
ReweightConfig = GroupWeightedConfig


def __getattr__(name: str) -> Any:
    # the assembled sections, current with the registries (a term registered later is included)
    if name == "ObjectiveConfig":
        return objective_config_class()
    if name == "MitigationConfig":
        return mitigation_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "MinerConfig",
    "OptimConfig",
    "TrainConfig",
    "SamplingConfig",
    "ReweightConfig",
    "HardMiningConfig",
    "SmoteConfig",
    "ParadeConfig",
    "GroupDROConfig",
    "SpectralConfig",
    "AdversaryConfig",
    "ExperimentConfig",
    "mitigation_config_class",
    "objective_config_class",
    "reducer_config_class",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "save_config",
    "config_to_dict",
]


#: upper bounds checked at load time (a typo such as an extra zero would otherwise allocate
#: gigabytes before failing); image side and embedding size are the model's own bounds
MAX_BATCH = 2**20  # samples in a batch
MAX_COUNT = 10**7  # epochs, batches, Recall@k cut-offs


@dataclass
class DataConfig:
    """Which dataset, where it lies, and how it is split.

    ``params`` goes to the dataset builder (e.g. ``p_majority`` for coloured digits, ``attributes``
    for CelebA). ``imbalance`` subsamples the training split: ``{attribute, share, by,
    minority_value}`` (see :func:`fairmetric.data.imbalanced_subsample`). ``augment`` randomly
    crops (area share in ``augment_scale``) and flips the training split's images, seeded by
    the run's seed, the epoch and the sample (see :mod:`fairmetric.data.augment`); evaluation
    splits are never augmented.
    """

    name: str = "colored_digits"
    root: str | None = None
    image_size: int = bounded(32, ge=1, le=MAX_IMAGE_SIDE)
    split: str = "auto"
    test_fraction: float = bounded(0.5, ge=0, le=1)
    # empty by default: each dataset has its own parameters (coloured digits' defaults live with
    # its builder), so `data: {name: folder}` does not inherit another dataset's
    params: dict[str, Any] = field(default_factory=dict)
    imbalance: dict[str, Any] | None = None
    eval_attributes: list[str] | None = None
    group_attribute: str | None = None
    augment: bool = False
    augment_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])


@dataclass
class ModelConfig:
    """The :class:`~fairmetric.models.Embedder`."""

    backbone: str = "test_resnet"
    embedding_dim: int = bounded(64, ge=1, le=MAX_EMBEDDING_DIM)
    normalize: bool = True
    pretrained_weights: str | None = None
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Adam on the embedder (and on the loss's own parameters, e.g. proxies, at ``loss_lr``)."""

    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    loss_lr: float | None = bounded(None, gt=0)


@dataclass
class TrainConfig:
    """The training loop.

    ``batch_size`` is per process: with ``N`` processes (``torchrun --nproc_per_node=N`` or
    ``fairmetric train --nproc N``) a step trains on ``N × batch_size`` samples, and the metric
    loss, miners and fairness terms see all of them. ``batches_per_epoch`` counts batches of
    ``batch_size`` over all processes, so an epoch covers the same data whatever ``N``.

    Speed: ``precision`` (``fp32``, ``bf16``, or ``fp16`` with loss scaling) autocasts the
    model's forward pass (losses stay float32); ``channels_last`` uses the NHWC layout for image
    models; ``compile`` runs the backbone through ``torch.compile`` (``compile_mode``: its mode);
    ``num_workers`` / ``pin_memory`` (``null``: on with CUDA) / ``persistent_workers`` /
    ``prefetch_factor`` configure the DataLoader. ``checkpoint_every`` also checkpoints every so
    many steps inside an epoch (a resumed run continues from that step exactly).
    ``sync_batchnorm`` synchronises BatchNorm statistics across GPUs in distributed training.
    ``backend``: ``auto`` (NCCL on GPUs, Gloo on CPUs), ``nccl`` or ``gloo``. ``log_every``:
    steps between progress-bar updates and checks that the loss is finite.
    ``min_group_size``: in each epoch's evaluation (``metrics.jsonl``), groups with fewer test
    samples keep their value but are left out of the gaps, as in ``fairmetric audit``.
    ``tensorboard``: also write each epoch's numbers to ``RUN/tensorboard/`` — ``auto`` when
    TensorBoard is installed, ``true`` (an error when it is not), ``false`` (see
    :mod:`fairmetric.train.tensorboard`).
    """

    epochs: int = bounded(8, ge=1, le=MAX_COUNT)
    batch_size: int = bounded(40, ge=1, le=MAX_BATCH)
    m_per_class: int = bounded(8, ge=1, le=MAX_BATCH)
    batches_per_epoch: int | None = bounded(None, ge=1, le=MAX_COUNT)
    seed: int = bounded(0, ge=0, le=2**63 - 1)
    device: str = "auto"
    num_workers: int = bounded(0, ge=0, le=1024)
    eval_batch_size: int = bounded(256, ge=1, le=MAX_BATCH)
    recall_k: list[int] = bounded(default_factory=lambda: [1], ge=1, le=MAX_COUNT)
    min_group_size: int = bounded(DEFAULT_MIN_GROUP_SIZE, ge=1, le=MAX_COUNT)
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str | None = None
    pin_memory: bool | None = None
    persistent_workers: bool = True
    prefetch_factor: int | None = bounded(None, ge=1, le=1024)
    checkpoint_every: int | None = bounded(None, ge=1)
    sync_batchnorm: bool = True
    backend: str = "auto"
    log_every: int = bounded(20, ge=1)
    tensorboard: bool | str = "auto"


@dataclass
class SamplingConfig:
    """How training batches are composed (all keep ``train.m_per_class`` samples per class).

    ``name``: ``m_per_class`` (plain), ``epoch_balanced`` (each epoch over- or under-samples the
    groups of ``data.group_attribute`` to ``proportions``; ``mode: over|under``) or
    ``batch_balanced`` (every batch holds the groups at ``proportions``). ``proportions`` maps group
    value names to shares (``{light: 0.5, dark: 0.5}``); ``null`` means uniform.
    """

    name: str = "m_per_class"
    proportions: dict[str, float] | None = None
    mode: str = "over"


@dataclass
class ExperimentConfig:
    """One experiment: data, model, objective, optimiser and loop.

    ``mitigation`` (in-loop batch hooks), ``objective`` (fairness terms) and ``reducer`` (the
    metric loss's reducer) are assembled from the plug-in registries, see
    :func:`mitigation_config_class`, :func:`objective_config_class` and
    :func:`reducer_config_class`.
    """

    name: str = "colored_digits_baseline"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    miner: MinerConfig = field(default_factory=MinerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    mitigation: Any = field(
        default_factory=lambda: mitigation_config_class()(),
        metadata={SECTION: mitigation_config_class},
    )
    objective: Any = field(
        default_factory=lambda: objective_config_class()(),
        metadata={SECTION: objective_config_class},
    )
    reducer: Any = field(
        default_factory=lambda: reducer_config_class(None)(), metadata={SECTION: REDUCER}
    )


# -- construction from plain dicts ---------------------------------------------------------------


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from nested dicts, validating keys and types.

    Missing sections and keys take their defaults; for ``params`` mappings a given mapping replaces
    the default one as a whole (so a new loss does not inherit the old loss's arguments). Older
    reducer sections (``mitigation.reweight``, ``objective.group_dro``) are translated into
    ``reducer`` first (see :func:`~fairmetric.train.config_sections.translate_legacy`).
    """
    data = translate_legacy(data or {})
    cfg = build(ExperimentConfig, data, "", ExperimentConfig)
    _check_pml_params(cfg)
    check_tensorboard_setting(cfg.train.tensorboard)
    low_high = cfg.data.augment_scale
    if len(low_high) != 2 or not 0 < low_high[0] <= low_high[1] <= 1:
        raise ValueError(
            f"data.augment_scale must be [low, high] with 0 < low <= high <= 1 (the crop's share "
            f"of the image area), got {low_high}"
        )
    return cfg


def _check_pml_params(cfg: ExperimentConfig) -> None:
    """``loss.params`` and ``miner.params`` values of the right kind for the PML class named."""
    import pytorch_metric_learning.losses as pml_losses
    import pytorch_metric_learning.miners as pml_miners

    for key, section, module in (("loss", cfg.loss, pml_losses), ("miner", cfg.miner, pml_miners)):
        cls = getattr(module, section.name, None) if isinstance(section.name, str) else None
        if isinstance(cls, type):
            check_param_types(section.params, cls.__init__, f"{key}.params")


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Nested plain-dict form of a config (what is written to the run folder)."""
    return dataclasses.asdict(cfg)


def _set_path(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ValueError(f"override {key!r}: {p!r} is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (values parsed as YAML) to a nested config dict.

    Keys are dotted paths (``train.epochs=3``); inside a ``params`` mapping any sub-key is
    allowed (``loss.params.margin=0.1``). Validation happens in :func:`config_from_dict`.
    """
    import copy

    data = copy.deepcopy(data)
    valid = valid_keys(ExperimentConfig)
    parsed = [_parse_override(item, valid) for item in overrides]
    # switching to another loss, miner or reducer drops the old one's params (explicit params
    # still apply)
    for key, value in parsed:
        if key == "reducer.name":
            node = data.get("reducer")
            if not isinstance(node, dict) or node.get("name") != value:
                data["reducer"] = {}
        if key.endswith(("loss.name", "miner.name")) and key.count(".") <= 3:
            node = data
            for part in key.split(".")[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict) and node.get("name") != value:
                node["params"] = {}
    for key, value in parsed:
        _set_path(data, key, value)
    return data


def check_acyclic(value: Any, where: str) -> Any:
    """``value`` unchanged, or a ``ValueError`` when it contains itself: YAML anchors and aliases
    can build recursive lists and mappings (``&a [*a]``), which no config value can be."""
    stack: set[int] = set()

    def walk(v: Any) -> None:
        if not isinstance(v, (dict, list)):
            return
        if id(v) in stack:
            raise ValueError(
                f"{where}: a YAML alias refers to the value that contains it (a recursive "
                "structure); write the value out without anchors (&) and aliases (*)"
            )
        stack.add(id(v))
        for item in v.values() if isinstance(v, dict) else v:
            walk(item)
        stack.discard(id(v))

    walk(value)
    return value


def _parse_override(item: str, valid: list[str]) -> tuple[str, Any]:
    """Split ``key=value``, check the key, parse the value as YAML."""
    if "=" not in item:
        raise ValueError(f"override {item!r} is not of the form key=value (e.g. train.epochs=3)")
    key, raw = item.split("=", 1)
    key = key.strip()
    free_prefixes = tuple(f"{k}." for k in mapping_keys(ExperimentConfig))
    if key not in valid and key not in legacy_reducer_keys() and not key.startswith(free_prefixes):
        raise ValueError(
            f"unknown config key {key!r}{did_you_mean(key, valid)}; valid keys are: "
            + ", ".join(valid)
        )
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as e:
        raise ValueError(f"override {item!r}: cannot parse the value ({e})") from None
    return key, check_acyclic(value, f"override {item!r}")


#: the configs that ship with the package (``fairmetric/configs``; ``configs/`` in a checkout)
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the shipped configs, usable as ``--config NAME`` (``colored_digits_baseline``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """``path`` when it is a file, else the shipped config of that name (with or without
    ``.yaml``, with or without a leading ``configs/``), so shipped configs work from an
    installed wheel and from any folder."""
    path = Path(path)
    if path.is_file():
        return path
    name = path.name if path.parent.name == "configs" or path.parent == Path() else None
    if name is not None:
        shipped = CONFIG_DIR / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
        if shipped.is_file():
            return shipped
    raise FileNotFoundError(
        f"config file not found: {path}; give a YAML file or the name of a shipped config: "
        f"{', '.join(shipped_configs())}"
    )


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Read a YAML config (or start from the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not valid YAML: {e}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not a UTF-8 text (YAML) config file") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"{path} must hold a mapping of config sections, got {type(data).__name__}"
            )
        check_acyclic(data, str(path))
    # resolve defaults first so that an override of one ``params`` entry keeps the others
    resolved = config_to_dict(config_from_dict(data))
    return config_from_dict(apply_overrides(resolved, overrides or []))


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    return atomic_write_bytes(path, text.encode())
