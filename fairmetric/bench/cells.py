"""One benchmark cell: a (dataset, method, seed) training run, and its resolved config.

A cell's config is the dataset's baseline config (or, for coloured digits, its shipped per-method
config) with the method's overrides from :data:`~fairmetric.bench.methods.METHODS` applied;
configs are read from the package's ``fairmetric/configs/``, so the bench works from any folder
and from an installed wheel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fairmetric.bench.methods import (
    DATASETS,
    METHODS,
    ORACLE_OVERRIDES,
    REAL_DATASETS,
    method_parts,
)
from fairmetric.train.config import CONFIG_DIR, ExperimentConfig, load_config

__all__ = ["Cell", "cell_config", "method_overrides"]


@dataclass(frozen=True)
class Cell:
    """One (dataset, method, seed) training run; ``rho`` is set for ρ-sweep cells."""

    dataset: str
    method: str
    seed: int
    rho: float | None = None

    def folder(self, out: Path) -> Path:
        if self.rho is None:
            return out / self.dataset / self.method / f"seed{self.seed}"
        return out / self.dataset / "rho_sweep" / f"rho{self.rho:g}" / f"seed{self.seed}"

    @property
    def label(self) -> str:
        arm = self.method if self.rho is None else f"parade rho={self.rho:g}"
        return f"{self.dataset}/{arm}/seed{self.seed}"


# -- validation ----------------------------------------------------------------------------------


def check_names(kind: str, given: Sequence[str], valid: Sequence[str]) -> list[str]:
    """``given`` as a list, after checking it is non-empty, known and without repeats."""
    given = [given] if isinstance(given, str) else list(given)
    unknown = [g for g in given if g not in valid]
    if unknown:
        raise ValueError(
            f"unknown {kind} {', '.join(map(repr, unknown))}; valid {kind}s: {', '.join(valid)}"
        )
    if not given:
        raise ValueError(f"no {kind} given; valid {kind}s: {', '.join(valid)}")
    if len(set(given)) != len(given):
        raise ValueError(f"{kind}s listed twice: {given}")
    return given


def check_roots(datasets: Sequence[str], data_roots: Mapping[str, str | Path]) -> None:
    """Every on-disk dataset in ``datasets`` has a folder in ``data_roots``, and only those."""
    unknown = [k for k in data_roots if k not in REAL_DATASETS]
    if unknown:
        raise ValueError(
            f"data_roots names {', '.join(map(repr, unknown))}; only on-disk datasets take a "
            f"root: {', '.join(REAL_DATASETS)}"
        )
    for name in datasets:
        if not DATASETS[name].needs_root:
            continue
        if name not in data_roots or data_roots[name] in (None, ""):
            raise ValueError(
                f"dataset {name!r} is read from a local copy: give its folder with "
                f"data_roots={{{name!r}: PATH}} (command line: --data-root {name}=PATH)"
            )
        if not Path(data_roots[name]).is_dir():
            raise FileNotFoundError(f"data root of {name!r} is not a folder: {data_roots[name]}")


# -- configs -------------------------------------------------------------------------------------


_DERIVED = ("{candidates}", "{m2}")


def _derived_fill(base: ExperimentConfig) -> dict[str, int]:
    """Hard mining scores twice the resolved batch, with twice its m per class."""
    return {"candidates": 2 * base.train.batch_size, "m2": 2 * base.train.m_per_class}


def _expand(dataset: str, parts: Sequence[str]) -> list[str]:
    """The raw overrides of ``parts`` on ``dataset`` (the oracle's placeholder replaced by the
    dataset's own), after checking that no two parts set one key to different values."""
    spec = DATASETS[dataset]
    out: list[str] = []
    for part in parts:
        for o in METHODS[part]:
            if o != ORACLE_OVERRIDES:
                out.append(o)
                continue
            if not spec.oracle:
                raise ValueError(
                    f"dataset {dataset!r} has no oracle arm (no attribute-balanced version of "
                    "its training data is defined); leave 'oracle' out of the methods"
                )
            out.extend(spec.oracle)
    seen: dict[str, str] = {}
    for o in out:
        key, _, value = o.partition("=")
        if key in seen and seen[key] != value:
            raise ValueError(
                f"methods {' + '.join(parts)} disagree on {key} ({seen[key]} vs {value}); "
                "they cannot be combined"
            )
        seen[key] = value
    return list(dict.fromkeys(out))  # a key two parts set alike is applied once


def method_overrides(dataset: str, method: str, base: ExperimentConfig) -> list[str]:
    """The overrides that turn ``dataset``'s resolved baseline config ``base`` into ``method``
    (``a+b`` joins the overrides of ``a`` and ``b``; for datasets with per-method config files,
    the differences live in those files instead)."""
    check_names("dataset", [dataset], list(DATASETS))
    parts = method_parts(method)
    fill = {"attr": DATASETS[dataset].attribute, **_derived_fill(base)}
    return [o.format(**fill) for o in _expand(dataset, parts)]


def cell_config(
    cell: Cell,
    *,
    overrides: Sequence[str] = (),
    data_roots: Mapping[str, str | Path] | None = None,
    epochs: int | None = None,
    config_dir: Path = CONFIG_DIR,
) -> ExperimentConfig:
    """The resolved config of one cell, applied in this order: the baseline config (or, for
    coloured digits, ``configs/colored_digits_<method>.yaml``), the method's overrides, ``name``,
    the user's ``overrides``, ``data.root``, ρ, ``train.seed``, ``train.epochs``; then the
    overrides derived from the resolved batch (hard mining's candidates and m per class). A
    dataset variant's own overrides (e.g. the null control's) come first; a combined method
    ``a+b`` applies the overrides of both."""
    spec = DATASETS[cell.dataset]
    config_dir = Path(config_dir)
    parts = method_parts(cell.method)
    tail = [f"name=bench_{cell.dataset}_{cell.method.replace('+', '_')}", *overrides]
    root = (data_roots or {}).get(cell.dataset)
    if root is not None:
        tail.append(f"data.root={Path(root)}")
    if cell.rho is not None:
        tail.append(f"objective.parade.rho={float(cell.rho)}")
    tail.append(f"train.seed={cell.seed}")
    if epochs is not None:
        tail.append(f"train.epochs={int(epochs)}")
    own = [p for p in parts if p in spec.method_configs]
    if len(own) > 1:
        raise ValueError(
            f"{cell.dataset} defines {' and '.join(own)} by their own config files, which "
            "cannot be combined"
        )
    if own:
        stem = spec.config.removesuffix("_baseline.yaml")
        path = config_dir / f"{stem}_{own[0]}.yaml"
    else:
        path = config_dir / spec.config
    method = _expand(cell.dataset, [p for p in parts if p not in own])
    static = [o.replace("{attr}", spec.attribute) for o in method if not _is_derived(o)]
    derived = [o for o in method if _is_derived(o)]
    head = [*spec.overrides, *static]
    base = load_config(path, [*head, *tail])
    if not derived:
        return base
    fill = _derived_fill(base)
    return load_config(path, [*head, *tail, *(o.format(**fill) for o in derived)])


def _is_derived(override: str) -> bool:
    """Whether ``override`` depends on the resolved batch (so is filled in a second pass)."""
    return any(d in override for d in _DERIVED)
