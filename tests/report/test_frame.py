"""Tests for ``fairmetric.report.frame``.

* values against a slow reference (explicit loops) for means, ratio estimators and a log transform;
* gap semantics against fairlearn's ``MetricFrame`` (skipped when fairlearn is not installed);
* the bootstrap: seeding, stratification (checked exactly by encoding which samples a replicate
  drew), agreement with a numpy reference, coverage, gap intervals, tiny groups;
* ``to_dict()`` and its JSON form; input errors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmetric.report.frame import (
    Estimate,
    Grouping,
    GroupMetric,
    group_metric_from_samples,
    intersect,
)

NA = "too few samples for this metric"


def _build(num, *, codes=None, names=None, attr="attr", **kw) -> GroupMetric:
    num = np.asarray(num, dtype=np.float64)
    if codes is None:
        codes = np.zeros(len(num), dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    if names is None:
        names = [f"g{c}" for c in range(int(codes.max()) + 1 if codes.size else 0)]
    kw.setdefault("higher_is_better", True)
    return group_metric_from_samples("m", num=num, groupings=[Grouping(attr, codes, names)], **kw)


# --------------------------------------------------------------------------------------------
# values against a slow reference


def _ref_value(num, den, idx, transform):
    """``T(Σ num / Σ den)`` over ``idx`` with plain Python loops; None where undefined."""
    s_num = 0.0
    s_den = 0.0
    for i in idx:
        s_num += float(num[i])
        s_den += float(den[i])
    if s_den <= 0:
        return None
    v = s_num / s_den
    if transform == "log":
        if v <= 0:
            return None
        v = math.log(v)
    return v


def _reference(num, den, valid, codes, names, transform, min_count):
    """Overall and per-group ``(value, count)``; a sample counts if valid and ``den > 0``."""
    n = len(num)
    overall_idx = [i for i in range(n) if valid[i] and den[i] > 0]
    overall = (_ref_value(num, den, overall_idx, transform), len(overall_idx))
    groups = {}
    for code in sorted({int(c) for c in codes}):
        idx = [i for i in range(n) if codes[i] == code and valid[i] and den[i] > 0]
        value = _ref_value(num, den, idx, transform) if len(idx) >= min_count else None
        groups[names[code]] = (value, len(idx))
    return overall, groups


@st.composite
def _samples(draw):
    n = draw(st.integers(0, 40))
    k = draw(st.integers(1, 5))
    ints = st.lists(st.integers(-2, 6), min_size=n, max_size=n)
    num = np.array(draw(ints), dtype=np.float64)
    den_kind = draw(st.sampled_from(["none", "ones", "varying"]))
    if den_kind == "none":
        den = None
    elif den_kind == "ones":
        den = np.ones(n)
    else:
        den = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=float)
        num[den == 0] = 0.0  # a query with no pairs contributes nothing
    valid = draw(st.none() | st.lists(st.booleans(), min_size=n, max_size=n).map(np.array))
    codes = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=int)
    transform = draw(st.sampled_from([None, "log"]))
    min_count = draw(st.integers(1, 3))
    return num, den, valid, codes, k, transform, min_count


@settings(max_examples=150, deadline=None)
@given(_samples())
def test_values_match_slow_reference(sample):
    num, den, valid, codes, k, transform, min_count = sample
    names = [f"group-{c}" for c in range(k)]
    m = group_metric_from_samples(
        "m",
        num=num,
        den=den,
        valid=valid,
        groupings=[Grouping("attr", codes, names)],
        higher_is_better=True,
        transform=math.log if transform == "log" else None,
        min_count=min_count,
        na_reason=NA,
    )
    ref_den = np.ones(len(num)) if den is None else den
    ref_valid = np.ones(len(num), dtype=bool) if valid is None else valid
    (ov, oc), groups = _reference(num, ref_den, ref_valid, codes, names, transform, min_count)

    if oc == int(ref_valid.sum()):  # den == 0 samples: see test_overall_count_excludes_den_zero
        assert m.overall.count == oc
    if ov is None:
        assert m.overall.value is None and m.overall.na_reason == NA
    else:
        assert m.overall.value == pytest.approx(ov, rel=1e-12, abs=1e-12)
        assert m.overall.na_reason is None
    # only codes present in the data are listed, under their names, in code order
    assert list(m.by_group["attr"]) == list(groups)
    for g, (value, count) in groups.items():
        e = m.by_group["attr"][g]
        assert isinstance(e, Estimate)
        assert e.count == count
        assert e.ci_low is None and e.ci_high is None
        if value is None:
            assert e.value is None and e.na_reason == NA
        else:
            assert e.value == pytest.approx(value, rel=1e-12, abs=1e-12)
            assert e.na_reason is None
    assert m.replicates == {}


def test_plain_mean_of_float_scores():
    rng = np.random.default_rng(0)
    num = rng.random(30)
    codes = np.repeat([0, 1, 2], 10)
    m = _build(num, codes=codes, names=["a", "b", "c"])
    assert m.overall.value == pytest.approx(num.mean())
    for c, g in enumerate("abc"):
        assert m.by_group["attr"][g].value == pytest.approx(num[codes == c].mean())
        assert m.by_group["attr"][g].count == 10


def test_ratio_estimator_is_ratio_of_sums_not_mean_of_ratios():
    # per-query pair sums and pair counts: the value is Σ num / Σ den
    num = np.array([1.0, 9.0, 4.0, 4.0])
    den = np.array([1.0, 3.0, 2.0, 2.0])
    m = _build(num, den=den, codes=[0, 0, 1, 1], names=["a", "b"])
    assert m.by_group["attr"]["a"].value == pytest.approx(10 / 4)  # not mean(1, 3) = 2
    assert m.by_group["attr"]["b"].value == pytest.approx(2.0)
    assert m.overall.value == pytest.approx(18 / 8)


def test_invalid_samples_are_excluded_everywhere():
    num = np.array([1.0, 100.0, 0.0, 0.0, 100.0])
    valid = np.array([True, False, True, True, False])
    m = _build(num, valid=valid, codes=[0, 0, 1, 1, 1], names=["a", "b"])
    assert m.overall.value == pytest.approx(1 / 3)
    assert m.overall.count == 3
    assert m.by_group["attr"]["a"].value == 1.0 and m.by_group["attr"]["a"].count == 1
    assert m.by_group["attr"]["b"].value == 0.0 and m.by_group["attr"]["b"].count == 2


@pytest.mark.parametrize(
    ("num", "den", "valid", "min_count", "transform", "count"),
    [
        ([1.0, 1.0], None, None, 3, None, 2),  # fewer than min_count valid samples
        ([1.0, 1.0], None, [False, False], 1, None, 0),  # no valid sample at all
        ([0.0, 0.0], [0.0, 0.0], None, 1, None, 0),  # Σ den = 0 (den = 0 never counts)
        ([0.0, 0.0], None, None, 1, math.log, 2),  # log of 0
        ([-1.0, -2.0], None, None, 1, math.log, 2),  # log of a negative mean
    ],
)
def test_na_groups(num, den, valid, min_count, transform, count):
    codes = [0, 0, 1, 1, 1]
    num4 = np.array(num + [1.0, 3.0, 2.0])
    den4 = None if den is None else np.array(den + [1.0, 1.0, 1.0])
    valid4 = None if valid is None else np.array(valid + [True, True, True])
    m = _build(
        num4,
        den=den4,
        valid=valid4,
        codes=codes,
        names=["small", "ok"],
        min_count=min_count,
        transform=transform,
        na_reason=NA,
        n_boot=50,
    )
    na = m.by_group["attr"]["small"]
    assert na.value is None
    assert na.na_reason == NA
    assert na.count == count
    assert na.ci_low is None and na.ci_high is None
    ok = m.by_group["attr"]["ok"]
    expected = 2.0 if transform is None else math.log(2.0)
    assert ok.value == pytest.approx(expected) and ok.na_reason is None
    # NA groups are left out of values and gaps
    assert m.values() == {"ok": ok.value}
    assert m.difference() is None and m.ratio() is None
    assert m.worst_group() == ("ok", ok.value)


def test_samples_with_zero_den_do_not_count_in_groups():
    num = np.array([0.0, 3.0, 0.0, 2.0])
    den = np.array([0.0, 2.0, 0.0, 0.5])
    m = _build(num, den=den, codes=[0, 0, 1, 1], names=["a", "b"], min_count=2)
    a, b = m.by_group["attr"]["a"], m.by_group["attr"]["b"]
    assert a.count == 1 and a.value is None  # one sample with pairs, below min_count
    assert b.count == 1 and b.value is None
    one = _build(num, den=den, codes=[0, 0, 1, 1], names=["a", "b"])
    assert one.values() == pytest.approx({"a": 1.5, "b": 4.0})
    assert one.overall.value == pytest.approx(5 / 2.5)


def test_overall_count_excludes_den_zero():
    num = np.array([0.0, 3.0, 0.0, 2.0])
    den = np.array([0.0, 2.0, 0.0, 0.5])
    m = _build(num, den=den, codes=[0, 0, 1, 1], names=["a", "b"])
    assert sum(e.count for e in m.by_group["attr"].values()) == 2
    assert m.overall.count == 2


def test_absent_codes_are_not_listed_and_names_come_from_grouping():
    codes = np.array([3, 0, 3, 0, 3])
    m = _build([1, 0, 1, 1, 1], codes=codes, names=["zero", "one", "two", "three"])
    assert list(m.by_group["attr"]) == ["zero", "three"]
    assert m.by_group["attr"]["zero"].value == 0.5
    assert m.by_group["attr"]["three"].value == 1.0


def test_several_groupings_and_intersections():
    colour = np.array([0, 0, 1, 1, 1, 0])
    sex = np.array([0, 1, 0, 1, 1, 0])
    num = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    inter = colour * 2 + sex
    m = group_metric_from_samples(
        "m",
        num=num,
        groupings=[
            Grouping("colour", colour, ["red", "green"]),
            Grouping("sex", sex, ["f", "m"]),
            Grouping("colour×sex", inter, ["red×f", "red×m", "green×f", "green×m"]),
        ],
        higher_is_better=True,
    )
    assert m.attributes == ["colour", "sex", "colour×sex"]
    assert m.values("colour") == pytest.approx({"red": 2 / 3, "green": 2 / 3})
    assert m.values("sex") == pytest.approx({"f": 1.0, "m": 1 / 3})
    assert m.values("colour×sex") == pytest.approx(
        {"red×f": 1.0, "red×m": 0.0, "green×f": 1.0, "green×m": 0.5}
    )
    assert m.overall.value == pytest.approx(4 / 6)


def test_no_groupings_gives_overall_only():
    m = group_metric_from_samples(
        "m", num=np.array([1.0, 0.0, 1.0]), groupings=[], higher_is_better=True, n_boot=100
    )
    assert m.by_group == {} and m.attributes == []
    assert m.overall.value == pytest.approx(2 / 3)
    assert m.overall.ci_low is not None and m.overall.ci_low <= 2 / 3 <= m.overall.ci_high


def test_worst_group_and_extremes():
    codes = [0, 0, 1, 1, 2, 2]
    num = [1, 1, 0, 1, 0, 0]
    up = _build(num, codes=codes, names=["a", "b", "c"], higher_is_better=True)
    down = _build(num, codes=codes, names=["a", "b", "c"], higher_is_better=False)
    assert up.worst_group() == ("c", 0.0)
    assert down.worst_group() == ("a", 1.0)
    assert up.group_min() == 0.0 and up.group_max() == 1.0
    all_na = _build([1.0, 1.0], codes=[0, 1], names=["a", "b"], min_count=2)
    assert all_na.worst_group() is None
    assert all_na.group_min() is None and all_na.group_max() is None
    assert all_na.difference() is None and all_na.ratio() is None


# --------------------------------------------------------------------------------------------
# gap semantics against fairlearn's MetricFrame


@pytest.fixture(scope="module")
def fairlearn_metrics():
    return pytest.importorskip("fairlearn.metrics")


def _binary_data(seed: int, n_groups: int):
    """Random binary labels and predictions with a different error rate per group; every group
    has at least one positive, one true positive and one correct prediction (so no group's
    accuracy or recall is 0: that case is tested separately)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 40, size=n_groups)
    codes = rng.permutation(np.repeat(np.arange(n_groups), sizes))
    y_true = rng.integers(0, 2, size=len(codes))
    flip = rng.uniform(0.05, 0.6, size=n_groups)[codes]
    y_pred = np.where(rng.random(len(codes)) < flip, 1 - y_true, y_true)
    for g in range(n_groups):
        first = np.flatnonzero(codes == g)[0]
        y_true[first] = y_pred[first] = 1
    names = [f"grp{g}" for g in range(n_groups)]
    return y_true, y_pred, codes, names


