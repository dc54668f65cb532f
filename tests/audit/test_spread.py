"""Embedding spread (METHODS.md §5): mean resultant length and effective rank per group, against
slow references (loops, numpy SVD), their statistical behaviour, the recomputing bootstrap, and
the audit / report / gate plumbing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fairmetric.audit import audit
from fairmetric.audit.metrics.spread import (
    FEW,
    NO_DIRECTION,
    SpreadStatistic,
    crossed,
    effective_rank,
    group_spread,
    mean_resultant_length,
)
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report import write_report
from fairmetric.report.frame import Grouping, group_metric_from_samples

FAST = dict(bootstrap=0, projection_points=0, linear_probe=False, ks=(1,), homophily_k=3)


# -- slow references ------------------------------------------------------------------------------


def ref_mrl(x: np.ndarray) -> float | None:
    """``||mean ê_i||`` with an explicit loop over rows (zero rows skipped)."""
    total = [0.0] * x.shape[1]
    n = 0
    for row in np.asarray(x, dtype=np.float64):
        norm = math.sqrt(sum(float(v) * float(v) for v in row))
        if norm == 0:
            continue
        n += 1
        for k, v in enumerate(row):
            total[k] += float(v) / norm
    if n == 0:
        return None
    return math.sqrt(sum(t * t for t in total)) / n


def ref_erank(x: np.ndarray) -> float | None:
    """``exp(H(σ²/Σσ²))`` from numpy's SVD of the centred rows."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return None
    sigma = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    power = sigma**2
    if power.sum() == 0:
        return 0.0
    p = power / power.sum()
    p = p[p > 0]
    return float(math.exp(-sum(float(v) * math.log(float(v)) for v in p)))


def tiny(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(23, 5)).astype(np.float32)
    x[3:9] += np.float32(2.0)  # one group off the origin
    groups = np.array([0] * 9 + [1] * 8 + [2] * 5 + [3])  # group 3: a single row
    return x, groups


# -- values against the references ----------------------------------------------------------------


def test_group_spread_matches_the_references():
    x, groups = tiny()
    out = group_spread(x, groups, names=["a", "b", "c", "d"])
    assert set(out) == {"mean_resultant_length", "effective_rank"}
    for name, code in zip("abcd", range(4)):
        rows = x[groups == code]
        got_mrl = out["mean_resultant_length"]["by_group"][name]
        assert got_mrl == pytest.approx(ref_mrl(rows), rel=1e-12)
        want = ref_erank(rows)
        got = out["effective_rank"]["by_group"][name]
        assert (got is None) == (want is None)
        if want is not None:
            assert got == pytest.approx(want, rel=1e-10)
    assert out["mean_resultant_length"]["overall"] == pytest.approx(ref_mrl(x), rel=1e-12)
    assert out["effective_rank"]["overall"] == pytest.approx(ref_erank(x), rel=1e-10)
    assert mean_resultant_length(x) == pytest.approx(ref_mrl(x), rel=1e-12)
    assert effective_rank(x) == pytest.approx(ref_erank(x), rel=1e-10)


def test_degenerate_groups_single_row_identical_rows_zero_rows():
    x = np.ones((7, 4), dtype=np.float32)
    x[5:] = 0.0  # two zero rows: no direction
    x[4] = [1, 2, 3, 4]
    groups = np.array([0, 0, 0, 1, 2, 3, 3])
    mrl, mrl_why, _, erank, erank_why, _ = SpreadStatistic(x).compute(
        [np.flatnonzero(groups == c) for c in range(4)], 0, 0
    )
    # identical rows: one direction, effective rank 0 (the zero centred matrix)
    assert mrl[0] == pytest.approx(1.0) and erank[0] == 0.0
    # a single row: its direction is the mean (length 1); no effective rank, with the reason
    assert mrl[1] == pytest.approx(1.0) and np.isnan(erank[1]) and erank_why[1] == FEW
    assert np.isnan(erank[2]) and erank_why[2] == FEW
    # zero rows: no direction (NA with the reason), but two equal rows: effective rank 0
    assert np.isnan(mrl[3]) and mrl_why[3] == NO_DIRECTION and erank[3] == 0.0
    assert mean_resultant_length(x[5:]) is None and effective_rank(x[:1]) is None


