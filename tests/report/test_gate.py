"""``--fail-if`` conditions: parsing, and evaluation on reports built with ``audit()``."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit import audit, check_conditions, parse_condition
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report.gate import STATS

X = "×"
FAST = {"bootstrap": 0, "linear_probe": False, "projection_points": 0}


def _set(seed: int = 0) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), 6)
    x = rng.normal(size=(60, 5)) + 1.5 * rng.normal(size=(10, 5))[labels]
    return EmbeddingSet(
        embeddings=x,
        labels=labels,
        attributes={
            "colour": np.array(["light", "dark"])[labels % 2],
            "site": rng.choice(["north", "south", "east"], size=60),
        },
    )


@pytest.fixture(scope="module")
def report():
    return audit(_set(), **FAST)


@pytest.fixture(scope="module")
def lonely_report():
    """Site C holds only singleton classes: Recall@k is NA there, and its site gap too."""
    rng = np.random.default_rng(1)
    labels = np.concatenate([np.repeat(np.arange(6), 4), [50, 51, 52]])
    x = rng.normal(size=(27, 4)) + 2 * rng.normal(size=(53, 4))[labels]
    site = np.array(["A"] * 24 + ["C"] * 3)
    return audit(EmbeddingSet(embeddings=x, labels=labels, attributes={"site": site}), **FAST)


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, metric, stat, attribute, op, threshold",
    [
        ("recall@1.difference>0.05", "recall@1", "difference", None, ">", 0.05),
        ("map@r.worst.colour<0.3", "map@r", "worst", "colour", "<", 0.3),
        ("  recall@4.ratio.site  <=  0.8  ", "recall@4", "ratio", "site", "<=", 0.8),
        ("uniformity.overall>=-1e-3", "uniformity", "overall", None, ">=", -1e-3),
        ("homophily:colour.max==1.5E+2", "homophily:colour", "max", None, "==", 150.0),
        ("leakage_knn:site.min!=.5", "leakage_knn:site", "min", None, "!=", 0.5),
        ("recall@1.min.colour×site<+3", "recall@1", "min", f"colour{X}site", "<", 3.0),
        ("map@r.difference>1.", "map@r", "difference", None, ">", 1.0),
        ("map@r.difference>2e2", "map@r", "difference", None, ">", 200.0),
        ("recall@2.worst<0", "recall@2", "worst", None, "<", 0.0),
    ],
)
def test_parse_valid(text, metric, stat, attribute, op, threshold):
    c = parse_condition(text)
    assert (c.metric, c.stat, c.attribute, c.op) == (metric, stat, attribute, op)
    assert c.threshold == pytest.approx(threshold)
    assert c.text == text.strip()


@pytest.mark.parametrize("stat", STATS)
@pytest.mark.parametrize("op", [">", "<", ">=", "<=", "==", "!="])
def test_parse_every_stat_and_op(stat, op):
    c = parse_condition(f"recall@1.{stat}{op}0.25")
    assert (c.stat, c.op, c.threshold) == (stat, op, 0.25)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "recall@1>0.5",  # no statistic
        "recall@1.mean>0.5",  # unknown statistic
        "recall@1.difference 0.05",  # no operator
        "recall@1.difference=0.05",  # '=' is not an operator
        "recall@1.difference=>0.05",
        "recall@1.difference>>0.05",
        "recall@1.difference>",
        "recall@1.difference>abc",
        "recall@1.difference>nan",
        "recall@1.difference>inf",
        "recall@1.difference>1e",
        "recall@1.difference>0.05 and more",
        "recall@1 .difference>0.05",
        "recall@1.difference.>0.05",
        ".difference>0.05",
        "0.05<recall@1.difference",
    ],
)
def test_parse_invalid(text):
    with pytest.raises(ValueError, match=r"cannot parse --fail-if.*METRIC\.STAT\[\.ATTRIBUTE\]"):
        parse_condition(text)


def test_parse_error_names_stats_and_ops():
    with pytest.raises(ValueError) as err:
        parse_condition("recall@1.gap>0.1")
    message = str(err.value)
    assert "'recall@1.gap>0.1'" in message
    for word in (*STATS, ">=", "!="):
        assert word in message


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def _just_below(v: float) -> float:
    return v - 1e-6


def _just_above(v: float) -> float:
    return v + 1e-6


def test_overall(report):
    v = report["recall@1"].overall.value
    assert 0 < v < 1
    out = check_conditions(report, [f"recall@1.overall<{_just_above(v)}"])
    assert len(out) == 1
    assert "recall@1.overall<" in out[0] and "overall" in out[0] and f"{v:.4f}" in out[0]
    assert check_conditions(report, [f"recall@1.overall<{_just_below(v)}"]) == []
    assert check_conditions(report, [f"recall@1.overall>{_just_below(v)}"]) != []
    # exact comparisons with the value's repr
    assert len(check_conditions(report, [f"recall@1.overall=={v!r}"])) == 1
    assert check_conditions(report, [f"recall@1.overall!={v!r}"]) == []


@pytest.mark.parametrize("stat", ["difference", "ratio", "worst", "min", "max"])
def test_per_attribute_statistic(report, stat):
    m = report["map@r"]
    value = {
        "difference": m.difference("site"),
        "ratio": m.ratio("site"),
        "worst": m.worst_group("site")[1],
        "min": m.group_min("site"),
        "max": m.group_max("site"),
    }[stat]
    violated = check_conditions(report, [f"map@r.{stat}.site>={value!r}"])
    assert len(violated) == 1
    assert violated[0].startswith(f"map@r.{stat}.site>=") and "for site" in violated[0]
    assert check_conditions(report, [f"map@r.{stat}.site>{_just_above(value)}"]) == []
    assert check_conditions(report, [f"map@r.{stat}.site<{_just_below(value)}"]) == []
    assert len(check_conditions(report, [f"map@r.{stat}.site<{_just_above(value)}"])) == 1


def test_worst_follows_direction(report):
    # higher is better for recall: the worst group is the minimum; lower is better for
    # intra-class alignment: the maximum
    r = report["recall@1"]
    a = report["intra_class_alignment"]
    assert r.worst_group("colour")[1] == r.group_min("colour")
    assert a.worst_group("colour")[1] == a.group_max("colour")
    worst = a.group_max("colour")
    assert len(check_conditions(report, [f"intra_class_alignment.worst.colour>={worst!r}"])) == 1
    assert check_conditions(report, [f"intra_class_alignment.worst.colour>{worst!r}"]) == []


def test_all_attribute_form_checks_every_grouping(report):
    m = report["recall@1"]
    diffs = {a: m.difference(a) for a in m.attributes}
    assert set(diffs) == {"colour", "site", f"colour{X}site"}
    # below every difference: one violation per grouping
    low = min(diffs.values())
    out = check_conditions(report, [f"recall@1.difference>={low!r}"])
    assert len(out) == 3
    assert {a for a in diffs if any(f"for {a} " in v for v in out)} == set(diffs)
    # between: only the groupings above it
    cut = sorted(diffs.values())[1]
    out = check_conditions(report, [f"recall@1.difference>={cut!r}"])
    assert len(out) == sum(d >= cut for d in diffs.values())
    assert check_conditions(report, [f"recall@1.difference>{max(diffs.values())!r}"]) == []


def test_attribute_specific_metric_all_attribute_form(report):
    # homophily:site is sliced by site only
    h = report["homophily:site"]
    out = check_conditions(report, [f"homophily:site.max>={h.group_max('site')!r}"])
    assert len(out) == 1 and "for site" in out[0]


def test_several_conditions(report):
    v = report["recall@1"].overall.value
    out = check_conditions(
        report,
        [f"recall@1.overall>={v!r}", "recall@1.overall<0", "uniformity.overall<=0"],
    )
    assert len(out) == 2
    assert out[0].startswith("recall@1.overall>=") and out[1].startswith("uniformity.overall<=")
    assert check_conditions(report, []) == []


def test_na_counts_as_violation(lonely_report):
    m = lonely_report["recall@1"]
    assert m.by_group["site"]["C"].value is None and m.difference("site") is None
    for cond in ("recall@1.difference.site>100", "recall@1.difference<-100", "recall@1.ratio>2"):
        out = check_conditions(lonely_report, [cond])
        assert len(out) == 1 and "is NA" in out[0], cond
    # worst/min/max skip the NA group: site A still has a value
    a = m.by_group["site"]["A"].value
    assert check_conditions(lonely_report, [f"recall@1.min.site<{_just_below(a)}"]) == []


def test_na_overall_counts_as_violation():
    rng = np.random.default_rng(0)
    singletons = EmbeddingSet(
        embeddings=rng.normal(size=(15, 3)),
        labels=np.arange(15),
        attributes={"a": np.arange(15) % 2},
    )
    report = audit(singletons, ks=[1], homophily_k=3, leakage_k=3, **FAST)
    assert report["recall@1"].overall.value is None
    out = check_conditions(report, ["recall@1.overall<0"])
    assert len(out) == 1 and "overall" in out[0] and "is NA" in out[0]


def test_unknown_metric_lists_metrics(report):
    with pytest.raises(ValueError, match=r"unknown metric 'recall@3'.*recall@1, recall@2"):
        check_conditions(report, ["recall@3.difference>0.1"])


def test_unknown_attribute(report):
    with pytest.raises(ValueError, match=r"no attribute 'age'.*colour"):
        check_conditions(report, ["recall@1.difference.age>0.1"])
    # an attribute that the metric is not sliced by
    with pytest.raises(ValueError, match=r"no attribute 'colour'"):
        check_conditions(report, ["homophily:site.max.colour>0.1"])


def test_unparsable_condition_raises(report):
    with pytest.raises(ValueError, match="cannot parse"):
        check_conditions(report, ["recall@1.overall>0", "recall@1.average>0"])


def test_overall_with_unknown_attribute_is_refused(report):
    with pytest.raises(ValueError, match="nosuch"):
        check_conditions(report, ["recall@1.overall.nosuch<0"])


def test_group_statistic_without_attributes_does_not_pass_silently():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 4)
    plain = EmbeddingSet(embeddings=rng.normal(size=(20, 3)), labels=labels)
    report = audit(plain, ks=[1], **FAST)
    assert report["recall@1"].by_group == {}
    try:
        out = check_conditions(report, ["recall@1.difference>0.05"])
    except ValueError:
        return
    assert out, "a condition about group differences passed on a report with no groups"
