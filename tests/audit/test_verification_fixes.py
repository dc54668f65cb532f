"""Post-hoc fixes on an EmbeddingSet: split by identity, fit, save/load, apply in the verification
audit, and judge on held-out identities (fairmetric.audit.verification.fixes, `fairmetric
posthoc`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.audit.verification import verification_audit
from fairmetric.audit.verification.fixes import (
    compare_fix,
    fit_score_transform,
    load_score_transform,
    split_identities,
)
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet
from tests.conftest import crowded_identities


def test_split_is_identity_disjoint_stratified_and_seeded():
    data = crowded_identities()
    cal, held = split_identities(data, 0.5, seed=3)
    assert not set(cal.labels) & set(held.labels)
    assert len(cal) + len(held) == len(data)
    for part in (cal, held):  # stratified by the group of each identity: 30 of each
        names = np.asarray(part.attribute_value_names["g"])[part.attribute("g")]
        assert sorted(np.unique(names, return_counts=True)[1].tolist()) == [120, 120]
    again, _ = split_identities(data, 0.5, seed=3)
    assert np.array_equal(again.labels, cal.labels)
    with pytest.raises(ValueError, match="calibration_fraction"):
        split_identities(data, 1.0)


@pytest.mark.parametrize(
    ("fix", "params"),
    [
        ("per_group_threshold", {"target_fmr": 1e-2}),
        ("score_normalisation", {}),
        ("fsn", {"target_fmr": 1e-2, "n_clusters": 4}),
        ("faircal", {"n_clusters": 4}),
    ],
)
def test_every_fix_lowers_the_held_out_fmr_disparity(fix, params):
    comparison = compare_fix(crowded_identities(), fix, fmr=[1e-2], bootstrap=0, **params)
    before = comparison.before["fmr@1e-2"]
    after = comparison.after["fmr@1e-2"]
    assert before.values("g")["b"] > 3 * before.values("g")["a"]  # a real disparity
    assert after.summaries["max_geomean"]["g"].value < before.summaries["max_geomean"]["g"].value
    assert after.difference("g") < before.difference("g")
    # the global threshold is set on the fixed scores: the overall FMR stays at the target
    assert after.overall.value <= 1e-2 and before.overall.value <= 1e-2
    assert comparison.n_calibration + comparison.n_held_out == len(crowded_identities())
    for key in ("before", "after"):
        cal = getattr(comparison, f"calibration_{key}")
        assert set(cal["by_group"]) == {"a", "b"}
        assert all(0 <= v["ece"] <= 1 for v in cal["by_group"].values())


def test_saved_transform_gives_the_same_audit(tmp_path):
    data = crowded_identities()
    cal, held = split_identities(data, 0.5)
    transform = fit_score_transform(cal, "per_group_threshold", target_fmr=1e-2)
    assert transform.attribute == "g"  # the only attribute
    path = transform.save(tmp_path / "fix.json")
    assert json.loads(path.read_text())["attribute"] == "g"
    loaded = load_score_transform(path)
    a = verification_audit(held, fmr=[1e-2], bootstrap=0, score_transform=transform)
    b = verification_audit(held, fmr=[1e-2], bootstrap=0, score_transform=loaded)
    assert a.to_dict()["metrics"] == b.to_dict()["metrics"]
    assert a.metadata["verification"]["score_transform"] == "per_group_threshold"


def test_groups_are_matched_by_name_not_by_code():
    data = crowded_identities()
    cal, held = split_identities(data, 0.5)
    transform = fit_score_transform(cal, "score_normalisation")
    # the same held-out rows with the groups' codes swapped (names listed in another order)
    names = np.asarray(held.attribute_value_names["g"])[held.attribute("g")]
    swapped = EmbeddingSet(
        embeddings=held.embeddings,
        labels=held.labels,
        attributes={"g": np.where(names == "a", 1, 0)},
        attribute_value_names={"g": ["b", "a"]},
    )
    a = verification_audit(held, fmr=[1e-2], bootstrap=0, score_transform=transform)
    b = verification_audit(swapped, fmr=[1e-2], bootstrap=0, score_transform=transform)
    assert a["fmr@1e-2"].values("g") == b["fmr@1e-2"].values("g")


def test_transform_errors_name_the_problem(tmp_path):
    data = crowded_identities()
    transform = fit_score_transform(data, "per_group_threshold", target_fmr=1e-2)
    other = EmbeddingSet(
        embeddings=data.embeddings, labels=data.labels, attributes={"h": data.attribute("g")}
    )
    with pytest.raises(ValueError, match="fitted on attribute 'g', which this data lacks"):
        verification_audit(other, fmr=[1e-2], bootstrap=0, score_transform=transform)
    only_a = data.subset(np.flatnonzero(np.asarray(data.attribute("g")) == 0))
    with pytest.raises(ValueError, match="needs at least|same-group"):
        fit_score_transform(only_a.subset(np.arange(4)), "per_group_threshold")
    with pytest.raises(ValueError, match="unknown post-hoc fix 'magic'"):
        fit_score_transform(data, "magic")
    path = tmp_path / "fix.json"
    transform.save(path)
    doc = json.loads(path.read_text())
    del doc["attribute"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="needs the attribute it was fitted on"):
        load_score_transform(path)
    with pytest.raises(FileNotFoundError, match="score transform file not found"):
        load_score_transform(tmp_path / "missing.json")


def test_cli_posthoc_then_audit_with_the_saved_fix(tmp_path, capsys):
    npz = tmp_path / "emb.npz"
    crowded_identities().save(npz)
    out = tmp_path / "fix"
    argv = ["posthoc", str(npz), "--fix", "faircal", "--clusters", "4", "--fmr", "1e-2"]
    assert main([*argv, "--bootstrap", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "post-hoc fix faircal by g" in printed and "max_geomean" in printed
    table = json.loads((out / "comparison.json").read_text())
    before, after = table["targets"]["1e-2"]["fmr"]["summaries"]["max_geomean"]
    assert after < before
    assert (out / "before" / "report.json").is_file() and (out / "after" / "report.html").is_file()
    audit = ["audit", str(npz), "--verification", "--fmr", "1e-2", "--bootstrap", "0"]
    audit += ["--no-linear-probe", "--no-progress", "--out", str(tmp_path / "a")]
    assert main([*audit, "--score-transform", str(out / "fix.json")]) == 0
    meta = json.loads((tmp_path / "a" / "report.json").read_text())["metadata"]
    assert meta["verification"]["score_transform"] == "faircal"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fix", "per_group_threshold", "--clusters", "3"], "--clusters applies to fsn"),
        (["--fix", "faircal", "--target-fmr", "0.01"], "--target-fmr applies to"),
        (["--fix", "faircal", "--attribute", "nope"], "nope"),
    ],
)
def test_cli_posthoc_bad_input_exits_2(tmp_path, capsys, extra, message):
    npz = tmp_path / "emb.npz"
    crowded_identities(ids=40).save(npz)
    assert main(["posthoc", str(npz), *extra, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_score_transform_needs_verification(tmp_path, capsys):
    npz = tmp_path / "emb.npz"
    crowded_identities(ids=40).save(npz)
    assert main(["audit", str(npz), "--score-transform", str(tmp_path / "f.json")]) == 2
    assert "--score-transform applies to verification pairs: add --verification" in (
        capsys.readouterr().err
    )
