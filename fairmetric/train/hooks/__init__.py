"""In-loop batch hooks (``mitigation.<name>``): hard-example selection before the forward pass,
SMOTE after it. Add one in a new module: see :mod:`fairmetric.train.hooks.base`."""

import importlib
import pkgutil

from fairmetric.train.hooks.base import HOOKS, BatchHook, HookContext, StepInput, register_hook

#: the built-in hooks, in the order the trainer calls them
BUILTIN_HOOKS = ("hard_mining", "smote")
# then every other module of this package, by name: a hook added as a new file registers itself
_OTHERS = sorted(
    m.name
    for m in pkgutil.iter_modules(__path__)
    if m.name not in (*BUILTIN_HOOKS, "base") and not m.name.startswith("_")
)
for _name in (*BUILTIN_HOOKS, *_OTHERS):
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
