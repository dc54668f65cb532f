"""The term and reducer registries: what a plug-in must declare, and the build context."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import TripletMarginLoss

from fairmetric.data.gaussian import make_gaussian_groups
from fairmetric.losses import REDUCERS, TERMS, ObjectiveContext, Term, register_term
from fairmetric.losses.group_dro import GroupDROConfig, GroupDROReducer
from fairmetric.losses.reducers import GroupWeightedConfig, GroupWeightedReducer, group_weights
from fairmetric.losses.terms import ParadeConfig, ParadeTerm, SpectralConfig


@pytest.fixture
def context() -> ObjectiveContext:
    ds = make_gaussian_groups(n_classes=8, samples_per_class=4, dim=4, seed=0)
    groups = ds.attributes[:, ds.attribute_index("group")].astype(np.int64)
    return ObjectiveContext(
        train_set=ds,
        embedding_dim=8,
        feature_dim=16,
        metric_loss=TripletMarginLoss(),
        groups=groups,
        group_attribute="group",
        log=lambda _m: None,
    )


def test_every_built_in_declares_a_config_whose_defaults_are_off(context):
    for name in TERMS:
        term = TERMS.get(name)
        assert term.from_config(term.config_class(), context) == [], name


def test_parade_builds_one_term_per_attribute(context):
    terms = ParadeTerm.from_config(ParadeConfig(attributes=["group"], rho=2.0), context)
    assert len(terms) == 1 and terms[0].attribute == "group" and terms[0].rho == 2.0
    assert terms[0].head.head.in_features == 16  # the context's feature width


@pytest.mark.parametrize(
    "cls, config, match",
    [
        (ParadeTerm, ParadeConfig(attributes=["shade"]), r"objective.parade.attributes.*'shade'"),
        (TERMS.get("spectral"), SpectralConfig(coefficient=-1.0), "objective.spectral.coefficient"),
    ],
)
def test_bad_configs_name_the_key(context, cls, config, match):
    with pytest.raises(ValueError, match=match):
        cls.from_config(config, context)


def test_reducers_build_from_their_configs(context):
    weighted = GroupWeightedReducer.from_config(GroupWeightedConfig(beta=0.5), context)
    torch.testing.assert_close(weighted.weights, group_weights(context.groups, 0.5))
    assert weighted.base == "avg_nonzero"  # auto: the triplet loss's own reduction
    dro = GroupDROReducer.from_config(GroupDROConfig(eta=0.5), context)
    np.testing.assert_array_equal(dro.group_counts.numpy(), np.bincount(context.groups))
    assert dro.state_log()["group_dro"]["q"] == {"g0": 0.5, "g1": 0.5}
    assert REDUCERS.names() == ["group_weighted", "group_dro"]


def test_reducers_need_the_groups(context):
    context.groups = None
    with pytest.raises(ValueError, match="reducer group_dro needs the groups: set data.group"):
        GroupDROReducer.from_config(GroupDROConfig(), context)


def test_registration_checks_the_declarations():
    @dataclass
    class NoDefault:
        weight: float

    class Needy(Term):
        config_class = NoDefault

        @classmethod
        def from_config(cls, config, context):
            return []

    with pytest.raises(TypeError, match=r"config field\(s\) \['weight'\] need a default"):
        register_term("needy")(Needy)
    with pytest.raises(ValueError, match="already registered"):
        register_term("parade")(type("Twin", (ParadeTerm,), {}))
    assert "needy" not in TERMS and TERMS.get("parade") is ParadeTerm
