"""Property-based tests of the public entry points: for any input, a clear ``ValueError`` (or a
subclass) or a correct result; never another exception, never a non-finite number in a report.

Covered: ``EmbeddingSet`` construction, ``audit()`` and its report (JSON, Markdown, gates), the
config loader with random ``key=value`` overrides, and the batch samplers. Inputs are tiny
(N <= 40, D <= 8) and the example counts small, so the file runs in seconds.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fairmetric.audit import audit
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report import check_conditions, render_markdown, render_summary
from fairmetric.sampling import (
    ClassMixedBatchSampler,
    EpochBalancedBatchSampler,
    GroupQuotaBatchSampler,
    MPerClassBatchSampler,
)
from fairmetric.train import load_config
from fairmetric.train.config import ExperimentConfig, save_config
from fairmetric.train.config_schema import valid_keys

# FAIRMETRIC_PROPERTY_EXAMPLES=1000 searches harder (by hand, not in CI)
FAST = settings(
    max_examples=int(os.environ.get("FAIRMETRIC_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ----------------------------------------------------------------------------- helpers


def _finite_floats(report_dict) -> list[float]:
    """Every float in a JSON-like tree."""
    out: list[float] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)
        elif isinstance(node, float):
            out.append(node)

    walk(report_dict)
    return out


# ----------------------------------------------------------------------------- EmbeddingSet

# None is left out of labels: a column mixing None with floats is encoded through strings, so
# None becomes a class named "None" and 0.0 / -0.0 become two classes (fairmetric.data's
# encode_column; reported, not fixed here). Attributes still get None.
label_values = st.one_of(
    st.integers(-3, 6),
    st.sampled_from(["a", "b", "c", "", " ", "é", "0", "07", "7", "x\x00y"]),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)
attribute_values = st.one_of(label_values, st.none())


@st.composite
def embedding_set_inputs(draw):
    n = draw(st.integers(0, 12))
    d = draw(st.integers(0, 5))
    clean = draw(st.booleans())  # half the examples are well-formed, so results get checked
    elements = (
        st.floats(-1e30, 1e30, width=64)
        if clean
        else st.floats(allow_nan=True, allow_infinity=True, width=64)
    )
    x = draw(
        st.one_of(
            hnp.arrays(np.float64, (n, d), elements=elements),
            hnp.arrays(np.float32, (n, d), elements=st.floats(-10, 10, width=32)),
            hnp.arrays(np.int64, (n, d), elements=st.integers(-(2**40), 2**40)),
        )
        if clean
        else st.one_of(
            hnp.arrays(np.float64, (n, d), elements=elements),
            st.just(np.zeros((n,))),  # wrong rank
            st.just([["1", "2"]] * n),  # strings
        )
    )
    n_labels = n if clean else draw(st.sampled_from([n, n, max(0, n - 1), n + 1]))
    kind = draw(st.sampled_from(["int", "str"] if clean else ["int", "any"]))
    labels = (
        draw(st.lists(st.integers(0, 5), min_size=n_labels, max_size=n_labels))
        if kind == "int"
        else draw(st.lists(st.sampled_from(["a", "b", "é", "07", "7"]), min_size=n, max_size=n))
        if kind == "str"
        else draw(st.lists(label_values, min_size=n_labels, max_size=n_labels))
    )
    attributes = draw(
        st.dictionaries(
            st.sampled_from(["colour", "sex"]),
            st.lists(st.sampled_from(["x", "y", "z"]), min_size=n, max_size=n),
            max_size=2,
        )
        if clean
        else st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(["colour", "sex", "", "a\x00b"]),
                st.lists(attribute_values, min_size=n, max_size=n),
                max_size=2,
            ),
            st.dictionaries(
                st.just("site"),
                st.lists(st.integers(0, 3), min_size=n + 1, max_size=n + 1),
                max_size=1,
            ),
        )
    )
    allow_invalid = draw(st.booleans())
    return x, labels, attributes, allow_invalid


@FAST
@given(embedding_set_inputs())
def test_embedding_set_is_valid_or_a_value_error(inputs):
    x, labels, attributes, allow_invalid = inputs
    try:
        es = EmbeddingSet(
            embeddings=x, labels=labels, attributes=attributes, allow_invalid=allow_invalid
        )
    except ValueError:
        event("ValueError")
        return
    event("result")
    arr = np.asarray(x)
    n = arr.shape[0]
    assert len(es) == n and es.embeddings.shape == arr.shape
    assert es.embeddings.dtype == np.float32
    assert es.labels.shape == (n,) and es.labels.dtype.kind in "iu"
    if n:
        assert es.labels.min() >= 0
    # names: one per code, and equal inputs get equal codes
    assert len(es.label_names) >= (int(es.labels.max()) + 1 if n else 0)
    for i in range(n):
        for j in range(n):
            if labels[i] == labels[j] and type(labels[i]) is type(labels[j]):
                assert es.labels[i] == es.labels[j], (labels[i], labels[j])
    for a in es.attribute_names:
        col = es.attribute(a)
        assert col.shape == (n,)
        if n:
            assert 0 <= col.min() and col.max() < len(es.attribute_value_names[a])
    if not allow_invalid:
        assert not es.invalid_mask.any()
    finite = np.isfinite(arr.astype(np.float64)).all(axis=1) if arr.size else np.ones(n, bool)
    small = (np.abs(arr.astype(np.float64)) < 3e38).all(axis=1) if arr.size else np.ones(n, bool)
    ok = finite & small
    np.testing.assert_array_equal(es.embeddings[ok], arr[ok].astype(np.float32))


# ----------------------------------------------------------------------------- audit()


@st.composite
def audit_inputs(draw):
    n = draw(st.integers(4, 40))
    d = draw(st.integers(1, 8))
    n_classes = draw(st.integers(1, 6))
    n_groups = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1.0, 1e-20, 1e20]))
    x = rng.normal(size=(n, d)) * scale
    if draw(st.booleans()):  # ties: duplicate rows and small integer grids
        x = np.round(x / scale) * scale
    if draw(st.booleans()):
        x[: n // 3] = x[n // 3 : 2 * (n // 3)]
    bad = draw(st.sampled_from(["none", "none", "nan", "zero", "all"]))
    if bad != "none":  # NaN rows or zero rows (refused under cosine), a few or every one
        rows = slice(None) if bad == "all" else rng.choice(n, size=max(1, n // 5), replace=False)
        x[rows] = np.nan if bad in ("nan", "all") else 0.0
    labels = rng.integers(0, n_classes, size=n)
    groups = np.array(["g0", "g1", "g2", "g3"], dtype=object)[rng.integers(0, n_groups, size=n)]
    attrs = {"grp": groups}
    if draw(st.booleans()):
        attrs["site"] = rng.integers(0, 2, size=n)
    kwargs = dict(
        metric=draw(st.sampled_from(["cosine", "l2", "ip"])),
        ks=draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)),
        bootstrap=draw(st.sampled_from([0, 0, 7])),
        homophily_k=draw(st.integers(1, 4)),
        leakage_k=draw(st.integers(1, 4)),
        linear_probe=draw(st.booleans()),
        min_group_size=draw(st.integers(1, 12)),
        seed=draw(st.integers(0, 5)),
        projection_points=draw(st.sampled_from([0, 0, 5])),
        intersectional=draw(st.booleans()),
        drop_invalid=draw(st.booleans()),
    )
    return x.astype(np.float32), labels, attrs, kwargs


@FAST
@given(audit_inputs())
def test_audit_is_finite_and_consistent_or_a_value_error(inputs):
    x, labels, attrs, kwargs = inputs
    data = EmbeddingSet(embeddings=x, labels=labels, attributes=attrs, allow_invalid=True)
    try:
        report = audit(data, **kwargs)
    except ValueError:
        event("ValueError")
        return
    event("result")
    doc = json.loads(report.to_json())  # allow_nan=False: no NaN or Inf anywhere
    assert all(math.isfinite(v) for v in _finite_floats(doc))
    m_size = kwargs["min_group_size"]
    for name, m in report.metrics.items():
        for a, groups in m.by_group.items():
            compared = {g: e.value for g, e in groups.items() if e.value is not None}
            compared = {g: v for g, v in compared.items() if groups[g].count >= m_size}
            assert set(m.compared_values(a)) == set(compared)
            assert set(m.excluded(a)) == {
                g for g, e in groups.items() if e.value is not None and e.count < m_size
            }
            diff = m.difference(a)
            if len(compared) >= 2:
                assert diff == pytest.approx(max(compared.values()) - min(compared.values()))
            else:
                assert diff is None
            worst = m.worst_group(a)
            assert (worst is None) == (not compared)
            if worst is not None:
                assert worst[0] in compared
            ratio = m.ratio(a)
            if ratio is not None and all(v >= 0 for v in compared.values()):
                assert 0 <= ratio <= 1
            for e in groups.values():
                if e.ci_low is not None:
                    assert e.ci_low <= e.ci_high
        if name.startswith(("recall@", "map@")):
            for e in [m.overall, *(e for g in m.by_group.values() for e in g.values())]:
                assert e.value is None or 0 <= e.value <= 1
    assert report.metadata["min_group_size"] == m_size
    # the writers and the gate take any report
    render_markdown(report)
    render_summary(report)
    first = next(iter(report.metrics))
    conditions = [f"{first}.difference>0.05", f"{first}.worst<0.5", f"{first}.overall<0.5"]
    assert isinstance(check_conditions(report, conditions), list)


NEIGHBOUR_METRICS = ("recall@1", "recall@2", "map@r")


@FAST
@given(
    st.integers(0, 2**16),
    st.integers(6, 30),
    st.integers(1, 6),
    st.sampled_from(["cosine", "l2"]),
    st.integers(-60, 60),
)
def test_neighbour_metrics_do_not_depend_on_a_power_of_two_scale(seed, n, d, metric, exponent):
    """Scaling every embedding by 2**e is exact in floating point, and it changes no ranking
    under cosine or l2: Recall@k and MAP@R stay the same numbers, per group too."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, 3, size=n)
    groups = rng.integers(0, 2, size=n)

    def measure(emb: np.ndarray) -> dict:
        data = EmbeddingSet(embeddings=emb, labels=labels, attributes={"g": groups})
        report = audit(
            data,
            metric=metric,
            ks=(1, 2),
            bootstrap=0,
            homophily_k=2,
            leakage_k=2,
            linear_probe=False,
            projection_points=0,
            min_group_size=1,
        )
        return {k: (report[k].overall.value, report[k].values("g")) for k in NEIGHBOUR_METRICS}

    scaled = x * np.float32(2.0**exponent)
    assert np.array_equal(scaled / np.float32(2.0**exponent), x)  # exact
    assert measure(scaled) == measure(x)


