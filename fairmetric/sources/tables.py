"""Tables of samples with columns chosen by name: CSV or Parquet files holding a label column,
attribute columns, an optional id column, and either a text column (embedded by a text encoder)
or an embedding column (Parquet; precomputed embeddings).

Values keep their identity: CSV values are strings typed by
:func:`~fairmetric.data.csv_table.typed_column` (integers only when written canonically, so ``007``
and ``7`` stay two classes); Parquet string columns stay strings, integer columns go through the
same rule on their decimal strings (so ids like ``904512`` do not become a million codes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric.data.csv_table import read_csv_table, typed_column
from fairmetric.errors import UserError

__all__ = ["TABLE_SUFFIXES", "Columns", "Table", "read_table", "select_columns"]

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
PARQUET_HINT = "pip install 'fairmetric[parquet]'"


@dataclass(kw_only=True)
class Columns:
    """Which columns of a table mean what (``None``: the default; see :func:`select_columns`).

    Attributes:
        label: the class labels (default: the column named ``label``).
        attributes: the sensitive attributes (default: every column not named elsewhere here); a
            single name may be given as a string.
        text: the texts an encoder embeds.
        embedding: a Parquet list column of precomputed embeddings.
        id: unique row ids.
    """

    label: str | None = None
    attributes: Sequence[str] | None = None
    text: str | None = None
    embedding: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.attributes, str):
            self.attributes = [self.attributes]
        for name in ("label", "text", "embedding", "id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Columns({name}=...) must be a column name, got {value!r}")

    def any(self) -> bool:
        return any(
            v is not None for v in (self.label, self.attributes, self.text, self.embedding, self.id)
        )


@dataclass
class Table:
    """A table read whole: its column names, row count and a reader per column."""

    path: Path
    names: list[str]
    n: int
    kind: str  # "csv" or "parquet"
    _csv: Any = None
    _arrow: Any = None
    _lines: list[int] = field(default_factory=list)

    def check(self, name: str, flag: str) -> None:
        if name not in self.names:
            raise UserError(
                f"{flag} {name!r}: no such column in {self.path}; it has: {', '.join(self.names)}"
            )

    def line(self, i: int) -> str:
        return f"line {self._lines[i]}" if self._lines else f"row {i}"

    def raw(self, name: str) -> list[Any]:
        """The column's values as read (CSV: stripped strings; Parquet: Python values)."""
        if self._csv is not None:
            j = self._csv.header.index(name)
            return [r[j] for r in self._csv.rows]
        values = self._arrow.column(name).to_pylist()
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            raise UserError(
                f"{self.path}: column {name!r} has {len(missing)} missing value(s) (first at row "
                f"{missing[0]}); fill or drop those rows"
            )
        return values

    def values(self, name: str) -> list[Any]:
        """Label/attribute values typed so that distinct strings stay distinct (module docstring)."""
        values = self.raw(name)
        if self._csv is not None:
            return typed_column(values)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return typed_column([str(v) for v in values])
        if all(isinstance(v, float) for v in values) and all(
            math.isfinite(v) and v == int(v) for v in values
        ):
            return typed_column([str(int(v)) for v in values])
        return values

    def embeddings(self, name: str) -> np.ndarray:
        """A list / fixed-size-list column as an ``(N, D)`` float32 matrix."""
        if self._arrow is None:
            raise UserError(
                f"--embedding-column needs a Parquet table (a list column); {self.path} is a CSV: "
                "save the embeddings as .npy and pass the CSV with --labels"
            )
        import pyarrow as pa

        col = self._arrow.column(name).combine_chunks()
        t = col.type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            raise UserError(
                f"{self.path}: --embedding-column {name!r} has type {t}; it must be a list of "
                "numbers per row (list<float> or fixed_size_list<float, D>)"
            )
        if col.null_count:
            raise UserError(f"{self.path}: column {name!r} has {col.null_count} missing row(s)")
        if pa.types.is_fixed_size_list(t):
            width = t.list_size
        else:
            lengths = np.asarray(col.value_lengths())
            if len(lengths) and (lengths != lengths[0]).any():
                bad = int(np.flatnonzero(lengths != lengths[0])[0])
                raise UserError(
                    f"{self.path}: column {name!r} has rows of different lengths (row 0: "
                    f"{lengths[0]}, row {bad}: {lengths[bad]}); every embedding needs the same "
                    "width"
                )
            width = int(lengths[0]) if len(lengths) else 0
        flat = col.flatten()
        if not (pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)):
            raise UserError(f"{self.path}: column {name!r} holds {flat.type}, not numbers")
        values = flat.to_numpy(zero_copy_only=False).astype(np.float32)
        return values.reshape(len(col), width)


