"""What the benchmark runs: its methods (config overrides on a baseline) and its datasets."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "METHODS", "REAL_DATASETS"]

#: method name → config overrides on top of a dataset's baseline config. ``{attr}`` is the
#: dataset's sensitive attribute; ``{candidates}`` and ``{m2}`` are twice the resolved
#: ``train.batch_size`` and ``train.m_per_class`` (hard mining scores twice the batch, with as
#: many classes per candidate batch as the baseline has per batch). Coloured digits uses the
#: shipped ``configs/colored_digits_<method>.yaml`` instead.
METHODS: dict[str, list[str]] = {
    "baseline": [],
    "reweight": ["data.group_attribute={attr}", "mitigation.reweight.enabled=true"],
    "epoch_balanced": ["data.group_attribute={attr}", "sampling.name=epoch_balanced"],
    "batch_balanced": ["data.group_attribute={attr}", "sampling.name=batch_balanced"],
    "hard_mining": [
        "mitigation.hard_mining.candidates_per_batch={candidates}",
        "train.m_per_class={m2}",
    ],
    "smote": ["data.group_attribute={attr}", "mitigation.smote.enabled=true"],
    "group_dro": ["data.group_attribute={attr}", "objective.group_dro.enabled=true"],
    "spectral": ["objective.spectral.coefficient=0.01"],
    "adversarial": ["objective.adversary.attribute={attr}", "objective.adversary.hidden=64"],
    "parade": ["objective.parade.attributes=[{attr}]", "objective.parade.rho=10.0"],
}


@dataclass(frozen=True)
class _Dataset:
    config: str  # file name in fairmetric/configs/
    attribute: str  # the sensitive attribute audited and balanced
    method_configs: bool = False  # use configs/<name>_<method>.yaml per method
    needs_root: bool = False


#: dataset name → its baseline config and sensitive attribute
DATASETS: dict[str, _Dataset] = {
    "colored_digits": _Dataset("colored_digits_baseline.yaml", "colour", method_configs=True),
    "gaussian": _Dataset("gaussian_baseline.yaml", "group"),
    "celeba": _Dataset("celeba_baseline.yaml", "Male", needs_root=True),
    "lfw": _Dataset("lfw_baseline.yaml", "Male", needs_root=True),
    "cub": _Dataset("cub_baseline.yaml", "has_primary_color", needs_root=True),
}
#: the datasets read from a local copy (``data_roots``)
REAL_DATASETS = tuple(name for name, d in DATASETS.items() if d.needs_root)