# ----------------------------------------------------------------------------- load_config

KEYS = valid_keys(ExperimentConfig)
# A recursive YAML alias (``loss.params=&a {x: *a}``, ``sampling.proportions.a=&a [*a]``) is left
# out: load_config accepts it inside a free-form mapping and save_config then dies with a
# RecursionError (fairmetric.train.config; reported, not fixed here).
yaml_values = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "3",
            "1e-3",
            "-1e-3",
            "1e400",
            ".nan",
            ".inf",
            "-.inf",
            "null",
            "true",
            "no",
            "[]",
            "[1, 2]",
            "{}",
            "{a: 1}",
            "'str'",
            "cpu",
            "MultiSimilarityLoss",
            "ContrastiveLoss",
            "m_per_class",
            "group_quota",
            "[",
            "{",
            "!!python/object/apply:os.system ['true']",
            "!!binary aGk=",
            "[&a 1, *a]",  # an alias to an earlier node: fine
            "2**70",
            "99999999999999999999",
            "1_000",
            "0x10",
            "2026-01-01",
            "é",
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
plausible = st.one_of(
    st.builds(lambda v: f"train.epochs={v}", st.integers(-2, 50)),
    st.builds(lambda v: f"train.batch_size={v}", st.integers(-2, 512)),
    st.builds(lambda v: f"train.m_per_class={v}", st.integers(-2, 16)),
    st.builds(lambda v: f"model.embedding_dim={v}", st.integers(-2, 4096)),
    st.builds(lambda v: f"optim.lr={v!r}", st.floats(-1, 10)),
    st.builds(lambda v: f"optim.weight_decay={v!r}", st.floats(-1, 1)),
    st.builds(lambda v: f"data.test_fraction={v!r}", st.floats(-0.5, 1.5)),
    st.builds(lambda v: f"data.image_size={v}", st.integers(-2, 512)),
    st.builds(lambda v: f"train.seed={v}", st.integers(-2, 2**40)),
    st.builds(lambda v: f"sampling.name={v}", st.sampled_from(["m_per_class", "group_quota", "x"])),
    st.builds(lambda v: f"loss.params.margin={v!r}", st.floats(-1, 2)),
    st.builds(lambda v: f"mitigation.group_mixup.p={v!r}", st.floats(-1, 2)),
    st.builds(lambda v: f"reducer.beta={v!r}", st.floats(-1, 2)),
)
override = st.one_of(
    plausible,
    plausible,
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), yaml_values),
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(["loss.params.margin", "data.params.n_classes", "sampling.proportions.a"]),
        yaml_values,
    ),
    st.text(max_size=20),
)