def test_single_row_group_in_an_audit_is_na_with_the_reason():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 4)
    x = rng.normal(size=(24, 5)).astype(np.float32)
    colour = np.array(["light"] * 23 + ["dark"])
    report = audit(EmbeddingSet(embeddings=x, labels=labels, attributes={"colour": colour}), **FAST)
    dark = report["effective_rank"].by_group["colour"]["dark"]
    assert dark.value is None and dark.na_reason == FEW and dark.count == 1
    assert report["mean_resultant_length"].by_group["colour"]["dark"].value == pytest.approx(1.0)
    # the gap leaves the NA group out rather than crashing
    assert report["effective_rank"].difference("colour") is None


# -- statistical behaviour ------------------------------------------------------------------------


def test_isotropic_data_is_spread_out():
    rng = np.random.default_rng(1)
    n, d = 4000, 16
    x = rng.normal(size=(n, d)).astype(np.float32)
    out = group_spread(x, np.zeros(n, dtype=np.int64))
    # E||mean ê||² = 1/n for isotropic directions
    assert 0.3 / math.sqrt(n) < out["mean_resultant_length"]["overall"] < 3 / math.sqrt(n)
    assert out["effective_rank"]["overall"] > 0.97 * d


def test_collapsed_data_is_visible():
    rng = np.random.default_rng(2)
    n, d = 500, 16
    v = rng.normal(size=d)
    u = rng.normal(size=d)
    # all rows ≈ one vector, varying along one direction, plus tiny isotropic noise
    x = (v + 0.05 * rng.normal(size=(n, 1)) * u + 1e-4 * rng.normal(size=(n, d))).astype(np.float32)
    out = group_spread(x, np.zeros(n, dtype=np.int64))
    assert out["mean_resultant_length"]["overall"] > 0.99
    assert out["effective_rank"]["overall"] < 1.2


def test_effective_rank_is_scale_free_so_mrl_catches_an_even_shrink():
    """A group shrunk evenly towards one point keeps its effective rank; its mean resultant
    length is what shows the collapse (documented in the module)."""
    rng = np.random.default_rng(3)
    d = 8
    x = (np.ones(d) + 1e-3 * rng.normal(size=(300, d))).astype(np.float32)
    out = group_spread(x, np.zeros(300, dtype=np.int64))
    assert out["mean_resultant_length"]["overall"] > 0.999
    assert out["effective_rank"]["overall"] > 0.9 * d


@pytest.mark.parametrize("scale", [1e-3, 7.0, 1e4])
def test_scaling_the_embeddings_changes_neither(scale):
    x, groups = tiny(5)
    base = group_spread(x, groups)
    scaled = group_spread((x * np.float32(scale)).astype(np.float32), groups)
    for key in base:
        for g, v in base[key]["by_group"].items():
            if v is None:
                assert scaled[key]["by_group"][g] is None
            else:
                assert scaled[key]["by_group"][g] == pytest.approx(v, rel=1e-5)
        assert scaled[key]["overall"] == pytest.approx(base[key]["overall"], rel=1e-5)


def test_row_order_does_not_matter():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 12)).astype(np.float32) + np.float32(3.0)
    groups = rng.integers(0, 3, size=300)
    perm = rng.permutation(300)
    a, b = group_spread(x, groups), group_spread(x[perm], groups[perm])
    for key in a:
        assert b[key]["overall"] == pytest.approx(a[key]["overall"], rel=1e-12)
        for g in a[key]["by_group"]:
            assert b[key]["by_group"][g] == pytest.approx(a[key]["by_group"][g], rel=1e-12)


# -- the bootstrap recomputes the statistic on resampled rows ------------------------------------


