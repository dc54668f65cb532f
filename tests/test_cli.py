"""The command line: help everywhere, train → embed round trip, demo, env, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fairmetric import EmbeddingSet
from fairmetric.cli import main
from fairmetric.train import build_data, load_config
from tests.conftest import GAUSSIAN

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [[], ["train"], ["embed"], ["demo"], ["env"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: fairmetric" in out
    if command:
        assert len(out) > 200  # a real description, not a bare usage line


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_env(capsys):
    import torch

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out and "pytorch-metric-learning" in out and "faiss" in out


def test_train_then_embed(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *GAUSSIAN, "train.epochs=1", "--out", str(run), "--no-progress"]) == 0
    assert (run / "model" / "model.safetensors").is_file()
    for suffix in (".npz", ".safetensors"):
        out = tmp_path / f"emb{suffix}"
        assert (
            main(
                [
                    "embed",
                    "--model",
                    str(run),
                    "--split",
                    "test",
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
            == 0
        )
        emb = EmbeddingSet.load(out)
        test = build_data(load_config(run / "config.yaml"))["test"]
        assert len(emb) == len(test) and emb.dim == 8
        np.testing.assert_array_equal(emb.labels, test.labels)
        np.testing.assert_array_equal(emb.attributes, test.attributes)
        assert emb.metadata["split"] == "test"


def test_embed_exported_folder_needs_config(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", *GAUSSIAN, "train.epochs=1", "--out", str(run), "--no-progress"])
    capsys.readouterr()
    out = tmp_path / "e.npz"
    assert main(["embed", "--model", str(run / "model"), "--out", str(out)]) == 2
    assert "pass --config" in capsys.readouterr().err
    assert (
        main(
            [
                "embed",
                "--model",
                str(run / "model"),
                "--config",
                str(run / "config.yaml"),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert EmbeddingSet.load(out).dim == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "train.epoch=3", "--out", "X"], "unknown config key 'train.epoch'"),
        (["train", "train.epochs=three", "--out", "X"], "train.epochs: expected an integer"),
        (["train", "--config", "missing.yaml", "--out", "X"], "config file not found"),
        (["train", "data.name=imagenet", "--out", "X"], "unknown dataset 'imagenet'"),
        (["train", "loss.name=TripletLoss", "--out", "X"], "Did you mean"),
        (["train", "model.backbone=resnet_tiny_x", "--out", "X"], "unknown backbone"),
        (["embed", "--model", "nowhere", "--out", "e.npz"], "does not exist"),
        (["embed", "--model", "nowhere", "--out", "e.txt"], ".npz or .safetensors"),
    ],
)
def test_errors_are_clear(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "fairmetric: error:" in err and message in err


def test_embed_unknown_split(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", *GAUSSIAN, "train.epochs=1", "--out", str(run), "--no-progress"])
    capsys.readouterr()
    assert (
        main(["embed", "--model", str(run), "--split", "valid", "--out", str(tmp_path / "e.npz")])
        == 2
    )
    assert "unknown split 'valid'; this dataset has: train, test" in capsys.readouterr().err


def test_demo_smoke(tmp_path, capsys):
    from fairmetric.demo import ARMS, RECOMMENDED

    out = tmp_path / "demo"
    tiny = [
        "train.epochs=1",
        "data.params.n_train_identities=20",
        "data.params.n_test_identities=10",
    ]
    assert main(["demo", "--out", str(out), "--no-progress", *tiny]) == 0
    printed = capsys.readouterr().out
    assert "Recall@1 per palette" in printed and f"baseline vs {RECOMMENDED} vs PARADE" in printed
    assert "downstream accuracy gap" in printed and "effective rank, min group" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["comparison"]) == list(ARMS)
    for arm in ARMS:
        assert set(summary["recall@1"][arm]["by_group"]["palette"]) == {"majority", "minority"}
        numbers = summary["comparison"][arm]
        assert 0 <= numbers["recall@1"] <= 1 and 0 <= numbers["downstream accuracy"] <= 1
        assert 0 <= numbers["max group mean resultant length"] <= 1
        low, high = numbers["recall@1 gap interval"]
        assert low <= numbers["recall@1 gap"] <= high
        # the audit's exact Recall@1 gap equals the trainer's evaluation of the same embedding
        assert numbers["recall@1 gap"] == pytest.approx(summary["recall@1"][arm]["gap"]["palette"])
        folder = out / arm.lower()
        assert (folder / "test_embeddings.npz").is_file()
        assert (folder / "audit" / "report.html").is_file()
        assert (folder / "downstream" / "report.html").is_file()
    # the arms really trained with their method, the baseline with neither
    assert "parade/palette/decorrelation" in (out / "parade" / "run" / "metrics.jsonl").read_text()
    base = (out / "baseline" / "run" / "config.yaml").read_text()
    assert "parade/" not in (out / "baseline" / "run" / "metrics.jsonl").read_text()
    assert "name: m_per_class" in base
    rec = (out / RECOMMENDED / "run" / "config.yaml").read_text()
    assert f"name: {RECOMMENDED}" in rec
    html = (out / "compare.html").read_text()
    assert f"baseline vs {RECOMMENDED} vs PARADE" in html and "downstream accuracy gap" in html
    # a second demo replaces the first; a folder the demo did not write is refused
    assert main(["demo", "--out", str(out), "--no-progress", *tiny]) == 0
    other = tmp_path / "mine"
    other.mkdir()
    capsys.readouterr()
    assert main(["demo", "--out", str(other), *tiny]) == 2
    assert "not written by 'fairmetric demo'" in capsys.readouterr().err


def test_module_entry_point_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "fairmetric", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("fairmetric ")


def test_quickstart_example_runs(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--epochs",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Recall@1 overall" in out.stdout and "gap" in out.stdout
    assert (tmp_path / "test_embeddings.npz").is_file()


def test_mitigation_example_runs(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "mitigation.py"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for method in ("baseline", "reweight", "epoch_balanced", "hard_mining"):
        assert method in out.stdout
        assert (tmp_path / method / "model" / "model.safetensors").is_file()
    assert "SMOTE: groups" in out.stdout


# -- embed: precision, channels-last, workers ----------------------------------------------------


def _embed_cli(run: Path, out: Path, *flags: str) -> EmbeddingSet:
    argv = ["embed", "--model", str(run), "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main([*argv, *flags]) == 0
    return EmbeddingSet.load(out)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def image_reference(image_run) -> dict[str, np.ndarray]:
    """The run's test split embedded through the Python API: fp32, and bf16 + channels-last."""
    from fairmetric.models import embed_dataset, load_embedder

    test = build_data(load_config(image_run / "config.yaml"))["test"]
    model = load_embedder(image_run / "model")
    return {
        "fp32": embed_dataset(model, test, device="cpu").embeddings,
        "bf16": embed_dataset(
            load_embedder(image_run / "model"),
            test,
            device="cpu",
            precision="bf16",
            channels_last=True,
        ).embeddings,
    }