def read_table(path: str | Path) -> Table:
    """Read a CSV (header row, UTF-8) or Parquet table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    if path.suffix.lower() == ".csv":
        table = read_csv_table(path, required=(), expected="with one name per column")
        width = len(table.header)
        for row, line in zip(table.rows, table.lines):
            if len(row) != width:
                raise UserError(f"{path} line {line}: expected {width} fields, got {len(row)}")
        if not table.rows:
            raise UserError(f"{path} has a header but no rows: nothing to audit")
        return Table(path, table.header, len(table.rows), "csv", _csv=table, _lines=table.lines)
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise UserError(
            f"reading Parquet needs the optional package pyarrow ({e}); install it with: "
            f"{PARQUET_HINT}"
        ) from None
    try:
        arrow = pq.read_table(path)
    except Exception as e:  # pyarrow's own error types: a damaged or non-Parquet file
        raise UserError(f"{path} is not a readable Parquet file ({str(e)[:200]})") from None
    if not arrow.num_rows:
        raise UserError(f"{path} has no rows: nothing to audit")
    return Table(path, list(arrow.column_names), arrow.num_rows, "parquet", _arrow=arrow)


def select_columns(
    table: Table, columns: Columns, *, n: int | None = None, what: str = "embeddings"
) -> dict[str, Any]:
    """Labels, attributes and ids of ``table`` for :class:`~fairmetric.embeddings.EmbeddingSet`.

    The label column defaults to ``label`` when the table has one; the attribute columns default
    to every column that is not the label, text, embedding or id column. ``n`` (when given) is
    the number of embedding rows the table must match.

    Raises:
        UserError: an unknown column (the message lists those that exist), a table whose row
            count differs from ``n``, an empty label, a label column with one value, or
            repeated or empty ids.
    """
    if n is not None and table.n != n:
        raise UserError(
            f"{table.path} has {table.n} rows but there are {n} {what}; they must match one to one"
        )
    label = columns.label
    if label is None:
        if "label" not in table.names:
            raise UserError(
                f"{table.path} has no column named 'label': choose the label column with "
                f"--label-column (columns: {', '.join(table.names)})"
            )
        label = "label"
    table.check(label, "--label-column")
    used = {label}
    for name, flag in (
        (columns.text, "--text-column"),
        (columns.embedding, "--embedding-column"),
        (columns.id, "--id-column"),
    ):
        if name is not None:
            table.check(name, flag)
            used.add(name)
    if columns.attributes is None:
        attributes = [c for c in table.names if c not in used]
    else:
        attributes = list(columns.attributes)
        for a in attributes:
            table.check(a, "--attribute-columns")
            if a in used:
                raise UserError(f"--attribute-columns {a!r} is also the label, text or id column")
        if len(set(attributes)) != len(attributes):
            raise UserError(f"--attribute-columns names a column twice: {','.join(attributes)}")
    labels = table.values(label)
    for i, v in enumerate(labels):
        if isinstance(v, str) and not v:
            raise UserError(f"{table.path} {table.line(i)}: empty label in column {label!r}")
    if len(set(labels)) < 2 and table.n:
        raise UserError(
            f"{table.path}: the label column {label!r} has one value ({labels[0]!r}); the audit "
            "compares classes, so it needs at least two (is --label-column the right column?)"
        )
    out: dict[str, Any] = {
        "labels": labels,
        "attributes": {a: table.values(a) for a in attributes},
    }
    if columns.id is not None:
        ids = [str(v) for v in table.raw(columns.id)]
        seen: dict[str, int] = {}
        for i, v in enumerate(ids):
            if not v:
                raise UserError(f"{table.path} {table.line(i)}: empty id in column {columns.id!r}")
            if v in seen:
                raise UserError(
                    f"{table.path}: id {v!r} appears twice in column {columns.id!r} "
                    f"({table.line(seen[v])} and {table.line(i)}); ids must be unique"
                )
            seen[v] = i
        out["ids"] = ids
    return out


def texts_of(table: Table, column: str) -> list[str]:
    """The text column as strings; an empty text is refused (naming its row)."""
    table.check(column, "--text-column")
    texts = [str(v) for v in table.raw(column)]
    for i, t in enumerate(texts):
        if not t.strip():
            raise UserError(
                f"{table.path} {table.line(i)}: empty text in column {column!r}; fill or drop "
                "that row"
            )
    return texts
