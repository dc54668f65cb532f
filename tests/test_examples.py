"""Smoke tests of the examples in examples/: each runs as a script with tiny settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return out


def test_examples_have_help():
    for name in ("audit_released_model.py", "downstream.py", "custom_term.py"):
        out = run_example(name, "--help")
        assert "--out" in out.stdout


def test_audit_released_model_example_runs(tmp_path):
    out = run_example("audit_released_model.py", "--bootstrap", "10", "--out", str(tmp_path))
    assert "embedded 1792 samples" in out.stdout
    assert "audit of my_encoder:embed" in out.stdout
    for metric in ("recall@1", "map@r", "leakage_linear:colour"):
        assert metric in out.stdout
    assert "recall@1 gap between colours" in out.stdout
    for name in ("report.json", "report.md", "report.html"):
        assert (tmp_path / name).is_file()


def test_audit_released_model_example_takes_a_trained_model(tmp_path):
    # an exported fairmetric model stands in for released weights
    from fairmetric.models.embedder import Embedder, save_embedder

    model = Embedder(backbone="test_resnet", embedding_dim=8, input_size=(3, 32, 32))
    save_embedder(model, tmp_path / "model")
    out = run_example(
        "audit_released_model.py",
        "--model",
        str(tmp_path / "model"),
        "--bootstrap",
        "0",
        "--out",
        str(tmp_path / "audit"),
    )
    assert "dim 8" in out.stdout
    assert (tmp_path / "audit" / "report.json").is_file()


def test_downstream_example_runs(tmp_path):
    out = run_example(
        "downstream.py",
        "--epochs",
        "1",
        "--batches",
        "2",
        "--bootstrap",
        "10",
        "--out",
        str(tmp_path),
    )
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert "linear probe (run_downstream)" in out.stdout
    assert "'light': " in out.stdout and "'dark': " in out.stdout  # colour-balanced training half
    for title in ("LinearProbe on the EmbeddingSet", "KNNClassifier on the EmbeddingSet"):
        assert title in out.stdout
    assert out.stdout.count("worst group:") == 3
    assert "colour=dark" in out.stdout and "colour=light" in out.stdout
    for name in ("report.json", "report.md", "report.html"):
        assert (tmp_path / "downstream" / name).is_file()


def test_custom_term_example_runs(tmp_path):
    out = run_example("custom_term.py", "--epochs", "2", "--batches", "2", "--out", str(tmp_path))
    epochs = [line for line in out.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2
    for part in ("total", "metric", "centroid_gap", "groups_in_batch", "centroid_distance"):
        assert part in epochs[0]
    assert "test Recall@1" in out.stdout
    assert (tmp_path / "test_embeddings.npz").is_file()


def test_scale_out_example_trains_on_two_processes_and_resumes_on_one(tmp_path):
    out = run_example("scale_out.py", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert "2 processes before, 1 now" in out.stdout
    rows = out.stdout.split("epoch  processes")[1].splitlines()[1:3]
    assert [row.split()[:2] for row in rows] == [["1", "2"], ["2", "1"]]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_verification_example_runs(tmp_path):
    out = run_example(
        "verification.py", "--identities", "120", "--bootstrap", "10", "--out", str(tmp_path)
    )
    assert "global threshold at FMR 1e-3" in out.stdout
    assert "gate fmr@1e-3.max_geomean>1.5: FAIL" in out.stdout  # the crowded group trips it
    line = next(s for s in out.stdout.splitlines() if s.startswith("FairCal on held-out"))
    before, after = (float(v) for v in line.split(":")[1].split("FMR max/geomean")[1].split("->"))
    assert after < before
    assert (tmp_path / "audit" / "report.html").is_file() and (tmp_path / "faircal.json").is_file()
