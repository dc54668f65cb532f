"""The batch-sampler registry: built-ins by name, built from the ``sampling`` section."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fairmetric.data.gaussian import make_gaussian_groups
from fairmetric.sampling import (
    SAMPLERS,
    EpochBalancedBatchSampler,
    GroupQuotaBatchSampler,
    MPerClassBatchSampler,
    SamplerContext,
    register_sampler,
)


def _context(**kw) -> SamplerContext:
    ds = make_gaussian_groups(n_classes=8, samples_per_class=6, dim=4, seed=0)
    groups = ds.attributes[:, ds.attribute_index("group")].astype(np.int64)
    args = dict(
        train_set=ds,
        groups=groups,
        group_attribute="group",
        m=2,
        batch_size=8,
        num_batches=3,
        seed=0,
    )
    return SamplerContext(**{**args, **kw})


@pytest.mark.parametrize(
    "name, cls",
    [
        ("m_per_class", MPerClassBatchSampler),
        ("epoch_balanced", EpochBalancedBatchSampler),
        ("batch_balanced", GroupQuotaBatchSampler),
    ],
)
def test_built_ins_by_name(name, cls):
    section = SimpleNamespace(name=name, proportions=None, mode="over")
    sampler = SAMPLERS.get(name).from_config(section, _context())
    assert type(sampler) is cls and len(sampler) == 3
    assert all(len(batch) == 8 for batch in sampler)


def test_proportions_by_value_name():
    ctx = _context()
    assert ctx.proportions({"g0": 0.75, "g1": 0.25}, "sampling.proportions") == {0: 0.75, 1: 0.25}
    assert ctx.proportions(None, "sampling.proportions") is None
    with pytest.raises(ValueError, match=r"sampling.proportions names 'red'.*g0, g1"):
        ctx.proportions({"red": 1.0}, "sampling.proportions")


def test_a_sampler_must_say_how_it_is_built():
    class Plain:
        pass

    with pytest.raises(TypeError, match="must define from_config"):
        register_sampler("plain")(Plain)
    assert "plain" not in SAMPLERS
