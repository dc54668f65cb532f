"""The command line's error boundary: exit statuses (0 ok, 1 gate, 2 user error, 3 internal error,
130 interrupted) and one clear line, without a traceback, for each bad input of issue 14."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import fairmetric.cli as cli
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USER,
    SetupError,
    UserError,
    is_user_error,
)
from fairmetric.models.embedder import Embedder, save_embedder
from fairmetric.train import load_config
from fairmetric.train.checkpoint import load_checkpoint, save_checkpoint
from fairmetric.train.config import save_config
from tests.conftest import GAUSSIAN

QUIET = ["--bootstrap", "0", "--no-progress", "--no-linear-probe"]


def _user_error(capsys, *fragments: str) -> str:
    """The stderr of a command that exited 2: one ``fairmetric: error:`` line, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("fairmetric: error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _set(n: int = 50, *, nan_rows: tuple[int, ...] | slice = ()) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 5
    x = (rng.normal(size=(n, 6)) + 1.5 * rng.normal(size=(5, 6))[labels]).astype(np.float32)
    x[nan_rows if isinstance(nan_rows, slice) else list(nan_rows)] = np.nan
    return EmbeddingSet(
        embeddings=x,
        labels=labels,
        attributes={"colour": np.array(["light", "dark"])[np.arange(n) % 2]},
        allow_invalid=True,
    )


# -- exit statuses ---------------------------------------------------------------------------


def test_exit_statuses_are_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("exit status: 0 ok", "1 a --fail-if", "2 bad input", "3 internal error", "130 "):
        assert text in out, text
    for command in ("audit", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "1 a --fail-if condition holds" in out and "3 internal error" in out, command


def test_internal_error_exits_3_with_traceback_and_report_hint(monkeypatch, capsys):
    def broken(args):
        return {}["missing"]  # a bug: KeyError

    monkeypatch.setattr(cli.env, "_run_env", broken)
    assert main(["env"]) == EXIT_INTERNAL == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err
    assert err.strip().splitlines()[-1].startswith("fairmetric: internal error (KeyError)")
    assert "bug" in err and "report" in err and "fairmetric env" in err


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.env, "_run_env", interrupted)
    assert main(["env"]) == EXIT_INTERRUPTED == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_closed_output_pipe_exits_141_quietly(monkeypatch, capsys):
    def piped(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli.env, "_run_env", piped)
    assert main(["env"]) == 141
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "exc",
    [
        UserError("x"),
        SetupError("x"),
        ValueError("x"),
        FileNotFoundError(2, "No such file or directory", "f"),
        PermissionError(13, "Permission denied", "f"),
        NotADirectoryError(20, "Not a directory", "f"),
        IsADirectoryError(21, "Is a directory", "f"),
        FileExistsError(17, "File exists", "f"),
        OSError(28, "No space left on device", "f"),
        json.JSONDecodeError("Expecting value", "", 0),
        FloatingPointError("loss is nan"),
    ],
)
def test_user_errors(exc):
    assert is_user_error(exc)


@pytest.mark.parametrize("exc", [KeyError("k"), RuntimeError("x"), TypeError("x"), IndexError()])
def test_internal_errors(exc):
    assert not is_user_error(exc)


