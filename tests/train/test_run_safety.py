"""Concurrent and interrupted training runs.

One process per run folder (a second fails at once, naming the first); SIGTERM and Ctrl-C stop
after a checkpoint at the current step, and ``--resume`` then finishes with the weights and
history of an uninterrupted run; temporary files of a killed writer are removed on the next
start; the metrics log is never behind the checkpoint that claims it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fairmetric.train.trainer as trainer_module
from fairmetric.cli import main
from fairmetric.train import load_config
from fairmetric.train.checkpoint import load_checkpoint
from fairmetric.train.runlock import LOCK_FILE, RunFolderInUse, RunLock
from fairmetric.train.stop import RunInterrupted
from fairmetric.train.trainer import TrainStep
from tests.conftest import GAUSSIAN
from tests.train.test_trainer import _untimed
from tests.train.test_trainer_runtime import _quiet, _weights

ROOT = Path(__file__).resolve().parents[2]
STEPS = 6  # steps per epoch
RUN = GAUSSIAN + ["train.epochs=2", f"train.batches_per_epoch={STEPS}"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """``RUN`` trained without interruption."""
    out = tmp_path_factory.mktemp("straight") / "run"
    _quiet(load_config(None, RUN), out)
    return out


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights, checkpointed history and metrics log (wall-clock fields aside)."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    history = _untimed(load_checkpoint(a / "checkpoint.pt")["history"])
    assert _untimed(load_checkpoint(b / "checkpoint.pt")["history"]) == history
    assert _untimed(_metrics(b)) == _untimed(_metrics(a)) == history


def _subprocess(
    args: list[str], extra_env: dict[str, str] | None = None, **kw
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        **kw,
    )


def _signal_at_step(monkeypatch, step: int, signum: int, times: int = 1) -> None:
    """Send ``signum`` to this process ``times`` times from inside the ``step``-th training step."""
    forward = TrainStep.forward
    calls = {"n": 0}

    def signalling(self, *args):
        calls["n"] += 1
        if calls["n"] == step:
            for _ in range(times):
                signal.raise_signal(signum)
        return forward(self, *args)

    monkeypatch.setattr(TrainStep, "forward", signalling)


# -- one process per run folder ------------------------------------------------------------------


def test_a_second_train_into_a_locked_folder_fails_at_once(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(None, RUN)
    with RunLock(out):
        assert (out / LOCK_FILE).read_text().split()[0] == str(os.getpid())
        with pytest.raises(RunFolderInUse, match=rf"in use by process {os.getpid()} \(lock file"):
            _quiet(cfg, out)
        with pytest.raises(ValueError, match="wait for it to finish or choose another --out"):
            _quiet(cfg, out, resume=False)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing else written
    assert not out.exists()  # the lock made the folder; nothing used it


def test_cli_second_process_exits_2_and_leaves_the_run_alone(tmp_path, straight):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):  # this test's process trains into out, as far as the child can tell
        done = _subprocess(["-m", "fairmetric", "train", *RUN, "--out", str(out), "--no-progress"])
    assert done.returncode == 2, done.stderr
    assert f"run folder {out} is in use by process {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(out.iterdir()) == []


def test_a_lock_file_left_by_a_killed_process_does_not_block(tmp_path, straight):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text("999999999 elsewhere\n")  # its process is gone: no flock held
    _quiet(load_config(None, RUN), out)
    assert not (out / LOCK_FILE).exists()
    assert_same_run(straight, out)


# -- SIGTERM and Ctrl-C ----------------------------------------------------------------------------

# the child sends itself SIGTERM inside training step STEP (counted over epochs), then runs the CLI
_SIGTERM_CHILD = """
import os, signal, sys
from fairmetric.cli import main
from fairmetric.train.trainer import TrainStep

forward, calls = TrainStep.forward, [0]

def signalling(self, *args):
    calls[0] += 1
    if calls[0] == int(os.environ["SIGTERM_AT"]):
        os.kill(os.getpid(), signal.SIGTERM)
    return forward(self, *args)

TrainStep.forward = signalling
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_writes_a_checkpoint_exits_143_and_resume_is_exact(tmp_path, straight):
    out = tmp_path / "run"
    args = ["train", *RUN, "--out", str(out), "--no-progress"]
    done = _subprocess(["-c", _SIGTERM_CHILD, *args], {"SIGTERM_AT": str(STEPS + 3)})
    assert done.returncode == 128 + signal.SIGTERM == 143, done.stderr
    assert "SIGTERM" in done.stderr and "3 steps into epoch 2" in done.stderr
    assert "--resume" in done.stderr and "Traceback" not in done.stderr
    saved = load_checkpoint(out / "checkpoint.pt")
    assert (saved["epoch"], saved["step"], saved["global_batches"]) == (1, 3, 3)
    assert [m["epoch"] for m in _metrics(out)] == [0, 1]
    assert not (out / LOCK_FILE).exists()

    assert main([*args, "--resume"]) == 0
    assert_same_run(straight, out)