def test_embed_precision_channels_last_and_workers_flags(image_run, image_reference, tmp_path):
    ref = image_reference["fp32"]
    fp32 = _embed_cli(image_run, tmp_path / "fp32.npz")
    np.testing.assert_array_equal(fp32.embeddings, ref)
    fast = _embed_cli(image_run, tmp_path / "bf16.npz", "--precision", "bf16", "--channels-last")
    assert fast.embeddings.dtype == np.float32 and fast.embeddings.shape == (896, 16)
    np.testing.assert_allclose(fast.embeddings, image_reference["bf16"], rtol=1e-6, atol=1e-7)
    assert _cosine(fast.embeddings, ref).min() > 0.99
    assert not np.array_equal(fast.embeddings, ref)  # bf16 really ran
    np.testing.assert_array_equal(fast.labels, fp32.labels)
    np.testing.assert_array_equal(fast.attributes, fp32.attributes)
    workers = _embed_cli(image_run, tmp_path / "w.safetensors", "--num-workers", "2")
    np.testing.assert_array_equal(workers.embeddings, ref)
    np.testing.assert_array_equal(workers.labels, fp32.labels)


def test_embed_speed_defaults_come_from_the_run_config(
    image_run, image_reference, tmp_path, embed_calls
):
    import shutil

    import yaml

    calls = embed_calls
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["train"].update(precision="bf16", channels_last=True, num_workers=2, prefetch_factor=1)
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    emb = _embed_cli(run, tmp_path / "a.npz")  # a bf16 + channels-last run embeds that way
    assert {k: calls[-1][k] for k in ("precision", "channels_last", "num_workers")} == {
        "precision": "bf16",
        "channels_last": True,
        "num_workers": 2,
    }
    assert calls[-1]["prefetch_factor"] == 1
    np.testing.assert_allclose(emb.embeddings, image_reference["bf16"], rtol=1e-6, atol=1e-7)

    # explicit flags override the run's settings
    emb = _embed_cli(
        run, tmp_path / "b.npz", "--precision", "fp32", "--no-channels-last", "--num-workers", "0"
    )
    assert {k: calls[-1][k] for k in ("precision", "channels_last", "num_workers")} == {
        "precision": "fp32",
        "channels_last": False,
        "num_workers": 0,
    }
    np.testing.assert_array_equal(emb.embeddings, image_reference["fp32"])

    # a run from before these settings existed: fp32, contiguous, no workers
    for key in ("precision", "channels_last", "num_workers", "pin_memory", "prefetch_factor"):
        data["train"].pop(key)
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    emb = _embed_cli(run, tmp_path / "c.npz")
    assert {k: calls[-1][k] for k in ("precision", "channels_last", "num_workers")} == {
        "precision": "fp32",
        "channels_last": False,
        "num_workers": 0,
    }
    np.testing.assert_array_equal(emb.embeddings, image_reference["fp32"])


