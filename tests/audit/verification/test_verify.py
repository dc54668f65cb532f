"""`verification_audit` end to end against a brute-force reference on tiny exhaustive sets."""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from fairmetric.audit.verification import (
    fdr,
    garbe,
    gini,
    inequity_rate,
    max_geomean,
    max_over_min,
    pair_scores,
    sample_pairs,
    threshold_at_fmr,
    verification_audit,
)
from fairmetric.embeddings import EmbeddingSet

TARGETS = [0.1, 0.01]
LABELS_T = ["1e-1", "1e-2"]


def _set(ids_per_group=(6, 6), per: int = 3, dim: int = 4, seed: int = 0) -> EmbeddingSet:
    """Identities with a noisy centre each; group names a, b, c, ... in order."""
    rng = np.random.default_rng(seed)
    ids = sum(ids_per_group)
    centres = rng.normal(size=(ids, dim))
    x = np.repeat(centres, per, axis=0) + 0.5 * rng.normal(size=(ids * per, dim))
    names = [chr(ord("a") + g) for g, k in enumerate(ids_per_group) for _ in range(k)]
    return EmbeddingSet(
        embeddings=x.astype(np.float32),
        labels=np.repeat(np.arange(ids), per),
        attributes={"g": np.repeat(np.array(names), per)},
    )


def _score(x: np.ndarray, a: int, b: int, metric: str) -> float:
    u = [float(v) for v in x[a]]
    w = [float(v) for v in x[b]]
    if metric == "cosine":
        dot = math.fsum(p * q for p, q in zip(u, w))
        return dot / (
            math.sqrt(math.fsum(p * p for p in u)) * math.sqrt(math.fsum(q * q for q in w))
        )
    return -math.sqrt(math.fsum((p - q) ** 2 for p, q in zip(u, w)))


class Reference:
    """Every pair enumerated by itertools, scored by a float64 loop, rates by counting."""

    def __init__(self, data: EmbeddingSet, metric: str = "cosine") -> None:
        x = np.asarray(data.embeddings, dtype=np.float32)
        self.labels = [int(v) for v in data.labels]
        names = list(data.attribute_value_names["g"])
        self.group = [names[int(c)] for c in data.attribute("g")]
        self.groups = sorted(set(self.group))
        self.genuine, self.impostor = [], []  # (a, b, score)
        for a, b in combinations(range(len(self.labels)), 2):
            kind = self.genuine if self.labels[a] == self.labels[b] else self.impostor
            kind.append((a, b, _score(x, a, b, metric)))

    def tau(self, target: float) -> float:
        return threshold_at_fmr(np.array([s for *_, s in self.impostor]), target)

    def group_impostor(self, g: str) -> list[float]:
        return [s for a, b, s in self.impostor if self.group[a] == g and self.group[b] == g]

    def group_genuine(self, g: str) -> list[float]:
        return [s for a, _, s in self.genuine if self.group[a] == g]

    @staticmethod
    def fmr(scores, tau) -> float:
        return sum(s >= tau for s in scores) / len(scores)

    @staticmethod
    def fnmr(scores, tau) -> float:
        return sum(s < tau for s in scores) / len(scores)

    def identities(self, g: str) -> int:
        return len({lab for lab, gr in zip(self.labels, self.group) if gr == g})


@pytest.fixture(scope="module")
def tiny():
    data = _set()
    return data, Reference(data)


@pytest.fixture(scope="module")
def report(tiny):
    return verification_audit(tiny[0], fmr=TARGETS, bootstrap=50, seed=0, min_group_size=1)


def test_pairs_are_exhaustive(tiny, report):
    _, ref = tiny
    p = report.metadata["verification"]["pairs"]
    assert p["genuine_all"] and p["impostor_all"]
    assert p["genuine"] == p["genuine_available"] == len(ref.genuine) == 12 * 3
    assert p["impostor"] == p["impostor_available"] == len(ref.impostor) == 36 * 35 // 2 - 36
    for g in ref.groups:
        c = p["by_group"]["g"][g]
        assert c["same_group_impostor"] == c["same_group_impostor_available"]
        assert c["same_group_impostor"] == len(ref.group_impostor(g)) == 18 * 17 // 2 - 18
        assert c["genuine"] == len(ref.group_genuine(g)) == 18
        assert c["identities"] == ref.identities(g) == 6