def test_bootstrap_replicates_recompute_the_statistic_on_resampled_rows():
    """Replay the draws (rows within each group, with replacement) and recompute with the slow
    references: every group replicate and every pooled replicate must match."""
    x, groups = tiny(6)
    cells = [np.flatnonzero(groups == c) for c in range(3)]  # sizes 9, 8, 5
    n_boot, seed = 25, 17
    stat = SpreadStatistic(x)
    mrl, _, mrl_reps, erank, _, erank_reps = stat.compute(cells, n_boot, seed, centre=False)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(c), size=(n_boot, len(c))) for c in cells]
    for b in range(n_boot):
        picked = [c[d[b]] for c, d in zip(cells, draws)]
        for i, rows in enumerate(picked):
            assert mrl_reps[b, i] == pytest.approx(ref_mrl(x[rows]), rel=1e-9)
            assert erank_reps[b, i] == pytest.approx(ref_erank(x[rows]), rel=1e-8, abs=1e-12)
        pooled = x[np.concatenate(picked)]
        assert mrl_reps[b, -1] == pytest.approx(ref_mrl(pooled), rel=1e-9)
        assert erank_reps[b, -1] == pytest.approx(ref_erank(pooled), rel=1e-8)
    # the audit's replicates: the same draws, shifted to be centred on the value
    _, _, mrl_c, _, _, erank_c = stat.compute(cells, n_boot, seed)
    np.testing.assert_allclose(mrl_c.mean(axis=0), mrl, rtol=1e-9)
    np.testing.assert_allclose(erank_c.mean(axis=0), erank, rtol=1e-9)
    np.testing.assert_allclose(np.diff(erank_c, axis=0), np.diff(erank_reps, axis=0), atol=1e-9)


def test_uncentred_replicates_are_biased_in_a_small_group():
    """Why the audit centres them: resamples repeat rows, which lowers the effective rank and
    raises the mean resultant length of a small group by themselves."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    mrl, _, mrl_reps, erank, _, erank_reps = SpreadStatistic(x).compute(
        [np.arange(60)], 200, 0, centre=False
    )
    assert np.median(erank_reps[:, 0]) < erank[0]
    assert np.median(mrl_reps[:, 0]) > mrl[0]


def test_block_bootstrap_of_a_large_group_has_the_row_bootstraps_spread():
    rng = np.random.default_rng(7)
    n, d = 1200, 6
    x = (rng.normal(size=(n, d)) * np.linspace(0.3, 2.0, d) + 0.5).astype(np.float32)
    cells = [np.arange(n)]
    exact = SpreadStatistic(x, max_units=n).compute(cells, 300, 1)
    blocks = SpreadStatistic(x, max_units=100).compute(cells, 300, 1)
    assert exact[0][0] == pytest.approx(blocks[0][0], rel=1e-12)  # same point estimate
    for col in (2, 5):  # mrl and effective-rank replicates
        sd_exact, sd_blocks = exact[col][:, 0].std(), blocks[col][:, 0].std()
        assert 0.75 < sd_blocks / sd_exact < 1.33


def test_audit_intervals_gaps_and_the_overall_interval():
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(20), 10)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    colour = np.array(["light", "dark"])[labels % 2]
    x[colour == "dark"] = (x[colour == "dark"] * np.r_[1.0, 0.1 * np.ones(7)]).astype(np.float32)
    report = audit(
        EmbeddingSet(embeddings=x, labels=labels, attributes={"colour": colour}),
        **{**FAST, "bootstrap": 100},
    )
    er = report["effective_rank"]
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)  # the searched rows under cosine
    for g in ("light", "dark"):
        e = er.by_group["colour"][g]
        assert e.value == pytest.approx(ref_erank(unit[colour == g]), rel=1e-6)
        assert e.ci_low <= e.value <= e.ci_high
    assert er.worst_group("colour")[0] == "dark"
    assert er.ratio("colour") < 0.5
    lo, hi = er.gap_interval("ratio", "colour")
    assert lo <= er.ratio("colour") <= hi
    assert er.overall.ci_low <= er.overall.value <= er.overall.ci_high
    mrl = report["mean_resultant_length"]
    assert mrl.overall.value == pytest.approx(ref_mrl(x), rel=1e-6)
    assert mrl.worst_group("colour")[0] == "dark"  # higher is worse


def test_statistic_excludes_per_sample_arguments():
    stat = SpreadStatistic(np.ones((3, 2), dtype=np.float32)).entry("effective_rank")
    g = Grouping("a", np.array([0, 0, 1]), ["x", "y"])
    with pytest.raises(ValueError, match="statistic replaces"):
        group_metric_from_samples(
            "m", num=np.ones(3), statistic=stat, groupings=[g], higher_is_better=True
        )
    with pytest.raises(ValueError, match="num"):
        group_metric_from_samples("m", groupings=[g], higher_is_better=True)


# -- report and gate ------------------------------------------------------------------------------


def _collapsed_set() -> EmbeddingSet:
    rng = np.random.default_rng(9)
    labels = np.repeat(np.arange(10), 6)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    colour = np.array(["light", "dark"])[labels % 2]
    dark = colour == "dark"
    x[dark] = (
        np.ones(8)
        + 0.2 * rng.normal(size=(dark.sum(), 1)) * np.r_[1.0, np.zeros(7)]
        + 1e-3 * rng.normal(size=(dark.sum(), 8))
    ).astype(np.float32)
    return EmbeddingSet(embeddings=x, labels=labels, attributes={"colour": colour})


def test_spread_is_in_every_report_format(tmp_path):
    report = audit(_collapsed_set(), **{**FAST, "bootstrap": 20})
    write_report(report, tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    for key in ("mean_resultant_length", "effective_rank"):
        entry = doc["metrics"][key]
        assert set(entry["by_group"]["colour"]) == {"light", "dark"}
        assert entry["ratio"]["colour"]["value"] is not None
        assert entry["by_group"]["colour"]["dark"]["ci_low"] is not None
        assert key in (tmp_path / "report.md").read_text()
        assert key in (tmp_path / "report.html").read_text()


def test_fail_if_on_the_effective_rank_ratio(tmp_path, capsys):
    npz = _collapsed_set().save(tmp_path / "collapsed.npz")
    quiet = ["--bootstrap", "0", "--no-progress", "--no-linear-probe"]
    assert main(["audit", str(npz), "--fail-if", "effective_rank.ratio<0.5", *quiet]) == 1
    assert "FAIL effective_rank.ratio<0.5" in capsys.readouterr().err
    assert main(["audit", str(npz), "--fail-if", "mean_resultant_length.max>0.9", *quiet]) == 1
    rng = np.random.default_rng(10)
    labels = np.repeat(np.arange(10), 6)
    spread = EmbeddingSet(
        embeddings=rng.normal(size=(60, 8)).astype(np.float32),
        labels=labels,
        attributes={"colour": np.array(["light", "dark"])[labels % 2]},
    ).save(tmp_path / "spread.npz")
    assert main(["audit", str(spread), "--fail-if", "effective_rank.ratio<0.5", *quiet]) == 0


def test_values_do_not_depend_on_the_bootstrap_or_its_units():
    """The value is one sum per group in row order: the same bits with or without replicates,
    for any seed and any resampling unit (so the training log equals any audit)."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(700, 10)).astype(np.float32)
    cells = [np.arange(0, 400), np.arange(400, 700)]
    base = SpreadStatistic(x).compute(cells, 0, 0)
    for stat, n_boot, seed in [
        (SpreadStatistic(x), 30, 3),
        (SpreadStatistic(x, max_units=10), 30, 4),
        (SpreadStatistic(x, max_units=1), 5, 5),
    ]:
        out = stat.compute(cells, n_boot, seed)
        np.testing.assert_array_equal(out[0], base[0])
        np.testing.assert_array_equal(out[3], base[3])


