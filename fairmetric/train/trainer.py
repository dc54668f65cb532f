"""The training loop: any PML loss and miner, m-per-class batches, per-group evaluation each epoch.

``train(cfg, out_dir)`` writes into ``out_dir``:

- ``config.yaml`` — the resolved config;
- ``checkpoint.pt`` — model, objective, optimiser, sampler position and RNG state after each epoch
  (and every ``train.checkpoint_every`` steps), written atomically; ``--resume`` continues exactly;
- ``metrics.jsonl`` — one line per evaluation (epoch 0 is the untrained model), with the training
  throughput of each epoch;
- ``model/`` — the exported embedder (``model.safetensors`` + ``config.json``) after the last epoch.

Launched by ``torchrun`` (``WORLD_SIZE > 1``) the same function trains with DistributedDataParallel
(see :mod:`fairmetric.train.distributed`): every process takes its share of the sampler's batches,
the objective sees the combined batch, every process embeds a shard of the test split for the
per-epoch evaluation, and rank 0 scores it and alone writes the run folder.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fairmetric.data.dataset import AttributeDataset
from fairmetric.data.registry import build_splits
from fairmetric.losses import (
    Batch,
    GroupDROReducer,
    Objective,
    check_sample_indexed,
    per_sample_losses,
)
from fairmetric.models.embed import dataset_embeddings, embed_dataset, inference_settings
from fairmetric.models.embedder import Embedder, save_embedder
from fairmetric.sampling import (
    EpochBalancedBatchSampler,
    GroupQuotaBatchSampler,
    HardExampleSelector,
    MPerClassBatchSampler,
    smote_batch,
)
from fairmetric.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from fairmetric.train.config import (
    ExperimentConfig,
    SmoteConfig,
    config_from_dict,
    config_to_dict,
    save_config,
)
from fairmetric.train.distributed import DistributedContext, gather_batch, init_distributed
from fairmetric.train.evaluate import recall_by_group
from fairmetric.train.objectives import build_objective, build_training_loss
from fairmetric.utils import (
    atomic_write_bytes,
    autocast,
    check_precision,
    resolve_device,
    seed_everything,
)

__all__ = [
    "train",
    "build_data",
    "build_model",
    "build_sampler",
    "build_training_loss",
    "forward_batch",
    "TrainStep",
    "training_groups",
    "evaluate_model",
]

MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"


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


SAMPLERS = ("m_per_class", "epoch_balanced", "batch_balanced")


def training_groups(cfg: ExperimentConfig, train_set: AttributeDataset) -> np.ndarray | None:
    """The group code of every training sample (``data.group_attribute``), checked against what
    the mitigation config needs; ``None`` when nothing group-aware is enabled."""
    mit, samp = cfg.mitigation, cfg.sampling
    if samp.name not in SAMPLERS:
        raise ValueError(f"sampling.name must be one of {', '.join(SAMPLERS)}, got {samp.name!r}")
    if samp.mode not in ("over", "under"):
        raise ValueError(f"sampling.mode must be 'over' or 'under', got {samp.mode!r}")
    users = []
    if samp.name != "m_per_class":
        users.append(f"sampling.name={samp.name}")
    if mit.reweight.enabled:
        users.append("mitigation.reweight")
    if cfg.objective.group_dro.enabled:
        users.append("objective.group_dro")
    if mit.smote.enabled and mit.smote.group_by != "class":
        users.append(f"mitigation.smote (group_by={mit.smote.group_by})")
    attr = cfg.data.group_attribute
    if not users:
        return None
    if attr is None:
        names = ", ".join(train_set.attribute_names) or "none"
        raise ValueError(
            f"{' and '.join(users)} needs the groups to balance: set data.group_attribute to one "
            f"of the dataset's attributes ({names})"
        )
    return train_set.attributes[:, train_set.attribute_index(attr)].astype(np.int64)


def _proportions(cfg: ExperimentConfig, train_set: AttributeDataset) -> dict[int, float] | None:
    props = cfg.sampling.proportions
    if props is None:
        return None
    attr = cfg.data.group_attribute
    names = train_set.attribute_value_names[attr]
    out = {}
    for key, share in props.items():
        if str(key) in names:
            out[names.index(str(key))] = float(share)
        else:
            raise ValueError(
                f"sampling.proportions names {key!r}, which is not a value of {attr!r}; "
                f"its values are {', '.join(names)}"
            )
    return out


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
    """The batch sampler ``cfg.sampling`` describes, drawing ``batch_size`` samples per batch."""
    tc, samp = cfg.train, cfg.sampling
    common = dict(
        m=tc.m_per_class,
        batch_size=batch_size,
        num_batches=num_batches,
        seed=tc.seed,
        rank=rank,
        world_size=world_size,
    )
    if samp.name == "m_per_class":
        return MPerClassBatchSampler(train_set.labels, **common)
    if samp.name == "epoch_balanced":
        return EpochBalancedBatchSampler(
            train_set.labels,
            groups,
            target=_proportions(cfg, train_set),
            mode=samp.mode,
            **common,
        )
    return GroupQuotaBatchSampler(
        train_set.labels, groups, proportions=_proportions(cfg, train_set), **common
    )


def forward_batch(
    model: Embedder,
    x: torch.Tensor,
    labels: torch.Tensor,
    attributes: torch.Tensor,
    attribute_names: list[str],
    groups: torch.Tensor | None,
    *,
    precision: str = "fp32",
) -> Batch:
    """Run the embedder on a batch, keeping the features and raw embedding the terms need.

    The backbone and head run under autocast at ``precision``; what the objective sees is float32.
    """
    with autocast(x.device, precision):
        h = model.features(x)
        raw = model.project(h)
    h, raw = h.float(), raw.float()
    return Batch(
        features=h,
        raw=raw,
        embeddings=model.finalize(raw),
        labels=labels,
        attributes=attributes,
        attribute_names=attribute_names,
        groups=groups,
    )


class TrainStep(nn.Module):
    """The forward pass of one training step, as one module (what DDP wraps).

    Embeds this process's batch (:func:`forward_batch`), gathers the combined batch of all
    processes (:func:`~fairmetric.train.distributed.gather_batch`; a no-op in one process), adds
    SMOTE's synthetic rows when enabled, and returns the objective's ``(loss, parts)`` with the
    parts as detached tensors, plus the number of synthetic rows.
    """

    def __init__(
        self,
        model: Embedder,
        objective: Objective,
        *,
        attribute_names: list[str],
        ctx: DistributedContext | None = None,
        precision: str = "fp32",
        smote: SmoteConfig | None = None,
        smote_generator: torch.Generator | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.attribute_names = attribute_names
        self.ctx = ctx or DistributedContext()
        self.precision = precision
        self.smote = smote if smote is not None and smote.enabled else None
        self.smote_generator = smote_generator
        self.normalize = normalize

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        attributes: torch.Tensor,
        groups: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        batch = forward_batch(
            self.model,
            x,
            labels,
            attributes,
            self.attribute_names,
            groups,
            precision=self.precision,
        )
        batch = gather_batch(batch, self.ctx, features=len(self.objective.terms) > 0)
        synthetic = 0
        sm = self.smote
        if sm is not None:
            g = batch.groups
            s_emb, s_y, s_g = smote_batch(
                batch.embeddings,
                batch.labels,
                g if sm.group_by == "class_attribute" else None,
                k_neighbors=sm.k_neighbors,
                group_by=sm.group_by,
                ratio_mode=sm.ratio_mode,
                target=sm.target,
                generator=self.smote_generator,
                normalize=self.normalize,
            )
            synthetic = len(s_emb)
            batch.extra_embeddings, batch.extra_labels = s_emb, s_y
            if g is not None:
                batch.extra_groups = s_g if s_g is not None else g.new_zeros(len(s_emb))
        loss, parts = self.objective(batch, sync=False)
        return loss, parts, synthetic


def evaluate_model(
    model: torch.nn.Module,
    dataset: AttributeDataset,
    *,
    ks: list[int],
    attributes: list[str] | None,
    device: torch.device,
    batch_size: int = 256,
    progress: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Exact Recall@k of ``model`` on ``dataset``, overall and per attribute value.

    ``settings`` are :func:`~fairmetric.models.embed.embed_dataset`'s speed settings
    (``precision``, ``channels_last``, ``num_workers``, ...); the trainer passes its own.
    """
    emb = embed_dataset(
        model, dataset, batch_size=batch_size, device=device, progress=progress, **settings
    )
    return recall_by_group(emb, ks, attributes)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    s = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            s["keys"].numpy().astype(np.uint32),
            s["pos"],
            s["has_gauss"],
            s["cached_gaussian"],
        )
    )
    random.setstate(state["python"])


