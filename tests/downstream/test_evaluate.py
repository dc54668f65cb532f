"""Per-group downstream accuracy: a loop reference, fairlearn, bootstrap intervals, report files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.downstream import evaluate_downstream
from fairmetric.report.writers import write_report


def _predictions(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=n)
    colour = rng.integers(0, 3, size=n)
    sex = np.array(["f", "m"])[rng.integers(0, 2, size=n)]
    # the accuracy depends on the colour: 0.9, 0.7, 0.5
    right = rng.random(n) < np.array([0.9, 0.7, 0.5])[colour]
    pred = np.where(right, y, (y + 1) % 5)
    return y, pred, colour, sex


def test_accuracy_gap_and_worst_group_equal_a_loop_reference():
    y, pred, colour, sex = _predictions()
    names = ["light", "dark", "blue"]
    report = evaluate_downstream(
        y, pred, {"colour": colour, "sex": sex}, group_names={"colour": names}, n_boot=0
    )
    acc = report["accuracy"]
    ref: dict[str, dict[str, float]] = {"colour": {}, "sex": {}, "colour×sex": {}}
    for i in range(len(y)):  # explicit loops: count hits and totals per group
        for attr, key in (
            ("colour", names[colour[i]]),
            ("sex", sex[i]),
            ("colour×sex", f"{names[colour[i]]}×{sex[i]}"),
        ):
            hits, total = ref[attr].get(key, (0, 0))
            ref[attr][key] = (hits + int(y[i] == pred[i]), total + 1)
    for attr, groups in ref.items():
        values = {g: h / t for g, (h, t) in groups.items()}
        assert acc.values(attr) == pytest.approx(values), attr
        assert {g: e.count for g, e in acc.by_group[attr].items()} == {
            g: t for g, (_, t) in groups.items()
        }
        assert acc.difference(attr) == pytest.approx(max(values.values()) - min(values.values()))
        worst = min(values, key=values.get)
        assert acc.worst_group(attr) == (worst, pytest.approx(values[worst]))
    assert acc.overall.value == pytest.approx(np.mean(y == pred))
    assert acc.worst_group("colour")[0] == "blue"  # the built-in effect is found


def test_accuracy_matches_fairlearn_metric_frame():
    fairlearn = pytest.importorskip("fairlearn.metrics")
    from sklearn.metrics import accuracy_score

    y, pred, colour, _ = _predictions(seed=1)
    acc = evaluate_downstream(y, pred, {"colour": colour}, n_boot=0)["accuracy"]
    frame = fairlearn.MetricFrame(
        metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=colour
    )
    assert acc.values("colour") == pytest.approx({str(k): v for k, v in frame.by_group.items()})
    assert acc.difference("colour") == pytest.approx(frame.difference())
    assert acc.ratio("colour") == pytest.approx(frame.ratio())
    assert acc.group_min("colour") == pytest.approx(frame.group_min())


def test_bootstrap_intervals_contain_the_estimate_and_are_seeded():
    y, pred, colour, sex = _predictions()
    groups = {"colour": colour, "sex": sex}
    report = evaluate_downstream(y, pred, groups, n_boot=300, seed=5)
    acc = report["accuracy"]
    for attr in ("colour", "sex", "colour×sex"):
        for est in acc.by_group[attr].values():
            assert est.ci_low <= est.value <= est.ci_high
            assert est.ci_low < est.ci_high
        lo, hi = acc.gap_interval("difference", attr)
        assert lo <= acc.difference(attr) <= hi
    assert acc.overall.ci_low <= acc.overall.value <= acc.overall.ci_high
    again = evaluate_downstream(y, pred, groups, n_boot=300, seed=5)
    assert again.to_dict()["metrics"] == report.to_dict()["metrics"]
    other = evaluate_downstream(y, pred, groups, n_boot=300, seed=6)
    assert other.to_dict()["metrics"] != report.to_dict()["metrics"]


def test_report_files_are_written(tmp_path):
    y, pred, colour, _ = _predictions()
    report = evaluate_downstream(
        y, pred, {"colour": colour}, n_boot=20, metadata={"task": "digits", "n_train": 10}
    )
    paths = write_report(report, tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["metadata"]["task"] == "digits" and doc["metadata"]["n"] == len(y)
    assert set(doc["metrics"]["accuracy"]["by_group"]["colour"]) == {"0", "1", "2"}
    assert "accuracy by colour" in paths["markdown"].read_text()
    assert "<html" in paths["html"].read_text()


def test_evaluate_rejects_bad_input():
    y, pred, colour, _ = _predictions()
    with pytest.raises(ValueError, match="y_true has 300 rows but y_pred has 299"):
        evaluate_downstream(y, pred[:-1], {"colour": colour})
    with pytest.raises(ValueError, match="group column 'colour' has shape \\(299,\\)"):
        evaluate_downstream(y, pred, {"colour": colour[:-1]})
    with pytest.raises(ValueError, match="unknown attributes \\['sex'\\]"):
        evaluate_downstream(y, pred, {"colour": colour}, group_names={"sex": ["f", "m"]})
    with pytest.raises(ValueError, match="codes 0..1 to match its 2 group names"):
        evaluate_downstream(y, pred, {"colour": colour}, group_names={"colour": ["a", "b"]})
    with pytest.raises(ValueError, match="n_boot"):
        evaluate_downstream(y, pred, {"colour": colour}, n_boot=-1)


def test_groups_below_min_group_size_are_reported_but_not_compared():
    y, pred, colour, _ = _predictions()
    colour = colour.copy()
    colour[:4] = 3  # a fourth colour of four samples, all wrong
    pred = pred.copy()
    pred[:4] = (y[:4] + 1) % 5
    names = ["light", "dark", "blue", "rare"]
    kwargs = dict(group_names={"colour": names}, n_boot=0)
    default = evaluate_downstream(y, pred, {"colour": colour}, **kwargs)["accuracy"]
    every = evaluate_downstream(y, pred, {"colour": colour}, min_group_size=1, **kwargs)["accuracy"]
    assert default.values("colour") == every.values("colour")
    assert default.values("colour")["rare"] == 0.0
    assert every.worst_group("colour") == ("rare", 0.0)
    assert every.difference("colour") == max(every.values("colour").values())
    kept = {g: v for g, v in default.values("colour").items() if g != "rare"}
    assert default.difference("colour") == max(kept.values()) - min(kept.values())
    assert default.worst_group("colour")[0] == min(kept, key=kept.get)
    assert "4 samples, fewer than min_group_size=10" in default.excluded("colour")["rare"]
    with pytest.raises(ValueError, match="min_group_size"):
        evaluate_downstream(y, pred, {"colour": colour}, min_group_size=0, **kwargs)