def _assert_same_gaps(mf, m: GroupMetric, attribute: str) -> None:
    assert m.overall.value == pytest.approx(float(mf.overall), rel=1e-12)
    assert m.values(attribute) == pytest.approx(
        {str(k): float(v) for k, v in mf.by_group.items()}, rel=1e-12
    )
    for method in ("between_groups", "to_overall"):
        assert m.difference(attribute, method=method) == pytest.approx(
            float(mf.difference(method=method)), rel=1e-9, abs=1e-12
        )
        assert m.ratio(attribute, method=method) == pytest.approx(
            float(mf.ratio(method=method)), rel=1e-9, abs=1e-12
        )
    assert m.group_min(attribute) == pytest.approx(float(mf.group_min()), rel=1e-12)
    assert m.group_max(attribute) == pytest.approx(float(mf.group_max()), rel=1e-12)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("n_groups", [2, 3, 4])
def test_accuracy_gaps_match_fairlearn(fairlearn_metrics, seed, n_groups):
    from sklearn.metrics import accuracy_score

    y_true, y_pred, codes, names = _binary_data(seed, n_groups)
    sf = np.array(names)[codes]
    mf = fairlearn_metrics.MetricFrame(
        metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=sf
    )
    # accuracy is the mean of per-sample correctness: num = [y_pred == y_true], den = 1
    m = group_metric_from_samples(
        "accuracy",
        num=(y_pred == y_true).astype(float),
        groupings=[Grouping("sf", codes, names)],
        higher_is_better=True,
    )
    _assert_same_gaps(mf, m, "sf")
    worst = m.worst_group("sf")
    assert worst[1] == pytest.approx(float(mf.group_min()))
    assert worst[0] == str(mf.by_group.idxmin())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("form", ["ratio", "valid"])