def test_threshold_and_rates_match_brute_force(tiny, report):
    _, ref = tiny
    imp = [s for *_, s in ref.impostor]
    gen = [s for *_, s in ref.genuine]
    for target, t in zip(TARGETS, LABELS_T):
        tau = ref.tau(target)
        got_tau = report.metrics[f"threshold@{t}"].overall.value
        assert got_tau == pytest.approx(tau, rel=1e-13, abs=1e-15)
        assert report.metadata["verification"]["targets"][t]["threshold"] == got_tau
        fmr, fnmr = report.metrics[f"fmr@{t}"], report.metrics[f"fnmr@{t}"]
        assert fmr.overall.value == pytest.approx(ref.fmr(imp, tau), abs=1e-15)
        assert fmr.overall.value <= target
        assert report.metadata["verification"]["targets"][t]["realised_fmr"] == fmr.overall.value
        assert fnmr.overall.value == pytest.approx(ref.fnmr(gen, tau), abs=1e-15)
        for g in ref.groups:
            assert fmr.by_group["g"][g].value == pytest.approx(
                ref.fmr(ref.group_impostor(g), tau), abs=1e-15
            )
            assert fnmr.by_group["g"][g].value == pytest.approx(
                ref.fnmr(ref.group_genuine(g), tau), abs=1e-15
            )
            own = threshold_at_fmr(np.array(ref.group_impostor(g)), target)
            got_own = report.metrics[f"threshold@{t}"].by_group["g"][g].value
            assert got_own == pytest.approx(own, rel=1e-13, abs=1e-15)
            # a group's own threshold gives it at most the target FMR
            assert ref.fmr(ref.group_impostor(g), got_own) <= target


def test_fmr_matrix_matches_brute_force(tiny, report):
    _, ref = tiny
    for target, t in zip(TARGETS, LABELS_T):
        tau = ref.tau(target)
        m = report.metadata["verification"]["fmr_matrix"][t]["g"]
        assert m["groups"] == ref.groups
        for r, gr in enumerate(ref.groups):
            for q, gq in enumerate(ref.groups):
                cell = [
                    s
                    for a, b, s in ref.impostor
                    if {ref.group[a], ref.group[b]} == {gr, gq} and (gr != gq or ref.group[a] == gr)
                ]
                assert m["pairs"][r][q] == len(cell)
                assert m["fmr"][r][q] == pytest.approx(ref.fmr(cell, tau), abs=1e-15)
        assert m["pairs"][0][1] == m["pairs"][1][0] == 18 * 18
        assert m["fmr"][0][1] == m["fmr"][1][0]
        # the diagonal is each group's FMR
        for r, g in enumerate(ref.groups):
            assert m["fmr"][r][r] == pytest.approx(
                report.metrics[f"fmr@{t}"].by_group["g"][g].value
            )


def test_against_sklearn_roc_curve(tiny, report):
    _, ref = tiny
    y = [1] * len(ref.genuine) + [0] * len(ref.impostor)
    s = [v for *_, v in ref.genuine] + [v for *_, v in ref.impostor]
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    for t in LABELS_T:
        tau = report.metrics[f"threshold@{t}"].overall.value
        idx = int(np.flatnonzero(thr >= tau)[-1])  # the lowest ROC threshold at or above tau
        assert report.metrics[f"fmr@{t}"].overall.value == pytest.approx(fpr[idx], abs=1e-12)
        tmr = 1 - report.metrics[f"fnmr@{t}"].overall.value  # TMR = 1 - FNMR
        assert tmr == pytest.approx(tpr[idx], abs=1e-12)