def test_group_metric_from_statistic_assembles_groups_gaps_and_overall():
    """The frame side with a plain statistic (the median), replicates drawn by a reference
    loop: values, NA with the reason, intervals, gap replicates, overall from the first
    grouping."""
    from fairmetric.report.frame import group_metric_from_statistic

    v = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 5.0, 7.0])

    class Median:
        n = len(v)

        def __call__(self, cells, n_boot, seed):
            rng = np.random.default_rng(seed)
            vals = [np.median(v[c]) if len(c) > 1 else np.nan for c in cells]
            vals.append(np.median(v[np.concatenate(cells)]))
            reasons = [None if len(c) > 1 else "one sample" for c in cells] + [None]
            reps = np.empty((n_boot, len(cells) + 1))
            for b in range(n_boot):
                picked = [c[rng.integers(0, len(c), len(c))] for c in cells]
                reps[b, :-1] = [np.median(v[p]) if len(p) > 1 else np.nan for p in picked]
                reps[b, -1] = np.median(v[np.concatenate(picked)])
            return np.array(vals), reasons, reps

    first = Grouping("a", np.array([0, 0, 0, 1, 1, 2, 2]), ["x", "y", "z"])
    second = Grouping("b", np.array([0, 0, 0, 0, 0, 0, 1]), ["p", "q"])
    m = group_metric_from_statistic(
        "median", statistic=Median(), groupings=[first, second], higher_is_better=True, n_boot=50
    )
    assert m.values("a") == {"x": 2.0, "y": 15.0, "z": 6.0}
    assert m.by_group["b"]["q"].value is None and m.by_group["b"]["q"].na_reason == "one sample"
    assert m.overall.value == 5.0 and m.overall.count == 7
    assert m.difference("a") == 13.0 and m.ratio("a") == pytest.approx(2 / 15)
    for e in m.by_group["a"].values():
        assert e.ci_low <= e.value <= e.ci_high
    lo, hi = m.gap_interval("difference", "a")
    assert lo is not None and lo <= hi
    assert set(m.replicates["a"]) == {"x", "y", "z", "__overall__"}
    assert np.isnan(m.replicates["b"]["q"]).all()
    # the overall interval comes from the first grouping's replicates
    reps = m.replicates["a"]["__overall__"]
    assert m.overall.ci_low == pytest.approx(np.quantile(reps, 0.025))
    assert m.overall.ci_high == pytest.approx(np.quantile(reps, 0.975))
    alone = group_metric_from_statistic(
        "median", statistic=Median(), groupings=[], higher_is_better=True, n_boot=10
    )
    assert alone.overall.value == 5.0 and alone.by_group == {}
    assert alone.overall.ci_low is not None


