"""``fairmetric env``: versions of the libraries fairmetric builds on, and the devices it sees."""

from __future__ import annotations

import importlib
import os
import platform
import sys

__all__ = ["environment_report"]


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except ImportError:
        return "not installed"


def environment_report() -> str:
    """A human-readable report of versions and devices."""
    import torch

    from fairmetric import __version__

    lines = [
        f"fairmetric              {__version__}",
        f"python                  {sys.version.split()[0]} ({platform.platform()})",
        f"torch                   {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})",
    ]
    for name, module in [
        ("torchvision", "torchvision"),
        ("timm", "timm"),
        ("pytorch-metric-learning", "pytorch_metric_learning"),
        ("faiss", "faiss"),
        ("numpy", "numpy"),
        ("scikit-learn", "sklearn"),
        ("safetensors", "safetensors"),
    ]:
        lines.append(f"{name:<24}{_version(module)}")
    lines.append(f"cpu threads (torch)     {torch.get_num_threads()} of {os.cpu_count()} cores")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(f"cuda:{i:<19}{torch.cuda.get_device_name(i)}")
    else:
        lines.append("cuda                    not available (training and embedding run on CPU)")
    lines.append(f"distributed backends    {_backends(torch)}")
    if torch.cuda.is_available():
        bf16 = "yes" if torch.cuda.is_bf16_supported() else "no (use fp16)"
        lines.append(f"bf16 on GPU             {bf16}")
    try:
        import faiss

        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        lines.append(f"faiss GPUs              {gpus}")
    except ImportError:
        pass
    return "\n".join(lines)


def _backends(torch) -> str:
    """The torch.distributed backends this build offers (what ``train.backend`` can use)."""
    import torch.distributed as dist

    if not dist.is_available():
        return "none (this torch build has no torch.distributed)"
    found = [name for name in ("gloo", "nccl", "mpi") if getattr(dist, f"is_{name}_available")()]
    return ", ".join(found) or "none"
