"""Hard same-group impostors (the RFW protocol) against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit.verification import verification_audit
from fairmetric.audit.verification.pairs import hard_impostor_pairs
from fairmetric.audit.verification.scores import pair_scores
from fairmetric.embeddings import EmbeddingSet


def reference(x, labels, members, k, metric):
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    out = set()
    for i in members:
        cands = []
        for j in members:
            if j == i or labels[j] == labels[i]:
                continue
            if metric == "cosine":
                s = x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
            else:
                s = -((x[i] - x[j]) ** 2).sum()
            cands.append((s, j))
        cands.sort(reverse=True)
        if len(cands) > k:
            cut = cands[k - 1][0]
            cands = [c for c in cands if c[0] >= cut]
        out |= {(min(i, j), max(i, j)) for _, j in cands}
    return out


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("k", [1, 3])
def test_matches_a_brute_force_loop(metric, k):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    x[7] = x[3]  # a duplicate row: ties at the cut keep both
    labels = rng.integers(0, 10, size=40)
    members = np.flatnonzero(rng.random(40) < 0.7)
    p = hard_impostor_pairs(x, labels, members, k, metric)
    got = set(zip(p.i.tolist(), p.j.tolist()))
    assert got == reference(x, labels, members, k, metric)
    assert (labels[p.i] != labels[p.j]).all()


def test_hard_fmr_in_the_audit():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(30, 6))
    x = (np.repeat(centres, 3, axis=0) + 0.5 * rng.normal(size=(90, 6))).astype(np.float32)
    group = np.repeat(np.array(["a", "b"] * 15), 3)
    data = EmbeddingSet(embeddings=x, labels=np.repeat(np.arange(30), 3), attributes={"g": group})
    report = verification_audit(data, fmr=[1e-2], bootstrap=20, hard_impostors=2)
    tau = report["threshold@1e-2"].overall.value
    codes = np.asarray(data.attribute("g"))
    for g, name in enumerate(data.attribute_value_names["g"]):
        p = hard_impostor_pairs(x, data.labels, np.flatnonzero(codes == g), 2, "cosine")
        want = float((pair_scores(x, p.i, p.j) >= tau).mean())
        assert report["hard_fmr@1e-2"].values("g")[name] == want
    # hard impostors are the most similar: their FMR is far above the sampled FMR
    assert report["hard_fmr@1e-2"].overall.value > 5 * report["fmr@1e-2"].overall.value
    assert report.metadata["verification"]["hard_impostors"] == 2
    with pytest.raises(ValueError, match="hard_impostors must be an integer >= 0"):
        verification_audit(data, fmr=[1e-2], bootstrap=0, hard_impostors=-1)