_RUNTIME_KEYS = frozenset(
    {
        "train.epochs",
        "train.device",
        "train.num_workers",
        "train.pin_memory",
        "train.persistent_workers",
        "train.prefetch_factor",
        "train.checkpoint_every",
        "train.log_every",
        "train.eval_batch_size",
        "train.compile",
        "train.compile_mode",
        "train.backend",
        "train.precision",
        "train.channels_last",
        "train.sync_batchnorm",
    }
)
"""Config keys a resumed run may change: how it runs, not what it trains."""


def _config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key != "params":
            diffs += _config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            diffs.append(f"{prefix}{key}")
    return diffs


def _summary_line(record: dict[str, Any], k: int) -> str:
    r = record["metrics"].get(f"recall@{k}", {})
    parts = [f"epoch {record['epoch']}"]
    if record.get("loss") is not None:
        parts.append(f"loss {record['loss']:.4f}")
    if r.get("overall") is not None:
        parts.append(f"R@{k} {r['overall']:.3f}")
    for attr, gap in (r.get("gap") or {}).items():
        if gap is not None:
            parts.append(f"{attr} gap {gap:.3f}")
    return " | ".join(parts)


class _EpochTotals:
    """Per-epoch sums of the loss and its parts, kept on the device (no per-step host sync)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.loss: Any = float(state.get("loss", 0.0))
        self.parts: dict[str, Any] = dict(state.get("parts", {}))
        self.steps = int(state.get("steps", 0))
        self.synthetic = int(state.get("synthetic", 0))
        self.images = int(state.get("images", 0))
        self.seconds = float(state.get("seconds", 0.0))

    def add(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], synthetic: int, n: int):
        self.loss = self.loss + loss.detach()
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0.0) + value
        self.steps += 1
        self.synthetic += int(synthetic)
        self.images += int(n)

    def check_finite(self) -> None:
        """Raise when the loss or a term went NaN/inf since the epoch began (one host sync)."""
        if math.isfinite(float(self.loss)):
            return
        bad = [k for k, v in self.parts.items() if not math.isfinite(float(v))]
        raise FloatingPointError(
            f"the training loss became {float(self.loss)} (non-finite term: "
            f"{', '.join(bad) or 'total'}); lower the learning rate or that term's weight, or "
            "train in fp32 (train.precision=fp32)"
        )

    def mean_loss(self) -> float:
        return float(self.loss) / max(self.steps, 1)

    def state(self) -> dict[str, Any]:
        return {
            "loss": float(self.loss),
            "parts": {k: float(v) for k, v in self.parts.items()},
            "steps": self.steps,
            "synthetic": self.synthetic,
            "images": self.images,
            "seconds": self.seconds,
        }


def _check_runtime(tc: Any) -> None:
    check_precision(tc.precision)
    if tc.num_workers < 0:
        raise ValueError(f"train.num_workers must be >= 0, got {tc.num_workers}")
    for key in ("checkpoint_every", "prefetch_factor"):
        value = getattr(tc, key)
        if value is not None and value < 1:
            raise ValueError(f"train.{key} must be >= 1 or null, got {value}")
    if tc.log_every < 1:
        raise ValueError(f"train.log_every must be >= 1, got {tc.log_every}")
    if tc.prefetch_factor is not None and tc.num_workers == 0:
        raise ValueError("train.prefetch_factor needs train.num_workers > 0 (or set it to null)")


def _generator_state(gen: torch.Generator | None) -> torch.Tensor | None:
    return gen.get_state() if gen is not None else None


def train(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train an embedder as ``cfg`` describes, writing the run into ``out_dir``.

    Args:
        cfg: the experiment.
        out_dir: run folder (created). If it already holds a checkpoint, ``resume=True`` continues
            from it; otherwise an error protects the earlier run. In distributed training all
            processes must see the same folder (a shared file system across nodes).
        resume: continue from ``out_dir/checkpoint.pt``, at the epoch and step it was written.
            The config must match the checkpoint's, except for keys that only change how the run
            executes (``train.epochs``, ``train.precision``, workers, ...). The number of processes
            may differ.
        progress: show progress bars (on a terminal; off when output is redirected).
        log: where per-epoch summary lines go (rank 0 only).

    Returns:
        ``{"history": [...], "final": {...}, "model_dir": str}``.
    """
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_FILE
    tc = cfg.train
    if tc.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1, got {tc.epochs}")
    _check_runtime(tc)
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(
                f"--resume given but {ckpt_path} does not exist; drop --resume to start a new run"
            )
        state = load_checkpoint(ckpt_path)
        saved = config_to_dict(config_from_dict(state["config"]))  # fills keys added since
        diffs = [
            d for d in _config_differences(saved, config_to_dict(cfg)) if d not in _RUNTIME_KEYS
        ]
        if diffs:
            raise ValueError(
                f"cannot resume {out}: the config differs from the checkpoint's in "
                f"{', '.join(diffs)}; use the run's own config ({out / 'config.yaml'})"
            )
    elif ckpt_path.exists():
        raise FileExistsError(
            f"{out} already holds a training run ({ckpt_path.name}); pass --resume to continue it "
            "or choose another --out"
        )

    ctx = init_distributed(resolve_device(tc.device), tc.backend)
    try:
        return _train(cfg, out, state, ctx, progress=progress, log=log)
    finally:
        ctx.close()