@pytest.mark.parametrize("checkpoint_every", [None, 3], ids=["unscheduled", "scheduled"])
def test_ctrl_c_stops_after_the_step_with_a_checkpoint(
    tmp_path, monkeypatch, capsys, straight, checkpoint_every
):
    out = tmp_path / "run"
    extra = [f"train.checkpoint_every={checkpoint_every}"] if checkpoint_every else []
    args = ["train", *RUN, *extra, "--out", str(out), "--no-progress"]
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _signal_at_step(monkeypatch, STEPS + 3, signal.SIGINT)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "SIGINT" in err and "3 steps into epoch 2" in err and "--resume" in err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    saved = load_checkpoint(out / "checkpoint.pt")
    assert (saved["epoch"], saved["step"]) == (1, 3)

    monkeypatch.undo()
    assert main([*args, "--resume"]) == 0
    assert_same_run(straight, out)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_loader_workers_too_stops_cleanly(tmp_path, monkeypatch, straight, signum):
    """A terminal's Ctrl-C, and some schedulers' SIGTERM, reach every process of the group: the
    DataLoader workers leave Ctrl-C to the training process; a worker killed by SIGTERM ends the
    run as an interruption too (a checkpoint at the step, or the last one kept), never a hang."""
    import multiprocessing

    out = tmp_path / "run"
    cfg = load_config(None, RUN + ["train.num_workers=1"])
    forward, calls, signalled = TrainStep.forward, [0], []

    def signalling(self, *args):
        calls[0] += 1
        if calls[0] == STEPS + 2:
            assert callable(signal.getsignal(signum))  # never kill the test run itself
            for child in multiprocessing.active_children():
                os.kill(child.pid, signum)
                signalled.append(child.pid)
            signal.raise_signal(signum)
        return forward(self, *args)

    monkeypatch.setattr(TrainStep, "forward", signalling)
    with pytest.raises(KeyboardInterrupt, match=f"stopped by {signum.name}") as info:
        _quiet(cfg, out)
    assert isinstance(info.value, RunInterrupted) and signalled
    assert info.value.exit_status == 128 + signum
    if signum == signal.SIGINT:
        assert "2 steps into epoch 2" in str(info.value)
    del info  # its traceback holds the interrupted loader
    monkeypatch.undo()
    _quiet(cfg, out, resume=True)
    assert_same_run(straight, out)


def test_ctrl_c_in_the_last_step_of_an_epoch_stops_after_its_evaluation(
    tmp_path, monkeypatch, straight
):
    out = tmp_path / "run"
    cfg = load_config(None, RUN)
    _signal_at_step(monkeypatch, STEPS, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="after epoch 1 in") as info:
        _quiet(cfg, out)
    assert isinstance(info.value, RunInterrupted)
    saved = load_checkpoint(out / "checkpoint.pt")
    assert (saved["epoch"], saved["step"]) == (1, 0)
    assert [m["epoch"] for m in _metrics(out)] == [0, 1]
    monkeypatch.undo()
    _quiet(cfg, out, resume=True)
    assert_same_run(straight, out)


def test_ctrl_c_before_the_first_step_checkpoints_the_untrained_run(tmp_path, straight):
    out = tmp_path / "run"
    cfg = load_config(None, RUN)
    real = trainer_module.Trainer.start

    def start_and_interrupt(self):
        real(self)
        signal.raise_signal(signal.SIGINT)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module.Trainer, "start", start_and_interrupt)
        with pytest.raises(KeyboardInterrupt, match="before the first epoch") as info:
            _quiet(cfg, out)
    assert isinstance(info.value, RunInterrupted) and info.value.exit_status == 130
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 0
    _quiet(cfg, out, resume=True)
    assert_same_run(straight, out)


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = load_config(None, RUN + ["train.checkpoint_every=2"])
    _signal_at_step(monkeypatch, STEPS + 3, signal.SIGINT, times=2)
    with pytest.raises(KeyboardInterrupt, match="at once") as info:
        _quiet(cfg, out)
    assert isinstance(info.value, RunInterrupted) and info.value.exit_status == 130
    saved = load_checkpoint(out / "checkpoint.pt")  # the scheduled one before the signals
    assert (saved["epoch"], saved["step"]) == (1, 2)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.yaml",
        "metrics.jsonl",
        # train.tensorboard=auto: a log when TensorBoard is installed (the test extra installs
        # it; the oldest-versions check does not)
        *(["tensorboard"] if importlib.util.find_spec("tensorboard") else []),
    ]


