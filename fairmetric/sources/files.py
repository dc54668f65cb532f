"""Precomputed embedding sources: files written by :meth:`EmbeddingSet.save`, and a matrix
(``.npy``, or an ``.npz`` / ``.safetensors`` file holding one array) with a table of labels and
attributes: a CSV whose first column is ``label``, or any CSV / Parquet table with the columns
chosen by name (:class:`~fairmetric.sources.tables.Columns`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.data.csv_table import read_csv_table
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError
from fairmetric.sources.tables import Columns, read_table, select_columns

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


def _matrix(path: Path) -> np.ndarray:
    """The one array of a plain ``.npy`` / ``.npz`` / ``.safetensors`` file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            from safetensors.numpy import load_file

            arrays = load_file(str(path))
    except ValueError as e:
        raise ValueError(f"{path} is not a plain numpy array file ({e})") from None
    if "embeddings" in arrays:
        return arrays["embeddings"]
    if len(arrays) != 1:
        raise UserError(
            f"{path} holds {len(arrays)} arrays ({', '.join(sorted(arrays))}); with a labels "
            "table it must hold one matrix (or one named 'embeddings')"
        )
    return next(iter(arrays.values()))


def load_embedding_file(
    path: Path, labels_csv: str | Path | None, text: str, columns: Columns | None = None
) -> EmbeddingSet:
    """An ``.npz`` / ``.safetensors`` embedding file, or a matrix with a labels table.

    With ``columns`` naming any column, the table (``labels_csv``: CSV or Parquet) is read by
    :func:`~fairmetric.sources.tables.select_columns`; otherwise a ``.npy`` matrix needs a CSV whose
    header is ``label,<attribute columns...>``.
    """
    suffix = path.suffix.lower()
    columns = columns or Columns()
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    if suffix in (".npz", ".safetensors") and labels_csv is None:
        if columns.any():
            raise UserError(
                f"column flags (--label-column, ...) choose columns of a table: pass the table "
                f"of {path} with --labels TABLE"
            )
        return EmbeddingSet.load(path, allow_invalid=True)
    if labels_csv is None:
        raise ValueError(f"a .npy matrix carries no labels: pass --labels CSV for {path}")
    matrix = _matrix(path)
    if columns.any() or suffix != ".npy" or Path(labels_csv).suffix.lower() != ".csv":
        if columns.text is not None or columns.embedding is not None:
            raise UserError(
                f"{path} already holds the embeddings: --text-column and --embedding-column "
                "apply to a table given as the source"
            )
        fields = select_columns(read_table(labels_csv), columns, n=len(matrix))
        return EmbeddingSet(
            embeddings=matrix, allow_invalid=True, metadata={"source": text}, **fields
        )
    columns_ = read_labels_csv(Path(labels_csv), len(matrix))
    return EmbeddingSet(
        embeddings=matrix, allow_invalid=True, metadata={"source": text}, **columns_
    )
