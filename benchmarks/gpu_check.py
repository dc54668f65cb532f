"""The GPU check (issue 17): the CUDA paths of fairmetric, run unattended in one go.

One line per check, ``PASS``, ``FAIL`` or ``SKIP`` with the reason, then a summary line; exit
status 1 when a check fails, else 0:

1. ``train-bf16``: ``fairmetric train`` on CUDA with bf16 autocast and channels-last (ResNet-18,
   64 px coloured digits, one short epoch): the run finishes with a finite loss.
2. ``ddp-nccl``: the same with ``--nproc 2`` (torchrun, NCCL, DistributedDataParallel) when the
   machine has two GPUs; the metrics log says world size 2.
3. ``faiss-gpu``: an audit of 50,000 x 128 embeddings with GPU faiss equals the CPU audit, every
   metric and group value (the neighbours are re-ranked exactly in float64 on both paths).
4. ``train-throughput``: ``benchmarks/train_throughput.py`` at ResNet-50 / 224 px / bf16 /
   channels-last: fairmetric's images per second over a plain timm + PML loop's (target 0.9).
5. ``embed-throughput``: ``fairmetric.models.embed.embed_dataset`` against a plain
   ``torch.inference_mode`` loop over the same loader, ResNet-50 / 224 px / bf16: the ratio of
   images per second (target 0.9).

Without a CUDA device every check is skipped with that reason (so the script is safe to run
anywhere, and CI smoke-tests it); ``--cpu`` instead runs checks 1, 3 (CPU faiss against itself
is pointless, so skipped), 4 and 5 on the CPU at toy sizes, to test the script itself. Each
check has a time limit; the whole script is meant to finish in under 8 minutes on one GPU.

    bash benchmarks/gpu_check.sh          # or: make gpu-check
    python benchmarks/gpu_check.py --cpu  # the script's own smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.9


class Skip(Exception):
    """The check does not apply here (the message says why)."""


def _fairmetric(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fairmetric", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _train_args(out: Path, cpu: bool) -> list[str]:
    if cpu:  # toy: the script's own smoke run
        over = ["model.backbone=test_resnet", "data.image_size=16", "train.device=cpu"]
        over += ["train.batches_per_epoch=3"]
    else:
        over = ["model.backbone=resnet18", "data.image_size=64", "train.device=cuda"]
        over += ["train.precision=bf16", "train.channels_last=true", "train.batches_per_epoch=40"]
        over += ["train.num_workers=4"]
    over += ["train.epochs=1", "data.params.copies=1"]
    return ["train", *over, "--out", str(out), "--no-progress"]


def _last_metrics(out: Path) -> dict:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def check_train(cpu: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        done = _fairmetric(_train_args(out, cpu), timeout=240)
        if done.returncode != 0:
            raise AssertionError(f"fairmetric train exited {done.returncode}: {done.stderr[-400:]}")
        rec = _last_metrics(out)
        if not math.isfinite(rec["loss"]):
            raise AssertionError(f"non-finite loss {rec['loss']}")
        how = "CPU toy run, fp32" if cpu else "bf16, channels-last"
        return f"{how}: loss {rec['loss']:.4f}, {rec['images_per_second']:.0f} images/s"


def check_ddp(cpu: bool) -> str:
    import torch

    if cpu:
        raise Skip("NCCL needs GPUs (the CPU path, Gloo, is tested by the test suite)")
    if torch.cuda.device_count() < 2:
        raise Skip(f"{torch.cuda.device_count()} GPU: 2-process NCCL DDP needs 2")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        done = _fairmetric([*_train_args(out, cpu), "--nproc", "2"], timeout=300)
        if done.returncode != 0:
            raise AssertionError(f"torchrun exited {done.returncode}: {done.stderr[-400:]}")
        rec = _last_metrics(out)
        if rec["world_size"] != 2 or not math.isfinite(rec["loss"]):
            raise AssertionError(f"world size {rec['world_size']}, loss {rec['loss']}")
        return f"world size 2, loss {rec['loss']:.4f}, {rec['images_per_second']:.0f} images/s"


def check_faiss_gpu(cpu: bool) -> str:
    import faiss
    import numpy as np

    from fairmetric import EmbeddingSet
    from fairmetric.audit import audit

    if cpu:
        raise Skip("compares GPU faiss with CPU faiss")
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        raise Skip("the installed faiss has no GPU support (faiss-cpu); install faiss-gpu")
    rng = np.random.default_rng(0)
    n = 50_000
    emb = EmbeddingSet(
        embeddings=rng.normal(size=(n, 128)).astype(np.float32),
        labels=rng.integers(0, 5000, size=n),
        attributes={"g": rng.integers(0, 3, size=n)},
    )
    kwargs = dict(ks=(1, 4), bootstrap=0, linear_probe=False, index="exact")
    t0 = time.perf_counter()
    on_gpu = audit(emb, use_gpu=True, **kwargs).to_dict()["metrics"]
    t_gpu = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_cpu = audit(emb, use_gpu=False, **kwargs).to_dict()["metrics"]
    t_cpu = time.perf_counter() - t0
    differ = [k for k in on_cpu if on_cpu[k]["by_group"] != on_gpu[k]["by_group"]]
    if differ:
        raise AssertionError(f"GPU and CPU audits differ in {differ}")
    return f"{len(on_cpu)} metrics equal; audit {t_gpu:.1f} s on GPU, {t_cpu:.1f} s on CPU"


def check_train_throughput(cpu: bool) -> str:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py")]
    if cpu:
        cmd += ["--quick"]
    else:
        cmd += ["--device", "cuda", "--backbone", "resnet50", "--image-size", "224"]
        cmd += ["--precision", "bf16", "--channels-last", "--num-workers", "4"]
        cmd += ["--batch-size", "64", "--steps", "20", "--epochs", "2", "--rounds", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if done.returncode != 0:
        raise AssertionError(f"train_throughput.py exited {done.returncode}: {done.stderr[-400:]}")
    match = re.search(r"fairmetric / plain = ([0-9.]+)", done.stdout)
    if match is None:
        raise AssertionError("train_throughput.py printed no ratio")
    ratio = float(match.group(1))
    verdict = "meets" if ratio >= TARGET else "below"
    line = f"fairmetric / plain = {ratio:.2f} ({verdict} the {TARGET} target)"
    if ratio < TARGET and not cpu:
        raise AssertionError(line)
    return line


def check_embed_throughput(cpu: bool) -> str:
    import numpy as np
    import torch

    from fairmetric.data.dataset import TensorAttributeDataset
    from fairmetric.models.embed import embed_dataset
    from fairmetric.models.embedder import Embedder

    device = torch.device("cpu" if cpu else "cuda")
    backbone, size, n, batch = ("test_resnet", 32, 256, 64) if cpu else ("resnet50", 224, 4096, 256)
    precision = "fp32" if cpu else "bf16"
    g = torch.Generator().manual_seed(0)
    images = torch.rand((n, 3, size, size), generator=g)
    data = TensorAttributeDataset(
        images, labels=np.arange(n) % 10, attributes={"g": np.arange(n) % 2}
    )
    model = Embedder(backbone=backbone, embedding_dim=128, input_size=(3, size, size)).eval()

    def fairmetric_run() -> float:
        t0 = time.perf_counter()
        embed_dataset(
            model,
            data,
            batch_size=batch,
            device=str(device),
            precision=precision,
            channels_last=not cpu,
        )
        return n / (time.perf_counter() - t0)

    def plain_run() -> float:
        loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False)
        model.to(device)
        fmt = torch.channels_last if not cpu else torch.contiguous_format
        net = model.to(memory_format=fmt)
        t0 = time.perf_counter()
        out = []
        with torch.inference_mode():
            for x, _y, _a in loader:
                x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=not cpu):
                    out.append(net(x).float().cpu())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return n / (time.perf_counter() - t0)

    fairmetric_run(), plain_run()  # warm-up (cuDNN autotuning, allocator)
    rates = [(fairmetric_run(), plain_run()) for _ in range(3)]
    ratio = float(np.median([f / p for f, p in rates]))
    verdict = "meets" if ratio >= TARGET else "below"
    line = (
        f"fairmetric / plain = {ratio:.2f} ({verdict} the {TARGET} target; "
        f"{np.median([f for f, _ in rates]):.0f} vs {np.median([p for _, p in rates]):.0f} "
        "images/s)"
    )
    if ratio < TARGET and not cpu:
        raise AssertionError(line)
    return line


CHECKS: list[tuple[str, Callable[[bool], str]]] = [
    ("train-bf16", check_train),
    ("ddp-nccl", check_ddp),
    ("faiss-gpu", check_faiss_gpu),
    ("train-throughput", check_train_throughput),
    ("embed-throughput", check_embed_throughput),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="toy sizes on the CPU (smoke run)")
    parser.add_argument("--only", help="comma-separated check names")
    args = parser.parse_args(argv)
    import torch

    if args.cpu:  # small models on a loaded CPU: one thread is fastest
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    names = [n for n, _ in CHECKS]
    chosen = names if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown checks {unknown}; the checks are {', '.join(names)}")
    where = "CPU (toy sizes)" if args.cpu else (torch.cuda.get_device_name(0) if cuda else "no GPU")
    print(f"fairmetric GPU check on {where}; torch {torch.__version__}")
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for name, check in CHECKS:
        if name not in chosen:
            continue
        t0 = time.perf_counter()
        try:
            if not args.cpu and not cuda:
                raise Skip("no CUDA device (torch.cuda.is_available() is False)")
            status, detail = "PASS", check(args.cpu)
        except Skip as e:
            status, detail = "SKIP", str(e)
        except subprocess.TimeoutExpired as e:
            status, detail = "FAIL", f"timed out after {e.timeout:.0f} s"
        except Exception as e:  # a failed check is reported, the others still run
            status, detail = "FAIL", f"{type(e).__name__}: {e}"
        counts[status] += 1
        print(f"{status} {name}: {detail} [{time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
