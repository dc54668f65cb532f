"""Balanced accuracy and macro-F1 per group: a slow loop reference, scikit-learn, intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from fairmetric.downstream import balanced_accuracy, evaluate_downstream, macro_f1

# scikit-learn warns when a group's predictions hold a class its true labels lack (expected here)
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")


def _predictions(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    colour = rng.integers(0, 3, size=n)
    sex = np.array(["f", "m"])[rng.integers(0, 2, size=n)]
    right = rng.random(n) < np.array([0.9, 0.6, 0.4])[colour]
    pred = np.where(right, y, rng.integers(0, 5, size=n))  # class 4 is only ever predicted
    return y, pred, colour, sex


def _loop_balanced_accuracy(y, pred) -> float:
    """Mean over the true classes of (hits of the class) / (samples of the class), by loops."""
    recalls = []
    for c in sorted(set(y.tolist())):
        hits = total = 0
        for t, p in zip(y, pred):
            if t == c:
                total += 1
                hits += int(p == c)
        recalls.append(hits / total)
    return sum(recalls) / len(recalls)


def _loop_macro_f1(y, pred) -> float:
    """Mean over true-or-predicted classes of 2·TP / (2·TP + FP + FN), by loops."""
    scores = []
    for c in sorted(set(y.tolist()) | set(pred.tolist())):
        tp = fp = fn = 0
        for t, p in zip(y, pred):
            tp += int(t == c and p == c)
            fp += int(t != c and p == c)
            fn += int(t == c and p != c)
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


@pytest.mark.parametrize(
    "name, loop, sk",
    [
        ("balanced_accuracy", _loop_balanced_accuracy, balanced_accuracy_score),
        ("macro_f1", _loop_macro_f1, lambda t, p: f1_score(t, p, average="macro")),
    ],
)
def test_per_group_values_equal_a_loop_and_sklearn(name, loop, sk):
    y, pred, colour, sex = _predictions()
    names = ["light", "dark", "blue"]
    report = evaluate_downstream(
        y, pred, {"colour": colour, "sex": sex}, group_names={"colour": names}, n_boot=0
    )
    metric = report[name]
    assert metric.overall.value == pytest.approx(loop(y, pred), abs=1e-12)
    assert metric.overall.value == pytest.approx(sk(y, pred), abs=1e-12)
    for attr, column in (("colour", np.array(names)[colour]), ("sex", sex)):
        for group in np.unique(column):
            rows = column == group
            est = metric.by_group[attr][str(group)]
            assert est.count == rows.sum()
            assert est.value == pytest.approx(loop(y[rows], pred[rows]), abs=1e-12)
            assert est.value == pytest.approx(sk(y[rows], pred[rows]), abs=1e-12)
    inter = metric.by_group["colour×sex"]
    rows = (colour == 2) & (sex == "m")
    assert inter["blue×m"].value == pytest.approx(loop(y[rows], pred[rows]), abs=1e-12)
    values = {g: e.value for g, e in metric.by_group["colour"].items()}
    assert metric.difference("colour") == pytest.approx(max(values.values()) - min(values.values()))
    assert metric.worst_group("colour")[0] == min(values, key=values.get)


def test_plain_functions_match_sklearn_with_string_labels():
    y = np.array(["cat", "dog", "dog", "eel", "eel", "eel"])
    pred = np.array(["cat", "cat", "dog", "eel", "dog", "fox"])
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))
    assert macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"))


def test_intervals_are_seeded_bracket_the_value_and_follow_a_manual_bootstrap():
    y, pred, colour, _ = _predictions(n=120, seed=1)
    a = evaluate_downstream(y, pred, {"colour": colour}, n_boot=300, seed=3, min_group_size=1)
    b = evaluate_downstream(y, pred, {"colour": colour}, n_boot=300, seed=3, min_group_size=1)
    for name in ("balanced_accuracy", "macro_f1"):
        for group, est in a[name].by_group["colour"].items():
            assert est == b[name].by_group["colour"][group]  # same seed, same intervals
            assert est.ci_low <= est.value <= est.ci_high
            assert est.ci_high - est.ci_low > 0.02  # 40 samples: a real spread
    # the spread of a manual within-group bootstrap of group 0 matches the reported one
    rows = np.flatnonzero(colour == 0)
    rng = np.random.default_rng(0)
    manual = [
        balanced_accuracy(y[r], pred[r])
        for r in (rows[rng.integers(0, len(rows), len(rows))] for _ in range(2000))
    ]
    lo, hi = np.quantile(manual, [0.025, 0.975])
    est = a["balanced_accuracy"].by_group["colour"]["0"]
    assert est.ci_low == pytest.approx(lo, abs=0.06) and est.ci_high == pytest.approx(hi, abs=0.06)


def test_accuracy_is_unchanged_by_the_new_metrics():
    y, pred, colour, _ = _predictions()
    acc = evaluate_downstream(y, pred, {"colour": colour}, n_boot=50)["accuracy"]
    for group, est in acc.by_group["colour"].items():
        rows = colour == int(group)
        assert est.value == pytest.approx(np.mean(y[rows] == pred[rows]))


def test_mixed_label_kinds_are_refused():
    with pytest.raises(ValueError, match="same kind"):
        evaluate_downstream(np.array([1, 2]), np.array(["1", "2"]), {"g": np.array([0, 1])})