def _ddp_worker(rank: int, port: int, out: str, results: str) -> None:
    """Rank ``rank`` of 2 trains ``RUN`` into ``out`` (3 steps an epoch each); rank 1 alone gets
    SIGTERM in its step 2."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    if rank == 1:
        forward, calls = TrainStep.forward, [0]

        def signalling(self, *args):
            calls[0] += 1
            if calls[0] == 2:
                signal.raise_signal(signal.SIGTERM)
            return forward(self, *args)

        TrainStep.forward = signalling
    try:
        _quiet(load_config(None, RUN), out)
        status, message = 0, ""
    except RunInterrupted as e:
        status, message = e.exit_status, str(e)
    Path(results, f"rank{rank}.json").write_text(json.dumps([status, message]))


def test_ranks_agree_to_stop_when_one_gets_sigterm(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    mp.spawn(_ddp_worker, args=(port, str(out), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [status for status, _ in results] == [143, 143]
    assert "2 steps into epoch 1" in results[0][1] and "2 steps into epoch 1" in results[1][1]
    saved = load_checkpoint(out / "checkpoint.pt")
    assert (saved["epoch"], saved["step"], saved["global_batches"], saved["world_size"]) == (
        0,
        2,
        4,
        2,
    )
    assert len(saved["ranks"]) == 2 and not (out / LOCK_FILE).exists()


def test_a_signal_during_the_stop_vote_waits_for_the_next_vote(monkeypatch):
    """A signal that lands on this rank while the ranks exchange their stop flags is not in
    the other ranks' answer; acting on it at once would stop this rank alone (the others go on
    into the next collective and fail). The answer is the reduced value; the next vote carries it."""
    from types import SimpleNamespace

    import fairmetric.train.stop as stop_module

    stop = stop_module.StopSignals(log=lambda _: None)
    ctx = SimpleNamespace(enabled=True, device="cpu", group=None)
    others = [0]  # what the other ranks send

    def all_reduce(box, op=None, group=None):
        if stop.signum is None:  # the signal arrives during the first vote
            stop.signum = int(signal.SIGTERM)
        box.copy_(torch.maximum(box, torch.tensor([others[0]], dtype=box.dtype)))

    monkeypatch.setattr(stop_module.dist, "all_reduce", all_reduce)
    assert stop.requested(ctx) is False  # nobody, this rank included, had a flag when voting
    assert stop.signum == int(signal.SIGTERM)
    assert stop.requested(ctx) is True  # the next vote stops every rank

    def all_reduce_quiet(box, op=None, group=None):
        box.copy_(torch.maximum(box, torch.tensor([others[0]], dtype=box.dtype)))

    monkeypatch.setattr(stop_module.dist, "all_reduce", all_reduce_quiet)
    stop = stop_module.StopSignals(log=lambda _: None)
    others[0] = int(signal.SIGINT)  # another rank got one: this rank learns it from the vote
    assert stop.requested(ctx) is True and stop.signum == int(signal.SIGINT)


def test_sigterm_to_the_nproc_launcher_stops_torchrun_with_a_checkpoint(tmp_path):
    """``fairmetric train --nproc 2``: a scheduler's (or ``kill``'s) SIGTERM to the launcher alone
    reaches torchrun and its workers, which checkpoint and stop; nothing keeps training unseen
    (it did: the launcher died and torchrun trained on), and ``--resume`` finishes the run."""
    import time

    out = tmp_path / "run"
    args = ["train", *GAUSSIAN, "train.epochs=5", "train.batches_per_epoch=30"]
    args += ["--out", str(out), "--no-progress", "--nproc", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "fairmetric", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and launcher.poll() is None:
        if (out / "metrics.jsonl").exists() and len(_metrics(out)) >= 2:  # epoch 1 is done
            break
        time.sleep(0.1)
    assert launcher.poll() is None, launcher.communicate()
    launcher.send_signal(signal.SIGTERM)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, err
    assert "SIGTERM passed on to torchrun" in err and "--resume" in err
    # both ranks stopped after the same checkpoint and say where it stands
    stops = [line for line in err.splitlines() if "training stopped by SIGTERM" in line]
    assert len(stops) == 2 and {s.split(":")[0] for s in stops} == {
        "fairmetric (rank 0)",
        "fairmetric (rank 1)",
    }, err
    where = {s.split("checkpoint ")[1].split(" in ")[0] for s in stops}
    assert len(where) == 1 and where != {""}, stops
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["world_size"] == 2 and 1 <= saved["epoch"] < 5
    assert not (out / LOCK_FILE).exists()
    before = (out / "checkpoint.pt").stat().st_mtime_ns
    time.sleep(1.5)  # no process trains on in the background
    assert (out / "checkpoint.pt").stat().st_mtime_ns == before
    resumed = subprocess.run(
        [sys.executable, "-m", "fairmetric", *args, "--resume"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [m["epoch"] for m in _metrics(out)] == [0, 1, 2, 3, 4, 5]
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 5


# -- temporary files of a killed writer --------------------------------------------------------------

# the child starts an atomic write of PATH and is killed in the middle of it
_KILLED_WRITER = """
import os, signal, sys
from fairmetric.utils import atomic_write

