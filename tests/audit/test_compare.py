"""fairmetric.compare: paired bootstrap differences of two models on the same samples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import fairmetric
from fairmetric.audit import audit
from fairmetric.audit.compare import align_samples, compare
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError
from fairmetric.report.compare import compare_reports
from fairmetric.report.compare_writers import (
    render_compare_html,
    render_compare_markdown,
    render_compare_text,
    write_comparison,
)

N_CLS, PER, DIM = 16, 6, 8
GROUPS = np.array(["x", "y"])


def _sets(seed: int = 0, noise_b: float = 0.5, noise_a_minority: float = 2.0, ids=False):
    """A and B embed the same 96 samples; A is much noisier on group "y" (a large gap)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLS), PER)
    grp = np.tile([0, 0, 0, 1, 1, 1], N_CLS)
    centres = rng.normal(size=(N_CLS, DIM))
    xa = centres[labels] + rng.normal(scale=0.5, size=(len(labels), DIM))
    xa[grp == 1] += rng.normal(scale=noise_a_minority, size=((grp == 1).sum(), DIM))
    xb = centres[labels] + rng.normal(scale=noise_b, size=(len(labels), DIM))
    attrs = {"g": GROUPS[grp]}
    row_ids = [f"img{i:03d}" for i in range(len(labels))] if ids else None
    a = EmbeddingSet(embeddings=xa, labels=labels, attributes=attrs, ids=row_ids)
    b = EmbeddingSet(embeddings=xb, labels=labels, attributes=attrs, ids=row_ids)
    return a, b


