"""Tiny groups are reported but do not decide gaps: ``audit(min_group_size=...)``,
``--min-group-size``, the report fields and the ``--fail-if`` gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.audit import audit
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report import check_conditions, render_html, render_markdown, render_summary
from fairmetric.report.frame import (
    DEFAULT_MIN_GROUP_SIZE,
    Grouping,
    group_metric_from_samples,
)

FAST = {"bootstrap": 0, "linear_probe": False, "projection_points": 0}
GATE = "recall@1.difference>0.05"


def tiny_group_set() -> EmbeddingSet:
    """Six tight, well separated classes of 10 samples (Recall@1 = 1 for everyone), site
    ``north`` (40) and ``south`` (20), plus one ``island`` sample labelled class 0 but lying in
    class 3's cluster: its Recall@1 is 0, and it is the only member of its site."""
    rng = np.random.default_rng(0)
    centres = 10.0 * np.eye(6, 8)
    labels = np.repeat(np.arange(6), 10)
    x = centres[labels] + 0.01 * rng.normal(size=(60, 8))
    x = np.vstack([x, centres[3] + 0.01 * rng.normal(size=(1, 8))])
    labels = np.append(labels, 0)
    site = np.array(["north"] * 40 + ["south"] * 20 + ["island"], dtype=object)
    return EmbeddingSet(embeddings=x.astype(np.float32), labels=labels, attributes={"site": site})


def _audit(**kwargs):
    return audit(tiny_group_set(), ks=(1,), homophily_k=3, leakage_k=3, **{**FAST, **kwargs})


def test_default_is_documented_value():
    report = _audit()
    assert report.metadata["min_group_size"] == DEFAULT_MIN_GROUP_SIZE == 10


def test_one_sample_group_is_reported_but_not_compared():
    report = _audit()
    r1 = report["recall@1"]
    island = r1.by_group["site"]["island"]
    assert island.value == 0.0 and island.count == 1  # still reported, with its value
    assert r1.values("site")["island"] == 0.0
    assert set(r1.excluded("site")) == {"island"}
    assert "1 sample" in r1.excluded("site")["island"]
    assert "min_group_size=10" in r1.excluded("site")["island"]
    # the gap compares north and south only (both perfect)
    assert r1.difference("site") == 0.0
    assert r1.ratio("site") == 1.0
    assert r1.worst_group("site")[0] in ("north", "south")
    assert r1.group_min("site") == 1.0
    assert report.metadata["small_groups"] == {"site": {"island": 1}}


def test_gate_does_not_trip_on_a_one_sample_group():
    assert check_conditions(_audit(), [GATE, "recall@1.worst<0.9", "recall@1.min<0.9"]) == []


def test_min_group_size_one_restores_the_old_behaviour():
    report = _audit(min_group_size=1)
    r1 = report["recall@1"]
    assert r1.excluded("site") == {}
    assert r1.difference("site") == 1.0
    assert r1.worst_group("site") == ("island", 0.0)
    assert report.metadata["small_groups"] == {"site": {}}
    violations = check_conditions(report, [GATE])
    assert len(violations) == 1 and "is 1.0000" in violations[0]


def test_reason_is_in_report_json():
    doc = json.loads(_audit().to_json())
    assert doc["metadata"]["min_group_size"] == 10
    assert doc["metadata"]["small_groups"] == {"site": {"island": 1}}
    r1 = doc["metrics"]["recall@1"]
    assert r1["min_group_size"] == 10
    assert list(r1["excluded_groups"]["site"]) == ["island"]
    assert "fewer than min_group_size=10" in r1["excluded_groups"]["site"]["island"]
    assert r1["by_group"]["site"]["island"]["value"] == 0.0
    assert r1["difference"]["site"]["value"] == 0.0
    assert r1["worst_group"]["site"]["group"] != "island"


def test_terminal_markdown_and_html_say_so():
    report = _audit()
    for text in (render_summary(report), render_markdown(report), render_html(report)):
        assert "min_group_size=10" in text
        assert "island (site, 1 sample)" in text
    assert "below min_group_size: not in the gaps" in render_markdown(report)
    assert 'class="small"' in render_html(report)
    assert "min_group_size" not in render_summary(_audit(min_group_size=1))


def test_gap_intervals_leave_small_groups_out():
    report = _audit(bootstrap=50)
    r1 = report["recall@1"]
    assert r1.gap_interval("difference", "site") == (0.0, 0.0)
    assert r1.by_group["site"]["island"].ci_low == 0.0  # its own interval is still there
    lo, hi = _audit(bootstrap=50, min_group_size=1)["recall@1"].gap_interval("difference", "site")
    assert lo == hi == 1.0


