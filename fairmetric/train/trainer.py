"""The training loop: any PML loss and miner, m-per-class batches, per-group evaluation each epoch.

``train(cfg, out_dir)`` writes into ``out_dir``:

- ``config.yaml`` — the resolved config;
- ``checkpoint.pt`` — model, objective, optimiser, sampler position, hook and RNG state after each
  epoch (and every ``train.checkpoint_every`` steps), written atomically; ``--resume`` continues
  exactly;
- ``metrics.jsonl`` — one line per evaluation (epoch 0 is the untrained model), with the training
  throughput of each epoch and what the plug-ins log (``terms``, hook numbers, reducer state);
  written (and synced to disk) before the checkpoint that covers it, and cut back to the
  checkpoint's history on ``--resume``;
- ``model/`` — the exported embedder (``model.safetensors`` + ``config.json``) after the last epoch.

While it trains, the process holds a lock on the folder (:mod:`fairmetric.train.runlock`): a second
``train`` into the same folder fails at once, and temporary files a killed run left behind are
removed. SIGTERM and Ctrl-C stop the run after writing a checkpoint at the current step
(:mod:`fairmetric.train.stop`); ``--resume`` continues it exactly.

:class:`Trainer` does the work in five parts: set-up (:meth:`Trainer.__init__`, from the
builders and plug-in registries), :meth:`~Trainer.resume`, :meth:`~Trainer.run_epoch`,
:meth:`~Trainer.evaluate` and :meth:`~Trainer.save_checkpoint`. It calls the in-loop batch hooks
generically and names no fairness method.

Launched by ``torchrun`` (``WORLD_SIZE > 1``) the same function trains with DistributedDataParallel
(see :mod:`fairmetric.train.distributed`): every process takes its share of the sampler's batches,
the objective sees the combined batch, every process embeds a shard of the test split for the
per-epoch evaluation, and rank 0 scores it and alone writes the run folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fairmetric.data.augment import AugmentedDataset
from fairmetric.models.embedder import save_embedder
from fairmetric.train.builders import (
    build_data,
    build_epoch_sampler,
    build_hooks,
    build_model,
    build_sampler,
    training_groups,
)
from fairmetric.train.checkpoint import (
    CHECKPOINT_FILE,
    check_training_state,
    load_checkpoint,
    load_module_state,
    load_optimizer_state,
    save_checkpoint,
)
from fairmetric.train.config import ExperimentConfig, config_to_dict, save_config
from fairmetric.train.distributed import DistributedContext, init_distributed
from fairmetric.train.hooks import StepInput
from fairmetric.train.objectives import build_objective, build_training_loss
from fairmetric.train.runlock import RunLock, remove_stale_temp_files
from fairmetric.train.scoring import evaluate_model, score_test_split
from fairmetric.train.state import (
    check_resumable,
    check_runtime,
    rng_state,
    set_rng_state,
    summary_line,
    upgrade_checkpoint,
)
from fairmetric.train.step import EpochTotals, TrainStep, forward_batch
from fairmetric.train.stop import StopSignals, ignore_stop_signals
from fairmetric.train.tensorboard import TensorBoardLogger
from fairmetric.utils import atomic_write_bytes, check_precision, resolve_device, seed_everything

__all__ = [
    "Trainer",
    "train",
    "build_data",
    "build_model",
    "build_objective",
    "build_sampler",
    "build_training_loss",
    "forward_batch",
    "TrainStep",
    "training_groups",
    "evaluate_model",
]

MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"


def _describe(epoch_done: int, step: int) -> str:
    """Where a checkpoint stands, in words."""
    if step:
        return f"{step} steps into epoch {epoch_done + 1}"
    return f"after epoch {epoch_done}" if epoch_done else "before the first epoch"


def _fsync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse to sync a folder
        pass
    finally:
        os.close(fd)


def _writes_run_folder() -> bool:
    """Whether this process writes the run folder: the only one, or rank 0 under torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    if os.environ.get("WORLD_SIZE", "1").strip() in ("", "0", "1"):
        return True
    return os.environ.get("RANK", "0").strip() in ("", "0")