def test_recall_gaps_match_fairlearn(fairlearn_metrics, seed, form):
    from sklearn.metrics import recall_score

    n_groups = 2 + seed % 3
    y_true, y_pred, codes, names = _binary_data(100 + seed, n_groups)
    sf = np.array(names)[codes]
    mf = fairlearn_metrics.MetricFrame(
        metrics=recall_score, y_true=y_true, y_pred=y_pred, sensitive_features=sf
    )
    if form == "ratio":  # ratio estimator: Σ TP / Σ positives
        kw = dict(num=(y_pred * y_true).astype(float), den=y_true.astype(float))
    else:  # mean of y_pred over the valid (positive) samples
        kw = dict(num=y_pred.astype(float), valid=y_true == 1)
    m = group_metric_from_samples(
        "recall", groupings=[Grouping("sf", codes, names)], higher_is_better=True, **kw
    )
    _assert_same_gaps(mf, m, "sf")


@pytest.mark.parametrize("seed", range(4))
def test_error_rate_worst_group_is_max_like_fairlearn(fairlearn_metrics, seed):
    from sklearn.metrics import zero_one_loss

    y_true, y_pred, codes, names = _binary_data(200 + seed, 3)
    for g in range(3):  # at least one error per group (a zero error rate is tested apart)
        second = np.flatnonzero(codes == g)[1]
        y_pred[second] = 1 - y_true[second]
    sf = np.array(names)[codes]
    mf = fairlearn_metrics.MetricFrame(
        metrics=zero_one_loss, y_true=y_true, y_pred=y_pred, sensitive_features=sf
    )
    m = group_metric_from_samples(
        "error",
        num=(y_pred != y_true).astype(float),
        groupings=[Grouping("sf", codes, names)],
        higher_is_better=False,
    )
    _assert_same_gaps(mf, m, "sf")
    group, value = m.worst_group("sf")
    assert value == pytest.approx(float(mf.group_max()))
    assert group == str(mf.by_group.idxmax())


@pytest.mark.parametrize("seed", range(4))
def test_intersectional_groups_match_fairlearn(fairlearn_metrics, seed):
    import pandas as pd
    from sklearn.metrics import accuracy_score

    y_true, y_pred, a, a_names = _binary_data(300 + seed, 2)
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 3, size=len(a))
    b_names = ["x", "y", "z"]
    sf = pd.DataFrame({"a": np.array(a_names)[a], "b": np.array(b_names)[b]})
    mf = fairlearn_metrics.MetricFrame(
        metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=sf
    )
    inter_names = [f"{u}×{v}" for u in a_names for v in b_names]
    m = group_metric_from_samples(
        "accuracy",
        num=(y_pred == y_true).astype(float),
        groupings=[Grouping("a×b", a * 3 + b, inter_names)],
        higher_is_better=True,
    )
    by_group = {f"{u}×{v}": float(x) for (u, v), x in mf.by_group.items() if not np.isnan(x)}
    assert m.values("a×b") == pytest.approx(by_group, rel=1e-12)
    if min(by_group.values()) > 0:
        _assert_same_gaps_values(mf, m)


def _assert_same_gaps_values(mf, m: GroupMetric) -> None:
    for method in ("between_groups", "to_overall"):
        assert m.difference(method=method) == pytest.approx(float(mf.difference(method=method)))
        assert m.ratio(method=method) == pytest.approx(float(mf.ratio(method=method)))


def test_ratio_to_overall_with_a_zero_group_matches_fairlearn(fairlearn_metrics):
    from sklearn.metrics import accuracy_score

    y_true = np.array([1, 0, 1, 1, 0, 1])
    y_pred = np.array([0, 1, 1, 0, 0, 1])  # group "a" has accuracy 0
    codes = np.array([0, 0, 1, 1, 2, 2])
    names = ["a", "b", "c"]
    mf = fairlearn_metrics.MetricFrame(
        metrics=accuracy_score,
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=np.array(names)[codes],
    )
    m = group_metric_from_samples(
        "accuracy",
        num=(y_pred == y_true).astype(float),
        groupings=[Grouping("sf", codes, names)],
        higher_is_better=True,
    )
    assert m.ratio(method="between_groups") == pytest.approx(float(mf.ratio()))  # 0.0 both
    assert m.ratio(method="to_overall") == pytest.approx(float(mf.ratio(method="to_overall")))


# --------------------------------------------------------------------------------------------
# bootstrap


def _two_groups(n_a: int, n_b: int, p_a: float, p_b: float, seed: int):
    rng = np.random.default_rng(seed)
    num = np.concatenate([rng.random(n_a) < p_a, rng.random(n_b) < p_b]).astype(float)
    codes = np.repeat([0, 1], [n_a, n_b])
    return num, codes


def test_bootstrap_is_reproducible_and_seed_dependent():
    num, codes = _two_groups(60, 40, 0.4, 0.7, seed=1)
    kw = dict(codes=codes, names=["a", "b"], n_boot=200)
    m1 = _build(num, seed=7, **kw)
    m2 = _build(num, seed=7, **kw)
    m3 = _build(num, seed=8, **kw)
    assert m1.by_group == m2.by_group and m1.overall == m2.overall
    for g in ("a", "b", "__overall__"):
        np.testing.assert_array_equal(m1.replicates["attr"][g], m2.replicates["attr"][g])
        assert not np.array_equal(m1.replicates["attr"][g], m3.replicates["attr"][g])
    assert m1.by_group != m3.by_group
    assert m1.gap_interval("difference") == m2.gap_interval("difference")
    # point values do not depend on the seed
    assert m1.values() == m3.values() and m1.overall.value == m3.overall.value


def test_no_bootstrap_no_intervals():
    num, codes = _two_groups(30, 30, 0.4, 0.7, seed=2)
    m = _build(num, codes=codes, names=["a", "b"], n_boot=0)
    assert m.replicates == {}
    assert m.overall.ci_low is None and m.overall.ci_high is None
    for e in m.by_group["attr"].values():
        assert e.ci_low is None and e.ci_high is None
    for kind in ("difference", "ratio"):
        for method in ("between_groups", "to_overall"):
            assert m.gap_interval(kind, method=method) == (None, None)


