"""Smoke tests of the benchmarks: their quick modes run both contenders and report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_train_throughput_quick_runs_both_loops_and_prints_the_ratio():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(plain|fairmetric)\s+([0-9.]+)", out.stdout, re.M)
    }
    assert set(rows) == {"plain", "fairmetric"} and min(rows.values()) > 0
    ratio = re.search(r"fairmetric / plain = ([0-9.]+)", out.stdout)
    assert ratio is not None and float(ratio.group(1)) > 0


def test_verification_speed_quick_runs_both_paths_and_agrees():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "verification_speed.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "ratio fairmetric / numpy" in done.stdout
    assert "rates agree within sampling noise" in done.stdout


def test_gpu_check_skips_every_cuda_check_without_a_gpu_and_its_cpu_smoke_run_passes():
    import torch

    script = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")]
    if not torch.cuda.is_available():
        done = subprocess.run(script, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [
            ln for ln in done.stdout.splitlines() if ln.split(" ")[0] in ("PASS", "FAIL", "SKIP")
        ]
        assert len(lines) == 5 and all("SKIP" in ln and "no CUDA device" in ln for ln in lines)
    smoke = [*script, "--cpu", "--only", "train-bf16,embed-throughput"]
    done = subprocess.run(smoke, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"^PASS train-bf16: CPU toy run, fp32: loss [0-9.]+", done.stdout, re.M)
    assert re.search(r"^PASS embed-throughput: fairmetric / plain = [0-9.]+", done.stdout, re.M)
    assert "2 passed, 0 failed, 0 skipped" in done.stdout
