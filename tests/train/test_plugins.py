"""A plug-in registered in one module -- here, this test file -- is configurable, trained, logged
and a bench method, with no edit anywhere else (fairness terms, samplers, batch hooks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from fairmetric.bench.cells import Cell, cell_config
from fairmetric.bench.methods import METHODS
from fairmetric.losses import REDUCERS, TERMS, Batch, Term, register_term
from fairmetric.sampling import SAMPLERS, MPerClassBatchSampler, register_sampler
from fairmetric.train import load_config, train
from fairmetric.train.config import config_to_dict
from fairmetric.train.hooks import HOOKS, BatchHook, register_hook
from tests.conftest import GAUSSIAN


@dataclass
class MeanNormConfig:
    attribute: str | None = None
    weight: float = 0.5


class MeanNorm(Term):
    """Squared norm of the batch's mean embedding over one attribute's group 0, with a learnt
    scale (a parameter, so that the optimiser must pick it up) and a logged state."""

    config_class = MeanNormConfig
    bench_methods = {"mean_norm": ["objective.mean_norm.attribute={attr}"]}

    @classmethod
    def from_config(cls, config, context):
        if config.attribute is None:
            return []
        context.check_attribute(config.attribute, "objective.mean_norm.attribute")
        return [cls(config.attribute, weight=config.weight)]

    def __init__(self, attribute: str, weight: float) -> None:
        super().__init__(weight=weight)
        self.attribute = attribute
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.calls += 1
        e = batch.embeddings[batch.attribute(self.attribute) == 0]
        return {"mean_norm": self.scale * e.mean(0).pow(2).sum()}

    def state_log(self):
        return {"mean_norm_state": {"calls": self.calls, "scale": float(self.scale.detach())}}


@pytest.fixture
def mean_norm_term():
    register_term("mean_norm")(MeanNorm)
    yield MeanNorm
    TERMS.unregister("mean_norm")


def test_a_registered_term_is_configurable_trained_logged_and_benched(tmp_path, mean_norm_term):
    cfg = load_config(None, GAUSSIAN + ["train.epochs=1", "objective.mean_norm.attribute=group"])
    assert cfg.objective.mean_norm.weight == 0.5  # its typed config, with its defaults
    assert config_to_dict(cfg)["objective"]["mean_norm"] == {"attribute": "group", "weight": 0.5}
    result = train(cfg, tmp_path / "run", progress=False, log=lambda _m: None)
    final = result["final"]
    assert "mean_norm" in final["terms"] and np.isfinite(final["terms"]["mean_norm"])
    assert final["mean_norm_state"]["calls"] > 0  # Term.state_log reaches metrics.jsonl
    assert final["mean_norm_state"]["scale"] != 1.0  # its parameter was trained
    # the bench: a method of its own, configured on every dataset
    assert "mean_norm" in METHODS and list(METHODS)[:3] == ["baseline", "oracle", "reweight"]
    bench = cell_config(Cell("gaussian", "mean_norm", 0), overrides=GAUSSIAN)
    assert bench.objective.mean_norm.attribute == "group"
    with pytest.raises(ValueError, match=r"objective.mean_norm.attribute names 'shade'"):
        train(
            load_config(None, GAUSSIAN + ["objective.mean_norm.attribute=shade"]),
            tmp_path / "bad",
            progress=False,
            log=lambda _m: None,
        )


def test_unregistered_term_keys_are_unknown():
    assert "mean_norm" not in TERMS
    with pytest.raises(ValueError, match="unknown config key 'objective.mean_norm.attribute'"):
        load_config(None, ["objective.mean_norm.attribute=group"])


def test_a_term_without_a_config_class_is_refused():
    class Bare(Term):
        @classmethod
        def from_config(cls, config, context):
            return []

    with pytest.raises(TypeError, match="must declare config_class"):
        register_term("bare")(Bare)
    assert "bare" not in TERMS


class EveryOther(MPerClassBatchSampler):
    """m-per-class batches from the classes with even codes only."""

    bench_methods = {"every_other": ["sampling.name=every_other"]}

    @classmethod
    def from_config(cls, config, context):
        labels = np.where(context.labels % 2 == 0, context.labels, -1)
        keep = labels >= 0
        sampler = cls(context.labels[keep], **context.common())
        sampler.index = np.flatnonzero(keep)
        return sampler

    def __iter__(self):
        for batch in super().__iter__():
            yield [int(self.index[i]) for i in batch]


@pytest.fixture
def every_other_sampler():
    register_sampler("every_other")(EveryOther)
    yield EveryOther
    SAMPLERS.unregister("every_other")


def test_a_registered_sampler_is_used_by_name(tmp_path, every_other_sampler, monkeypatch):
    seen = []
    real = EveryOther.__iter__

    def recording(self):
        for batch in real(self):
            seen.append(batch)
            yield batch

    monkeypatch.setattr(EveryOther, "__iter__", recording)
    cfg = load_config(
        None, GAUSSIAN + ["train.epochs=1", "train.batch_size=16", "sampling.name=every_other"]
    )
    train(cfg, tmp_path / "run", progress=False, log=lambda _m: None)
    from fairmetric.train import build_data

    labels = build_data(cfg)["train"].labels
    assert seen and all(np.all(labels[b] % 2 == 0) for b in seen)
    assert "every_other" in METHODS


@dataclass
class CountConfig:
    enabled: bool = False


class CountHook(BatchHook):
    """Counts the rows of every combined batch; logs the mean per step."""

    config_class = CountConfig

    @classmethod
    def from_config(cls, config, context):
        return cls() if config.enabled else None

    def after_forward(self, batch):
        return {"rows_per_step": len(batch.embeddings)}


def test_a_registered_hook_runs_and_logs(tmp_path):
    register_hook("count")(CountHook)
    try:
        cfg = load_config(
            None,
            GAUSSIAN
            + ["train.epochs=1", "train.batches_per_epoch=2", "mitigation.count.enabled=true"],
        )
        result = train(cfg, tmp_path / "run", progress=False, log=lambda _m: None)
    finally:
        HOOKS.unregister("count")
    assert result["final"]["rows_per_step"] == cfg.train.batch_size


def test_built_in_plugins_and_their_order():
    """The order of the terms is the order their parameters are created in: part of the result."""
    assert TERMS.names() == ["parade", "spectral", "adversary"]
    assert REDUCERS.names() == ["group_weighted", "group_dro"]
    assert SAMPLERS.names() == ["m_per_class", "epoch_balanced", "batch_balanced", "class_mixed"]
    assert HOOKS.names() == ["hard_mining", "smote", "group_mixup"]
