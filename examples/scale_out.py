"""Scale out: train with several processes (DDP under torchrun), then resume on another count.

Run: python examples/scale_out.py [--nproc N] [--epochs N] [--precision fp32|bf16|fp16]
    [--out DIR]

On a machine with GPUs each process takes one GPU; here, on CPUs, they are Gloo processes, which
is enough to see the mechanics on the Gaussian benchmark (vectors, seconds per epoch):

1. ``fairmetric train --nproc N`` launches ``torchrun --nproc_per_node=N -m fairmetric train``.
   Every process trains on its own ``train.batch_size`` samples per step, the objective sees all
   ``N × batch_size`` of them (gathered), and rank 0 writes the run folder;
2. the run is continued on one process with ``--resume`` (the checkpoint says how many processes
   wrote it; the epoch's remaining batches are dealt to the processes there are now), in the
   chosen precision and with a checkpoint every 2 steps;
3. the per-epoch throughput and world size are read back from ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "gaussian_baseline.yaml"


def fairmetric(*args: str) -> None:
    """Run the ``fairmetric`` command line (as ``python -m fairmetric``), failing loudly."""
    cmd = [sys.executable, "-m", "fairmetric", *args]
    print("$ fairmetric " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes of the first run")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the first run")
    parser.add_argument("--precision", default="bf16", help="precision of the resumed epoch")
    parser.add_argument("--out", type=Path, help="run folder (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fairmetric-scale-out-")) / "run"

    common = ["--config", str(CONFIG), "--no-progress", "--out", str(out)]
    fairmetric("train", *common, f"train.epochs={args.epochs}", "--nproc", str(args.nproc))
    fairmetric(
        "train",
        *common,
        f"train.epochs={args.epochs + 1}",
        f"train.precision={args.precision}",
        "train.checkpoint_every=2",
        "--resume",
    )

    print("\nepoch  processes  images/s  loss    Recall@1  group gap")
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["epoch"] == 0:
            continue
        r1 = record["metrics"]["recall@1"]
        print(
            f"{record['epoch']:>5}  {record['world_size']:>9}  {record['images_per_second']:>8.0f}"
            f"  {record['loss']:.4f}  {r1['overall']:.3f}     {r1['gap']['group']:.3f}"
        )
    print(f"\nrun folder: {out}")


if __name__ == "__main__":
    main()
