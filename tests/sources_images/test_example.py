"""``examples/audit_image_model.py`` runs offline as a script (stand-in weights built first)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_audit_image_model_example_runs(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = ROOT / "examples" / "audit_image_model.py"
    out = subprocess.run(
        [sys.executable, str(script), "--bootstrap", "5", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "embedded 24 images with test_resnet" in out.stdout
    assert "CenterCrop(size=(160, 160))" in out.stdout  # the model's own preprocessing
    assert "homophily:skin" in out.stdout
    assert "torchvision FakeData: embedded 12 images, attributes ['half']" in out.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["metadata"]["source"] == "test_resnet"
