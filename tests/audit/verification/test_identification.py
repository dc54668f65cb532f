"""Rank-1 identification errors by group against a brute-force loop, and against the audit's
Recall@1 (the same search and tie rule: error = 1 - Recall@1 per group)."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit import audit
from fairmetric.audit.verification import verification_audit
from fairmetric.audit.verification.identification import identification_errors
from fairmetric.embeddings import EmbeddingSet


def reference(x, labels, codes, metric):
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    n = len(x)
    g = codes.max() + 1
    errors = np.zeros((g, g))
    queries = np.zeros(g)
    for i in range(n):
        if sum(labels[j] == labels[i] for j in range(n) if j != i) == 0:
            continue
        queries[codes[i]] += 1
        best, tied = None, []
        for j in range(n):
            if j == i:
                continue
            if metric == "cosine":
                s = float(x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))
            else:
                s = -float(((x[i] - x[j]) ** 2).sum())
            if best is None or s > best:
                best, tied = s, [j]
            elif s == best:
                tied.append(j)
        for j in tied:
            if labels[j] != labels[i]:
                errors[codes[i], codes[j]] += 1 / len(tied)
    return errors / queries[:, None], queries


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_matches_a_brute_force_loop_with_ties(metric):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    x[5] = x[6]  # duplicates: a tie at rank 1 for every query whose nearest they are
    x[12] = x[7]
    labels = rng.integers(0, 8, size=30)
    labels[29] = 99  # an identity with one sample: never a query
    codes = rng.integers(0, 3, size=30)
    got = identification_errors(x, labels, {"g": codes}, metric)["g"]
    want, queries = reference(x, labels, codes, metric)
    np.testing.assert_array_equal(got["queries"], queries)
    np.testing.assert_allclose(got["matrix"], want, rtol=0, atol=1e-12)


def test_rank1_error_is_one_minus_the_audits_recall():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 8))
    x = (np.repeat(centres, 3, axis=0) + 0.9 * rng.normal(size=(120, 8))).astype(np.float32)
    group = np.repeat(np.array(["a", "b"] * 20), 3)
    data = EmbeddingSet(embeddings=x, labels=np.repeat(np.arange(40), 3), attributes={"g": group})
    report = verification_audit(data, fmr=[1e-2], bootstrap=0)
    ident = report.metadata["verification"]["identification"]["g"]
    recall = audit(data, ks=(1,), bootstrap=0, linear_probe=False, projection_points=0)
    for name, value in recall["recall@1"].values("g").items():
        assert ident["rank1_error"][name] == pytest.approx(1 - value, abs=1e-12)
    assert 0 < ident["rank1_error"]["a"] < 1
    assert (
        verification_audit(data, fmr=[1e-2], bootstrap=0, identification=False).metadata[
            "verification"
        ]["identification"]
        == {}
    )


def test_identification_is_automatic_below_the_limit(monkeypatch):
    import fairmetric.audit.verification.verify as verify

    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    data = EmbeddingSet(
        embeddings=x, labels=np.repeat(np.arange(20), 3), attributes={"g": np.tile([0, 1], 30)}
    )
    meta = verification_audit(data, fmr=[1e-2], bootstrap=0).metadata["verification"]
    assert meta["identification_measured"] and meta["identification"]
    monkeypatch.setattr(verify, "IDENTIFICATION_AUTO_MAX", 59)
    meta = verification_audit(data, fmr=[1e-2], bootstrap=0).metadata["verification"]
    assert not meta["identification_measured"] and meta["identification"] == {}
    forced = verification_audit(data, fmr=[1e-2], bootstrap=0, identification=True)
    assert forced.metadata["verification"]["identification"]