def _recall1_hits(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Slow reference: 1 if the nearest other sample (cosine, float64) has the same label."""
    x = x.astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    hits = np.zeros(len(x))
    for i in range(len(x)):
        best, best_j = -np.inf, -1
        for j in range(len(x)):
            if j != i and x[i] @ x[j] > best:
                best, best_j = x[i] @ x[j], j
        hits[i] = float(labels[best_j] == labels[i])
    return hits


def test_paired_intervals_match_a_slow_reference_over_the_same_resamples():
    a, b = _sets()
    n_boot, seed = 60, 3
    c = compare(a, b, attributes=["g"], ks=[1], bootstrap=n_boot, seed=seed, linear_probe=False)
    ha, hb = _recall1_hits(a.embeddings, a.labels), _recall1_hits(b.embeddings, b.labels)
    codes = a.attribute("g")
    # the audit's stratified bootstrap: per group (in code order), one row resample per replicate
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(codes == c) for c in range(2)]
    draws = [rng.integers(0, len(r), size=(n_boot, len(r))) for r in rows]
    diff_group = {g: [] for g in GROUPS}
    diff_gap, diff_overall = [], []
    for r in range(n_boot):  # both models' metric on the same resampled rows
        va, vb, sa, sb, cnt = {}, {}, 0.0, 0.0, 0
        for code, g in enumerate(GROUPS):
            picked = rows[code][draws[code][r]]
            va[g], vb[g] = ha[picked].mean(), hb[picked].mean()
            sa, sb, cnt = sa + ha[picked].sum(), sb + hb[picked].sum(), cnt + len(picked)
            diff_group[g].append(vb[g] - va[g])
        gap_a = max(va.values()) - min(va.values())
        gap_b = max(vb.values()) - min(vb.values())
        diff_gap.append(gap_b - gap_a)
        diff_overall.append(sb / cnt - sa / cnt)

    def ci(values):
        return np.quantile(values, 0.025), np.quantile(values, 0.975)

    m = c["recall@1"]
    for g in GROUPS:
        d = m.by_group["g"][g]
        mask = codes == list(GROUPS).index(g)
        assert d.a == pytest.approx(ha[mask].mean()) and d.b == pytest.approx(hb[mask].mean())
        assert (d.ci_low, d.ci_high) == pytest.approx(ci(diff_group[g]))
    gap = m.gap["g"]
    ref_gap_a = abs(ha[codes == 0].mean() - ha[codes == 1].mean())
    ref_gap_b = abs(hb[codes == 0].mean() - hb[codes == 1].mean())
    assert gap.a == pytest.approx(ref_gap_a) and gap.b == pytest.approx(ref_gap_b)
    assert gap.difference == pytest.approx(ref_gap_b - ref_gap_a)
    assert (gap.ci_low, gap.ci_high) == pytest.approx(ci(diff_gap))
    assert (m.overall.ci_low, m.overall.ci_high) == pytest.approx(ci(diff_overall))
    # the paired interval is narrower than the two audits' own intervals side by side would say
    own_a, own_b = c.report_a["recall@1"].overall, c.report_b["recall@1"].overall
    assert m.overall.ci_high - m.overall.ci_low < (own_a.ci_high - own_a.ci_low) + (
        own_b.ci_high - own_b.ci_low
    )


def test_a_model_compared_with_itself_differs_by_exactly_zero():
    a, _ = _sets()
    c = compare(a, a, bootstrap=30, names=("m", "m again"))
    checked = 0
    for m in c.metrics.values():
        ds = [m.overall, *m.gap.values(), *(d for gs in m.by_group.values() for d in gs.values())]
        for d in ds:
            if d.difference is None:
                continue
            assert d.difference == 0.0, m.name
            if d.ci_low is not None:
                assert (d.ci_low, d.ci_high) == (0.0, 0.0), m.name
                assert d.excludes_zero is False
                checked += 1
    assert checked > 20
    assert "m again has the smaller gap on 0 of" in c.summary()
    verdicts = {
        d["verdict"]
        for m in c.to_dict()["metrics"].values()
        for d in [m["overall"], *m["gap"].values()]
        if d["ci_low"] is not None
    }
    assert verdicts == {"no clear difference"}


def test_b_clearly_fairer_gap_interval_excludes_zero_and_the_text_says_so():
    a, b = _sets()
    c = compare(a, b, attributes=["g"], ks=[1], bootstrap=100, names=("base", "fair"))
    gap = c["recall@1"].gap["g"]
    assert gap.difference < 0 and gap.ci_high < 0 and gap.excludes_zero
    text = render_compare_text(c)
    row = next(line for line in text.splitlines() if line.startswith("recall@1 "))
    assert row.rstrip().endswith("fair fairer")
    d = c.to_dict()
    assert d["metrics"]["recall@1"]["gap"]["g"]["verdict"] == "fair fairer"
    assert d["metrics"]["recall@1"]["gap"]["g"]["excludes_zero"] is True
    # swapping the roles flips the sign and the verdict
    c2 = compare(b, a, attributes=["g"], ks=[1], bootstrap=100, names=("fair", "base"))
    g2 = c2["recall@1"].gap["g"]
    assert g2.difference == pytest.approx(-gap.difference)
    assert (g2.ci_low, g2.ci_high) == pytest.approx((-gap.ci_high, -gap.ci_low))
    assert c2.to_dict()["metrics"]["recall@1"]["gap"]["g"]["verdict"] == "fair fairer"


def test_top_level_export_and_json_round_trip(tmp_path):
    a, b = _sets()
    c = fairmetric.compare(a, b, bootstrap=20)
    doc = json.loads(c.to_json())
    assert doc["schema_version"] == 1 and doc["names"] == {"a": "A", "b": "B"}
    assert doc["metadata"]["matched_by"] == "row order" and doc["metadata"]["n"] == len(a)
    paths = write_comparison(c, tmp_path / "cmp")
    assert {p.name for p in paths.values()} == {"compare.json", "compare.md", "compare.html"}
    assert json.loads(paths["json"].read_text()) == doc
    assert "## Per group" in paths["markdown"].read_text()


def test_names_are_escaped_in_html_and_markdown():
    a, b = _sets()
    c = compare(a, b, ks=[1], bootstrap=10, names=("<script>x</script>", "B|b"))
    page = render_compare_html(c)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "B\\|b" in render_compare_markdown(c)
    jupyter = c._repr_html_()
    assert "<script>" not in jupyter and "&lt;script&gt;" in jupyter and "<table>" in jupyter


def test_rows_are_matched_by_id():
    a, b = _sets(ids=True)
    perm = np.random.default_rng(1).permutation(len(b))
    shuffled = b.subset(perm)
    c1 = compare(a, b, ks=[1], bootstrap=20, linear_probe=False)
    c2 = compare(a, shuffled, ks=[1], bootstrap=20, linear_probe=False)
    assert c2.metadata["matched_by"] == "ids"
    assert c1.to_dict()["metrics"] == c2.to_dict()["metrics"]


def test_mismatched_samples_are_refused():
    a, b = _sets()
    with pytest.raises(UserError, match="96 samples and B 95"):
        compare(a, b.subset(np.arange(95)))
    swapped = EmbeddingSet(
        embeddings=b.embeddings,
        labels=np.roll(b.labels, 1),
        attributes={"g": GROUPS[b.attributes[:, 0]]},
    )
    with pytest.raises(UserError, match="different label in A and B .first: row 0"):
        compare(a, swapped)
    other = EmbeddingSet(
        embeddings=b.embeddings, labels=b.labels, attributes={"g": GROUPS[1 - b.attributes[:, 0]]}
    )
    with pytest.raises(UserError, match="different value of 'g'"):
        compare(a, other)
    with pytest.raises(UserError, match="B has no attribute 'h'"):
        align_samples(
            EmbeddingSet(
                embeddings=a.embeddings,
                labels=a.labels,
                attributes={"g": GROUPS[a.attributes[:, 0]], "h": GROUPS[a.attributes[:, 0]]},
            ),
            b,
            ["h"],
        )
    ai, bi = _sets(ids=True)
    renamed = EmbeddingSet(
        embeddings=bi.embeddings,
        labels=bi.labels,
        attributes={"g": GROUPS[bi.attributes[:, 0]]},
        ids=[f"other{i}" for i in range(len(bi))],
    )
    with pytest.raises(UserError, match="do not name the same samples"):
        compare(ai, renamed)


def test_compare_reports_refuses_audits_that_are_not_paired():
    a, b = _sets()
    ra = audit(a, ks=[1], bootstrap=10, seed=0, linear_probe=False)
    with pytest.raises(UserError, match="differ in seed"):
        compare_reports(ra, audit(b, ks=[1], bootstrap=10, seed=1, linear_probe=False))
    with pytest.raises(UserError, match="differ in bootstrap"):
        compare_reports(ra, audit(b, ks=[1], bootstrap=11, seed=0, linear_probe=False))
    with pytest.raises(UserError, match="two different non-empty names"):
        compare_reports(ra, ra, names=("A", "A"))


def test_without_bootstrap_differences_have_no_interval():
    a, b = _sets()
    c = compare(a, b, ks=[1], bootstrap=0, linear_probe=False)
    gap = c["recall@1"].gap["g"]
    assert gap.difference is not None and gap.ci_low is None and gap.excludes_zero is None
    assert "no intervals (bootstrap 0)" in c.summary()
    assert not any(
        isinstance(v, float) and math.isnan(v) for v in json.loads(c.to_json())["metadata"].values()
    )


def test_metrics_whose_counted_samples_differ_get_no_interval_and_say_why():
    a, b = _sets()
    # A's classes are tight and far apart: a query's 2 nearest neighbours are of its own class,
    # so homophily (among different-class neighbours) is undefined for every query of A
    tight = EmbeddingSet(
        embeddings=np.repeat(np.eye(N_CLS) * 100, PER, axis=0)
        + np.random.default_rng(2).normal(scale=0.01, size=(N_CLS * PER, N_CLS)),
        labels=a.labels,
        attributes={"g": GROUPS[a.attributes[:, 0]]},
    )
    noisy = EmbeddingSet(
        embeddings=np.random.default_rng(3).normal(size=(N_CLS * PER, N_CLS)),
        labels=a.labels,
        attributes={"g": GROUPS[a.attributes[:, 0]]},
    )
    c = compare(tight, noisy, ks=[1], homophily_k=2, bootstrap=20, linear_probe=False)
    h = c["homophily:g"]
    assert h.unpaired_reason and "bootstrap draws differ" in h.unpaired_reason
    assert all(d.ci_low is None for d in h.by_group["g"].values())
    assert c.metadata["unpaired"] == {"homophily:g": h.unpaired_reason}
    assert "No intervals for homophily:g" in c.summary()
    assert c["recall@1"].unpaired_reason is None and c["recall@1"].gap["g"].ci_low is not None


def test_homophily_is_paired_only_when_every_sample_counts_in_both():
    a, b = _sets()
    options = dict(ks=[1], bootstrap=20, seed=0, linear_probe=False)
    ra, rb = audit(a, **options), audit(b, **options)
    assert ra["homophily:g"].overall.count == len(a)  # every query counts in both
    unknown = compare_reports(ra, rb)  # group sizes unknown: cannot tell
    assert "depends on the embeddings" in unknown["homophily:g"].unpaired_reason
    assert unknown["homophily:g"].gap["g"].ci_low is None
    sizes = {"g": {"x": 48, "y": 48}}
    known = compare_reports(ra, rb, group_sizes=sizes)
    assert known["homophily:g"].unpaired_reason is None
    assert known["homophily:g"].gap["g"].ci_low is not None
    assert (
        known.to_dict()["metrics"]["homophily:g"]
        == compare(a, b, **{k: v for k, v in options.items() if k != "seed"}).to_dict()["metrics"][
            "homophily:g"
        ]
    )


def test_replicates_are_paired_for_every_kind_of_metric():
    """B equals A on group x and differs on group y: a statistic of group x alone (pair sums
    inside the group, the spread of its vectors) is the same in both models on any resample of
    the same rows, so every paired replicate difference of group x is exactly zero, while an
    unpaired bootstrap would give a wide interval."""
    a, _ = _sets()
    x = a.embeddings.copy()
    in_y = a.attribute("g") == 1
    x[in_y] = np.random.default_rng(7).normal(size=(in_y.sum(), DIM))
    b = EmbeddingSet(embeddings=x, labels=a.labels, attributes={"g": GROUPS[a.attributes[:, 0]]})
    c = compare(a, b, ks=[1], bootstrap=40, linear_probe=False)
    for name in ("intra_class_alignment", "uniformity", "mean_resultant_length", "effective_rank"):
        same = c[name].by_group["g"]["x"]
        assert same.difference == pytest.approx(0.0, abs=1e-12), name
        assert same.ci_low == pytest.approx(0.0, abs=1e-12), name
        assert same.ci_high == pytest.approx(0.0, abs=1e-12), name
        other = c[name].by_group["g"]["y"]
        assert other.ci_high - other.ci_low > 0, name