def test_fewer_than_two_compared_groups_is_na_and_the_gate_says_why():
    """With only one group big enough, the gap is NA; the gate still refuses to pass on missing
    data, and its message names the groups left out and the flag."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 5)
    x = 10.0 * np.eye(4, 6)[labels] + 0.01 * rng.normal(size=(20, 6))
    site = np.array(["big"] * 15 + ["small"] * 5)
    data = EmbeddingSet(embeddings=x, labels=labels, attributes={"site": site})
    report = audit(data, ks=(1,), homophily_k=3, leakage_k=3, **FAST)
    assert report["recall@1"].difference("site") is None
    (message,) = check_conditions(report, [GATE])
    assert "is NA" in message and "small (5)" in message and "--min-group-size" in message


def test_overall_and_per_group_values_do_not_change():
    a, b = _audit(), _audit(min_group_size=1)
    for name in a.metrics:
        assert a[name].overall == b[name].overall
        assert a[name].by_group == b[name].by_group


def test_count_not_group_size_decides():
    """A group's value rests on its valid samples: 30 samples of which only 3 count."""
    n = 60
    codes = np.repeat([0, 1], 30)
    num = np.r_[np.ones(30), np.zeros(30)]
    valid = np.ones(n, dtype=bool)
    valid[30:57] = False
    m = group_metric_from_samples(
        "m",
        num=num,
        valid=valid,
        groupings=[Grouping("g", codes, ["a", "b"])],
        higher_is_better=True,
        min_group_size=5,
    )
    assert m.by_group["g"]["b"].count == 3
    assert list(m.excluded("g")) == ["b"] and "3 samples" in m.excluded("g")["b"]
    assert m.difference("g") is None
    assert m.to_dict()["excluded_groups"] == {"g": {"b": m.excluded("g")["b"]}}


@pytest.mark.parametrize("bad", [0, -1, -10, 2.5, "10", True, None])
def test_bad_min_group_size_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="min_group_size"):
        _audit(min_group_size=bad)


def test_bad_min_group_size_in_the_frame_builders():
    with pytest.raises(ValueError, match=r"min_group_size.*>= 1.*got 0"):
        group_metric_from_samples(
            "m",
            num=np.ones(4),
            groupings=[Grouping("g", np.zeros(4, dtype=int), ["a"])],
            higher_is_better=True,
            min_group_size=0,
        )


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def npz(tmp_path):
    return tiny_group_set().save(tmp_path / "emb.npz")


QUIET = ["--bootstrap", "0", "--no-progress", "--no-linear-probe", "--k", "1"]


def test_cli_default_keeps_the_tiny_group_out_of_the_gate(npz, tmp_path, capsys):
    out = tmp_path / "audit"
    code = main(["audit", str(npz), *QUIET, "--fail-if", GATE, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "island (site, 1 sample)" in captured.out
    doc = json.loads((out / "report.json").read_text())
    assert doc["metadata"]["min_group_size"] == 10
    assert "island" in doc["metrics"]["recall@1"]["excluded_groups"]["site"]


def test_cli_min_group_size_one_trips_the_gate(npz, capsys):
    code = main(["audit", str(npz), *QUIET, "--fail-if", GATE, "--min-group-size", "1"])
    assert code == 1
    assert "FAIL recall@1.difference>0.05" in capsys.readouterr().err


def test_cli_flag_sets_the_size(npz, tmp_path):
    out = tmp_path / "audit"
    assert main(["audit", str(npz), *QUIET, "--min-group-size", "21", "--out", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["metadata"]["min_group_size"] == 21
    # north has 40 samples, south 20: south and island are left out, one group is left
    assert doc["metadata"]["small_groups"] == {"site": {"island": 1, "south": 20}}
    assert set(doc["metrics"]["recall@1"]["excluded_groups"]["site"]) == {"island", "south"}
    assert doc["metrics"]["recall@1"]["difference"]["site"]["value"] is None


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_cli_bad_min_group_size_is_a_user_error(npz, capsys, bad):
    code = main(["audit", str(npz), *QUIET, "--min-group-size", bad])
    err = capsys.readouterr().err
    assert code == 2
    assert "min-group-size" in err and "Traceback" not in err


def test_cli_help_names_the_flag_and_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = capsys.readouterr().out
    assert "--min-group-size N" in out
    assert f"(default: {DEFAULT_MIN_GROUP_SIZE})" in " ".join(out.split())


def test_bar_plot_marks_the_groups_left_out():
    from fairmetric.report.plots import plot_group_bars

    fig = plot_group_bars(_audit()["recall@1"])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "island *" in labels and "north" in labels
    assert "fewer than 10 samples: not in the gaps" in fig._supxlabel.get_text()
    fig = plot_group_bars(_audit(min_group_size=1)["recall@1"])
    assert "island" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
