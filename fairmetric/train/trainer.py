"""The training loop: any PML loss and miner, m-per-class batches, per-group evaluation each epoch.

``train(cfg, out_dir)`` writes into ``out_dir``:

- ``config.yaml`` — the resolved config;
- ``checkpoint.pt`` — model, loss, optimiser and RNG state after each epoch (atomic, resumable);
- ``metrics.jsonl`` — one line per evaluation (epoch 0 is the untrained model);
- ``model/`` — the exported embedder (``model.safetensors`` + ``config.json``) after the last epoch.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fairmetric.data.dataset import AttributeDataset
from fairmetric.data.registry import build_splits
from fairmetric.losses import Batch, GroupDROReducer, check_sample_indexed, per_sample_losses
from fairmetric.models.embed import embed_dataset
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
    config_from_dict,
    config_to_dict,
    save_config,
)
from fairmetric.train.evaluate import recall_by_group
from fairmetric.train.objectives import build_objective, build_training_loss
from fairmetric.utils import atomic_write_bytes, resolve_device, seed_everything

__all__ = [
    "train",
    "build_data",
    "build_model",
    "build_sampler",
    "build_training_loss",
    "forward_batch",
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
) -> Batch:
    """Run the embedder on a batch, keeping the features and raw embedding the terms need."""
    h = model.features(x)
    raw = model.project(h)
    return Batch(
        features=h,
        raw=raw,
        embeddings=model.finalize(raw),
        labels=labels,
        attributes=attributes,
        attribute_names=attribute_names,
        groups=groups,
    )


def evaluate_model(
    model: torch.nn.Module,
    dataset: AttributeDataset,
    *,
    ks: list[int],
    attributes: list[str] | None,
    device: torch.device,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """Exact Recall@k of ``model`` on ``dataset``, overall and per attribute value."""
    emb = embed_dataset(model, dataset, batch_size=batch_size, device=device, progress=progress)
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
            from it; otherwise an error protects the earlier run.
        resume: continue from ``out_dir/checkpoint.pt``. The config must match the checkpoint's,
            except ``train.epochs`` (raise it to train longer).
        progress: show progress bars (on a terminal; off when output is redirected).
        log: where per-epoch summary lines go.

    Returns:
        ``{"history": [...], "final": {...}, "model_dir": str}``.
    """
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_FILE
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(
                f"--resume given but {ckpt_path} does not exist; drop --resume to start a new run"
            )
        state = load_checkpoint(ckpt_path)
        saved = config_to_dict(config_from_dict(state["config"]))  # fills keys added since
        diffs = [d for d in _config_differences(saved, config_to_dict(cfg)) if d != "train.epochs"]
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
    tc = cfg.train
    if tc.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1, got {tc.epochs}")

    seed_everything(tc.seed)
    device = resolve_device(tc.device)
    splits = build_data(cfg)
    train_set, test_set = splits["train"], splits["test"]
    eval_attributes = cfg.data.eval_attributes
    for a in eval_attributes or []:
        test_set.attribute_index(a)  # clear error for an unknown attribute
    input_size = tuple(getattr(train_set, "input_shape", ()))
    if not input_size:
        raise ValueError(f"dataset {train_set.name} does not expose input_shape")

    model = build_model(cfg, input_size).to(device)
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
            seed=tc.seed,
        )
        sampler_batch = hm.candidates_per_batch
    sm = mit.smote
    if sm.enabled and sm.group_by not in ("class", "class_attribute"):
        raise ValueError(
            f"mitigation.smote.group_by must be class or class_attribute in training (synthetic "
            f"embeddings need a class label), got {sm.group_by!r}"
        )
    smote_gen = torch.Generator()
    param_groups = [{"params": list(model.parameters()), "lr": cfg.optim.lr}]
    param_groups += objective.param_groups(cfg.optim.lr, cfg.optim.loss_lr)
    optimizer = torch.optim.Adam(param_groups, weight_decay=cfg.optim.weight_decay)
    attribute_names = list(train_set.attribute_names)
    sampler = build_sampler(
        cfg, train_set, groups_np, batch_size=sampler_batch, num_batches=num_batches
    )
    if selector is not None and num_batches is None:
        # as many steps per epoch as without mining: the candidates are extra samples per step
        counts = getattr(sampler, "group_counts", None)  # epoch_balanced: the resampled size
        total = int(np.sum(counts)) if counts is not None else len(train_set)
        sampler = build_sampler(
            cfg,
            train_set,
            groups_np,
            batch_size=sampler_batch,
            num_batches=max(1, total // tc.batch_size),
        )
    group_col = (
        train_set.attribute_index(cfg.data.group_attribute) if groups_np is not None else None
    )
    loader = DataLoader(
        train_set,
        batch_sampler=sampler,
        num_workers=tc.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=tc.num_workers > 0,
    )

    def evaluate() -> dict[str, Any]:
        return evaluate_model(
            model,
            test_set,
            ks=tc.recall_k,
            attributes=eval_attributes,
            device=device,
            batch_size=tc.eval_batch_size,
        )

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if state is not None:
        model.load_state_dict(state["model"])
        if "objective" in state:
            objective.load_state_dict(state["objective"])
        else:  # checkpoints written before the objective held more than the loss
            loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        log(f"resuming {out} after epoch {start_epoch}")
    else:
        history = [{"epoch": 0, "loss": None, "metrics": evaluate()}]
        start_epoch = 0
        log(_summary_line(history[0], tc.recall_k[0]) + " (untrained)")

    for epoch in range(start_epoch, tc.epochs):
        sampler.set_epoch(epoch)
        if selector is not None:
            selector.set_epoch(epoch)
        smote_gen.manual_seed(
            int(np.random.SeedSequence([tc.seed, epoch, 0x5307]).generate_state(1)[0])
        )
        model.train()
        objective.train()
        total, steps, t0 = 0.0, 0, time.perf_counter()
        synthetic = 0
        part_sums: dict[str, float] = {}
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
            disable=None if progress else True,
            leave=False,
        )
        for x, y, attrs in bar:
            x = x.to(device, non_blocking=True)
            y = lut[y].to(device, non_blocking=True)
            attrs = attrs.long().to(device, non_blocking=True)
            g = attrs[:, group_col] if group_col is not None else None
            if selector is not None:  # score the candidates, keep the hardest
                with torch.no_grad():
                    cand = model(x)
                    scores = per_sample_losses(
                        loss_fn, cand, y, miner(cand, y) if miner is not None else None
                    )
                keep = selector(scores)
                x, y, attrs = x[keep], y[keep], attrs[keep]
                g = g[keep] if g is not None else None
            batch = forward_batch(model, x, y, attrs, attribute_names, g)
            if sm.enabled:
                s_emb, s_y, s_g = smote_batch(
                    batch.embeddings,
                    y,
                    g if sm.group_by == "class_attribute" else None,
                    k_neighbors=sm.k_neighbors,
                    group_by=sm.group_by,
                    ratio_mode=sm.ratio_mode,
                    target=sm.target,
                    generator=smote_gen,
                    normalize=cfg.model.normalize,
                )
                synthetic += len(s_emb)
                batch.extra_embeddings, batch.extra_labels = s_emb, s_y
                if g is not None:
                    batch.extra_groups = s_g if s_g is not None else g.new_zeros(len(s_emb))
            loss, parts = objective(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            for name, value in parts.items():
                part_sums[name] = part_sums.get(name, 0.0) + value
            steps += 1
            bar.set_postfix(loss=f"{total / steps:.4f}")
        record = {
            "epoch": epoch + 1,
            "loss": total / max(steps, 1),
            "seconds": time.perf_counter() - t0,
            "metrics": evaluate(),
        }
        if len(part_sums) > 1:  # the metric loss and at least one fairness term
            record["terms"] = {k: v / max(steps, 1) for k, v in part_sums.items()}
        if sm.enabled:
            record["smote_per_step"] = synthetic / max(steps, 1)
        for reducer in dro:
            record["group_dro"] = {"q": reducer.q_dict(), "group_loss": reducer.group_loss_dict()}
        history.append(record)
        log(_summary_line(record, tc.recall_k[0]))
        save_checkpoint(
            {
                "epoch": epoch + 1,
                "config": config_to_dict(cfg),
                "model": model.state_dict(),
                "objective": objective.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(),
                "history": history,
            },
            ckpt_path,
        )
        lines = "".join(json.dumps(h) + "\n" for h in history)
        atomic_write_bytes(out / METRICS_FILE, lines.encode())

    model_dir = save_embedder(
        model,
        out / MODEL_DIR,
        extra={"run": cfg.name, "epochs": tc.epochs, "dataset": cfg.data.name},
    )
    return {"history": history, "final": history[-1], "model_dir": str(model_dir)}