def _floats_of(cfg: ExperimentConfig) -> list[float]:
    from fairmetric.train.config import config_to_dict

    return _finite_floats(config_to_dict(cfg))


@FAST
@given(st.lists(override, max_size=4))
def test_load_config_is_a_config_or_a_value_error(overrides):
    try:
        cfg = load_config(None, overrides)
    except ValueError:
        event("ValueError")
        return
    event("result")
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.optim.lr > 0 and math.isfinite(cfg.optim.lr)
    assert cfg.train.epochs >= 1 and cfg.train.batch_size >= 1 and cfg.model.embedding_dim >= 1
    # what loads saves and loads back the same
    with tempfile.TemporaryDirectory() as tmp:
        path = save_config(cfg, Path(tmp) / "config.yaml")
        assert load_config(path) == cfg


@FAST
@given(st.integers(-3, 10_000), st.floats(allow_nan=True, allow_infinity=True))
def test_load_config_applies_in_range_values_exactly(epochs, lr):
    try:
        cfg = load_config(None, [f"train.epochs={epochs}", f"optim.lr={lr!r}"])
    except ValueError:
        event("ValueError")
        assert epochs < 1 or not (math.isfinite(lr) and lr > 0) or epochs > 10_000 or lr > 1e3
        return
    assert cfg.train.epochs == epochs
    assert cfg.optim.lr == lr and math.isfinite(lr) and lr > 0