def test_embed_speed_flags_help_and_errors(image_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    out = capsys.readouterr().out
    for flag in ("--precision {fp32,bf16,fp16}", "--num-workers N", "--channels-last"):
        assert flag in out
    assert "train.precision" in out and "--no-channels-last" in out
    with pytest.raises(SystemExit) as exc:
        main(["embed", "--model", str(image_run), "--out", "e.npz", "--precision", "fp64"])
    assert exc.value.code == 2
    assert "invalid choice: 'fp64'" in capsys.readouterr().err
    argv = ["embed", "--model", str(image_run), "--out", str(tmp_path / "e.npz"), "--device", "cpu"]
    assert main([*argv, "--num-workers", "-1"]) == 2
    assert "num_workers must be >= 0" in capsys.readouterr().err
    # a bad precision in a run's config is as clear as a bad flag
    assert main([*argv, "train.precision=fp64"]) == 2
    assert "fp32, bf16, fp16" in capsys.readouterr().err


def test_errors_under_torchrun_name_the_rank(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--out", str(tmp_path / "run"), "trian.epochs=1"]) == 2
    assert (
        "fairmetric (rank 1): error: unknown config key 'trian.epochs'" in capsys.readouterr().err
    )
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert main(["train", "--out", str(tmp_path / "run"), "trian.epochs=1"]) == 2
    assert capsys.readouterr().err.startswith("fairmetric: error: unknown config key")


def test_train_help_explains_nproc_and_multi_node(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--nproc N" in text and "torchrun" in text and "--nnodes" in text


def test_demo_arms_are_the_bench_methods():
    from fairmetric.bench import Cell, cell_config
    from fairmetric.demo import ARMS, CONFIG, RECOMMENDED
    from fairmetric.train import load_config

    for arm, bench_name in (
        ("baseline", "baseline"),
        (RECOMMENDED, RECOMMENDED),
        ("PARADE", "parade"),
    ):
        bench = cell_config(Cell("identities_mlp", bench_name, 0))
        demo = load_config(CONFIG, ARMS[arm])
        assert bench.sampling == demo.sampling and bench.objective == demo.objective, arm
        assert bench.data.group_attribute == demo.data.group_attribute
