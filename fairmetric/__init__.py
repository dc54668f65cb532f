"""fairmetric: fairness in deep metric learning.

Train embedding models whose similarity metric serves every subgroup, audit embedding models
for subgroup gaps, and carry fair embeddings into downstream tasks.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public names, imported lazily so that `fairmetric --help` does not pay for torch
_EXPORTS = {
    "AttributeDataset": "fairmetric.data.dataset",
    "EmbeddingSet": "fairmetric.embeddings",
    "Embedder": "fairmetric.models.embedder",
    "load_embedder": "fairmetric.models.embedder",
    "embed_dataset": "fairmetric.models.embed",
    "load_config": "fairmetric.train.config",
    "compare": "fairmetric.audit.compare",
}

__all__ = ["__version__", "audit", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "audit":  # the subpackage is callable: fairmetric.audit(embeddings, ...)
        return importlib.import_module("fairmetric.audit")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fairmetric' has no attribute {name!r}")