def _train(
    cfg: ExperimentConfig,
    out: Path,
    state: dict[str, Any] | None,
    ctx: DistributedContext,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    tc = cfg.train
    ckpt_path = out / CHECKPOINT_FILE
    main = ctx.is_main
    if not main:
        progress = False
        log = lambda _msg: None  # noqa: E731 - only rank 0 reports
    device = ctx.device
    check_precision(tc.precision, device)
    if device.type == "cpu" and tc.precision != "fp32":
        log(
            f"note: train.precision={tc.precision} on CPU is only fast on CPUs with native "
            f"{tc.precision} arithmetic (e.g. AMX); elsewhere it is emulated and slower than fp32"
        )
    seed_everything(tc.seed)  # the same initial weights on every rank
    splits = build_data(cfg)
    train_set, test_set = splits["train"], splits["test"]
    eval_attributes = cfg.data.eval_attributes
    for a in eval_attributes or []:
        test_set.attribute_index(a)  # clear error for an unknown attribute
    input_size = tuple(getattr(train_set, "input_shape", ()))
    if not input_size:
        raise ValueError(f"dataset {train_set.name} does not expose input_shape")

    model = build_model(cfg, input_size).to(device)
    images = len(input_size) == 3
    memory_format = torch.channels_last if tc.channels_last and images else None
    if memory_format is not None:
        model = model.to(memory_format=memory_format)
    if ctx.enabled and tc.sync_batchnorm and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    classes = np.unique(train_set.labels)
    lut = torch.full((int(train_set.labels.max()) + 1,), -1, dtype=torch.long)
    lut[torch.from_numpy(classes)] = torch.arange(len(classes))
    groups_np = training_groups(cfg, train_set)
    loss_fn = build_training_loss(cfg, train_set, groups_np, num_classes=len(classes), log=log)
    objective = build_objective(cfg, train_set, loss_fn, feature_dim=model.feature_dim).to(device)
    miner = objective.miner
    dro = [m for m in objective.modules() if isinstance(m, GroupDROReducer)]
    mit = cfg.mitigation
    hm = mit.hard_mining
    selector = None
    sampler_batch = tc.batch_size
    num_batches = tc.batches_per_epoch
    if hm.candidates_per_batch is not None:
        check_sample_indexed(loss_fn, "mitigation.hard_mining")
        selector = HardExampleSelector(
            hm.candidates_per_batch,
            tc.batch_size,
            selection=hm.selection,
            tau=hm.tau,
            seed=tc.seed + 7919 * ctx.rank,  # ranks draw independently; rank 0 as in one process
        )
        sampler_batch = hm.candidates_per_batch
    sm = mit.smote
    if sm.enabled and sm.group_by not in ("class", "class_attribute"):
        raise ValueError(
            f"mitigation.smote.group_by must be class or class_attribute in training (synthetic "
            f"embeddings need a class label), got {sm.group_by!r}"
        )
    smote_gen = torch.Generator()  # the same on every rank: SMOTE runs on the combined batch
    param_groups = [{"params": list(model.parameters()), "lr": cfg.optim.lr}]
    param_groups += objective.param_groups(cfg.optim.lr, cfg.optim.loss_lr)
    optimizer = torch.optim.Adam(param_groups, weight_decay=cfg.optim.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
    attribute_names = list(train_set.attribute_names)

    def make_sampler(batches: int | None):
        return build_sampler(
            cfg,
            train_set,
            groups_np,
            batch_size=sampler_batch,
            num_batches=batches,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )

    sampler = make_sampler(num_batches)
    if selector is not None and num_batches is None:
        # as many steps per epoch as without mining: the candidates are extra samples per step
        counts = getattr(sampler, "group_counts", None)  # epoch_balanced: the resampled size
        total = int(np.sum(counts)) if counts is not None else len(train_set)
        sampler = make_sampler(max(1, total // tc.batch_size))
    group_col = (
        train_set.attribute_index(cfg.data.group_attribute) if groups_np is not None else None
    )
    workers = tc.num_workers
    loader = DataLoader(
        train_set,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda" if tc.pin_memory is None else tc.pin_memory,
        persistent_workers=tc.persistent_workers and workers > 0,
        **({"prefetch_factor": tc.prefetch_factor} if tc.prefetch_factor else {}),
    )
    step_module = TrainStep(
        model,
        objective,
        attribute_names=attribute_names,
        ctx=ctx,
        precision=tc.precision,
        smote=sm,
        smote_generator=smote_gen,
        normalize=cfg.model.normalize,
    )
    if tc.compile:
        model.backbone.compile(**({"mode": tc.compile_mode} if tc.compile_mode else {}))
    runner: nn.Module = step_module
    if ctx.enabled:
        runner = DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None
        )

    def evaluate() -> dict[str, Any]:
        settings = dict(batch_size=tc.eval_batch_size, device=device, **inference_settings(tc))
        if not ctx.enabled or len(test_set) < ctx.world_size:
            if not main:
                return {}
            return evaluate_model(
                model, test_set, ks=tc.recall_k, attributes=eval_attributes, **settings
            )
        # every rank embeds a shard with rank 0's weights and buffers; rank 0 scores them all
        ctx.broadcast_buffers(model)
        shard = np.array_split(np.arange(len(test_set)), ctx.world_size)[ctx.rank]
        part = embed_dataset(model, test_set.subset(shard), **settings)
        pieces = ctx.gather_object(part.embeddings)
        if not main:
            return {}
        emb = dataset_embeddings(test_set, np.concatenate(pieces))
        return recall_by_group(emb, tc.recall_k, eval_attributes)

    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    resume_batches, epoch_state, rank_state = 0, None, None
    if state is not None:
        model.load_state_dict(state["model"])
        if "objective" in state:
            objective.load_state_dict(state["objective"])
        else:  # checkpoints written before the objective held more than the loss
            loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        resume_batches = int(state.get("global_batches", 0))
        epoch_state = state.get("epoch_state") if resume_batches else None
        ranks = state.get("ranks") or [{"rng": state["rng"]}]
        same_world = len(ranks) == ctx.world_size
        if same_world:
            rank_state = ranks[ctx.rank]
            _set_rng_state(rank_state["rng"])
        else:  # a different number of processes: continue the data, reseed the rest
            seed_everything(
                int(
                    np.random.SeedSequence(
                        [tc.seed, start_epoch, resume_batches, ctx.rank]
                    ).generate_state(1)[0]
                )
            )
        where = f"epoch {start_epoch}" + (
            f", {int(state.get('step', 0))} steps into epoch {start_epoch + 1}"
            if resume_batches
            else ""
        )
        log(
            f"resuming {out} after {where}"
            + ("" if same_world else f" ({len(ranks)} processes before, {ctx.world_size} now)")
        )
    else:
        history = [{"epoch": 0, "loss": None, "metrics": evaluate()}]
        start_epoch = 0
        log(_summary_line(history[0], tc.recall_k[0]) + " (untrained)")
        if ctx.enabled and ctx.rank > 0:  # dropout etc. differ between ranks
            seed_everything(tc.seed + 1_000_003 * ctx.rank)
    ctx.barrier()

    def write_checkpoint(epoch_done: int, step: int, batches: int, totals: _EpochTotals | None):
        own = {
            "rng": _rng_state(),
            "selector": _generator_state(selector.generator if selector else None),
        }
        ranks = ctx.gather_object(own)
        if ranks is None:  # not rank 0
            return
        ckpt = {
            "epoch": epoch_done,
            "step": step,
            "global_batches": batches,
            "world_size": ctx.world_size,
            "config": config_to_dict(cfg),
            "model": model.state_dict(),
            "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "rng": ranks[0]["rng"],
            "ranks": [{k: v for k, v in r.items() if v is not None} for r in ranks],
            "smote_rng": smote_gen.get_state(),
            "history": history,
        }
        if totals is not None:
            ckpt["epoch_state"] = totals.state()
        save_checkpoint(ckpt, ckpt_path)

    for epoch in range(start_epoch, tc.epochs):
        offset = resume_batches if epoch == start_epoch else 0
        sampler.set_epoch(epoch, start_batch=offset)
        if selector is not None:
            selector.set_epoch(epoch)
        smote_gen.manual_seed(
            int(np.random.SeedSequence([tc.seed, epoch, 0x5307]).generate_state(1)[0])
        )
        totals = _EpochTotals(epoch_state if offset else None)
        if offset:  # mid-epoch resume: continue the epoch's random streams where they were
            if state is not None and state.get("smote_rng") is not None:
                smote_gen.set_state(state["smote_rng"])
            if selector is not None and rank_state and rank_state.get("selector") is not None:
                selector.generator.set_state(rank_state["selector"])
        model.train()
        objective.train()
        steps_total = len(sampler)
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
            disable=None if progress else True,
            leave=False,
            total=steps_total,
        )
        t0 = time.perf_counter()
        step = 0
        for x, y, attrs in bar:
            x = x.to(device, non_blocking=True)
            if memory_format is not None and x.dim() == 4:
                x = x.contiguous(memory_format=memory_format)
            y = lut[y].to(device, non_blocking=True)
            attrs = attrs.long().to(device, non_blocking=True)
            g = attrs[:, group_col] if group_col is not None else None
            if selector is not None:  # score the candidates, keep the hardest
                with torch.no_grad():
                    with autocast(device, tc.precision):  # the model only; losses in float32
                        cand = model(x)
                    cand = cand.float()
                    scores = per_sample_losses(
                        loss_fn, cand, y, miner(cand, y) if miner is not None else None
                    )
                keep = selector(scores)
                x, y, attrs = x[keep], y[keep], attrs[keep]
                g = g[keep] if g is not None else None
            loss, parts, synthetic = runner(x, y, attrs, g)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            totals.add(loss, parts, synthetic, len(x) * ctx.world_size)
            step += 1
            if step % tc.log_every == 0 or step == steps_total:
                totals.check_finite()
                bar.set_postfix(loss=f"{totals.mean_loss():.4f}")
            if tc.checkpoint_every and step % tc.checkpoint_every == 0 and step < steps_total:
                totals.check_finite()
                totals.seconds += time.perf_counter() - t0
                done = offset // ctx.world_size + step  # this epoch's steps, for the log
                write_checkpoint(epoch, done, offset + step * ctx.world_size, totals)
                t0 = time.perf_counter()
        totals.check_finite()
        totals.seconds += time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "loss": totals.mean_loss(),
            "seconds": totals.seconds,
            "images": totals.images,
            "images_per_second": totals.images / totals.seconds if totals.seconds > 0 else None,
            "world_size": ctx.world_size,
            "metrics": evaluate(),
        }
        steps = max(totals.steps, 1)
        if len(totals.parts) > 1:  # the metric loss and at least one fairness term
            record["terms"] = {k: float(v) / steps for k, v in totals.parts.items()}
        if sm.enabled:
            record["smote_per_step"] = totals.synthetic / steps
        for reducer in dro:
            record["group_dro"] = {"q": reducer.q_dict(), "group_loss": reducer.group_loss_dict()}
        history.append(record)
        log(_summary_line(record, tc.recall_k[0]))
        write_checkpoint(epoch + 1, 0, 0, None)
        if main:
            lines = "".join(json.dumps(h) + "\n" for h in history)
            atomic_write_bytes(out / METRICS_FILE, lines.encode())
        ctx.barrier()

    if main:
        save_embedder(
            model,
            out / MODEL_DIR,
            extra={"run": cfg.name, "epochs": tc.epochs, "dataset": cfg.data.name},
        )
    history = ctx.broadcast_object(history)
    ctx.barrier()
    return {"history": history, "final": history[-1], "model_dir": str(out / MODEL_DIR)}