# ----------------------------------------------------------------------------- samplers


@st.composite
def sampler_inputs(draw):
    n = draw(st.integers(0, 40) if draw(st.booleans()) else st.integers(20, 40))
    n_classes = draw(st.integers(1, 8))
    n_groups = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    if draw(st.booleans()):
        labels = np.array([f"c{v}" for v in labels], dtype=object)
    groups = rng.integers(0, n_groups, size=n)
    if n and draw(st.integers(0, 5)) == 0:
        groups = groups[: draw(st.integers(0, n))]  # length mismatch
    m = draw(st.integers(1, 4) if draw(st.booleans()) else st.integers(-1, 5))
    batch_size = draw(
        st.integers(1, 4).map(lambda k: k * m) if draw(st.booleans()) else st.integers(-1, 24)
    )
    num_batches = draw(st.one_of(st.none(), st.integers(1, 4), st.integers(-1, 4)))
    shares = draw(
        st.one_of(
            st.none(),
            st.lists(st.floats(-0.5, 3, allow_nan=False), min_size=0, max_size=4),
            st.dictionaries(st.integers(0, 3), st.floats(0, 2), max_size=4),
        )
    )
    extra = {
        "shares": shares,
        "mode": draw(st.sampled_from(["over", "under", "sideways"])),
        "mixed_share": draw(st.one_of(st.none(), st.floats(-0.5, 1.5, allow_nan=False))),
    }
    return labels, groups, m, batch_size, num_batches, draw(st.integers(0, 3)), extra


def _build(kind: str, labels, groups, m, batch_size, num_batches, seed, extra, **sharding):
    common = dict(m=m, batch_size=batch_size, num_batches=num_batches, seed=seed, **sharding)
    if kind == "m_per_class":
        return MPerClassBatchSampler(labels, **common)
    if kind == "group_quota":
        return GroupQuotaBatchSampler(labels, groups, proportions=extra["shares"], **common)
    if kind == "epoch_balanced":
        return EpochBalancedBatchSampler(
            labels, groups, target=extra["shares"], mode=extra["mode"], **common
        )
    return ClassMixedBatchSampler(labels, groups, mixed_share=extra["mixed_share"], **common)


@FAST
@given(
    sampler_inputs(),
    st.sampled_from(["m_per_class", "group_quota", "epoch_balanced", "class_mixed"]),
)
def test_samplers_give_m_per_class_batches_or_a_value_error(inputs, kind):
    labels, groups, m, batch_size, num_batches, seed, extra = inputs
    try:
        sampler = _build(kind, labels, groups, m, batch_size, num_batches, seed, extra)
        sampler.set_epoch(1)
        batches = list(sampler)
    except ValueError:
        event("ValueError")
        return
    event("result")
    n = len(labels)
    assert len(batches) == len(sampler)
    if num_batches is not None:
        assert len(batches) == num_batches
    codes = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)
    for batch in batches:
        assert len(batch) == batch_size
        assert all(0 <= i < n for i in batch)
        classes, counts = np.unique(codes[batch], return_counts=True)
        assert len(classes) == batch_size // m
        assert (counts == m).all()
    # batches are a pure function of (seed, epoch)
    again = _build(kind, labels, groups, m, batch_size, num_batches, seed, extra)
    again.set_epoch(1)
    assert list(again) == batches
    # two ranks share the same global sequence: rank r takes batches r, r + 2, ..., and each
    # rank gets ceil(num_batches / 2) (the sequence runs on past num_batches for the last one)
    shards = []
    for rank in (0, 1):
        part = _build(
            kind, labels, groups, m, batch_size, num_batches, seed, extra, rank=rank, world_size=2
        )
        part.set_epoch(1)
        shards.append(list(part))
    for rank, shard in enumerate(shards):
        assert len(shard) == math.ceil(len(batches) / 2)
        assert shard[: len(batches[rank::2])] == batches[rank::2]
