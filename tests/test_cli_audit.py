"""``fairmetric audit``: reports, the CI gate's exit codes, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fairmetric.audit
import fairmetric.sources
from fairmetric.audit import AuditReport
from fairmetric.audit import audit as real_audit
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet
from fairmetric.train import load_config
from fairmetric.train.config import save_config
from tests.conftest import GAUSSIAN

QUIET = ["--bootstrap", "0", "--no-progress", "--no-linear-probe"]


def _set(*, nan_rows: tuple[int, ...] = ()) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 5)
    x = (rng.normal(size=(50, 6)) + 1.5 * rng.normal(size=(10, 6))[labels]).astype(np.float32)
    x[list(nan_rows)] = np.nan
    return EmbeddingSet(
        embeddings=x,
        labels=labels,
        attributes={
            "colour": np.array(["light", "dark"])[labels % 2],
            "site": np.array(["north", "south"])[np.arange(50) % 2],
        },
        allow_invalid=True,
    )


@pytest.fixture
def npz(tmp_path) -> Path:
    return _set().save(tmp_path / "emb.npz")


@pytest.fixture
def reports(monkeypatch) -> list[AuditReport]:
    """The reports the command computes (so tests need not render HTML to read them)."""
    seen: list[AuditReport] = []

    def recording(*args, **kwargs):
        report = real_audit(*args, **kwargs)
        seen.append(report)
        return report

    monkeypatch.setattr(fairmetric.audit, "audit", recording)
    return seen


def test_npz_with_out_writes_reports(npz, tmp_path, capsys):
    out = tmp_path / "audit"
    code = main(["audit", str(npz), "--out", str(out), "--bootstrap", "20", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith(f"audit of {npz}: 50 embeddings, dim 6")
    header = next(line for line in lines if line.startswith("metric"))
    for column in ("overall", "worst group", "difference"):
        assert column in header
    assert any(line.startswith("recall@1 ") and "colour" in line for line in lines)
    assert "leakage_linear:site" in printed
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    doc = json.loads((out / "report.json").read_text())
    assert doc["metadata"]["source"] == str(npz)
    assert doc["metadata"]["bootstrap"] == 20
    assert doc["metadata"]["groupings"] == ["colour", "site", "colour×site"]
    assert "wrote" in printed and "report.json" in printed


def test_without_out_prints_hint_and_writes_nothing(npz, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["audit", str(npz), *QUIET]) == 0
    assert "pass --out DIR" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npz"]


def test_options_reach_the_audit(npz, reports, capsys):
    argv = ["audit", str(npz), *QUIET]
    argv += ["--k", "1,3", "--metric", "l2", "--attributes", "site", "--seed", "7"]
    assert main(argv) == 0
    meta = reports[-1].metadata
    assert meta["k"] == [1, 3] and meta["metric"] == "l2" and meta["seed"] == 7
    assert meta["attributes"] == ["site"] and meta["bootstrap"] == 0
    assert meta["source"] == str(npz)
    assert "recall@3" in reports[-1].metrics and "leakage_linear:site" not in reports[-1].metrics
    assert main(["audit", str(npz), "--no-intersectional", "--index", "exact", *QUIET]) == 0
    assert reports[-1].metadata["groupings"] == ["colour", "site"]


def test_fail_if_violated_exits_1(npz, capsys):
    cond = "recall@1.overall>=0"
    assert main(["audit", str(npz), "--fail-if", cond, "--fail-if", "map@r.overall<0", *QUIET]) == 1
    err = capsys.readouterr().err
    assert f"FAIL {cond}" in err
    assert "map@r" not in err


def test_fail_if_per_attribute_violation(npz, capsys):
    cond = "recall@1.difference.colour>=0"
    assert main(["audit", str(npz), "--fail-if", cond, *QUIET]) == 1
    assert "for colour" in capsys.readouterr().err


def test_fail_if_satisfied_exits_0(npz, capsys):
    argv = ["audit", str(npz), "--fail-if", "recall@1.difference>1.5", "--fail-if"]
    assert main([*argv, "recall@1.overall<0", *QUIET]) == 0
    assert "FAIL" not in capsys.readouterr().err


def test_malformed_fail_if_exits_2_before_any_work(tmp_path, capsys):
    # the source does not exist: had it been loaded first, the error would be about the file
    missing = tmp_path / "missing.npz"
    assert main(["audit", str(missing), "--fail-if", "recall@1.gap>0.1", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "cannot parse --fail-if 'recall@1.gap>0.1'" in err
    assert "not found" not in err


def test_fail_if_unknown_metric_exits_2(npz, capsys):
    assert main(["audit", str(npz), "--fail-if", "recall@3.overall<0.5", *QUIET]) == 2
    assert "unknown metric 'recall@3'" in capsys.readouterr().err


def test_nan_rows_exit_2_mentioning_drop_invalid(tmp_path, capsys):
    path = _set(nan_rows=(4, 9)).save(tmp_path / "nan.npz")
    assert main(["audit", str(path), *QUIET]) == 2
    err = capsys.readouterr().err
    assert "2 embedding row(s)" in err and "[4, 9]" in err and "--drop-invalid" in err


def test_drop_invalid_exits_0_with_a_note(tmp_path, capsys, reports):
    path = _set(nan_rows=(4, 9)).save(tmp_path / "nan.npz")
    assert main(["audit", str(path), "--drop-invalid", *QUIET]) == 0
    assert "dropped 2 invalid embedding row(s)" in capsys.readouterr().out
    meta = reports[-1].metadata
    assert meta["dropped_invalid"] == {"count": 2, "first_indices": [4, 9]} and meta["n"] == 48


def test_unknown_attribute_exits_2(npz, capsys):
    assert main(["audit", str(npz), "--attributes", "colour,age", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "unknown attribute 'age'" in err and "colour, site" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--k", "0"], "ks must be positive"),
        (["--k", "50"], "only 50 embeddings"),
        (["--bootstrap", "-1"], "bootstrap must be >= 0"),
    ],
)
def test_bad_numbers_exit_2(npz, capsys, argv, message):
    assert main(["audit", str(npz), "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("source", ["missing.npz", "no/such/thing"])
def test_missing_source_exits_2(tmp_path, capsys, source):
    assert main(["audit", str(tmp_path / source), *QUIET]) == 2
    assert "fairmetric: error:" in capsys.readouterr().err


def test_help_lists_the_sources(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "emb.npz",
        "emb.safetensors",
        "emb.npy --labels labels.csv",
        "runs/NAME",
        "timm",
        "package.module:function",
        "--fail-if",
        "--drop-invalid",
        "exit status",
    ):
        assert text in out, text


def test_npy_with_labels(tmp_path, capsys, reports):
    emb = _set()
    np.save(tmp_path / "emb.npy", emb.embeddings)
    colour = emb.attribute_value_names["colour"]
    rows = [f"p{y},{colour[c]}" for y, c in zip(emb.labels, emb.attribute("colour"))]
    (tmp_path / "labels.csv").write_text("label,colour\n" + "\n".join(rows) + "\n")
    argv = ["audit", str(tmp_path / "emb.npy"), "--labels", str(tmp_path / "labels.csv")]
    assert main([*argv, *QUIET]) == 0
    from_npy = reports[-1]
    assert set(from_npy["recall@1"].by_group["colour"]) == {"light", "dark"}
    # the same numbers as the .npz of the same set
    npz = emb.save(tmp_path / "same.npz")
    assert main(["audit", str(npz), "--attributes", "colour", *QUIET]) == 0
    for name, metric in reports[-1].metrics.items():
        assert from_npy[name].to_dict() == metric.to_dict(), name


def test_npy_without_labels_exits_2(tmp_path, capsys):
    np.save(tmp_path / "emb.npy", np.ones((4, 2), dtype=np.float32))
    assert main(["audit", str(tmp_path / "emb.npy"), *QUIET]) == 2
    assert "pass --labels" in capsys.readouterr().err


def test_module_function_with_config(tmp_path, monkeypatch, capsys, reports):
    (tmp_path / "fm_cli_encoders.py").write_text(
        "def first_four(x):\n    return x[:, :4].numpy()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "gaussian.yaml"
    save_config(load_config(None, GAUSSIAN), config)
    argv = ["audit", "fm_cli_encoders:first_four", "--config", str(config)]
    assert main([*argv, "--device", "cpu", "--set", "train.seed=1", *QUIET]) == 0
    meta = reports[-1].metadata
    assert meta["dim"] == 4 and meta["n"] == 96
    assert meta["source"] == "fm_cli_encoders:first_four"
    assert set(reports[-1]["recall@1"].by_group["group"]) == {"g0", "g1"}
    assert "audit of fm_cli_encoders:first_four: 96 embeddings, dim 4" in capsys.readouterr().out
    # without --config: a clear error
    capsys.readouterr()
    assert main(["audit", "fm_cli_encoders:first_four", *QUIET]) == 2
    assert "pass --config" in capsys.readouterr().err


def test_model_source_speed_flags(tmp_path, monkeypatch, capsys, reports):
    import torch

    from fairmetric.models import save_embedder
    from fairmetric.models.embedder import Embedder
    from tests.conftest import DIGITS

    run = tmp_path / "run"
    torch.manual_seed(0)
    model = Embedder(backbone="test_resnet", input_size=(3, 16, 16), embedding_dim=16)
    save_embedder(model.eval(), run / "model")
    save_config(load_config(None, DIGITS), run / "config.yaml")
    calls: list[tuple[dict, EmbeddingSet]] = []
    real = fairmetric.sources.load_source

    def recording(*args, **kwargs):
        emb = real(*args, **kwargs)
        calls.append((kwargs, emb))
        return emb

    monkeypatch.setattr(fairmetric.sources, "load_source", recording)
    argv = ["audit", str(run), "--device", "cpu", *QUIET]
    assert main(argv) == 0
    kwargs, ref = calls[-1]
    assert not {"precision", "channels_last", "num_workers"} & set(kwargs)  # the run decides
    flags = ["--precision", "bf16", "--channels-last", "--num-workers", "2"]
    assert main([*argv, *flags]) == 0
    kwargs, fast = calls[-1]
    assert (kwargs["precision"], kwargs["channels_last"], kwargs["num_workers"]) == (
        "bf16",
        True,
        2,
    )
    assert reports[-1].metadata["n"] == len(ref) == 896
    cos = (fast.embeddings * ref.embeddings).sum(1) / (
        np.linalg.norm(fast.embeddings, axis=1) * np.linalg.norm(ref.embeddings, axis=1)
    )
    assert cos.min() > 0.99 and not np.array_equal(fast.embeddings, ref.embeddings)
    assert main([*argv, "--precision", "fp32", "--no-channels-last"]) == 0
    np.testing.assert_array_equal(calls[-1][1].embeddings, ref.embeddings)
    # embedding files ignore them; a bad value is an argparse error
    npz = _set().save(tmp_path / "emb.npz")
    assert main(["audit", str(npz), "--precision", "fp16", *QUIET]) == 0
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--precision", "half"])
    assert exc.value.code == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err


def test_help_lists_the_speed_flags(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = capsys.readouterr().out
    for flag in ("--precision {fp32,bf16,fp16}", "--num-workers N", "--channels-last"):
        assert flag in out
