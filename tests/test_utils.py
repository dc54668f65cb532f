"""Tests for fairmetric.utils: devices, seeding and atomic writes."""

from __future__ import annotations

import os
import random
import stat

import numpy as np
import pytest
import torch

from fairmetric.utils import atomic_write, atomic_write_bytes, resolve_device, seed_everything

# -- resolve_device ------------------------------------------------------------------------------


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_auto_is_cuda_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cpu:0") == torch.device("cpu", 0)


def test_device_objects_pass_through():
    dev = torch.device("cpu")
    assert resolve_device(dev) is dev


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", "CPU!"])
def test_invalid_device_string(bad):
    with pytest.raises(ValueError, match=f"invalid device {bad!r}.*use 'auto', 'cpu'"):
        resolve_device(bad)


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available; use 'cpu' or 'auto'"):
        resolve_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_with_cuda():
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


# -- seed_everything -----------------------------------------------------------------------------


def draws() -> tuple:
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        torch.rand(3).tolist(),
        torch.randint(0, 1000, (3,)).tolist(),
    )


@pytest.mark.parametrize("seed", [0, 7, 2**32 + 5, 2**40])
def test_seed_everything_reproduces_all_generators(seed):
    seed_everything(seed)
    first = draws()
    draws()  # move every generator on
    seed_everything(seed)
    assert draws() == first


def test_different_seeds_differ():
    seed_everything(1)
    a = draws()
    seed_everything(2)
    b = draws()
    for x, y in zip(a, b):
        assert x != y


# -- atomic writes -------------------------------------------------------------------------------


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_bytes_content_and_parents(tmp_path):
    path = tmp_path / "a" / "b" / "file.bin"
    out = atomic_write_bytes(path, b"\x00hello\xff")
    assert out == path
    assert path.read_bytes() == b"\x00hello\xff"
    assert listing(path.parent) == ["file.bin"]


def test_atomic_write_streams_and_accepts_str_paths(tmp_path):
    def write(f):
        for i in range(3):
            f.write(f"line {i}\n".encode())

    out = atomic_write(str(tmp_path / "f.txt"), write)
    assert out == tmp_path / "f.txt"
    assert (tmp_path / "f.txt").read_text() == "line 0\nline 1\nline 2\n"


def test_atomic_write_replaces_existing_content(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("a much longer old content")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert listing(tmp_path) == ["f.txt"]


def test_empty_content(tmp_path):
    atomic_write_bytes(tmp_path / "empty", b"")
    assert (tmp_path / "empty").read_bytes() == b""


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failure_midway_keeps_old_content_and_no_temp_files(tmp_path, error):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def write(f):
        f.write(b"half of the new")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, write)
    assert path.read_text() == "old"
    assert listing(tmp_path) == ["f.txt"]


def test_failure_without_an_old_file_leaves_nothing(tmp_path):
    def write(f):
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        atomic_write(tmp_path / "f.txt", write)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_failure_in_fsync_or_replace(tmp_path, monkeypatch, fail):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def boom(*args, **kwargs):
        raise OSError(fail)

    monkeypatch.setattr(os, fail, boom)
    with pytest.raises(OSError, match=fail):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert listing(tmp_path) == ["f.txt"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "f.txt", b"x")
        plain = tmp_path / "plain.txt"
        with open(plain, "wb") as f:  # what a plain open() gives, for comparison
            f.write(b"x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "f.txt").stat().st_mode)
    assert mode == 0o666 & ~umask
    assert mode == stat.S_IMODE(plain.stat().st_mode)


def test_faiss_threads_sets_and_restores_the_thread_count():
    import faiss

    from fairmetric.utils import faiss_threads

    before = faiss.omp_get_max_threads()
    with faiss_threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
    with faiss_threads(None):  # None leaves it alone
        assert faiss.omp_get_max_threads() == before
    with pytest.raises(RuntimeError), faiss_threads(1):
        raise RuntimeError("restored even when the body raises")
    assert faiss.omp_get_max_threads() == before
