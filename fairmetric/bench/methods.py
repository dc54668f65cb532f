"""What the benchmark runs: its methods (config overrides on a baseline) and its datasets.

The methods are not listed here: every plug-in declares its own in ``bench_methods`` (``{method
name: config overrides}``) -- the reducers (:data:`~fairmetric.losses.REDUCERS`), the batch
samplers (:data:`~fairmetric.sampling.SAMPLERS`), the in-loop batch hooks
(:data:`~fairmetric.train.hooks.HOOKS`) and the fairness terms (:data:`~fairmetric.losses.TERMS`).
:data:`METHODS` reads them when it is used, so a plug-in registered in any module is a bench
method with no edit here. In the overrides ``{attr}`` is the dataset's sensitive attribute;
``{candidates}`` and ``{m2}`` are twice the resolved ``train.batch_size`` and
``train.m_per_class`` (hard mining scores twice the batch, with as many classes per candidate
batch as the baseline has per batch).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from fairmetric.losses import REDUCERS, TERMS
from fairmetric.registry import Registry
from fairmetric.sampling import SAMPLERS
from fairmetric.train.hooks import HOOKS

__all__ = [
    "DATASETS",
    "METHODS",
    "ORACLE",
    "REAL_DATASETS",
    "check_methods",
    "method_parts",
    "method_table",
]

#: the arm trained on attribute-balanced data: what part of the gap is learnable at all
ORACLE = "oracle"
#: the placeholder the oracle's overrides stand in (each dataset defines its own)
ORACLE_OVERRIDES = "{oracle}"

#: the order of the built-in methods in tables (others follow in registration order)
_ORDER = (
    "baseline",
    ORACLE,
    "reweight",
    "epoch_balanced",
    "batch_balanced",
    "hard_mining",
    "smote",
    "group_dro",
    "spectral",
    "adversarial",
    "parade",
)
_REGISTRIES: tuple[Registry, ...] = (REDUCERS, SAMPLERS, HOOKS, TERMS)


def method_table() -> dict[str, list[str]]:
    """Method name → overrides, collected from every plug-in registry now.

    Raises:
        ValueError: two plug-ins declare the same method name.
    """
    found: dict[str, list[str]] = {"baseline": [], ORACLE: [ORACLE_OVERRIDES]}
    owner: dict[str, str] = {"baseline": "the bench", ORACLE: "the bench"}
    for registry in _REGISTRIES:
        for name in registry:
            plugin = registry.get(name)
            for method, overrides in (getattr(plugin, "bench_methods", None) or {}).items():
                if method in found and owner[method] != f"{registry.kind} {name!r}":
                    raise ValueError(
                        f"bench method {method!r} is declared by {owner[method]} and by "
                        f"{registry.kind} {name!r}; rename one in its bench_methods"
                    )
                found[method], owner[method] = list(overrides), f"{registry.kind} {name!r}"
    rank = {m: i for i, m in enumerate(_ORDER)}
    ordered = sorted(found, key=lambda m: (rank.get(m, len(_ORDER)), list(found).index(m)))
    return {m: found[m] for m in ordered}


class _Methods(Mapping):
    """A read-only view of :func:`method_table`, current with the registries."""

    def __getitem__(self, method: str) -> list[str]:
        return method_table()[method]

    def __iter__(self) -> Iterator[str]:
        return iter(method_table())

    def __len__(self) -> int:
        return len(method_table())

    def __repr__(self) -> str:
        return f"METHODS({', '.join(self)})"


#: method name → config overrides on top of a dataset's baseline config (from the registries)
METHODS: Mapping[str, list[str]] = _Methods()


def method_parts(method: str) -> list[str]:
    """The methods a (possibly combined) method name joins: ``"a+b"`` → ``["a", "b"]``.

    Raises:
        ValueError: an unknown part, an empty part or a part named twice, with the valid names.
    """
    parts = [p.strip() for p in str(method).split("+")]
    known = list(METHODS)
    if any(not p for p in parts):
        raise ValueError(f"method {method!r} has an empty part; join methods with '+'")
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise ValueError(
            f"unknown method {', '.join(map(repr, unknown))}; valid methods: {', '.join(known)}, "
            "or several joined with '+' (e.g. epoch_balanced+parade)"
        )
    if len(set(parts)) != len(parts):
        raise ValueError(f"method {method!r} names a part twice")
    if len(parts) > 1 and ("baseline" in parts or ORACLE in parts):
        raise ValueError(
            f"method {method!r}: baseline and oracle are arms of their own, not combinable"
        )
    return parts


def check_methods(methods: Sequence[str]) -> list[str]:
    """``methods`` as a list after checking every (possibly combined) name and that none
    repeats."""
    methods = [methods] if isinstance(methods, str) else list(methods)
    if not methods:
        raise ValueError(f"no method given; valid methods: {', '.join(METHODS)}")
    for m in methods:
        method_parts(m)
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods listed twice: {methods}")
    return methods


@dataclass(frozen=True)
class _Dataset:
    config: str  # file name in fairmetric/configs/
    attribute: str  # the sensitive attribute audited and balanced
    #: methods defined for this dataset by ``configs/<name>_<method>.yaml`` rather than overrides
    method_configs: tuple[str, ...] = ()
    needs_root: bool = False
    #: the overrides that make this variant of its config (applied before any method's)
    overrides: tuple[str, ...] = ()
    #: the overrides of the oracle arm: the same data with the attribute balanced in training
    oracle: tuple[str, ...] = ()
    #: what the dataset is for, shown by ``fairmetric bench --help``
    note: str = ""


#: dataset name → its baseline config and sensitive attribute. Coloured digits keeps its own YAML
#: for three methods whose settings there differ from the generic overrides: SMOTE trains on
#: batches of 80 (16 per class, so that a dark cell often has the 2 members SMOTE needs), and the
#: balanced samplers spell out ``proportions: {light: 0.5, dark: 0.5}``. Its other methods'
#: YAMLs resolve to exactly the baseline plus the overrides, so the overrides define them.
_BALANCED = ("data.params.p_majority=0.5",)
_PERSON = ("data.params.attribute_level=identity",)
_NULL = ("data.params.appearance=none",)
_INTRINSIC = ("data.params.appearance=low_contrast",)


def _identities(config: str, backbone: str) -> dict[str, _Dataset]:
    stem = "identities" if backbone == "CNN" else "identities_mlp"
    return {
        stem: _Dataset(
            config,
            "palette",
            oracle=_BALANCED,
            note=f"synthetic identities ({backbone}), palette drawn per image: the gap is learned",
        ),
        f"{stem}_person": _Dataset(
            config,
            "palette",
            overrides=_PERSON,
            oracle=_BALANCED,
            note=f"synthetic identities ({backbone}), palette drawn per identity (the face case)",
        ),
        f"{stem}_null": _Dataset(
            config,
            "palette",
            overrides=_NULL,
            oracle=_BALANCED,
            note=f"null control ({backbone}): both palettes identical, must show no gap",
        ),
        f"{stem}_intrinsic": _Dataset(
            config,
            "palette",
            overrides=_INTRINSIC,
            oracle=_BALANCED,
            note=f"intrinsic control ({backbone}): low-contrast minority, balancing cannot fix",
        ),
    }


DATASETS: dict[str, _Dataset] = {
    **_identities("identities_mlp_baseline.yaml", "MLP"),
    **_identities("identities_baseline.yaml", "CNN"),
    "colored_digits": _Dataset(
        "colored_digits_baseline.yaml",
        "colour",
        method_configs=("epoch_balanced", "batch_balanced", "smote"),
        oracle=_BALANCED,
        note="smoke test; about half its gap is intrinsic (low-contrast minority)",
    ),
    "gaussian": _Dataset(
        "gaussian_baseline.yaml",
        "group",
        oracle=("data.params.group_probs=[0.5,0.5]",),
        note="vector smoke test; its gap is geometry, so intrinsic by construction",
    ),
    "celeba": _Dataset("celeba_baseline.yaml", "Male", needs_root=True),
    "lfw": _Dataset("lfw_baseline.yaml", "Male", needs_root=True),
    "cub": _Dataset("cub_baseline.yaml", "has_primary_color", needs_root=True),
}
#: the datasets read from a local copy (``data_roots``)
REAL_DATASETS = tuple(name for name, d in DATASETS.items() if d.needs_root)
