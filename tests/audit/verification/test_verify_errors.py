"""`verification_audit` on bad or degenerate input: clear ValueErrors, NA groups (no crash)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.audit.verification import verification_audit
from fairmetric.embeddings import EmbeddingSet


def _set(labels, groups=None, dim: int = 4, seed: int = 0, x=None, **kw) -> EmbeddingSet:
    labels = np.asarray(labels)
    if x is None:
        x = np.random.default_rng(seed).normal(size=(len(labels), dim)).astype(np.float32)
    if groups is None:
        groups = np.where(labels % 2 == 0, "a", "b")
    return EmbeddingSet(embeddings=x, labels=labels, attributes={"g": np.asarray(groups)}, **kw)


GOOD = np.repeat(np.arange(6), 2)


def test_no_genuine_pairs():
    with pytest.raises(ValueError, match="no genuine pairs"):
        verification_audit(_set(np.arange(8)), bootstrap=0)


def test_one_identity():
    with pytest.raises(ValueError, match="single identity"):
        verification_audit(_set(np.zeros(5, dtype=int), ["a"] * 5), bootstrap=0)


def test_nan_rows():
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # the set itself refuses them by default
        _set(GOOD, x=x)
    with pytest.raises(ValueError, match=r"1 embedding rows contain NaN/Inf \(first: \[3\]\)"):
        verification_audit(_set(GOOD, x=x, allow_invalid=True), bootstrap=0)


def test_all_zero_rows_under_cosine():
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    x[[2, 7]] = 0
    with pytest.raises(ValueError, match=r"2 embedding rows are all zero \(first: \[2, 7\]\)"):
        verification_audit(_set(GOOD, x=x), bootstrap=0)
    # l2 has a distance for them
    r = verification_audit(_set(GOOD, x=x), metric="l2", fmr=[0.1], bootstrap=0)
    assert r.metrics["fmr@1e-1"].overall.value is not None


@pytest.mark.parametrize(
    ("fmr", "message"),
    [
        ([], "at least one target FMR"),
        ([0], r"\(0, 1\)"),
        ([1], r"\(0, 1\)"),
        ([1e-3, 1e-3], "repeat"),
        ([True], "must be a number"),
        (["x"], "must be a number"),
    ],
)
def test_bad_fmr_lists(fmr, message):
    with pytest.raises(ValueError, match=message):
        verification_audit(_set(GOOD), fmr=fmr, bootstrap=0)


@pytest.mark.parametrize("name", ["genuine_pairs", "impostor_pairs", "same_group_pairs"])
@pytest.mark.parametrize("value", [0, -1, True, 2.5, "10"])
def test_bad_budgets(name, value):
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
        verification_audit(_set(GOOD), bootstrap=0, **{name: value})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"attributes": ["nope"]}, "unknown attribute 'nope'"),
        ({"metric": "ip"}, "metric must be 'cosine' or 'l2'"),
        ({"bootstrap": -1}, "bootstrap must be an integer"),
        ({"bootstrap": True}, "bootstrap must be an integer"),
        ({"alpha": 1.5}, "alpha must lie in"),
        ({"level": 1.0}, "level must lie in"),
        ({"min_group_size": 0}, "min_group_size"),
    ],
)
def test_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        verification_audit(_set(GOOD), **{"bootstrap": 0, **kw})


def test_not_an_embedding_set():
    with pytest.raises(ValueError, match="must be an EmbeddingSet"):
        verification_audit(np.zeros((4, 2)), bootstrap=0)


def test_a_group_with_one_identity_gets_na_fmr_with_its_reason():
    labels = np.repeat(np.arange(5), 2)  # identity 4 alone in group c
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 2
    r = verification_audit(_set(labels, groups), fmr=[0.1], bootstrap=20, min_group_size=1)
    fmr = r.metrics["fmr@1e-1"]
    c = fmr.by_group["g"]["c"]
    assert c.value is None and "single identity" in c.na_reason
    assert r.metrics["threshold@1e-1"].by_group["g"]["c"].value is None
    assert r.metrics["threshold@1e-1"].by_group["g"]["c"].na_reason
    assert r.metrics["fnmr@1e-1"].by_group["g"]["c"].value is not None  # it has genuine pairs
    assert fmr.by_group["g"]["a"].value is not None and fmr.by_group["g"]["b"].value is not None
    assert "c" not in fmr.compared_values("g")
    assert fmr.summaries["gini"]["g"].count == 2  # c is not compared
    m = r.metadata["verification"]["fmr_matrix"]["1e-1"]["g"]
    k = m["groups"].index("c")
    assert m["pairs"][k][k] == 0 and m["fmr"][k][k] is None
    assert any("g=c" in w for w in r.metadata["verification"]["warnings"])
    d = json.loads(r.to_json())  # serialises: NA is null, never NaN
    assert d["metrics"]["fmr@1e-1"]["by_group"]["g"]["c"]["value"] is None


def test_a_group_without_genuine_pairs_gets_na_fnmr():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 4, 5])  # group c: identities 3, 4, 5, one sample each
    groups = ["a"] * 2 + ["b"] * 2 + ["a"] * 2 + ["c"] * 3
    r = verification_audit(_set(labels, groups), fmr=[0.1], bootstrap=10, min_group_size=1)
    c = r.metrics["fnmr@1e-1"].by_group["g"]["c"]
    assert c.value is None and "no genuine pairs" in c.na_reason
    assert r.metrics["fmr@1e-1"].by_group["g"]["c"].value is not None
    json.loads(r.to_json())


def test_numpy_scalar_fmr_is_one_target():
    r = verification_audit(_set(GOOD), fmr=np.float32(0.1), bootstrap=0)
    assert set(r.metrics) == {"fmr@1e-1", "fnmr@1e-1", "threshold@1e-1"}


def test_attributes_as_a_string_is_one_name():
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    data = EmbeddingSet(
        embeddings=x,
        labels=GOOD,
        attributes={"g": np.where(GOOD % 2, "a", "b"), "h": np.where(GOOD < 3, "x", "y")},
    )
    with pytest.raises(ValueError, match="'gh'"):
        verification_audit(data, attributes="gh", bootstrap=0)


def test_bool_alpha_is_rejected():
    with pytest.raises(ValueError, match="alpha"):
        verification_audit(_set(GOOD), alpha=True, bootstrap=0)


def test_numpy_integer_budgets_are_accepted():
    r = verification_audit(_set(GOOD), genuine_pairs=np.int64(5), fmr=[0.1], bootstrap=0)
    assert r.metadata["verification"]["pairs"]["genuine"] == 5