def write(f):
    f.write(b"half a file")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(sys.argv[1], write)
"""


def test_stale_temp_files_are_removed_on_the_next_start(tmp_path, straight):
    out = tmp_path / "run"
    _quiet(
        load_config(None, GAUSSIAN + ["train.epochs=1", f"train.batches_per_epoch={STEPS}"]), out
    )
    for path in (out / "checkpoint.pt", out / "model" / "model.safetensors"):
        killed = _subprocess(["-c", _KILLED_WRITER, str(path)])
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    stale = sorted(p.name for p in out.rglob(".*.tmp"))
    assert len(stale) == 2 and any(s.startswith(".checkpoint.pt.") for s in stale), stale
    others = [out / ".notes.txt.0123456789ab.tmp", out / ".checkpoint.pt.tmp"]  # not the trainer's
    for path in others:
        path.write_text("keep")

    _quiet(load_config(None, RUN), out, resume=True)
    assert sorted(out.rglob(".*.tmp")) == sorted(others)
    for path in others:
        path.unlink()
    assert_same_run(straight, out)


# the child trains (the CLI) and is killed in the middle of its KILL_AT-th checkpoint write
_KILLED_TRAINER = """
import os, signal, sys
import fairmetric.utils as utils
from fairmetric.cli import main

real, writes = utils.atomic_write, [0]

def killing(path, write):
    if str(path).endswith("checkpoint.pt"):
        writes[0] += 1
        if writes[0] == int(os.environ["KILL_AT"]):
            def half(f):
                f.write(b"PK half a checkpoint")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, half)
    return real(path, write)

utils.atomic_write = killing
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_a_checkpoint_write_resumes_exactly_without_leftovers(tmp_path, straight):
    out = tmp_path / "run"
    args = ["train", *RUN, "train.checkpoint_every=2", "--out", str(out), "--no-progress"]
    killed = _subprocess(["-c", _KILLED_TRAINER, *args], {"KILL_AT": "5"})  # epoch 2, step 4
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (tmp,) = out.glob(".checkpoint.pt.*.tmp")  # what the kill left
    saved = load_checkpoint(out / "checkpoint.pt")  # the previous one, intact
    assert (saved["epoch"], saved["step"]) == (1, 2)

    assert main([*args, "--resume"]) == 0
    assert not tmp.exists() and not list(out.rglob("*.tmp"))
    assert not (out / LOCK_FILE).exists()
    assert_same_run(straight, out)


# -- the metrics log and the checkpoint ----------------------------------------------------------


class _Crash(RuntimeError):
    pass


def test_crash_writing_the_last_metrics_line_resumes_complete(tmp_path, monkeypatch, straight):
    out = tmp_path / "run"
    real = trainer_module.atomic_write_bytes

    def crashing(path, data):
        if Path(path).name == "metrics.jsonl" and data.count(b"\n") == 3:  # epochs 0, 1, 2
            raise _Crash("killed while writing the last epoch's metrics")
        return real(path, data)

    monkeypatch.setattr(trainer_module, "atomic_write_bytes", crashing)
    with pytest.raises(_Crash):
        _quiet(load_config(None, RUN), out)
    monkeypatch.undo()
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1  # the log came first
    _quiet(load_config(None, RUN), out, resume=True)
    assert [m["epoch"] for m in _metrics(out)] == [0, 1, 2]
    assert_same_run(straight, out)


def test_crash_between_metrics_and_checkpoint_cuts_the_log_back(tmp_path, monkeypatch, straight):
    out = tmp_path / "run"
    real = trainer_module.save_checkpoint

    def crashing(state, path):
        if state["epoch"] == 2 and state["step"] == 0:
            raise _Crash("killed before the last checkpoint")
        return real(state, path)

    monkeypatch.setattr(trainer_module, "save_checkpoint", crashing)
    with pytest.raises(_Crash):
        _quiet(load_config(None, RUN), out)
    monkeypatch.undo()
    assert [m["epoch"] for m in _metrics(out)] == [0, 1, 2]  # the log is ahead of the checkpoint
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1

    seen = []  # the log when training continues: cut back to what the checkpoint covers
    real_epoch = trainer_module.Trainer.run_epoch

    def look_and_run(self, epoch):
        seen.append([m["epoch"] for m in _metrics(out)])
        return real_epoch(self, epoch)

    monkeypatch.setattr(trainer_module.Trainer, "run_epoch", look_and_run)
    _quiet(load_config(None, RUN), out, resume=True)
    assert seen == [[0, 1]]
    assert_same_run(straight, out)
