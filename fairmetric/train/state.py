"""Run state across restarts: RNG states, which config changes a resumed run accepts, the runtime
settings' checks, and reading checkpoints of an older layout."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairmetric.errors import UserError
from fairmetric.train.checkpoint import CHECKPOINT_FILE
from fairmetric.train.config import ExperimentConfig, config_from_dict, config_to_dict
from fairmetric.utils import check_precision

__all__ = [
    "RUNTIME_KEYS",
    "check_resumable",
    "check_runtime",
    "config_differences",
    "rng_state",
    "set_rng_state",
    "summary_line",
    "upgrade_checkpoint",
]


def rng_state() -> dict[str, Any]:
    """The global torch, CUDA, NumPy and Python RNG states (weights-only loadable)."""
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


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
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


RUNTIME_KEYS = frozenset(
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
        "train.min_group_size",
        "train.compile",
        "train.compile_mode",
        "train.backend",
        "train.precision",
        "train.channels_last",
        "train.sync_batchnorm",
    }
)
"""Config keys a resumed run may change: how it runs, not what it trains."""


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts (``params`` compared
    whole)."""
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key != "params":
            diffs += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            diffs.append(f"{prefix}{key}")
    return diffs


_MISSING = object()


def _get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return _MISSING
        d = d[part]
    return d


def _on(raw: dict[str, Any], dotted: str) -> bool:
    value = _get(raw, dotted)
    return value is not _MISSING and bool(value)


#: keys added with a default that changed a method's behaviour (issue 13): ``key -> (the old
#: behaviour, whether the method is on in a saved config)``. A checkpoint whose config predates
#: the key trained with the old behaviour, so it is read with it.
LEGACY_DEFAULTS: dict[str, tuple[Any, Any]] = {
    "mitigation.smote.scope": ("batch", lambda raw: _on(raw, "mitigation.smote.enabled")),
    "objective.parade.detach_features": (
        False,
        lambda raw: _on(raw, "objective.parade.attributes"),
    ),
    "objective.parade.balance": (False, lambda raw: _on(raw, "objective.parade.attributes")),
    "objective.adversary.balanced": (
        False,
        lambda raw: _on(raw, "objective.adversary.attribute"),
    ),
    "reducer.normalise": (
        "all",
        lambda raw: (
            _get(raw, "reducer.name") == "group_weighted"
            or (
                _on(raw, "mitigation.reweight.enabled")  # the layout before the reducer section
                and _get(raw, "mitigation.reweight.normalise") is _MISSING
            )
        ),
    ),
}


def legacy_values(raw: dict[str, Any]) -> dict[str, Any]:
    """The :data:`LEGACY_DEFAULTS` that apply to the saved config ``raw``: keys it lacks, of
    methods it has on, with the behaviour it was trained with."""
    return {
        key: old
        for key, (old, applies) in LEGACY_DEFAULTS.items()
        if _get(raw, key) is _MISSING and applies(raw)
    }


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        d = d.setdefault(part, {})
    d[last] = value


def check_resumable(cfg: ExperimentConfig, state: dict[str, Any], out: Path) -> None:
    """Raise unless ``cfg`` trains what the checkpoint ``state`` trained (runtime keys aside),
    for at least as many epochs as the checkpoint has already trained.

    The checkpoint's config is read with today's defaults and translations, so keys added since
    and older spellings (``mitigation.reweight``) compare equal to the current form.
    """
    ckpt = out / CHECKPOINT_FILE
    if not isinstance(state.get("config"), dict):
        raise UserError(
            f"cannot resume from {ckpt}: it holds no config; it was not written by "
            "`fairmetric train` (start a new run in another --out)"
        )
    try:
        saved = config_to_dict(config_from_dict(state["config"]))
    except ValueError as e:
        raise UserError(
            f"cannot resume from {ckpt}: its config is not valid today ({e}); start a new run "
            "in another --out"
        ) from None
    legacy = legacy_values(state["config"])
    for key, value in legacy.items():
        _set(saved, key, value)
    diffs = [d for d in config_differences(saved, config_to_dict(cfg)) if d not in RUNTIME_KEYS]
    old = [d for d in diffs if d in legacy]
    if old:
        overrides = " ".join(f"{k}={str(legacy[k]).lower()}" for k in old)
        raise UserError(
            f"cannot resume {out}: its checkpoint was trained before {', '.join(old)} existed, "
            f"with the behaviour that is not today's default; add the overrides {overrides} to "
            "resume it as it was trained (or train a new run in another --out)"
        )
    if diffs:
        raise UserError(
            f"cannot resume {out}: the config differs from the checkpoint's in "
            f"{', '.join(diffs)}; use the run's own config ({out / 'config.yaml'})"
        )
    done = state.get("epoch")
    if isinstance(done, int) and not isinstance(done, bool):
        partial = int(state.get("global_batches", 0) or 0) > 0
        needed = done + 1 if partial else done
        if cfg.train.epochs < needed:
            trained = f"{done} epoch(s)" + (" and part of the next" if partial else "")
            raise UserError(
                f"cannot resume {out} with train.epochs={cfg.train.epochs}: its checkpoint has "
                f"already trained {trained}; set train.epochs to at least {needed} to continue "
                f"(the run's config says {saved['train']['epochs']}), or train a new run in "
                "another --out"
            )


def upgrade_checkpoint(state: dict[str, Any], hook_classes: Iterable[type]) -> dict[str, Any]:
    """``state`` with the per-hook state of an older checkpoint layout (``smote_rng``, a rank's
    ``selector``) moved under ``hooks`` by each hook class's ``upgrade_checkpoint`` (in place)."""
    for cls in hook_classes:
        cls.upgrade_checkpoint(state)
    return state


def check_runtime(tc: Any) -> None:
    """Validate the ``train`` keys that only change how a run executes."""
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


def summary_line(record: dict[str, Any], k: int) -> str:
    """One epoch's log line: loss, Recall@k and its gaps."""
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
