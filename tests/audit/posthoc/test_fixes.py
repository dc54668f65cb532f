"""Each fix against a slow explicit-loop reference on a tiny deterministic set."""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fairmetric.audit.posthoc import (
    POSTHOC_FIXES,
    FairCal,
    FairScoreNormalisation,
    PerGroupThreshold,
    ScoreNormalisation,
    assign_clusters,
    create_fix,
)
from fairmetric.audit.posthoc.beta import RIDGE, fit_beta

from .reference import nearest_loop, threshold_loop

TARGET = 0.1


def _same_group_impostors(split, code):
    out = []
    for p in range(len(split.scores)):
        a, b = split.i[p], split.j[p]
        if not split.genuine[p] and split.groups[a] == code and split.groups[b] == code:
            out.append(float(split.scores[p]))
    return out


def test_per_group_threshold_reference(tiny):
    fix = PerGroupThreshold(target_fmr=TARGET).fit(*tiny.fit_args(), groups=tiny.groups)
    got = fix.transform(*tiny.transform_args(), groups=tiny.groups)
    t_g = threshold_loop([s for s, g in zip(tiny.scores, tiny.genuine) if not g], TARGET)
    tau = {d: threshold_loop(_same_group_impostors(tiny, d), TARGET) for d in (0, 1, 2)}
    for p in range(len(got)):
        di, dj = tiny.groups[tiny.i[p]], tiny.groups[tiny.j[p]]
        want = tiny.scores[p] - 0.5 * ((tau[di] - t_g) + (tau[dj] - t_g))
        assert got[p] == pytest.approx(want, abs=1e-12)
    # a same-group pair of group d passes the global threshold exactly when s >= tau_d
    for p in range(len(got)):
        d = tiny.groups[tiny.i[p]]
        if d == tiny.groups[tiny.j[p]] and abs(tiny.scores[p] - tau[d]) > 1e-9:
            assert (got[p] >= t_g) == (tiny.scores[p] >= tau[d])


def test_score_normalisation_reference(tiny):
    fix = ScoreNormalisation().fit(*tiny.fit_args(), groups=tiny.groups)
    got = fix.transform(*tiny.transform_args(), groups=tiny.groups)
    mu = {d: statistics.fmean(_same_group_impostors(tiny, d)) for d in (0, 1, 2)}
    sd = {d: statistics.pstdev(_same_group_impostors(tiny, d)) for d in (0, 1, 2)}
    for p in range(len(got)):
        s = tiny.scores[p]
        di, dj = tiny.groups[tiny.i[p]], tiny.groups[tiny.j[p]]
        want = 0.5 * ((s - mu[di]) / sd[di] + (s - mu[dj]) / sd[dj])
        assert got[p] == pytest.approx(want, abs=1e-10)


def test_assign_clusters_reference_and_ties():
    rng = np.random.default_rng(3)
    x, c = rng.normal(size=(40, 5)), rng.normal(size=(6, 5))
    assert assign_clusters(x, c).tolist() == nearest_loop(x, c)
    twins = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # centroid 2 duplicates centroid 0
    between = np.array([[0.5, 0.5], [1.0, 0.1]])  # equidistant from all / nearest the twins
    assert assign_clusters(between, twins).tolist() == [0, 0]


def test_fsn_reference(tiny):
    fix = FairScoreNormalisation(target_fmr=TARGET, n_clusters=3, min_impostors=10, n_init=2)
    fix.fit(*tiny.fit_args())
    got = fix.transform(*tiny.transform_args())
    cluster = nearest_loop(tiny.x, fix.centroids)
    imp = [float(s) for s, g in zip(tiny.scores, tiny.genuine) if not g]
    t_g = threshold_loop(imp, TARGET)
    t = {}
    for c in range(3):
        within = [
            float(tiny.scores[p])
            for p in range(len(tiny.scores))
            if not tiny.genuine[p] and cluster[tiny.i[p]] == c and cluster[tiny.j[p]] == c
        ]
        t[c] = threshold_loop(within, TARGET) if len(within) >= 10 else t_g
    assert any(t[c] != t_g for c in t)  # at least one cluster has its own threshold
    for p in range(len(got)):
        ci, cj = cluster[tiny.i[p]], cluster[tiny.j[p]]
        want = tiny.scores[p] - 0.5 * ((t[ci] - t_g) + (t[cj] - t_g))
        assert got[p] == pytest.approx(want, abs=1e-12)