@pytest.mark.parametrize("transform", [None, math.log])
def test_intervals_contain_point_estimate_and_shrink_with_more_data(transform):
    widths = []
    for n in (100, 2000):
        num, codes = _two_groups(n, n, 0.3, 0.6, seed=n)
        m = _build(num, codes=codes, names=["a", "b"], n_boot=300, seed=0, transform=transform)
        ests = [m.overall, *m.by_group["attr"].values()]
        for e in ests:
            assert e.ci_low <= e.value <= e.ci_high
            assert e.ci_low < e.ci_high
        assert len(m.replicates["attr"]["a"]) == 300
        widths.append([e.ci_high - e.ci_low for e in ests])
    small, big = np.array(widths[0]), np.array(widths[1])
    # the width scales like 1/sqrt(n): sqrt(20) ≈ 4.5 times narrower
    assert np.all(big < small / 2.5)


def test_interval_level():
    num, codes = _two_groups(200, 200, 0.3, 0.6, seed=3)
    wide = _build(num, codes=codes, names=["a", "b"], n_boot=400, level=0.99)
    narrow = _build(num, codes=codes, names=["a", "b"], n_boot=400, level=0.5)
    for g in ("a", "b"):
        w, n = wide.by_group["attr"][g], narrow.by_group["attr"][g]
        assert w.ci_high - w.ci_low > n.ci_high - n.ci_low
        reps = wide.replicates["attr"][g]
        assert w.ci_low == pytest.approx(np.quantile(reps, 0.005))
        assert w.ci_high == pytest.approx(np.quantile(reps, 0.995))


def _decode(total: float, base: int, n: int) -> np.ndarray:
    """Digits of an integer-valued float in ``base``: how often each sample was drawn."""
    x = int(np.rint(total))
    digits = np.zeros(n, dtype=np.int64)
    for i in range(n):
        x, digits[i] = divmod(x, base)
    assert x == 0
    return digits


