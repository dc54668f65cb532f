"""In-loop batch hooks (``mitigation.<name>``): hard-example selection before the forward pass,
SMOTE after it. Add one in a new module: see :mod:`fairmetric.train.hooks.base`."""

import importlib

from fairmetric.train.hooks.base import HOOKS, BatchHook, HookContext, StepInput, register_hook

#: the built-in hooks, in the order the trainer calls them
BUILTIN_HOOKS = ("hard_mining", "smote")
for _name in BUILTIN_HOOKS:
    importlib.import_module(f"{__name__}.{_name}")

from fairmetric.train.hooks.hard_mining import HardMiningConfig, HardMiningHook  # noqa: E402
from fairmetric.train.hooks.smote import SmoteConfig, SmoteHook  # noqa: E402

__all__ = [
    "BUILTIN_HOOKS",
    "HOOKS",
    "BatchHook",
    "HardMiningConfig",
    "HardMiningHook",
    "HookContext",
    "SmoteConfig",
    "SmoteHook",
    "StepInput",
    "register_hook",
]
