"""Nested dicts ↔ config dataclasses: key, type and range validation with errors that name the key.

A dataclass field is a section when its type is a dataclass, or when its ``metadata[SECTION]`` is
a function returning the section's (registry-assembled) dataclass, or :data:`REDUCER` (the
``reducer`` section, whose keys depend on ``reducer.name``).

A field declared with :func:`bounded` (``lr: float = bounded(1e-3, gt=0)``) is range-checked when
the config is built, so ``optim.lr=-1`` or ``model.embedding_dim=10**9`` fails at load time with the
key and the allowed range, not when a tensor is allocated.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Union

from fairmetric.bounds import RANGE, Range, bounded, check_param_types, check_range
from fairmetric.losses.factories import LossConfig, MinerConfig
from fairmetric.losses.registry import REDUCERS
from fairmetric.train.config_sections import reducer_config_class

__all__ = [
    "RANGE",
    "REDUCER",
    "SECTION",
    "Range",
    "bounded",
    "build",
    "check_param_types",
    "check_range",
    "coerce",
    "did_you_mean",
    "field_types",
    "mapping_keys",
    "valid_keys",
]

#: ``dataclasses.field(metadata={SECTION: ...})``: the field's section class, assembled on use
SECTION = "fairmetric.section"


class REDUCER:
    """Marker of the ``reducer`` section: its keys depend on ``reducer.name``."""


def _reducer_keys() -> list[str]:
    keys = ["reducer.name"]
    for name in REDUCERS:
        for f in dataclasses.fields(REDUCERS.get(name).config_class):
            if f"reducer.{f.name}" not in keys:
                keys.append(f"reducer.{f.name}")
    return keys


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every settable dotted key below ``cls``."""
    keys = []
    for name, tp in field_types(cls).items():
        if tp is REDUCER:
            keys += _reducer_keys()
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            keys += valid_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def mapping_keys(cls: type, prefix: str = "") -> list[str]:
    """Keys whose value is a free mapping (``loss.params``): any sub-key may be overridden."""
    keys = []
    for name, tp in field_types(cls).items():
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            keys += mapping_keys(tp, f"{prefix}{name}.")
        elif dict in (typing.get_origin(tp), *map(typing.get_origin, typing.get_args(tp))):
            keys.append(f"{prefix}{name}")
    return keys


def field_types(cls: type) -> dict[str, Any]:
    """The annotation of every field; for sections assembled from the registries, the class."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        section = f.metadata.get(SECTION)
        if section is REDUCER:
            hints[f.name] = REDUCER
        elif section is not None:
            hints[f.name] = section()
    return hints


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (with the usual int→float widening)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, key)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key}: expected a string, got {value!r}")
    return value


def build(cls: type, data: dict[str, Any], prefix: str, root_cls: type) -> Any:
    """``cls`` from the nested dict ``data`` (keys under ``prefix``); errors list ``root_cls``'s
    valid keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = set(fields)
    unknown = [k for k in data if k not in names]
    if unknown:
        valid = valid_keys(root_cls)
        raise ValueError(
            f"unknown config key {prefix + unknown[0]!r}"
            f"{did_you_mean(prefix + str(unknown[0]), valid)}; valid keys are: " + ", ".join(valid)
        )
    kwargs = {}
    if (
        cls in (LossConfig, MinerConfig)
        and "name" in data
        and "params" not in data
        and data["name"] != cls().name
    ):
        kwargs["params"] = {}  # a different loss/miner does not inherit the default's arguments
    for k, v in data.items():
        tp = hints[k]
        if tp is REDUCER:
            kwargs[k] = _build_reducer(v, root_cls)
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[k] = build(tp, v or {}, f"{prefix}{k}.", root_cls)
        else:
            kwargs[k] = coerce(v, tp, f"{prefix}{k}")
            bounds = fields[k].metadata.get(RANGE)
            if bounds is not None:
                nullable = type(None) in typing.get_args(tp)
                check_range(kwargs[k], bounds, f"{prefix}{k}", nullable=nullable)
    return cls(**kwargs)


def did_you_mean(key: str, valid: list[str]) -> str:
    """``" (did you mean 'train.epochs'?)"`` for the valid key (or section) closest to ``key``
    (:func:`difflib.get_close_matches`), or ``""`` when none is close."""
    candidates = set(valid)
    for k in valid:  # sections too: a misspelt 'trian' is closest to 'train'
        parts = k.split(".")
        candidates.update(".".join(parts[:i]) for i in range(1, len(parts)))
    close = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {close[0]!r}?)"


def _build_reducer(data: Any, root_cls: type) -> Any:
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"reducer: expected a mapping, got {data!r}")
    name = data.get("name")
    valid = ", ".join(REDUCERS.names())
    if name is not None and not isinstance(name, str):
        raise ValueError(f"reducer.name: expected a string or null, got {name!r}")
    if name is not None and name not in REDUCERS:
        raise ValueError(
            f"unknown reducer.name {name!r}; valid names: {valid} (or null: the loss's own)"
        )
    params = [k for k in data if k != "name"]
    if name is None and params:
        raise ValueError(
            f"reducer.{params[0]} is set but reducer.name is null; set reducer.name to one of: "
            f"{valid}"
        )
    cls = reducer_config_class(name)
    allowed = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
    unknown = [k for k in params if k not in allowed]
    if unknown:
        hint = did_you_mean(unknown[0], allowed)
        raise ValueError(
            f"unknown config key 'reducer.{unknown[0]}'{hint}: reducer {name!r} takes "
            f"{', '.join(allowed) or 'no parameters'}"
        )
    return build(cls, data, "reducer.", root_cls)