def test_group_counts_are_identities(tiny, report):
    _, ref = tiny
    for t in LABELS_T:
        for name in (f"fmr@{t}", f"fnmr@{t}", f"threshold@{t}"):
            for g in ref.groups:
                assert report.metrics[name].by_group["g"][g].count == ref.identities(g), name
        assert report.metrics[f"fnmr@{t}"].overall.count == 12
        assert report.metrics[f"fmr@{t}"].overall.count == 12


def test_fnmr_group_counts_are_identities(tiny, report):
    _, ref = tiny
    for t in LABELS_T:
        for g in ref.groups:
            assert report.metrics[f"fnmr@{t}"].by_group["g"][g].count == ref.identities(g)
        assert report.metrics[f"fnmr@{t}"].overall.count == 12


def _check_summaries(report, groups) -> None:
    pairs = report.metadata["verification"]["pairs"]["by_group"]["g"]
    alpha = report.metadata["alpha"]
    for t in LABELS_T:
        fmr, fnmr = report.metrics[f"fmr@{t}"], report.metrics[f"fnmr@{t}"]
        fv = [fmr.by_group["g"][g].value for g in groups]
        nv = [fnmr.by_group["g"][g].value for g in groups]
        f_n = [pairs[g]["same_group_impostor"] for g in groups]
        n_n = [pairs[g]["genuine"] for g in groups]
        f_err = [round(v * n) for v, n in zip(fv, f_n)]
        n_err = [round(v * n) for v, n in zip(nv, n_n)]
        want = {
            ("fmr", "max_over_min"): max_over_min(fv),
            ("fmr", "max_geomean"): max_geomean(fv, f_err, f_n),
            ("fmr", "gini"): gini(fv),
            ("fnmr", "max_over_min"): max_over_min(nv),
            ("fnmr", "max_geomean"): max_geomean(nv, n_err, n_n),
            ("fnmr", "gini"): gini(nv),
        }
        for (kind, s), v in want.items():
            m = fmr if kind == "fmr" else fnmr
            e = m.summaries[s]["g"]
            assert e.count == len(groups)
            assert e.value == (None if v is None else pytest.approx(v)), (m.name, s)
        for s, v in (
            ("garbe", garbe(fv, nv, alpha)),
            ("fdr", fdr(fv, nv, alpha)),
            ("ir", inequity_rate(fv, nv, alpha)),
        ):
            for m in (fmr, fnmr):
                assert m.summaries[s]["g"].value == (None if v is None else pytest.approx(v))
                assert m.summaries[s]["g"].count == len(groups)
                assert m.summary(s, "g") == m.summaries[s]["g"].value


def test_summaries_are_the_summary_functions_of_the_group_values(tiny, report):
    _check_summaries(report, tiny[1].groups)
    # at FMR 0.1 both rates are positive in every group: every summary is defined here
    assert all(e["g"].value is not None for e in report.metrics["fmr@1e-1"].summaries.values())


def test_bootstrap_intervals(tiny, report):
    again = verification_audit(tiny[0], fmr=TARGETS, bootstrap=50, seed=0, min_group_size=1)
    other = verification_audit(tiny[0], fmr=TARGETS, bootstrap=50, seed=1, min_group_size=1)
    assert report.to_dict() == again.to_dict()  # the same seed: identical, intervals included
    assert report.to_dict() != other.to_dict()
    inside = total = 0
    for t in LABELS_T:
        for name in (f"fmr@{t}", f"fnmr@{t}"):
            m = report.metrics[name]
            for e in [m.overall, *m.by_group["g"].values()]:
                assert e.ci_low is not None and e.ci_low <= e.ci_high
                total += 1
                inside += e.ci_low <= e.value <= e.ci_high
            for per in m.summaries.values():
                e = per["g"]
                if e.value is not None and e.ci_low is not None:
                    assert e.ci_low <= e.ci_high
    assert inside >= total - 1  # the point value lies in its interval (typical case)
    assert (
        report.metrics["fmr@1e-1"].by_group["g"]["a"].ci_low
        < report.metrics["fmr@1e-1"].by_group["g"]["a"].ci_high
    )
    none = verification_audit(tiny[0], fmr=TARGETS, bootstrap=0, min_group_size=1)
    e = none.metrics["fmr@1e-1"].by_group["g"]["a"]
    assert e.value == report.metrics["fmr@1e-1"].by_group["g"]["a"].value
    assert e.ci_low is None and e.ci_high is None