def test_bootstrap_is_stratified_exactly():
    """Sample ``i`` contributes ``base**i``: a replicate's sum spells out how many times each
    sample was drawn, so we can check that every replicate keeps every group's size, draws a
    group's replicate only from that group, and that the overall replicate is the union of the
    group replicates (for each grouping)."""
    sizes = [1, 2, 4, 5]
    n = sum(sizes)
    base = n + 1  # a sample is drawn at most n times
    num = np.array([float(base**i) for i in range(n)])
    colour = np.repeat(np.arange(4), sizes)
    sex = np.array([0, 1] * (n // 2))
    n_boot = 400
    m = group_metric_from_samples(
        "m",
        num=num,
        groupings=[
            Grouping("colour", colour, ["c0", "c1", "c2", "c3"]),
            Grouping("sex", sex, ["f", "m"]),
        ],
        higher_is_better=True,
        n_boot=n_boot,
        seed=3,
    )
    draws_per_sample = np.zeros(n)
    for attr, codes in (("colour", colour), ("sex", sex)):
        reps = m.replicates[attr]
        gsizes = np.bincount(codes)
        names = list(m.by_group[attr])
        for r in range(n_boot):
            mult = _decode(reps["__overall__"][r] * n, base, n)
            assert mult.sum() == n
            for c, g in enumerate(names):
                member = codes == c
                assert mult[member].sum() == gsizes[c]  # the group keeps its size
                g_mult = _decode(reps[g][r] * gsizes[c], base, n)
                assert np.all(g_mult[~member] == 0)  # drawn only from the group
                np.testing.assert_array_equal(g_mult, np.where(member, mult, 0))
            if attr == "colour":
                draws_per_sample += mult
    # within a group every sample is equally likely: expected n_boot draws each
    sd = np.sqrt(n_boot * (1 - 1 / np.repeat(sizes, sizes)))
    assert np.all(np.abs(draws_per_sample - n_boot) <= 6 * sd + 1e-9)
    # the size-1 group is drawn exactly once in every replicate
    assert draws_per_sample[0] == n_boot


def test_stratified_overall_replicates_are_constant_when_groups_are_constant():
    """Group a scores all 0, group b all 1, an NA group (below min_count) all 1: with group sizes
    kept, every overall replicate equals the point value (a row bootstrap would spread it)."""
    num = np.concatenate([np.zeros(50), np.ones(30), np.ones(2)])
    codes = np.repeat([0, 1, 2], [50, 30, 2])
    m = _build(num, codes=codes, names=["a", "b", "tiny"], n_boot=300, min_count=3)
    assert m.by_group["attr"]["tiny"].value is None
    assert m.overall.value == pytest.approx(32 / 82)
    np.testing.assert_allclose(m.replicates["attr"]["__overall__"], 32 / 82, rtol=1e-12)
    assert m.overall.ci_low == pytest.approx(32 / 82)
    assert m.overall.ci_high == pytest.approx(32 / 82)
    assert np.all(np.isnan(m.replicates["attr"]["tiny"]))


def test_group_replicates_match_numpy_reference_distribution():
    from scipy import stats

    rng = np.random.default_rng(11)
    n_g, n_boot = 40, 2000
    num = rng.exponential(size=n_g + 60)
    den = rng.integers(1, 5, size=n_g + 60).astype(float)
    codes = np.repeat([0, 1], [n_g, 60])
    m = _build(num, den=den, codes=codes, names=["a", "b"], n_boot=n_boot, seed=5)
    lib = m.replicates["attr"]["a"]
    # reference: resample indices within the group, ratio of sums
    ref_rng = np.random.default_rng(12345)
    idx = ref_rng.integers(0, n_g, size=(n_boot, n_g))
    ref = num[:n_g][idx].sum(axis=1) / den[:n_g][idx].sum(axis=1)
    assert stats.ks_2samp(lib, ref).pvalue > 1e-3
    assert np.std(lib) == pytest.approx(np.std(ref), rel=0.15)
    assert np.mean(lib) == pytest.approx(np.mean(ref), rel=0.02)
    lo, hi = m.by_group["attr"]["a"].ci_low, m.by_group["attr"]["a"].ci_high
    assert lo == pytest.approx(np.quantile(ref, 0.025), abs=0.1 * (hi - lo))
    assert hi == pytest.approx(np.quantile(ref, 0.975), abs=0.1 * (hi - lo))


def test_chunked_bootstrap_matches_unchunked_draws():
    # 4e6 // 5000 = 800 replicates per chunk: 1000 replicates take two chunks
    rng = np.random.default_rng(0)
    num = rng.random(5000)
    m = _build(num, n_boot=1000, seed=4)
    reps = m.replicates["attr"]["g0"]
    assert reps.shape == (1000,) and np.all(np.isfinite(reps))
    assert len(np.unique(reps)) > 990  # the second chunk is not a copy of the first
    assert np.std(reps) == pytest.approx(np.std(num) / np.sqrt(5000), rel=0.15)


def test_interval_coverage_on_bernoulli_means():
    """Over 200 simulated data sets the 95% interval covers the true rate 90-99% of the time."""
    p_a, p_b, n_a, n_b = 0.3, 0.6, 100, 80
    true_overall = (p_a * n_a + p_b * n_b) / (n_a + n_b)  # group sizes are fixed
    hits = {"a": 0, "b": 0, "overall": 0}
    sims = 200
    rng = np.random.default_rng(2024)
    codes = np.repeat([0, 1], [n_a, n_b])
    for s in range(sims):
        num = np.concatenate([rng.random(n_a) < p_a, rng.random(n_b) < p_b]).astype(float)
        m = _build(num, codes=codes, names=["a", "b"], n_boot=200, seed=s)
        a, b = m.by_group["attr"]["a"], m.by_group["attr"]["b"]
        hits["a"] += a.ci_low <= p_a <= a.ci_high
        hits["b"] += b.ci_low <= p_b <= b.ci_high
        hits["overall"] += m.overall.ci_low <= true_overall <= m.overall.ci_high
    for key, h in hits.items():
        assert 0.90 <= h / sims <= 0.99, (key, h / sims)


@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
def test_gap_intervals_contain_point_estimate(method):
    num, codes = _two_groups(300, 200, 0.3, 0.7, seed=9)
    m = _build(num, codes=codes, names=["a", "b"], n_boot=400, seed=1)
    for kind, point in (
        ("difference", m.difference(method=method)),
        ("ratio", m.ratio(method=method)),
    ):
        lo, hi = m.gap_interval(kind, method=method)
        assert lo is not None and hi is not None
        assert lo <= point <= hi
        assert lo < hi
    # interval of the replicate gaps, recomputed here
    reps = m.replicates["attr"]
    diffs = np.abs(reps["a"] - reps["b"])
    lo, hi = m.gap_interval("difference")
    assert lo == pytest.approx(np.quantile(diffs, 0.025))
    assert hi == pytest.approx(np.quantile(diffs, 0.975))
    lo, hi = m.gap_interval("ratio", level=0.9)
    ratios = np.minimum(reps["a"], reps["b"]) / np.maximum(reps["a"], reps["b"])
    assert lo == pytest.approx(np.quantile(ratios, 0.05))
    assert hi == pytest.approx(np.quantile(ratios, 0.95))


def test_tiny_groups_never_vanish_from_a_replicate():
    rng = np.random.default_rng(3)
    num = np.concatenate([rng.random(200) < 0.5, [1.0], [0.0, 1.0]]).astype(float)
    den = np.concatenate([np.ones(200), [2.0], [1.0, 3.0]])
    codes = np.repeat([0, 1, 2], [200, 1, 2])
    m = _build(num, den=den, codes=codes, names=["big", "one", "two"], n_boot=500)
    reps = m.replicates["attr"]
    assert np.all(reps["one"] == 0.5)  # a single sample: every replicate is that sample
    assert np.all(np.isfinite(reps["two"]))
    # the two samples (0/1 and 1/3) drawn twice or once each
    assert set(np.round(reps["two"], 12)) == set(np.round([0.0, 0.25, 1 / 3], 12))
    assert np.all(np.isfinite(reps["__overall__"]))
    for g in ("one", "two"):
        e = m.by_group["attr"][g]
        assert e.ci_low is not None and e.ci_low <= e.value <= e.ci_high
    lo, hi = m.gap_interval("difference")
    assert lo is not None and lo <= m.difference() <= hi


def test_transform_is_applied_to_replicates_like_the_point_value():
    num = -np.arange(1.0, 41.0)  # negative means; abs is defined everywhere
    m = _build(num, codes=np.repeat([0, 1], 20), names=["a", "b"], n_boot=100, transform=abs)
    a = m.by_group["attr"]["a"]
    assert a.value == pytest.approx(10.5)
    assert a.ci_low is not None and a.ci_low <= a.value <= a.ci_high


# --------------------------------------------------------------------------------------------
# to_dict / JSON


def test_estimate_to_dict():
    assert Estimate(0.5, 3, 0.1, 0.9).to_dict() == {
        "value": 0.5,
        "count": 3,
        "ci_low": 0.1,
        "ci_high": 0.9,
    }
    assert Estimate(None, 0, na_reason="why").to_dict() == {
        "value": None,
        "count": 0,
        "ci_low": None,
        "ci_high": None,
        "na_reason": "why",
    }


@pytest.mark.parametrize("n_boot", [0, 100])
def test_to_dict_layout_and_json(n_boot):
    rng = np.random.default_rng(0)
    n = 60
    colour = np.repeat([0, 1, 2], [28, 30, 2])
    sex = rng.integers(0, 2, size=n)
    num = (rng.random(n) < 0.5).astype(float)
    valid = np.ones(n, dtype=bool)
    valid[colour == 2] = False  # "blue" has no valid sample: NA with count 0
    m = group_metric_from_samples(
        "recall@1",
        num=num,
        valid=valid,
        groupings=[
            Grouping("colour", colour, ["red", "green", "blue"]),
            Grouping("sex", sex, ["f", "m"]),
        ],
        higher_is_better=True,
        description="hit rate of the nearest neighbour",
        n_boot=n_boot,
        na_reason=NA,
    )
    d = m.to_dict()
    assert set(d) == {
        "description",
        "higher_is_better",
        "overall",
        "by_group",
        "difference",
        "ratio",
        "worst_group",
        "min_group_size",
        "excluded_groups",
    }
    assert d["min_group_size"] == 1
    assert d["excluded_groups"] == {"colour": {}, "sex": {}}
    assert d["description"] == "hit rate of the nearest neighbour"
    assert d["higher_is_better"] is True
    assert d["overall"] == m.overall.to_dict()
    assert set(d["overall"]) == {"value", "count", "ci_low", "ci_high"}
    assert d["overall"]["count"] == 58
    assert list(d["by_group"]) == ["colour", "sex"]
    assert list(d["by_group"]["colour"]) == ["red", "green", "blue"]
    blue = d["by_group"]["colour"]["blue"]
    assert blue == {"value": None, "count": 0, "ci_low": None, "ci_high": None, "na_reason": NA}
    for attr in ("colour", "sex"):
        for g, e in m.by_group[attr].items():
            assert d["by_group"][attr][g] == e.to_dict()
            if e.value is not None:
                assert set(d["by_group"][attr][g]) == {"value", "count", "ci_low", "ci_high"}
                assert (e.ci_low is not None) == (n_boot > 0)
        for kind in ("difference", "ratio"):
            lo, hi = m.gap_interval(kind, attr)
            point = getattr(m, kind)(attr)
            assert d[kind][attr] == {"value": point, "ci_low": lo, "ci_high": hi}
            assert (lo is not None) == (n_boot > 0)
        group, value = m.worst_group(attr)
        assert d["worst_group"][attr] == {"group": group, "value": value}
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d


def test_to_dict_json_with_all_groups_na_and_nan_replicates():
    # log of non-positive means in some replicates (NaN replicates) and in some groups (NA)
    num = np.array([-1.0, -1.0, 0.5, -0.2, 0.3, 2.0])
    codes = np.array([0, 0, 1, 1, 1, 2])
    m = _build(num, codes=codes, names=["neg", "mixed", "one"], transform=math.log, n_boot=200)
    assert m.by_group["attr"]["neg"].value is None
    assert np.isnan(m.replicates["attr"]["mixed"]).any()
    d = m.to_dict()
    json.dumps(d, allow_nan=False)
    all_na = _build([1.0, 1.0], codes=[0, 1], names=["a", "b"], min_count=5, n_boot=20)
    d = all_na.to_dict()
    assert d["worst_group"] == {"attr": None}
    assert d["difference"] == {"attr": {"value": None, "ci_low": None, "ci_high": None}}
    assert d["ratio"] == {"attr": {"value": None, "ci_low": None, "ci_high": None}}
    json.dumps(d, allow_nan=False)
    empty = group_metric_from_samples("m", num=np.zeros(0), groupings=[], higher_is_better=True)
    assert empty.overall.value is None and empty.overall.count == 0
    json.dumps(empty.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(den=np.ones(3)), "shape"),
        (dict(den=np.ones((4, 1))), "shape"),
        (dict(valid=np.ones(5, dtype=bool)), "shape"),
        (dict(codes=np.zeros(3, dtype=int)), "'attr' has 3 codes for 4 samples"),
    ],
)
def test_mismatched_shapes_raise(kw, match):
    codes = kw.pop("codes", np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=match):
        group_metric_from_samples(
            "m",
            num=np.ones(4),
            groupings=[Grouping("attr", codes, ["a"])],
            higher_is_better=True,
            **kw,
        )