def test_nproc_inside_torchrun_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["train", *GAUSSIAN, "--nproc", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == EXIT_USER
    _user_error(capsys, "drop --nproc when using torchrun")


def test_out_of_memory_is_a_user_error_with_the_fix(monkeypatch, capsys):
    def huge(args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(cli.env, "_run_env", huge)
    assert main(["env"]) == EXIT_USER
    _user_error(capsys, "out of memory (CUDA out of memory. Tried", "lower the batch size")


def test_yaml_errors_are_user_errors():
    import yaml

    with pytest.raises(yaml.YAMLError) as info:
        yaml.safe_load("!!python/object/apply:os.system ['true']")
    assert is_user_error(info.value)


def test_permission_error_deep_inside_exits_2_with_the_path_and_a_fix(monkeypatch, capsys):
    def denied(args):
        raise PermissionError(13, "Permission denied", "/data/celeba/img_align")

    monkeypatch.setattr(cli.env, "_run_env", denied)
    assert main(["env"]) == EXIT_USER
    _user_error(capsys, "/data/celeba/img_align: Permission denied", "choose a location")


# -- --out ----------------------------------------------------------------------------------


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize("command", ["train", "audit", "embed", "finetune", "demo"])
def test_out_below_a_regular_file_exits_2(command, a_file, tmp_path, capsys):
    out = a_file / ("emb.npz" if command == "embed" else "run")
    argv = {
        "train": ["train", *GAUSSIAN, "train.epochs=1"],
        "audit": ["audit", str(_set().save(tmp_path / "emb.npz")), *QUIET],
        "embed": ["embed", "--model", str(tmp_path)],
        "finetune": ["finetune", "--model", str(tmp_path)],
        "demo": ["demo"],
    }[command]
    assert main([*argv, "--out", str(out)]) == EXIT_USER
    _user_error(capsys, f"lies below {a_file}, which is a file, not a folder")
    assert a_file.read_text() == "not a folder\n"


def test_out_that_is_a_file_exits_2(a_file, capsys):
    assert main(["train", *GAUSSIAN, "--out", str(a_file)]) == EXIT_USER
    _user_error(capsys, f"--out {a_file} is a file, not a folder")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write in any folder (the simulated test below covers the check)",
)
def test_out_in_a_folder_without_write_permission_exits_2(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["train", *GAUSSIAN, "--out", str(locked / "run")]) == EXIT_USER
    finally:
        locked.chmod(0o755)
    _user_error(capsys, f"no permission to write in {locked}")


def test_out_in_a_folder_without_write_permission_simulated(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        cli.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode)
    )
    assert main(["train", *GAUSSIAN, "--out", str(locked / "deeper" / "run")]) == EXIT_USER
    _user_error(capsys, f"no permission to write in {locked}", "choose a folder you can write")
    assert not (locked / "deeper").exists()


# -- finetune --task ----------------------------------------------------------------------------


def test_yaml_tag_in_a_task_file_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "executed"
    task = tmp_path / "task.yaml"
    task.write_text(f"classifier: !!python/object/apply:os.system ['touch {marker}']\n")
    argv = ["finetune", "--model", str(tmp_path), "--task", str(task)]
    assert main([*argv, "--out", str(tmp_path / "ds")]) == EXIT_USER
    _user_error(capsys, f"--task {task} is not a plain YAML mapping", "never executed")
    assert not marker.exists()


def test_yaml_syntax_error_in_a_task_file(tmp_path, capsys):
    task = tmp_path / "task.yaml"
    task.write_text("classifier: [knn\n")
    argv = ["finetune", "--model", str(tmp_path), "--task", str(task)]
    assert main([*argv, "--out", str(tmp_path / "ds")]) == EXIT_USER
    _user_error(capsys, "not a plain YAML mapping")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: abc\n", "seed must be an integer, got 'abc'"),
        ("n_boot: -5\n", "n_boot must be between 0 and"),
        ("test_fraction: 1.5\n", "test_fraction must be between 0 and 1, got 1.5"),
        ("balance_per_class: 3\n", "balance_per_class must be true or false, got 3"),
        ("attributes: colour\n", "attributes must be a list of attribute names"),
        ("classifer: knn\n", "unknown task key(s) classifer"),
    ],
)
def test_bad_task_values_name_the_key(text, message, tmp_path, capsys):
    task = tmp_path / "task.yaml"
    task.write_text(text)
    argv = ["finetune", "--model", str(tmp_path), "--task", str(task)]
    assert main([*argv, "--out", str(tmp_path / "ds")]) == EXIT_USER
    _user_error(capsys, f"{task}: {message}")


def test_the_help_lists_every_task_key():
    from fairmetric.cli.finetune import TASK_KEYS as CLI_TASK_KEYS
    from fairmetric.downstream.task import TASK_KEYS

    assert CLI_TASK_KEYS == TASK_KEYS


# -- config values are range-checked when the config is loaded -----------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-1", "optim.lr must be a finite number > 0, got -1.0"),
        ("optim.lr=0", "optim.lr must be a finite number > 0, got 0.0"),
        ("optim.lr=.inf", "optim.lr must be a finite number > 0, got inf"),
        ("optim.weight_decay=-0.01", "optim.weight_decay must be a finite number >= 0"),
        ("train.batch_size=0", "train.batch_size must be between 1 and"),
        ("train.epochs=0", "train.epochs must be between 1 and"),
        ("model.embedding_dim=0", "model.embedding_dim must be between 1 and 65536, got 0"),
        ("model.embedding_dim=1000000000", "model.embedding_dim must be between 1 and 65536"),
        ("data.image_size=100000", "data.image_size must be between 1 and 4096"),
        ("train.recall_k=[1,0]", "every item of train.recall_k must be between 1 and"),
        ("loss.params={margin: abc}", "loss.params.margin: expected a number (default 0.05)"),
        ("miner.params={margin: [1]}", "miner.params.margin: expected a number"),
    ],
)
def test_out_of_range_config_values_are_refused_at_load(override, message, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *GAUSSIAN, override, "--out", str(run)]) == EXIT_USER
    _user_error(capsys, message)
    assert not run.exists()  # refused before anything is written


