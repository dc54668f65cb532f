"""Precomputed embedding sources: files written by :meth:`EmbeddingSet.save`, and a ``.npy``
matrix with a CSV of labels and attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.data.csv_table import read_csv_table
from fairmetric.embeddings import EmbeddingSet

__all__ = ["load_embedding_file", "read_labels_csv"]


def read_labels_csv(path: Path, n: int) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"labels CSV not found: {path}")
    table = read_csv_table(
        path,
        required=("label",),
        expected="starting with 'label' (label,<attribute columns...>)",
    )
    if len(table.rows) != n:
        raise ValueError(
            f"{path} has {len(table.rows)} rows but the .npy file has {n} embeddings; they must "
            "match one to one"
        )
    width = len(table.header)
    for row, line in zip(table.rows, table.lines):
        if len(row) != width:
            raise ValueError(f"{path} line {line}: expected {width} fields, got {len(row)}")
    return {
        "labels": table.column(0),
        "attributes": {h: table.column(j) for j, h in enumerate(table.header) if j > 0},
    }


def load_embedding_file(path: Path, labels_csv: str | Path | None, text: str) -> EmbeddingSet:
    """An ``.npz`` / ``.safetensors`` embedding file, or a ``.npy`` matrix with ``labels_csv``."""
    suffix = path.suffix.lower()
    if suffix in (".npz", ".safetensors"):
        return EmbeddingSet.load(path, allow_invalid=True)
    if not path.is_file():
        raise FileNotFoundError(f"embedding matrix not found: {path}")
    if labels_csv is None:
        raise ValueError(f"a .npy matrix carries no labels: pass --labels CSV for {path}")
    try:
        matrix = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path} is not a plain numpy array file ({e})") from None
    columns = read_labels_csv(Path(labels_csv), len(matrix))
    return EmbeddingSet(embeddings=matrix, allow_invalid=True, metadata={"source": text}, **columns)
