"""save_fix / load_fix: identical scores after a round trip; broken files fail clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.audit.posthoc import POSTHOC_FIXES, load_fix, save_fix

PARAMS = {
    "per_group_threshold": {"target_fmr": 0.1},
    "score_normalisation": {},
    "fsn": {"target_fmr": 0.1, "n_clusters": 3, "n_init": 2, "min_impostors": 10},
    "faircal": {"n_clusters": 3, "n_init": 2},
}


def _fitted(name, tiny):
    return POSTHOC_FIXES[name](**PARAMS[name]).fit(*tiny.fit_args(), groups=tiny.groups)


@pytest.mark.parametrize("name", sorted(POSTHOC_FIXES))
def test_round_trip_gives_identical_scores(name, tiny, tmp_path):
    fix = _fitted(name, tiny)
    path = save_fix(fix, tmp_path / "fix.json")
    data = json.loads(path.read_text())
    assert data["format"] == "fairmetric.posthoc_fix" and data["version"] == 1
    assert data["name"] == name
    loaded = load_fix(path)
    assert type(loaded) is type(fix) and loaded.params() == fix.params()
    before = fix.transform(*tiny.transform_args(), groups=tiny.groups)
    after = loaded.transform(*tiny.transform_args(), groups=tiny.groups)
    assert np.array_equal(before, after)


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("fsn", lambda d: d.update(name="magic"), "unknown post-hoc fix 'magic'"),
        ("fsn", lambda d: d.update(format="other"), "not a post-hoc fix file"),
        ("fsn", lambda d: d.update(version=99), "version 99"),
        ("fsn", lambda d: d["state"].pop("centroids"), "fsn: saved state 'centroids' is missing"),
        (
            "fsn",
            lambda d: d["state"].update(thresholds=[0.1]),
            "fsn: saved state 'thresholds' has shape",
        ),
        (
            "faircal",
            lambda d: d["state"].update(coefs=[[1, 2]] * 3),
            "faircal: saved state 'coefs'",
        ),
        ("faircal", lambda d: d.pop("params"), "faircal: the saved fix has no 'params'"),
        ("faircal", lambda d: d["params"].update(bogus=1), "faircal: bad params"),
        ("per_group_threshold", lambda d: d["state"].update(codes=[2, 1, 0]), "'codes'"),
        ("score_normalisation", lambda d: d["state"].update(stds=[1, 0, 1]), "'stds' must be > 0"),
        ("score_normalisation", lambda d: d["state"].update(means="x"), "'means' is not"),
    ],
)
def test_broken_files_fail_clearly(name, change, message, tiny, tmp_path):
    path = save_fix(_fitted(name, tiny), tmp_path / "fix.json")
    _edit(path, change)
    with pytest.raises(ValueError, match=message):
        load_fix(path)


def test_nan_in_file(tiny, tmp_path):
    path = save_fix(_fitted("per_group_threshold", tiny), tmp_path / "fix.json")
    path.write_text(
        path.read_text().replace('"global_threshold": ', '"global_threshold": NaN, "x": ')
    )
    with pytest.raises(ValueError, match="NaN"):
        load_fix(path)


def test_not_json_and_unfitted(tmp_path, tiny):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="not a JSON"):
        load_fix(bad)
    with pytest.raises(ValueError, match="fit"):
        save_fix(POSTHOC_FIXES["fsn"](), tmp_path / "x.json")