@pytest.mark.parametrize("with_grouping", [False, True])
def test_two_dimensional_num_raises(with_grouping):
    groupings = [Grouping("attr", np.array([0, 0, 1, 1]), ["a", "b"])] if with_grouping else []
    with pytest.raises(ValueError, match=r"\bnum\b"):
        group_metric_from_samples(
            "m", num=np.ones((4, 2)), groupings=groupings, higher_is_better=True
        )


def test_negative_codes_are_rejected():
    with pytest.raises(ValueError, match="codes"):
        _build([1.0, 2.0, 3.0, 3.0], codes=[-1, 0, 1, 1], names=["x", "y"])


@pytest.mark.parametrize(("kw", "match"), [(dict(level=1.5), "level"), (dict(n_boot=-1), "n_boot")])
def test_bad_bootstrap_settings_raise(kw, match):
    kw.setdefault("n_boot", 10)
    with pytest.raises(ValueError, match=match):
        _build(np.ones(4), codes=[0, 0, 1, 1], **kw)


def _two_attribute_metric(n_boot: int = 0) -> GroupMetric:
    return group_metric_from_samples(
        "recall@1",
        num=np.array([1.0, 0.0, 1.0, 1.0]),
        groupings=[
            Grouping("colour", np.array([0, 0, 1, 1]), ["red", "green"]),
            Grouping("sex", np.array([0, 1, 0, 1]), ["f", "m"]),
        ],
        higher_is_better=True,
        n_boot=n_boot,
    )


ACCESSORS = {
    "values": lambda m, a: m.values(a),
    "difference": lambda m, a: m.difference(a),
    "ratio": lambda m, a: m.ratio(a),
    "group_min": lambda m, a: m.group_min(a),
    "group_max": lambda m, a: m.group_max(a),
    "worst_group": lambda m, a: m.worst_group(a),
    "gap_interval": lambda m, a: m.gap_interval("difference", a),
}


@pytest.mark.parametrize("accessor", list(ACCESSORS))
def test_attribute_lookup_errors(accessor):
    m = _two_attribute_metric()
    call = ACCESSORS[accessor]
    with pytest.raises(ValueError, match=r"several attributes \(colour, sex\)"):
        call(m, None)
    with pytest.raises(ValueError, match=r"no attribute 'age'; it has: colour, sex"):
        call(m, "age")
    call(m, "sex")  # a named attribute works
    single = _build([1.0, 0.0], codes=[0, 1], names=["a", "b"])
    assert ACCESSORS[accessor](single, None) == ACCESSORS[accessor](single, "attr")


def test_bad_method_raises():
    m = _two_attribute_metric(n_boot=20)
    for fn in (m.difference, m.ratio):
        with pytest.raises(ValueError, match="between_groups"):
            fn("colour", method="largest")
    with pytest.raises(ValueError, match="between_groups"):
        m.gap_interval("difference", "colour", method="largest")
    with pytest.raises(ValueError, match="between_groups"):
        m.gap_interval("ratio", "colour", method="largest")


@pytest.mark.parametrize(
    ("n_boot", "kind", "method"),
    [(20, "range", "between_groups"), (0, "range", "between_groups"), (0, "difference", "x")],
)
def test_gap_interval_validates_kind_and_method(n_boot, kind, method):
    m = _two_attribute_metric(n_boot=n_boot)
    with pytest.raises(ValueError):
        m.gap_interval(kind, "colour", method=method)


# --------------------------------------------------------------------------------------------
# per-grouping contributions and macro overall


def test_group_num_and_den_replace_contributions_for_one_grouping():
    num = np.array([1.0, 2.0, 3.0, 4.0])
    colour = Grouping("colour", np.array([0, 0, 1, 1]), ["red", "green"])
    sex = Grouping("sex", np.array([0, 1, 0, 1]), ["f", "m"])
    g_num = np.array([10.0, 0.0, 5.0, 7.0])
    g_den = np.array([2.0, 0.0, 1.0, 1.0])  # den 0: the sample does not count for colour
    m = group_metric_from_samples(
        "m",
        num=num,
        groupings=[colour, sex],
        higher_is_better=True,
        group_num={"colour": g_num},
        group_den={"colour": g_den},
        n_boot=50,
    )
    assert m.values("colour") == pytest.approx({"red": 5.0, "green": 6.0})
    assert m.by_group["colour"]["red"].count == 1
    assert m.values("sex") == pytest.approx({"f": 2.0, "m": 3.0})
    assert m.overall.value == pytest.approx(2.5)  # overall keeps num / den
    assert np.nanmax(m.replicates["colour"]["red"]) == 5.0  # one counted sample