def test_fsn_small_clusters_fall_back_to_global(tiny):
    # min_impostors = ceil(1 / target) by default: with target 1e-3 no cluster here has 1000
    fix = FairScoreNormalisation(target_fmr=1e-3, n_clusters=3, n_init=2).fit(*tiny.fit_args())
    assert np.all(fix.thresholds == fix.global_threshold)
    assert np.array_equal(fix.transform(*tiny.transform_args()), tiny.scores)


def _beta_reference(u, y):
    """Beta calibration with scikit-learn's logistic regression (same ridge: C = 1 / RIDGE)."""
    feats = np.stack([np.log(u), -np.log(1 - u)], axis=1)
    active = [0, 1]
    while True:
        coef = np.zeros(3)
        if active:
            lr = LogisticRegression(C=1 / RIDGE, tol=1e-12, max_iter=10_000, solver="newton-cg")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lr.fit(feats[:, active], y)
            coef[active] = lr.coef_[0]
            coef[2] = lr.intercept_[0]
        else:
            coef[2] = math.log(y.mean() / (1 - y.mean()))
        negative = [k for k in active if coef[k] < 0]
        if not negative:
            return coef
        active.remove(min(negative, key=lambda k: coef[k]))


def test_fit_beta_matches_sklearn(tiny):
    u = np.clip((tiny.scores + 1) / 2, 1e-12, 1 - 1e-12)
    np.testing.assert_allclose(
        fit_beta(u, tiny.genuine), _beta_reference(u, tiny.genuine), atol=1e-5
    )


def test_faircal_reference(tiny):
    fix = FairCal(n_clusters=3, n_init=2).fit(*tiny.fit_args())
    got = fix.transform(*tiny.transform_args())
    cluster = nearest_loop(tiny.x, fix.centroids)
    u = np.clip((tiny.scores + 1) / 2, 1e-12, 1 - 1e-12)
    coef, count = {}, {}
    for c in range(3):
        member = [p for p in range(len(u)) if cluster[tiny.i[p]] == c or cluster[tiny.j[p]] == c]
        count[c] = len(member)
        coef[c] = _beta_reference(u[member], tiny.genuine[member])

    def cal(c, v):
        a, b, k = coef[c]
        return 1 / (1 + math.exp(-(a * math.log(v) - b * math.log(1 - v) + k)))

    for p in range(len(got)):
        ci, cj = cluster[tiny.i[p]], cluster[tiny.j[p]]
        want = (count[ci] * cal(ci, u[p]) + count[cj] * cal(cj, u[p])) / (count[ci] + count[cj])
        assert got[p] == pytest.approx(want, abs=1e-5)
    assert np.all((got >= 0) & (got <= 1))


def test_faircal_is_monotone_within_a_cluster_pair(tiny):
    fix = FairCal(n_clusters=3, n_init=2).fit(*tiny.fit_args())
    s = np.linspace(-1, 1, 201)
    zeros = np.zeros(201, dtype=int)
    p = fix.transform(tiny.x, zeros, zeros + 1, s)
    assert np.all(np.diff(p) >= 0)


def test_registry_and_factory():
    assert sorted(POSTHOC_FIXES) == ["faircal", "fsn", "per_group_threshold", "score_normalisation"]
    fix = create_fix("fsn", target_fmr=0.01, n_clusters=4)
    assert isinstance(fix, FairScoreNormalisation) and fix.params()["n_clusters"] == 4
    assert create_fix(fix) is fix
    with pytest.raises(ValueError, match="unknown post-hoc fix 'nope'"):
        create_fix("nope")
