"""The demo's paired comparison of each method with the baseline (issue 16)."""

from __future__ import annotations

import json

import pytest

from fairmetric.cli import main
from fairmetric.demo import ARMS, format_paired


@pytest.mark.slow
def test_demo_paired_intervals_are_fairmetric_compare_of_its_embeddings(tmp_path, capsys):
    from fairmetric.audit.compare import compare
    from fairmetric.embeddings import EmbeddingSet

    out = tmp_path / "demo"
    tiny = [
        "train.epochs=1",
        "data.params.n_train_identities=20",
        "data.params.n_test_identities=10",
    ]
    assert main(["demo", "--out", str(out), "--no-progress", *tiny]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    arms = list(ARMS)
    assert list(summary["paired"]) == arms[1:]
    assert "Each method minus the baseline (95% paired bootstrap intervals" in printed
    assert format_paired(summary["paired"]) in printed
    base = EmbeddingSet.load(out / "baseline" / "test_embeddings.npz")
    for arm in arms[1:]:
        # the same numbers as `fairmetric compare` of the two embedding files
        other = EmbeddingSet.load(out / arm.lower() / "test_embeddings.npz")
        c = compare(base, other, bootstrap=200, seed=0, names=("baseline", arm))
        rows = summary["paired"][arm]
        for label, d in (
            ("Recall@1 gap", c["recall@1"].gap["palette"]),
            ("alignment gap", c["intra_class_alignment"].gap["palette"]),
            ("uniformity gap", c["uniformity"].gap["palette"]),
            ("Recall@1, overall", c["recall@1"].overall),
        ):
            assert rows[label]["difference"] == pytest.approx(d.difference)
            assert (rows[label]["ci_low"], rows[label]["ci_high"]) == pytest.approx(
                (d.ci_low, d.ci_high)
            )
            if label.endswith("gap"):
                word = {-1: "smaller", 1: "larger", 0: "unclear"}[d.sign]
                assert rows[label]["word"] == word
        # the recorded gaps are the audits' own
        numbers = summary["comparison"]
        assert rows["Recall@1 gap"]["difference"] == pytest.approx(
            numbers[arm]["recall@1 gap"] - numbers["baseline"]["recall@1 gap"]
        )
        full = json.loads((out / arm.lower() / "vs_baseline" / "compare.json").read_text())
        assert full["names"] == {"a": "baseline", "b": arm}
    page = (out / "compare.html").read_text()
    assert "Paired intervals" in page and "vs_baseline/compare.html" in page


def test_format_paired_marks_intervals_and_missing_rows():
    paired = {
        "m": {
            "Recall@1 gap": {
                "difference": -0.1,
                "ci_low": -0.15,
                "ci_high": -0.05,
                "word": "smaller",
            },
            "Recall@1, overall": {"difference": 0.02, "ci_low": None, "ci_high": None, "word": "x"},
        }
    }
    text = format_paired(paired)
    lines = text.splitlines()
    assert lines[2].startswith("Recall@1, overall") and lines[2].endswith("+0.020 x")
    assert lines[3].startswith("Recall@1 gap") and lines[3].endswith(
        "-0.100 [-0.150, -0.050] smaller"
    )
    assert lines[4].startswith("alignment gap") and lines[4].endswith("n/a")