@pytest.mark.parametrize("where", ["den", "group_den"])
def test_counted_samples_keep_their_number_in_every_replicate(where):
    num = np.concatenate([[3.0, 0.0], np.ones(20)])
    den = np.concatenate([[1.0, 0.0], np.ones(20)])  # "one": 1 counted sample, 1 with den 0
    codes = np.repeat([0, 1], [2, 20])
    if where == "den":
        m = _build(num, den=den, codes=codes, names=["one", "big"], n_boot=200)
    else:
        m = _build(
            num,
            codes=codes,
            names=["one", "big"],
            n_boot=200,
            group_num={"attr": num},
            group_den={"attr": den},
        )
    assert m.by_group["attr"]["one"].count == 1
    assert np.all(m.replicates["attr"]["one"] == 3.0)


def test_macro_overall_is_mean_of_group_values():
    num = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    m = _build(
        num, codes=codes, names=["a", "b", "c", "d"], overall_mode="macro", min_count=2, n_boot=200
    )
    assert m.values() == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})  # d is NA
    assert m.overall.value == pytest.approx(0.5)
    reps = m.replicates["attr"]
    np.testing.assert_allclose(reps["__overall__"], (reps["a"] + reps["b"] + reps["c"]) / 3)
    assert m.overall.ci_low == pytest.approx(np.quantile(reps["__overall__"], 0.025))
    assert m.overall.ci_high == pytest.approx(np.quantile(reps["__overall__"], 0.975))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(overall_mode="mean"), "overall_mode"),
        (dict(overall_mode="macro", extra=True), "exactly one grouping"),
        (dict(group_num={"attr": np.ones(3)}), r"group_num/group_den of 'attr'"),
        (dict(group_den={"attr": np.ones((4, 1))}), r"group_num/group_den of 'attr'"),
    ],
)
def test_per_grouping_argument_errors(kw, match):
    groupings = [Grouping("attr", np.array([0, 0, 1, 1]), ["a", "b"])]
    if kw.pop("extra", False):
        groupings.append(Grouping("other", np.array([0, 1, 0, 1]), ["x", "y"]))
    with pytest.raises(ValueError, match=match):
        group_metric_from_samples(
            "m", num=np.ones(4), groupings=groupings, higher_is_better=True, **kw
        )


def test_group_num_for_unknown_grouping_raises():
    with pytest.raises(ValueError, match="colour"):
        _build(np.ones(4), codes=[0, 0, 1, 1], group_num={"colour": np.zeros(4)})


def test_intersect_against_a_loop_reference():
    from fairmetric.report.frame import INTERSECTION, intersect

    colour = Grouping("colour", np.array([0, 1, 1, 0, 1, 0]), ["light", "dark"])
    sex = Grouping("sex", np.array([1, 1, 0, 0, 1, 1]), ["f", "m"])
    both = intersect([colour, sex])
    assert both.name == f"colour{INTERSECTION}sex"
    # reference: every combination that occurs, in sorted code order, named member by member
    combos = sorted({(int(a), int(b)) for a, b in zip(colour.codes, sex.codes)})
    assert both.names == [f"{colour.names[a]}{INTERSECTION}{sex.names[b]}" for a, b in combos]
    for i, (a, b) in enumerate(zip(colour.codes, sex.codes)):
        assert both.names[both.codes[i]] == f"{colour.names[a]}{INTERSECTION}{sex.names[b]}"


def test_intersect_bad_input():
    from fairmetric.report.frame import intersect

    one = Grouping("colour", np.array([0, 1]), ["light", "dark"])
    with pytest.raises(ValueError, match="at least two groupings"):
        intersect([one])
    short = Grouping("sex", np.array([0]), ["f"])
    with pytest.raises(ValueError, match="same samples"):
        intersect([one, short])


# ----------------------------------------------------------------------------- group names


def test_intersection_names_stay_distinct_when_values_contain_the_separator():
    """ "a×b" × "c" and "a" × "b×c" would both join to "a×b×c": one group would overwrite the
    other in by_group. Then every combination is named by its tuple."""
    p = Grouping("p", np.array([0, 1, 0, 1]), ["a×b", "a"])
    q = Grouping("q", np.array([0, 0, 1, 1]), ["c", "b×c"])
    both = intersect([p, q])
    assert len(set(both.names)) == len(both.names) == 4
    assert "('a×b', 'c')" in both.names and "('a', 'b×c')" in both.names
    m = group_metric_from_samples("m", num=np.arange(4.0), groupings=[both], higher_is_better=True)
    assert len(m.by_group["p×q"]) == 4
    # plain names keep the plain join
    plain = intersect(
        [Grouping("p", np.array([0, 1]), ["x", "y"]), Grouping("q", np.array([1, 0]), ["u", "v"])]
    )
    assert plain.names == ["x×v", "y×u"]


def test_duplicate_group_names_are_refused():
    with pytest.raises(ValueError, match=r"several groups are named \['x'\]"):
        Grouping("colour", np.array([0, 1]), ["x", "x"])


# --------------------------------------------------------------------------------------------
# num_log: per-sample numerators passed as logs, summed in the log domain


def _log_inputs(seed: int = 0, offset: float = 0.0):
    """Logs of per-sample numerators (some ``-inf``: a zero), dens, validity, two groupings (one
    with grouping-specific contributions), and a group with a single finite log."""
    rng = np.random.default_rng(seed)
    n = 90
    lnum = rng.uniform(-6.0, -1.0, n) + offset
    lnum[rng.random(n) < 0.1] = -np.inf
    den = rng.integers(1, 6, n).astype(np.float64)
    den[3] = 0.0
    valid = rng.random(n) > 0.05
    colour = rng.integers(0, 3, n)
    colour[-4:] = 3  # group "c3": one finite log among four samples
    valid[-4:] = True
    den[-4:] = 2.0
    lnum[-4:] = [-np.inf, -np.inf, -3.0 + offset, -np.inf]
    size = rng.integers(0, 2, n)
    g_lnum = lnum + rng.uniform(-0.5, 0.5, n)
    g_den = den.copy()
    g_den[rng.random(n) < 0.1] = 0.0  # these samples do not count for "size"
    groupings = [
        Grouping("colour", colour, ["c0", "c1", "c2", "c3"]),
        Grouping("size", size, ["small", "big"]),
    ]
    return lnum, den, valid, groupings, {"size": g_lnum}, {"size": g_den}


def _log_metric(lnum, den, valid, groupings, g_num, g_den, *, as_log, n_boot=300, **kw):
    def conv(a):
        return a if as_log else np.exp(a)

    return group_metric_from_samples(
        "m",
        num=conv(lnum),
        den=den,
        valid=valid,
        groupings=groupings,
        higher_is_better=False,
        group_num={k: conv(v) for k, v in g_num.items()},
        group_den=g_den,
        n_boot=n_boot,
        seed=3,
        num_log=as_log,
        **kw,
    )