def test_report_serialises_without_nan(tiny, report):
    text = report.to_json()
    assert "NaN" not in text and "Infinity" not in text
    d = json.loads(text)
    assert set(d["metrics"]) == {f"{k}@{t}" for k in ("fmr", "fnmr", "threshold") for t in LABELS_T}
    assert d["metadata"]["verification"]["fmr_matrix"]["1e-2"]["g"]["groups"] == ["a", "b"]


@pytest.fixture(scope="module")
def three():
    data = _set((6, 6, 3), seed=2)
    return data, Reference(data)


def test_min_group_size_keeps_a_small_group_out(three):
    data, ref = three
    full = verification_audit(data, fmr=TARGETS, bootstrap=20, min_group_size=1)
    small = verification_audit(data, fmr=TARGETS, bootstrap=20, min_group_size=4)
    for t in LABELS_T:
        for name in (f"fmr@{t}", f"fnmr@{t}"):
            a, b = full.metrics[name], small.metrics[name]
            assert set(a.compared_values("g")) == {"a", "b", "c"}
            assert set(b.compared_values("g")) == {"a", "b"} and "c" in b.excluded("g")
            assert b.by_group["g"]["c"].value == a.by_group["g"]["c"].value  # still reported
            va = b.by_group["g"]
            assert b.difference("g") == pytest.approx(
                max(va["a"].value, va["b"].value) - min(va["a"].value, va["b"].value)
            )
            for s, e in b.summaries.items():
                assert e["g"].count == 2 and a.summaries[s]["g"].count == 3, s
    _check_summaries(small, ["a", "b"])
    _check_summaries(full, ["a", "b", "c"])


def test_min_group_size_counts_identities(three):
    data, _ = three
    r = verification_audit(data, fmr=TARGETS, bootstrap=0, min_group_size=6)
    for t in LABELS_T:
        for name in (f"fmr@{t}", f"fnmr@{t}"):
            assert set(r.metrics[name].compared_values("g")) == {"a", "b"}, name
            assert r.metrics[name].summaries["gini"]["g"].count == 2


