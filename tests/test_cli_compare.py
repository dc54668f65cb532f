"""``fairmetric compare``: exit statuses, output files, names and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), 6)
    grp = np.tile(["x", "x", "x", "y", "y", "y"], 12)
    centres = rng.normal(size=(12, 8))
    xa = centres[labels] + rng.normal(scale=0.5, size=(72, 8))
    xa[grp == "y"] += rng.normal(scale=2.0, size=((grp == "y").sum(), 8))
    xb = centres[labels] + rng.normal(scale=0.5, size=(72, 8))
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    EmbeddingSet(embeddings=xa, labels=labels, attributes={"g": grp}).save(a)
    EmbeddingSet(embeddings=xb, labels=labels, attributes={"g": grp}).save(b)
    short = tmp_path / "short.npz"
    EmbeddingSet(embeddings=xb[:70], labels=labels[:70], attributes={"g": grp[:70]}).save(short)
    return a, b, short


def test_compare_prints_verdicts_and_writes_three_files(files, tmp_path, capsys):
    a, b, _ = files
    out = tmp_path / "cmp"
    argv = [
        "compare",
        str(a),
        str(b),
        "--k",
        "1,2",
        "--bootstrap",
        "50",
        "--name-a",
        "baseline",
        "--name-b",
        "fixed",
        "--no-linear-probe",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "gaps (is fixed fairer than baseline?)" in text
    row = next(line for line in text.splitlines() if line.startswith("recall@1 "))
    assert row.endswith("fixed fairer")
    assert "Is fixed fairer than baseline?" in text and "wrote " in text
    doc = json.loads((out / "compare.json").read_text())
    assert doc["names"] == {"a": "baseline", "b": "fixed"}
    assert doc["metadata"]["bootstrap"] == 50 and doc["metadata"]["k"] == [1, 2]
    assert doc["metadata"]["sources"] == {"a": str(a), "b": str(b)}
    assert "leakage_linear:g" not in doc["metrics"]
    assert doc["metrics"]["recall@1"]["gap"]["g"]["verdict"] == "fixed fairer"
    assert (out / "compare.md").read_text().startswith("# Comparison: baseline vs fixed")
    assert "<table>" in (out / "compare.html").read_text()


def test_compare_refuses_different_samples_with_one_line(files, capsys):
    a, _, short = files
    assert main(["compare", str(a), str(short), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "A has 72 samples and B 70" in err[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--name-a", "m", "--name-b", "m"], "give two names"),
        (["--attributes", "h"], "no attribute 'h'"),
        (["--min-group-size", "0"], "min_group_size"),
    ],
)
def test_compare_bad_options_exit_2(files, capsys, extra, message):
    a, b, _ = files
    assert main(["compare", str(a), str(b), "--bootstrap", "0", "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err


def test_compare_usage_errors_exit_2(files):
    a, b, _ = files
    with pytest.raises(SystemExit) as e:
        main(["compare", str(a), str(b), "--k", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["compare", str(a)])
    assert e.value.code == 2


def test_compare_missing_file_exits_2(files, tmp_path, capsys):
    a, _, _ = files
    assert main(["compare", str(a), str(tmp_path / "nope.npz"), "--no-progress"]) == 2
    assert "nope.npz" in capsys.readouterr().err


def test_gates_exit_1_only_when_they_fail(files, capsys):
    a, b, _ = files  # B's recall@1 gap is clearly smaller than A's
    common = ["--k", "1", "--bootstrap", "50", "--no-linear-probe", "--no-progress"]
    assert main(["compare", str(a), str(b), *common, "--fail-unless-fairer", "recall@1"]) == 0
    assert main(["compare", str(a), str(b), *common, "--fail-if-less-fair", "recall@1"]) == 0
    capsys.readouterr()
    # the other way round B is less fair: both gates fail, each with one FAIL line
    argv = ["compare", str(b), str(a), *common, "--fail-if-less-fair", "recall@1"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("FAIL recall@1 gap over g: B ")
    assert main(["compare", str(b), str(a), *common, "--fail-unless-fairer", "recall@1"]) == 1
    assert "B is not fairer than A" in capsys.readouterr().err
    # a model against itself is never fairer, and never less fair
    assert main(["compare", str(a), str(a), *common, "--fail-if-less-fair", "all"]) == 0
    assert main(["compare", str(a), str(a), *common, "--fail-unless-fairer", "recall@1"]) == 1
    capsys.readouterr()
    assert main(["compare", str(a), str(b), *common, "--fail-if-less-fair", "recal@1"]) == 2
    assert "no metric 'recal@1' to gate on" in capsys.readouterr().err


def test_list_flags_take_spaces_or_commas(files, tmp_path):
    a, b, _ = files
    for i, ks in enumerate((["1", "2"], ["1,2"])):
        out = tmp_path / f"o{i}"
        argv = ["compare", str(a), str(b), "--k", *ks, "--attributes", "g", "--bootstrap", "0"]
        assert main([*argv, "--no-progress", "--out", str(out)]) == 0
        doc = json.loads((out / "compare.json").read_text())
        assert doc["metadata"]["k"] == [1, 2] and doc["metadata"]["attributes"] == ["g"]