def test_unknown_group_attribute_is_refused_even_when_unused(tmp_path, capsys):
    argv = ["train", *GAUSSIAN, "data.group_attribute=gruop", "--out", str(tmp_path / "run")]
    assert main(argv) == EXIT_USER
    _user_error(capsys, "data.group_attribute: unknown attribute 'gruop'; this dataset has: group")


def test_out_of_range_value_in_a_config_file(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text("optim:\n  lr: -0.001\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    _user_error(capsys, "optim.lr must be a finite number > 0, got -0.001")


# -- exported model config.json -------------------------------------------------------------


@pytest.fixture
def exported(tmp_path) -> tuple[Path, Path]:
    """An exported MLP model folder and a config describing GAUSSIAN's data (dim 16)."""
    model = Embedder(backbone="mlp", input_size=(16,), embedding_dim=8)
    folder = save_embedder(model.eval(), tmp_path / "model")
    config = save_config(load_config(None, GAUSSIAN), tmp_path / "config.yaml")
    return folder, config


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"input_size": [-16]}, "input_size must hold integers between 1 and"),
        ({"input_size": [0]}, "input_size must hold integers between 1 and"),
        ({"embedding_dim": 10**9}, "embedding_dim must be between 1 and 65536"),
        ({"embedding_dim": -8}, "embedding_dim must be between 1 and 65536"),
        ({"backbone_kwargs": {"hidden": -32}}, "hidden (the MLP's width) must be between 1 and"),
        ({"backbone_kwargs": {"hidden": 10**9}}, "hidden (the MLP's width) must be between 1 and"),
        ({"backbone_kwargs": {"hidden": 65536, "layers": 1000}}, "weights (at most"),
    ],
)
def test_bad_model_config_json_exits_2_before_allocating(
    exported, edit, message, tmp_path, monkeypatch, capsys
):
    folder, config = exported
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    real_linear = torch.nn.Linear.__init__

    def no_huge_layers(self, in_features, out_features, *args, **kwargs):
        assert 0 < in_features * out_features <= 2**20, "allocated before failing"
        real_linear(self, in_features, out_features, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Linear, "__init__", no_huge_layers)
    argv = ["embed", "--model", str(folder), "--config", str(config), "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "e.npz")]) == EXIT_USER
    _user_error(capsys, f"{path} describes a model that cannot be built", message)


# -- training and --resume ------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished two-epoch GAUSSIAN run (copied by each test that changes it)."""
    run = tmp_path_factory.mktemp("errors") / "run"
    assert main(["train", *GAUSSIAN, "train.epochs=2", "--out", str(run), "--no-progress"]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _resume(run: Path, *overrides: str) -> int:
    # overrides after the flags: argparse alone would call them unrecognized arguments
    return main(["train", *GAUSSIAN, "--out", str(run), "--resume", "--no-progress", *overrides])


def _edit_checkpoint(run: Path, edit) -> None:
    path = run / "checkpoint.pt"
    state = load_checkpoint(path)
    state.pop("format")
    edit(state)
    save_checkpoint(state, path)


def test_non_finite_training_loss_exits_2_with_the_fix(tmp_path, monkeypatch, capsys):
    from fairmetric.train import step

    real_add = step.EpochTotals.add

    def poisoned(self, loss, *args, **kwargs):
        real_add(self, loss * float("nan"), *args, **kwargs)

    monkeypatch.setattr(step.EpochTotals, "add", poisoned)
    argv = ["train", *GAUSSIAN, "train.epochs=1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == EXIT_USER
    capsys_out = _user_error(capsys, "the training loss became nan", "lower the learning rate")
    assert "optim.lr" in capsys_out and "steps of epoch 1 " in capsys_out


def test_resume_with_a_mis_shaped_weight_exits_2_naming_the_key(run, capsys):
    def edit(state):
        state["model"]["head.weight"] = torch.zeros(3, 5)

    _edit_checkpoint(run, edit)
    config = (run / "config.yaml").read_bytes()
    mtime = (run / "config.yaml").stat().st_mtime_ns
    assert _resume(run, "train.epochs=3") == EXIT_USER
    # refused before anything is rewritten: the run's config still says what the weights are
    assert (run / "config.yaml").read_bytes() == config
    assert (run / "config.yaml").stat().st_mtime_ns == mtime
    _user_error(
        capsys,
        "'model' weights do not fit",
        "wrong shape: head.weight (checkpoint (3, 5), model (8, 32))",
        "written by another config or fairmetric version",
    )


def test_resume_with_a_missing_weight_exits_2_naming_the_key(run, capsys):
    _edit_checkpoint(run, lambda state: state["model"].pop("head.bias"))
    assert _resume(run, "train.epochs=3") == EXIT_USER
    _user_error(capsys, "missing 'head.bias'", "another --out")


def test_resume_with_a_missing_entry_exits_2_naming_it(run, capsys):
    _edit_checkpoint(run, lambda state: state.pop("optimizer"))
    assert _resume(run, "train.epochs=3") == EXIT_USER
    _user_error(capsys, "entry 'optimizer' is missing")


def test_resume_with_a_mis_shaped_optimizer_moment_exits_2(run, capsys):
    def edit(state):
        moments = next(iter(state["optimizer"]["state"].values()))
        moments["exp_avg"] = torch.zeros(7)

    _edit_checkpoint(run, edit)
    assert _resume(run, "train.epochs=3") == EXIT_USER
    _user_error(capsys, "the optimizer's 'exp_avg' has shape (7,)")


def test_resume_with_fewer_epochs_than_trained_is_refused(run, capsys):
    config = (run / "config.yaml").read_bytes()
    model = (run / "model" / "config.json").read_bytes()
    assert _resume(run, "train.epochs=1") == EXIT_USER
    _user_error(
        capsys,
        "with train.epochs=1: its checkpoint has already trained 2 epoch(s)",
        "at least 2",
    )
    assert (run / "config.yaml").read_bytes() == config  # the run's config still says 2
    assert (run / "model" / "config.json").read_bytes() == model


def test_resume_mid_epoch_needs_the_epoch_it_is_in(run, capsys):
    def edit(state):
        state["epoch"], state["step"], state["global_batches"] = 1, 1, 1

    _edit_checkpoint(run, edit)
    assert _resume(run, "train.epochs=1") == EXIT_USER
    _user_error(capsys, "already trained 1 epoch(s) and part of the next", "at least 2")


# -- audit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 10])
def test_too_few_embeddings_names_the_flags_that_fix_it(n, tmp_path, capsys):
    path = _set(n).save(tmp_path / "emb.npz")
    assert main(["audit", str(path), "--k", "1", *QUIET]) == EXIT_USER
    line = _user_error(capsys, f"only {n} embeddings", "--homophily-k", "--leakage-k")
    assert "homophily_k=10" in line and "leakage_k=10" in line and "ks=" not in line
    capsys.readouterr()
    argv = ["audit", str(path), "--k", "1", "--homophily-k", "1", "--leakage-k", "1", *QUIET]
    assert main(argv) == 0


def test_homophily_k_must_be_positive(tmp_path, capsys):
    path = _set().save(tmp_path / "emb.npz")
    with pytest.raises(SystemExit) as info:
        main(["audit", str(path), "--homophily-k", "0", *QUIET])
    assert info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_drop_invalid_dropping_every_row_talks_about_the_data(tmp_path, capsys):
    path = _set(nan_rows=slice(None)).save(tmp_path / "nan.npz")
    assert main(["audit", str(path), "--drop-invalid", *QUIET]) == EXIT_USER
    line = _user_error(capsys, "every one of the 50 embedding rows has NaN", "nothing to audit")
    assert "subset()" not in line


def test_a_failing_user_encoder_is_a_user_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "fm_bad_encoders.py").write_text(
        "def broken(x):\n    raise KeyError('no such layer')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = save_config(load_config(None, GAUSSIAN), tmp_path / "gaussian.yaml")
    argv = ["audit", "fm_bad_encoders:broken", "--config", str(config), "--device", "cpu", *QUIET]
    assert main(argv) == EXIT_USER
    _user_error(
        capsys, "the encoder fm_bad_encoders:broken failed on a batch", "KeyError", "(batch, D)"
    )
    monkeypatch.setenv("FAIRMETRIC_TRACEBACK", "1")  # where it failed, on request
    assert main(argv) == EXIT_USER
    err = capsys.readouterr().err
    assert "Traceback" in err and "fm_bad_encoders.py" in err
    assert err.strip().splitlines()[-1].startswith("fairmetric: error: the encoder")


def test_a_binary_config_file_names_the_file(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_bytes(b"\x93NUMPY\xff\xfe\x00")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == EXIT_USER
    _user_error(capsys, f"{config} is not a UTF-8 text (YAML) config file")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["embed", "--model", "m", "--out", "e.npz", "--batch-size", "0"], "--batch-size"),
        (["audit", "e.npz", "--batch-size", "-3"], "--batch-size"),
        (["finetune", "--model", "m", "--out", "o", "--seed", "-1"], "--seed"),
        (["audit", "e.npz", "train.epochs=3"], "unrecognized arguments: train.epochs=3"),
        (["train", "--out", "o", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_usage_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing is written, but should it be: not into the checkout
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == EXIT_USER
    err = capsys.readouterr().err
    assert message in err and ("expected" in err or "unrecognized" in err)


def test_overrides_may_follow_the_flags(trained, tmp_path, capsys):
    out = tmp_path / "e.npz"
    argv = ["embed", "--model", str(trained), "--out", str(out), "--no-progress"]
    assert main([*argv, "train.eval_batch_size=7"]) == 0
    assert main([*argv, "train.eval_batch_size=0"]) == EXIT_USER
    _user_error(capsys, "train.eval_batch_size must be between 1 and")


def test_unknown_balance_attribute_is_refused_even_without_balancing(trained, tmp_path, capsys):
    argv = ["finetune", "--model", str(trained), "--balance-attribute", "colour"]
    assert main([*argv, "--out", str(tmp_path / "ds"), "--no-progress"]) == EXIT_USER
    _user_error(capsys, "balance_attribute (--balance-attribute): unknown attribute 'colour'")


@pytest.mark.parametrize(
    "override",
    [
        "loss.params=&a {x: *a}",
        "sampling.proportions=&a {a: *a}",
        "sampling.proportions.a=&a [1, *a]",
        "model.backbone_kwargs=&a [*a]",
    ],
)
def test_recursive_yaml_alias_in_an_override_exits_2(override, tmp_path, capsys):
    """Found by tests/test_properties.py: a self-referencing alias was a RecursionError (exit 3)."""
    assert main(["train", "--out", str(tmp_path / "run"), override]) == 2
    err = capsys.readouterr().err
    assert "refers to the value that contains it" in err and "Traceback" not in err


def test_recursive_yaml_alias_in_a_config_file_exits_2(tmp_path, capsys):
    path = tmp_path / "loop.yaml"
    path.write_text("loss:\n  params: &a\n    x: *a\n")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "loop.yaml" in err and "refers to the value that contains it" in err


def test_proportions_under_plain_m_per_class_exit_2(tmp_path, capsys):
    """sampling.proportions was silently ignored by the plain m-per-class sampler."""
    argv = ["train", *GAUSSIAN, "train.epochs=1", "sampling.proportions={foo: 1}"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "sampling.name=m_per_class does not use it" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["mitigation.hard_mining.candidates_per_batch=-5"], "candidates_per_batch must be"),
        (["mitigation.hard_mining.tau=0"], r"hard_mining.tau must be a finite number > 0"),
        (["mitigation.smote.k_neighbors=0"], r"smote.k_neighbors must be between 1 and"),
        (
            ["mitigation.group_mixup.p=1.5"],
            r"group_mixup.p must be a finite number between 0 and 1",
        ),
        (["objective.adversary.alpha=-2"], r"adversary.alpha must be a finite number >= 0"),
        (["objective.parade.rho=-1"], r"parade.rho must be a finite number >= 0"),
        (["objective.parade.xi_lr=0"], r"parade.xi_lr must be a finite number > 0 or null"),
        (["objective.parade.attribute_dim=0"], r"parade.attribute_dim must be between 1 and"),
        (["objective.spectral.coefficient=-1"], r"spectral.coefficient must be"),
        (["reducer.name=group_dro", "reducer.eta=-1"], r"reducer.eta must be a finite number > 0"),
        (["reducer.name=group_weighted", "reducer.beta=nan"], r"reducer.beta must be a finite"),
    ],
)
def test_plug_in_values_are_range_checked_at_load(overrides, match):
    """The plug-ins' own sections (fairmetric/bounds.py), not only the core ones."""
    from fairmetric.train import load_config

    with pytest.raises(ValueError, match=match):
        load_config(None, ["data.group_attribute=colour", *overrides])


@pytest.mark.parametrize(
    "argv", [["audit", "x.npz", "--bogus"], ["train", "--out", "r", "--bogus"]]
)
def test_an_unknown_flag_shows_the_subcommands_usage(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: fairmetric {argv[0]}" in err
    assert f"fairmetric {argv[0]}: error: unrecognized arguments: --bogus" in err
