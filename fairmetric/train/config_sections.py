"""The config sections assembled from the plug-in registries, and the translation of older keys.

- ``objective``: one sub-section per registered fairness term (``objective.<name>``, the term's
  ``config_class``), in registration order;
- ``mitigation``: one sub-section per registered in-loop batch hook (``mitigation.<name>``);
- ``reducer``: ``{name: <registered reducer> | null, ...that reducer's parameters}``.

A plug-in registered after import (in a user's module, a test) is part of the next config built.

Older configs switched reducers on in their own sections, ``mitigation.reweight`` and
``objective.group_dro`` (``{enabled: true, ...params}``); a reducer that declares such a
``legacy_key`` still accepts it, and :func:`translate_legacy` rewrites it into the ``reducer``
section before validation (so run folders and checkpoints written before keep loading and
resuming).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from dataclasses import field
from typing import Any

from fairmetric.losses.registry import REDUCERS, TERMS
from fairmetric.train.hooks import HOOKS

__all__ = [
    "legacy_reducer_keys",
    "mitigation_config_class",
    "objective_config_class",
    "reducer_config_class",
    "translate_legacy",
]

_CACHE: dict[Any, type] = {}
_SECTIONS: dict[str, Any] = {}  # title → the function that assembles that section class


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _restore_section(title: str, values: dict[str, Any]) -> Any:
    """Unpickle an assembled section (its class is rebuilt from the registries)."""
    return _SECTIONS[title]()(**values)


def _reduce_section(self: Any) -> tuple:
    return _restore_section, (type(self).__name__, _fields(self))


def _restore_reducer(values: dict[str, Any]) -> Any:
    """Unpickle a ``reducer`` section."""
    return reducer_config_class(values["name"])(**values)


def _reduce_reducer(self: Any) -> tuple:
    return _restore_reducer, (_fields(self),)


def _sections(title: str, doc: str, entries: list[tuple[str, type]]) -> type:
    key = (title, tuple(entries))
    if key not in _CACHE:
        cls = dataclasses.make_dataclass(
            title,
            [(name, tp, field(default_factory=tp)) for name, tp in entries],
            namespace={"__reduce__": _reduce_section},
        )
        cls.__doc__ = doc
        cls.__module__ = "fairmetric.train.config"
        _CACHE[key] = cls
    return _CACHE[key]


def objective_config_class() -> type:
    """The ``objective`` section: ``objective.<name>`` for every registered fairness term."""
    return _sections(
        "ObjectiveConfig",
        "Objective-side fairness terms added to the metric loss (all off by default).",
        [(name, TERMS.get(name).config_class) for name in TERMS],
    )


def mitigation_config_class() -> type:
    """The ``mitigation`` section: ``mitigation.<name>`` for every registered batch hook."""
    return _sections(
        "MitigationConfig",
        "In-loop batch hooks (hard-example selection, SMOTE; all off by default).",
        [(name, HOOKS.get(name).config_class) for name in HOOKS],
    )


_SECTIONS.update(ObjectiveConfig=objective_config_class, MitigationConfig=mitigation_config_class)


def _config_of(self: Any) -> Any:
    """The reducer's own typed config (its ``config_class``), or ``None`` without a reducer."""
    if self.name is None:
        return None
    params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "name"}
    return REDUCERS.get(self.name).config_class(**params)


def reducer_config_class(name: str | None) -> type:
    """The ``reducer`` section for reducer ``name``: ``name`` plus that reducer's parameters."""
    if name is None:
        entries: tuple = ()
        title = "NoReducerConfig"
    else:
        config = REDUCERS.get(name).config_class
        hints = typing.get_type_hints(config)
        entries = tuple(
            (f.name, hints[f.name], f.default, f.default_factory, tuple(f.metadata.items()))
            for f in dataclasses.fields(config)
        )
        title = f"{config.__name__}Section"
    key = ("reducer", name, entries)
    if key not in _CACHE:
        fields = [("name", str | None, field(default=name))]
        for fname, tp, default, factory, metadata in entries:
            kwargs = {"default": default} if factory is dataclasses.MISSING else {}
            if factory is not dataclasses.MISSING:
                kwargs["default_factory"] = factory
            fields.append((fname, tp, field(metadata=dict(metadata), **kwargs)))  # ranges too
        namespace = {"config": _config_of, "__reduce__": _reduce_reducer}
        cls = dataclasses.make_dataclass(title, fields, namespace=namespace)
        cls.__doc__ = (
            "The metric loss's reducer: ``name`` (a registered reducer, or null for the loss's "
            "own) and that reducer's parameters."
        )
        cls.__module__ = "fairmetric.train.config"
        _CACHE[key] = cls
    return _CACHE[key]


def _legacy() -> list[tuple[str, str, type]]:
    out = []
    for name in REDUCERS:
        cls = REDUCERS.get(name)
        key = getattr(cls, "legacy_key", None)
        if key:
            out.append((name, key, cls.config_class))
    return out


def legacy_reducer_keys() -> list[str]:
    """The older keys still accepted (``mitigation.reweight.enabled``, ...)."""
    keys = []
    for _name, key, config in _legacy():
        keys += [f"{key}.enabled"] + [f"{key}.{f.name}" for f in dataclasses.fields(config)]
    return keys


def _describe(name: str) -> str:
    key = getattr(REDUCERS.get(name), "legacy_key", None) if name in REDUCERS else None
    return key or f"reducer.name={name}"


def translate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (nested config dicts) with every legacy reducer section moved into ``reducer``.

    ``{enabled: true, ...}`` selects that reducer (its other keys are its parameters),
    ``enabled: false`` removes it if it is the selected one, and parameters alone update it when
    it is selected (and are dropped otherwise: they had no effect before either).

    Raises:
        ValueError: two reducers enabled at once, an unknown key or a non-boolean ``enabled``.
    """
    if not isinstance(data, dict):
        return data
    out = None
    for name, key, config in _legacy():
        section, sub = key.split(".")
        parent = data.get(section) if out is None else out.get(section)
        if not isinstance(parent, dict) or sub not in parent:
            continue
        if out is None:
            out = copy.deepcopy(data)
            parent = out[section]
        old = parent.pop(sub)
        old = {} if old is None else old
        if not isinstance(old, dict):
            raise ValueError(f"{key}: expected a mapping, got {old!r}")
        old = dict(old)
        allowed = ["enabled"] + [f.name for f in dataclasses.fields(config)]
        unknown = [k for k in old if k not in allowed]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown config key '{key}.{unknown[0]}'{hint}; {key} (now reducer.name={name}) "
                f"takes {', '.join(allowed)}"
            )
        enabled = old.pop("enabled", None)
        if enabled is not None and not isinstance(enabled, bool):
            raise ValueError(f"{key}.enabled: expected true/false, got {enabled!r}")
        current = out.get("reducer")
        current = {} if current is None else current
        if not isinstance(current, dict):
            raise ValueError(f"reducer: expected a mapping, got {current!r}")
        selected = current.get("name")
        if enabled:
            if selected is not None and selected != name:
                raise ValueError(
                    f"{_describe(selected)} and {key} both set the metric loss's reducer; enable "
                    "one of them (Group DRO adapts its group weights itself)"
                )
            params = {k: v for k, v in current.items() if k != "name"} if selected == name else {}
            out["reducer"] = {"name": name, **params, **old}
        elif enabled is False:
            if selected == name:
                out["reducer"] = {"name": None}
        elif selected == name:
            out["reducer"] = {**current, **old}
    return data if out is None else out