def test_crossed_cells_are_the_distinct_code_tuples_in_order():
    a = np.array([1, 0, 1, 2, 0, 1])
    b = np.array([5, 5, 0, 0, 5, 0])
    tuples = sorted(set(zip(a.tolist(), b.tolist(), strict=True)))
    ref = np.array([tuples.index(t) for t in zip(a.tolist(), b.tolist(), strict=True)])
    np.testing.assert_array_equal(crossed([a, b]), ref)
    # crossing in the intersection again changes nothing; no grouping gives None
    np.testing.assert_array_equal(crossed([a, b, ref]), ref)
    assert crossed([]) is None


def test_groups_pooled_from_the_partition_equal_groups_summed_from_rows():
    """Unions of the partition's parts are pooled (equal to float64 rounding, far from the
    origin too); a group that is not a union is summed from its rows (the same bits)."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(900, 12)) + 30.0).astype(np.float32)  # an offset: pooling must centre
    a, b = rng.integers(0, 3, 900), rng.integers(0, 4, 900)
    part = crossed([a, b])
    for codes in (a, b, part):
        cells = [np.flatnonzero(codes == c) for c in np.unique(codes)]
        direct = SpreadStatistic(x).compute(cells, 0, 0)
        pooled = SpreadStatistic(x, partition=part).compute(cells, 0, 0)
        np.testing.assert_allclose(pooled[0], direct[0], rtol=1e-12)
        np.testing.assert_allclose(pooled[3], direct[3], rtol=1e-9)
    odd = [np.arange(0, 450), np.arange(450, 900)]  # not unions of parts
    direct = SpreadStatistic(x).compute(odd, 0, 0)
    pooled = SpreadStatistic(x, partition=part).compute(odd, 0, 0)
    np.testing.assert_array_equal(pooled[0], direct[0])
    np.testing.assert_array_equal(pooled[3], direct[3])
    with pytest.raises(ValueError, match="partition must have shape"):
        SpreadStatistic(x, partition=part[:5])


def test_the_training_log_has_the_audits_bits_with_two_attributes():
    from fairmetric.train.evaluate import spread_by_group

    rng = np.random.default_rng(8)
    emb = EmbeddingSet(
        embeddings=rng.normal(size=(400, 8)).astype(np.float32),
        labels=np.arange(400) % 40,
        attributes={"s": rng.integers(0, 2, 400), "t": rng.integers(0, 3, 400)},
    )
    log = spread_by_group(emb, min_group_size=1)
    report = audit(emb, bootstrap=0, projection_points=0, linear_probe=False, ks=(1,))
    for key in ("mean_resultant_length", "effective_rank"):
        for a in ("s", "t"):
            assert report[key].values(a) == log[key]["by_group"][a]