def _crowded(ids: int, per: int = 3, seed: int = 0, scale: float = 0.4) -> EmbeddingSet:
    """Group b's identity centres are scaled down: its identities are closer to each other."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, 8))
    centres[ids // 2 :] *= scale
    x = np.repeat(centres, per, axis=0) + 0.3 * rng.normal(size=(ids * per, 8))
    group = np.repeat(np.array(["a"] * (ids // 2) + ["b"] * (ids - ids // 2)), per)
    return EmbeddingSet(
        embeddings=x.astype(np.float32),
        labels=np.repeat(np.arange(ids), per),
        attributes={"g": group},
    )


def test_crowded_group_has_higher_fmr_and_the_difference_interval_excludes_zero():
    r = verification_audit(
        _crowded(160), fmr=[1e-2], metric="l2", bootstrap=200, seed=0, min_group_size=1
    )
    m = r.metrics["fmr@1e-2"]
    a, b = m.by_group["g"]["a"], m.by_group["g"]["b"]
    assert b.value > a.value
    diff = m.replicates["g"]["b"] - m.replicates["g"]["a"]
    lo, hi = np.quantile(diff[np.isfinite(diff)], [0.025, 0.975])
    assert 0 < lo <= b.value - a.value <= hi
    lo, _ = m.gap_interval("difference", "g")
    assert lo is not None and lo > 0
    assert m.summaries["max_over_min"]["g"].value > 1
    assert m.summaries["max_over_min"]["g"].ci_low > 1


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_l2_and_cosine_both_match_brute_force(metric):
    data = _set((4, 4), per=2, seed=5)
    ref = Reference(data, metric)
    r = verification_audit(data, fmr=[0.2], metric=metric, bootstrap=0, min_group_size=1)
    tau = ref.tau(0.2)
    assert r.metrics["threshold@2e-1"].overall.value == pytest.approx(tau, rel=1e-13, abs=1e-15)
    for g in ref.groups:
        assert r.metrics["fmr@2e-1"].by_group["g"][g].value == pytest.approx(
            ref.fmr(ref.group_impostor(g), tau)
        )
        assert r.metrics["fnmr@2e-1"].by_group["g"][g].value == pytest.approx(
            ref.fnmr(ref.group_genuine(g), tau)
        )


def test_sampled_pairs_rates_are_counts_over_the_seeded_samples():
    # budgets below the pair counts: every rate is a share of the pairs sample_pairs draws
    data = _set((8, 8), seed=7)
    kw = dict(genuine_pairs=30, impostor_pairs=200, same_group_pairs=60)
    r = verification_audit(data, fmr=[0.05], bootstrap=0, seed=3, min_group_size=1, **kw)
    labels = np.asarray(data.labels)
    codes = np.asarray(data.attribute("g"))
    p = sample_pairs(labels, {"g": codes}, genuine=30, impostor=200, same_group=60, seed=3)
    assert not p.genuine.exhaustive and not p.impostor.exhaustive
    meta = r.metadata["verification"]["pairs"]
    assert (meta["genuine"], meta["impostor"]) == (30, 200)
    assert not meta["genuine_all"] and not meta["impostor_all"]
    x = np.asarray(data.embeddings)
    imp = [_score(x, a, b, "cosine") for a, b in zip(p.impostor.i, p.impostor.j)]
    gen = [_score(x, a, b, "cosine") for a, b in zip(p.genuine.i, p.genuine.j)]
    tau = threshold_at_fmr(np.array(imp), 0.05)
    assert r.metrics["threshold@5e-2"].overall.value == pytest.approx(tau, rel=1e-13)
    assert r.metrics["fmr@5e-2"].overall.value == pytest.approx(Reference.fmr(imp, tau))
    assert r.metrics["fnmr@5e-2"].overall.value == pytest.approx(Reference.fnmr(gen, tau))
    names = list(data.attribute_value_names["g"])
    for g, name in enumerate(names):
        s = p.same_group["g"][g]
        assert len(s) == 60 and not s.exhaustive
        same = [_score(x, a, b, "cosine") for a, b in zip(s.i, s.j)]
        assert r.metrics["fmr@5e-2"].by_group["g"][name].value == pytest.approx(
            Reference.fmr(same, tau)
        )
        mine = [v for v, a in zip(gen, p.genuine.i) if codes[a] == g]
        assert r.metrics["fnmr@5e-2"].by_group["g"][name].value == pytest.approx(
            Reference.fnmr(mine, tau)
        )
    # the cross-group matrix: the global sample plus the same-group samples on the diagonal
    m = r.metadata["verification"]["fmr_matrix"]["5e-2"]["g"]
    gi, gj = codes[p.impostor.i], codes[p.impostor.j]
    for g in range(2):
        assert m["pairs"][g][g] == int(((gi == g) & (gj == g)).sum()) + 60
    assert m["pairs"][0][1] == int((gi != gj).sum())


def test_point_values_do_not_depend_on_row_order(tiny, report):
    data, _ = tiny
    perm = np.random.default_rng(9).permutation(len(data))
    shuffled = EmbeddingSet(
        embeddings=np.asarray(data.embeddings)[perm],
        labels=np.asarray(data.labels)[perm],
        attributes={"g": np.array(data.attribute_value_names["g"])[data.attribute("g")[perm]]},
    )
    other = verification_audit(shuffled, fmr=TARGETS, bootstrap=0, min_group_size=1)
    for name, m in report.metrics.items():
        o = other.metrics[name]
        assert o.overall.value == pytest.approx(m.overall.value, rel=1e-12, abs=1e-15), name
        for g, e in m.by_group["g"].items():
            assert o.by_group["g"][g].value == pytest.approx(e.value, rel=1e-12, abs=1e-15)
        for s, per in getattr(m, "summaries", {}).items():
            assert o.summaries[s]["g"].value == pytest.approx(per["g"].value, rel=1e-9), (name, s)
    for t in LABELS_T:
        a = report.metadata["verification"]["fmr_matrix"][t]["g"]
        b = other.metadata["verification"]["fmr_matrix"][t]["g"]
        assert a["pairs"] == b["pairs"]
        np.testing.assert_allclose(np.array(a["fmr"], float), np.array(b["fmr"], float))


def test_fmr_bootstrap_resamples_both_identities_of_a_pair():
    ratios = []
    for seed in range(3):
        data = _crowded(120, seed=seed, scale=1.0)
        r = verification_audit(
            data, fmr=[1e-2], metric="l2", bootstrap=300, seed=seed, min_group_size=1
        )
        tau = r.metrics["threshold@1e-2"].overall.value
        package_sd = np.nanstd(r.metrics["fmr@1e-2"].replicates["g"]["a"])
        # reference: resample the group's identities; a pair counts w_A * w_B times
        labels = np.asarray(data.labels)
        rows = np.flatnonzero(data.attribute("g") == 0)
        i, j = (rows[v] for v in np.triu_indices(len(rows), 1))
        keep = labels[i] != labels[j]
        i, j = i[keep], j[keep]
        hit = pair_scores(np.asarray(data.embeddings), i, j, "l2") >= tau
        ids, inv = np.unique(labels[np.concatenate([i, j])], return_inverse=True)
        a, b = inv[: len(i)], inv[len(i) :]
        rng = np.random.default_rng(seed)
        reps = []
        for _ in range(300):
            w = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
            ww = (w[a] * w[b]).astype(float)
            reps.append((ww * hit).sum() / ww.sum())
        ratios.append(package_sd / np.std(reps))
    assert np.mean(ratios) > 0.85, ratios


def test_attributes_are_audited_independently():
    data = _set((6, 6), seed=4)
    rng = np.random.default_rng(0)
    h = rng.choice(["x", "y", "z"], size=len(data.labels) // 3).repeat(3)
    both = EmbeddingSet(
        embeddings=data.embeddings,
        labels=data.labels,
        attributes={"g": np.array(data.attribute_value_names["g"])[data.attribute("g")], "h": h},
    )
    r2 = verification_audit(both, fmr=TARGETS, bootstrap=0, min_group_size=1)
    rg = verification_audit(both, attributes=["g"], fmr=TARGETS, bootstrap=0, min_group_size=1)
    rh = verification_audit(both, attributes=["h"], fmr=TARGETS, bootstrap=0, min_group_size=1)
    assert r2.metadata["attributes"] == ["g", "h"] and rg.metadata["attributes"] == ["g"]
    for name in r2.metrics:
        assert set(rg.metrics[name].by_group) == {"g"} and set(rh.metrics[name].by_group) == {"h"}
        assert r2.metrics[name].by_group["g"] == rg.metrics[name].by_group["g"]
        assert r2.metrics[name].by_group["h"] == rh.metrics[name].by_group["h"]
        assert r2.metrics[name].overall.value == rg.metrics[name].overall.value
    ref = Reference(both)
    tau = ref.tau(0.1)
    for v in ("x", "y", "z"):
        rows = [k for k in range(len(h)) if h[k] == v]
        same = [s for a, b, s in ref.impostor if a in rows and b in rows]
        got = r2.metrics["fmr@1e-1"].by_group["h"][v].value
        assert got == (pytest.approx(ref.fmr(same, tau)) if same else None)