def _assert_metrics_close(a: GroupMetric, b: GroupMetric, rel: float, shift: float = 0.0) -> None:
    """Values, intervals, replicates and gap intervals of ``a`` equal those of ``b`` + ``shift``."""

    def close(x, y):
        if y is None:
            assert x is None
        else:
            assert x == pytest.approx(y + shift, rel=rel)

    for ea, eb in [(a.overall, b.overall)] + [
        (a.by_group[g][k], b.by_group[g][k]) for g in b.by_group for k in b.by_group[g]
    ]:
        assert ea.count == eb.count and ea.na_reason == eb.na_reason
        close(ea.value, eb.value)
        close(ea.ci_low, eb.ci_low)
        close(ea.ci_high, eb.ci_high)
    for g, reps in b.replicates.items():
        assert set(a.replicates[g]) == set(reps)
        for k, r in reps.items():
            got = a.replicates[g][k]
            np.testing.assert_array_equal(np.isnan(got), np.isnan(r))
            np.testing.assert_allclose(got[~np.isnan(r)], r[~np.isnan(r)] + shift, rtol=rel)
        for kind in ("difference", "ratio"):
            if shift == 0.0 or kind == "difference":
                for x, y in zip(a.gap_interval(kind, g), b.gap_interval(kind, g)):
                    assert (x is None) == (y is None)
                    if y is not None:
                        assert x == pytest.approx(y, rel=rel, abs=1e-12 * abs(shift))


@pytest.mark.parametrize("transform", [math.log, None])
def test_num_log_equals_log_of_sums_of_exp_where_exp_is_representable(transform):
    lnum, den, valid, groupings, g_num, g_den = _log_inputs()
    ref = _log_metric(lnum, den, valid, groupings, g_num, g_den, as_log=False, transform=math.log)
    got = _log_metric(lnum, den, valid, groupings, g_num, g_den, as_log=True, transform=transform)
    _assert_metrics_close(got, ref, rel=1e-12)
    # the group with one finite log among four: replicates that draw none of it are NaN
    reps = got.replicates["colour"]["c3"]
    assert np.isnan(reps).any() and np.isfinite(reps).any()
    assert got.values("colour")["c3"] == pytest.approx(-3.0 - math.log(8.0), rel=1e-12)


def test_num_log_without_bootstrap_and_without_groupings():
    lnum, den, valid, _, _, _ = _log_inputs(seed=1)
    for n_boot in (0, 100):
        kw = dict(den=den, valid=valid, groupings=[], higher_is_better=False, n_boot=n_boot)
        ref = group_metric_from_samples("m", num=np.exp(lnum), transform=math.log, **kw)
        got = group_metric_from_samples("m", num=lnum, num_log=True, **kw)
        _assert_metrics_close(got, ref, rel=1e-12)


def test_num_log_works_where_exp_underflows():
    # logs around -1e5: every exp() is 0 in float64, the plain path has no value
    lnum, den, valid, groupings, g_num, g_den = _log_inputs(offset=-1e5)
    plain = _log_metric(lnum, den, valid, groupings, g_num, g_den, as_log=False, transform=math.log)
    assert plain.overall.value is None and not plain.values("colour")
    got = _log_metric(lnum, den, valid, groupings, g_num, g_den, as_log=True)
    # log(Σ exp(l - 1e5) / Σ den) = log(Σ exp(l) / Σ den) - 1e5: the same draws, shifted
    s_lnum, _, _, _, s_g_num, _ = _log_inputs(offset=0.0)
    ref = _log_metric(
        s_lnum, den, valid, groupings, s_g_num, g_den, as_log=False, transform=math.log
    )
    _assert_metrics_close(got, ref, rel=1e-12, shift=-1e5)
    assert got.overall.value == pytest.approx(-1e5 - 3.0, abs=3.0)
    # against an explicit reference: a log-sum-exp with math.fsum over a group's valid samples
    codes = groupings[0].codes
    for code, name in enumerate(groupings[0].names):
        idx = [i for i in range(len(lnum)) if codes[i] == code and valid[i] and den[i] > 0]
        finite = [lnum[i] for i in idx if np.isfinite(lnum[i])]
        top = max(finite)
        want = top + math.log(
            math.fsum(math.exp(lnum[i] - top) for i in idx) / math.fsum(den[i] for i in idx)
        )
        assert got.values("colour")[name] == pytest.approx(want, rel=1e-12)


def test_num_log_group_of_only_minus_inf_has_no_value():
    lnum = np.array([-np.inf, -np.inf, -1.0, -2.0])
    m = _build(lnum, codes=[0, 0, 1, 1], num_log=True, n_boot=20, na_reason=NA)
    assert m.by_group["attr"]["g0"].value is None
    assert np.isnan(m.replicates["attr"]["g0"]).all()
    assert m.values() == pytest.approx({"g1": math.log((math.exp(-1) + math.exp(-2)) / 2)})


@pytest.mark.parametrize("transform", [math.sqrt, np.log])
def test_num_log_refuses_another_transform(transform):
    with pytest.raises(ValueError, match="num_log"):
        _build(np.zeros(4), codes=[0, 0, 1, 1], num_log=True, transform=transform)


@pytest.mark.parametrize(
    ("transform", "num_log", "defined"),
    [(None, False, True), (math.log, False, False), (None, True, False)],
)
def test_a_logarithm_has_no_ratio_gap(transform, num_log, defined):
    """Log-scale metrics (uniformity) can be negative: their min/max ratio means nothing."""
    num = np.array([0.2, 0.5, 0.9, 0.4, 0.3, 0.7])
    groups = Grouping("g", np.array([0, 0, 0, 1, 1, 1]), ["a", "b"])
    m = group_metric_from_samples(
        "m",
        num=np.log(num) if num_log else num,
        den=np.ones(6),
        groupings=[groups],
        higher_is_better=False,
        transform=transform,
        num_log=num_log,
        n_boot=20,
    )
    assert m.ratio_defined is defined
    assert (m.ratio("g") is None) is (not defined)
    assert (m.gap_interval("ratio", "g") == (None, None)) is (not defined)
    assert m.difference("g") is not None


def test_the_audits_uniformity_and_thresholds_have_no_ratio():
    from fairmetric import EmbeddingSet
    from fairmetric.audit import audit
    from fairmetric.audit.verification import verification_audit

    rng = np.random.default_rng(0)
    emb = EmbeddingSet(
        embeddings=rng.normal(size=(60, 4)),
        labels=np.repeat(np.arange(20), 3),
        attributes={"g": np.repeat([0, 1], 30)},
    )
    report = audit(emb, ks=(1,), bootstrap=0, linear_probe=False)
    assert report["uniformity"].ratio("g") is None
    assert report["recall@1"].ratio_defined
    ver = verification_audit(emb, fmr=[1e-1], bootstrap=0)
    assert ver["threshold@1e-1"].ratio("g") is None and ver["fmr@1e-1"].ratio_defined