class Trainer:
    """One training run of ``cfg`` into ``out`` on the processes of ``ctx``.

    Construction sets everything up in a fixed order (the random state each part consumes is
    part of the run's result): data, model, metric loss and reducer, objective and terms, hooks,
    optimiser, sampler, loader and the step module.

    Args:
        cfg: the experiment.
        out: the run folder.
        ctx: the distributed context (one process: a disabled one).
        progress: show progress bars (rank 0 only).
        log: where summary lines go (rank 0 only).
        stop: the stop requests (SIGTERM, Ctrl-C) to honour at step boundaries; ``None``: none.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        out: Path,
        ctx: DistributedContext,
        *,
        progress: bool = True,
        log: Callable[[str], None] = print,
        stop: StopSignals | None = None,
    ) -> None:
        tc = cfg.train
        self.cfg, self.out, self.ctx = cfg, Path(out), ctx
        self.stop = stop
        self.main = ctx.is_main
        self.progress = progress and self.main
        self.log = log if self.main else (lambda _msg: None)
        self.device = device = ctx.device
        check_precision(tc.precision, device)
        if device.type == "cpu" and tc.precision != "fp32":
            self.log(
                f"note: train.precision={tc.precision} on CPU is only fast on CPUs with native "
                f"{tc.precision} arithmetic (e.g. AMX); elsewhere it is emulated and slower than "
                "fp32"
            )
        seed_everything(tc.seed)  # the same initial weights on every rank
        splits = build_data(cfg)
        train_set, self.test_set = splits["train"], splits["test"]
        if cfg.data.augment:  # the training split only; evaluation inputs stay as loaded
            train_set = AugmentedDataset(train_set, seed=tc.seed, scale=cfg.data.augment_scale)
        self.train_set = train_set
        self.eval_attributes = cfg.data.eval_attributes
        for a in self.eval_attributes or []:
            self.test_set.attribute_index(a)  # clear error for an unknown attribute
        input_size = tuple(getattr(train_set, "input_shape", ()))
        if not input_size:
            raise ValueError(f"dataset {train_set.name} does not expose input_shape")

        model = build_model(cfg, input_size).to(device)
        images = len(input_size) == 3
        self.memory_format = torch.channels_last if tc.channels_last and images else None
        if self.memory_format is not None:
            model = model.to(memory_format=self.memory_format)
        if ctx.enabled and tc.sync_batchnorm and device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        classes = np.unique(train_set.labels)
        self.lut = torch.full((int(train_set.labels.max()) + 1,), -1, dtype=torch.long)
        self.lut[torch.from_numpy(classes)] = torch.arange(len(classes))
        groups = training_groups(cfg, train_set)
        loss_fn = build_training_loss(
            cfg, train_set, groups, num_classes=len(classes), log=self.log
        )
        self.objective = build_objective(
            cfg, train_set, loss_fn, feature_dim=model.feature_dim, groups=groups, log=self.log
        ).to(device)
        self.hooks = build_hooks(
            cfg,
            model=model,
            objective=self.objective,
            train_set=train_set,
            groups=groups,
            rank=ctx.rank,
            world_size=ctx.world_size,
            log=self.log,
        )
        param_groups = [{"params": list(model.parameters()), "lr": cfg.optim.lr}]
        param_groups += self.objective.param_groups(cfg.optim.lr, cfg.optim.loss_lr)
        self.optimizer = torch.optim.Adam(param_groups, weight_decay=cfg.optim.weight_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
        self.sampler = build_epoch_sampler(
            cfg,
            train_set,
            groups,
            hooks=list(self.hooks.values()),
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        self.group_col = (
            train_set.attribute_index(cfg.data.group_attribute) if groups is not None else None
        )
        self.loader = DataLoader(
            train_set,
            batch_sampler=self.sampler,
            num_workers=tc.num_workers,
            pin_memory=device.type == "cuda" if tc.pin_memory is None else tc.pin_memory,
            persistent_workers=tc.persistent_workers and tc.num_workers > 0,
            worker_init_fn=ignore_stop_signals if tc.num_workers > 0 else None,
            **({"prefetch_factor": tc.prefetch_factor} if tc.prefetch_factor else {}),
        )
        self.step_module = TrainStep(
            model,
            self.objective,
            attribute_names=list(train_set.attribute_names),
            ctx=ctx,
            precision=tc.precision,
            hooks=list(self.hooks.values()),
        )
        if tc.compile:
            model.backbone.compile(**({"mode": tc.compile_mode} if tc.compile_mode else {}))
        self.runner: nn.Module = self.step_module
        if ctx.enabled:
            self.runner = DistributedDataParallel(
                self.step_module, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.tensorboard = TensorBoardLogger(out, tc.tensorboard, enabled=self.main)
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.resume_batches = 0
        self._resumed: dict[str, Any] | None = None  # the checkpoint's epoch and hook state
        self._rank_state: dict[str, Any] | None = None
        self._checkpoint: str | None = None  # where the last checkpoint written or read stands

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        """Recall@k of the current model on the test split, overall and per group (rank 0; the
        other ranks embed their shard and return ``{}``)."""
        return score_test_split(
            self.model,
            self.test_set,
            self.cfg.train,
            self.ctx,
            attributes=self.eval_attributes,
            device=self.device,
        )

    # -- start and resume -------------------------------------------------------------------

    def start(self) -> None:
        """A new run: evaluate the untrained model (epoch 0)."""
        tc, ctx = self.cfg.train, self.ctx
        self.history = [{"epoch": 0, "loss": None, "metrics": self.evaluate()}]
        self.start_epoch = 0
        self.log(summary_line(self.history[0], tc.recall_k[0]) + " (untrained)")
        if ctx.enabled and ctx.rank > 0:  # dropout etc. differ between ranks
            seed_everything(tc.seed + 1_000_003 * ctx.rank)

    def resume(self, state: dict[str, Any]) -> None:
        """Continue from the checkpoint ``state`` (any earlier layout, any world size)."""
        tc, ctx = self.cfg.train, self.ctx
        state = upgrade_checkpoint(state, [type(h) for h in self.hooks.values()])
        path = self.out / CHECKPOINT_FILE
        check_training_state(state, path)  # a clear error naming the entry, not a KeyError
        load_module_state(self.model, state["model"], what="model", path=path)
        if "objective" in state:
            load_module_state(self.objective, state["objective"], what="objective", path=path)
        else:  # checkpoints written before the objective held more than the loss
            load_module_state(self.objective.metric_loss, state["loss"], what="loss", path=path)
        load_optimizer_state(self.optimizer, state["optimizer"], path=path)
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.history = list(state["history"])
        self.start_epoch = start = int(state["epoch"])
        self.resume_batches = int(state.get("global_batches", 0))
        self._resumed = state
        ranks = state.get("ranks") or [{"rng": state["rng"]}]
        same_world = len(ranks) == ctx.world_size
        if same_world:
            self._rank_state = ranks[ctx.rank]
            set_rng_state(self._rank_state["rng"])
        else:  # a different number of processes: continue the data, reseed the rest
            seq = np.random.SeedSequence([tc.seed, start, self.resume_batches, ctx.rank])
            seed_everything(int(seq.generate_state(1)[0]))
        where = f"epoch {start}" + (
            f", {int(state.get('step', 0))} steps into epoch {start + 1}"
            if self.resume_batches
            else ""
        )
        self.log(
            f"resuming {self.out} after {where}"
            + ("" if same_world else f" ({len(ranks)} processes before, {ctx.world_size} now)")
        )
        self._checkpoint = _describe(start, int(state.get("step", 0)) if self.resume_batches else 0)

    # -- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(
        self, epoch_done: int, step: int, batches: int, totals: EpochTotals | None
    ) -> None:
        """Write ``checkpoint.pt`` (rank 0; every rank contributes its RNG and hook state)."""
        own = {
            "rng": rng_state(),
            "hooks": {name: hook.rank_state() for name, hook in self.hooks.items()},
        }
        ranks = self.ctx.gather_object(own)
        if ranks is None:  # not rank 0: rank 0 writes it (the stop message names it on every rank)
            self._checkpoint = _describe(epoch_done, step)
            return
        ckpt = {
            "epoch": epoch_done,
            "step": step,
            "global_batches": batches,
            "world_size": self.ctx.world_size,
            "config": config_to_dict(self.cfg),
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": ranks[0]["rng"],
            "ranks": ranks,
            "hooks": {name: hook.shared_state() for name, hook in self.hooks.items()},
            "history": self.history,
        }
        if totals is not None:
            ckpt["epoch_state"] = totals.state()
        save_checkpoint(ckpt, self.out / CHECKPOINT_FILE)
        self._checkpoint = _describe(epoch_done, step)

    def write_metrics(self) -> None:
        """Write ``metrics.jsonl`` from the history (rank 0) and sync it to disk, so that it is
        complete before a checkpoint claims its last epoch."""
        lines = "".join(json.dumps(h) + "\n" for h in self.history)
        atomic_write_bytes(self.out / METRICS_FILE, lines.encode())
        _fsync_folder(self.out)

    def _stop_requested(self) -> bool:
        """Whether to stop now (SIGTERM / Ctrl-C; a collective call under torchrun)."""
        return self.stop is not None and self.stop.requested(self.ctx)

    def _stop(self) -> None:
        """End the run after a stop request (the checkpoint at this point is written)."""
        assert self.stop is not None
        raise self.stop.interrupted(self._checkpoint or "", self.out)

    def _save_mid_epoch(
        self, epoch: int, step: int, offset: int, totals: EpochTotals, t0: float
    ) -> float:
        """Checkpoint after ``step`` steps of epoch ``epoch`` (this run's, after ``offset``
        batches done before a resume); returns the new start of the epoch's clock."""
        ctx = self.ctx
        totals.check_finite(epoch)
        totals.seconds += time.perf_counter() - t0
        done = offset // ctx.world_size + step  # this epoch's steps, for the log
        self.save_checkpoint(epoch, done, offset + step * ctx.world_size, totals)
        return time.perf_counter()

    # -- one epoch --------------------------------------------------------------------------

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train epoch ``epoch`` (0-based; continuing mid-epoch after a resume), evaluate, log,
        checkpoint; returns the epoch's record."""
        tc, ctx, device = self.cfg.train, self.ctx, self.device
        offset = self.resume_batches if epoch == self.start_epoch else 0
        self.sampler.set_epoch(epoch, start_batch=offset)
        if isinstance(self.train_set, AugmentedDataset):
            self.train_set.set_epoch(epoch)
        for hook in self.hooks.values():
            hook.set_epoch(epoch)
        resumed = self._resumed if offset else None
        totals = EpochTotals(resumed.get("epoch_state") if resumed else None)
        if resumed is not None:  # mid-epoch resume: continue the epoch's random streams
            shared = resumed.get("hooks") or {}
            own = (self._rank_state or {}).get("hooks") or {}
            for name, hook in self.hooks.items():
                hook.load_shared_state(shared.get(name) or {})
                hook.load_rank_state(own.get(name) or {})
        self.model.train()
        self.objective.train()
        steps_total = len(self.sampler)
        bar = tqdm(
            self.loader,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
            disable=None if self.progress else True,
            leave=False,
            total=steps_total,
        )
        t0 = time.perf_counter()
        step = 0
        for x, y, attrs in bar:
            x = x.to(device, non_blocking=True)
            if self.memory_format is not None and x.dim() == 4:
                x = x.contiguous(memory_format=self.memory_format)
            y = self.lut[y].to(device, non_blocking=True)
            attrs = attrs.long().to(device, non_blocking=True)
            g = attrs[:, self.group_col] if self.group_col is not None else None
            batch = StepInput(x, y, attrs, g)
            for hook in self.hooks.values():
                batch = hook.before_forward(batch)
            loss, parts, stats = self.runner(*batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            totals.add(loss, parts, stats, len(batch.x) * ctx.world_size)
            step += 1
            if step % tc.log_every == 0 or step == steps_total:
                totals.check_finite(epoch)
                bar.set_postfix(loss=f"{totals.mean_loss():.4f}")
            if step == steps_total:  # a stop request now waits for the epoch's checkpoint
                continue
            scheduled = bool(tc.checkpoint_every) and step % tc.checkpoint_every == 0
            if scheduled:
                t0 = self._save_mid_epoch(epoch, step, offset, totals, t0)
            if self._stop_requested():
                if not scheduled:
                    self._save_mid_epoch(epoch, step, offset, totals, t0)
                bar.close()
                self._stop()
        totals.check_finite(epoch)
        totals.seconds += time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "loss": totals.mean_loss(),
            "seconds": totals.seconds,
            "images": totals.images,
            "images_per_second": totals.images / totals.seconds if totals.seconds > 0 else None,
            "world_size": ctx.world_size,
            "metrics": self.evaluate(),
        }
        record.update(totals.log_entries())
        for hook in self.hooks.values():
            record.update(hook.state_log())
        record.update(self.objective.state_log())
        self.history.append(record)
        self.log(summary_line(record, tc.recall_k[0]))
        if self.main:  # the log first: a crash in between leaves a line the checkpoint lacks,
            self.write_metrics()  # which a resume cuts back, never a checkpoint without its line
            self.tensorboard.log(record)
        self.save_checkpoint(epoch + 1, 0, 0, None)
        ctx.barrier()
        return record

    # -- the whole run ----------------------------------------------------------------------

    def _train_epochs(self, state: dict[str, Any] | None) -> None:
        """The remaining epochs, honouring stop requests between them."""
        ctx = self.ctx
        for epoch in range(self.start_epoch, self.cfg.train.epochs):
            if epoch == self.start_epoch and self._stop_requested():
                if state is None:  # a new run: checkpoint the untrained model first
                    if self.main:
                        self.write_metrics()
                    self.save_checkpoint(0, 0, 0, None)
                ctx.barrier()
                self._stop()
            try:
                self.run_epoch(epoch)
            except Exception as e:  # a stop request, then a failure (a worker killed by it)
                if self.stop is None or self.stop.signum is None:
                    raise
                raise self.stop.failed(self._checkpoint, self.out) from e
            if epoch + 1 < self.cfg.train.epochs and self._stop_requested():
                self._stop()  # the epoch's checkpoint is written

    def fit(self, state: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start (or resume from ``state``), train the remaining epochs and export the model."""
        ctx = self.ctx
        if state is not None:
            self.resume(state)  # a broken checkpoint fails here, before anything is rewritten
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.out / "config.yaml")
        if state is not None:
            if self.main:  # cut back lines a crash left beyond the checkpoint
                self.write_metrics()
        else:
            self.start()
            if self.main:
                self.tensorboard.log(self.history[0])
        ctx.barrier()
        try:
            self._train_epochs(state)
        finally:
            self.tensorboard.close()
        if self.main:
            save_embedder(
                self.model,
                self.out / MODEL_DIR,
                extra={
                    "run": self.cfg.name,
                    "epochs": self.cfg.train.epochs,
                    "dataset": self.cfg.data.name,
                },
            )
        history = ctx.broadcast_object(self.history)
        ctx.barrier()
        return {"history": history, "final": history[-1], "model_dir": str(self.out / MODEL_DIR)}


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
            may differ. Checkpoints and configs of earlier versions load (older keys translated).
        progress: show progress bars (on a terminal; off when output is redirected).
        log: where per-epoch summary lines go (rank 0 only).

    Returns:
        ``{"history": [...], "final": {...}, "model_dir": str}``.

    Raises:
        RunFolderInUse: another process trains into ``out_dir`` (a ``ValueError``; at once).
        RunInterrupted: SIGTERM or Ctrl-C stopped the run after writing a checkpoint (a
            ``KeyboardInterrupt``; ``resume=True`` continues it).

    While it runs, the process (rank 0 under torchrun) holds a lock on ``out_dir`` and removes
    the temporary files a killed run left there; SIGINT and SIGTERM are handled as above (from
    the main thread; the previous handlers are restored on return).
    """
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_FILE
    tc = cfg.train
    if tc.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1, got {tc.epochs}")
    check_runtime(tc)
    if resume and not ckpt_path.is_file():  # before the lock creates the folder
        raise FileNotFoundError(
            f"--resume given but {ckpt_path} does not exist; drop --resume to start a new run"
        )
    with RunLock(out) if _writes_run_folder() else nullcontext() as lock:
        if lock is not None:  # nobody else writes here now: what a killed writer left is stale
            remove_stale_temp_files(out)
        state = None
        if resume:
            state = load_checkpoint(ckpt_path)
            check_resumable(cfg, state, out)
        elif ckpt_path.exists():
            raise FileExistsError(
                f"{out} already holds a training run ({ckpt_path.name}); pass --resume to "
                "continue it or choose another --out"
            )

        ctx = init_distributed(resolve_device(tc.device), tc.backend)
        try:
            with StopSignals(log if ctx.is_main else lambda _msg: None) as stop:
                trainer = Trainer(cfg, out, ctx, progress=progress, log=log, stop=stop)
                return trainer.fit(state)
        finally:
            ctx.close()
