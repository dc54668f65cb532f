"""The small CSV tables of labels and attributes that image folders and ``.npy`` embeddings come
with: one reader, so every table gets the same checks and the same messages.

- decoding (UTF-8, an optional byte-order mark) and CSV syntax errors name the file and line;
- the header's names are stripped and must be non-empty and distinct (``label,grp,grp`` is
  refused naming ``grp``: otherwise one of the two columns would silently win);
- values are stripped; blank lines are skipped; line numbers are the file's.

Columns are typed by :func:`typed_column`: integers only when every value is a plain decimal
integer written the canonical way, so ids such as ``007`` and ``7`` stay two distinct strings.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CsvTable", "read_csv_table", "typed_column"]

_CANONICAL_INT = re.compile(r"0|[1-9][0-9]{0,17}")  # ASCII digits, no leading zero, fits int64
#: an integer column is kept as codes only when its largest value is below this bound (or four
#: times the number of rows): integer codes name every value 0..max, so ids such as 904512 are
#: read as strings instead of allocating a million names
_MAX_CODE = 1 << 16


@dataclass
class CsvTable:
    """A parsed CSV table.

    Attributes:
        path: the file.
        header: the stripped column names.
        rows: the stripped values of each non-blank row (not checked for length).
        lines: the file line number of each row (for messages).
    """

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, j: int) -> list[int] | list[str]:
        """Column ``j`` typed by :func:`typed_column`."""
        return typed_column([r[j] for r in self.rows])


def read_csv_table(
    path: str | Path, *, required: tuple[str, ...], expected: str, prefix: str = ""
) -> CsvTable:
    """Read a CSV table whose header starts with the columns ``required``.

    Args:
        path: the CSV file.
        required: the names the header must start with, in order.
        expected: how the header should look, for messages (e.g. ``"'path,label,<attributes>'"``).
        prefix: put before every message (e.g. the dataset's name and a colon).

    Raises:
        ValueError: not UTF-8, a CSV syntax error, or a header that does not start with
            ``required`` or has empty or repeated names (the message names the column).
    """
    path = Path(path)
    header: list[str] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader, [])]
            for row in reader:
                if any(v.strip() for v in row):
                    rows.append([v.strip() for v in row])
                    lines.append(reader.line_num)
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{prefix}{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8"
            ) from None
        except csv.Error as e:
            raise ValueError(
                f"{prefix}{path} line {reader.line_num}: not valid CSV ({e})"
            ) from None
    shown = ",".join(header)
    if header[: len(required)] != list(required):
        raise ValueError(f"{prefix}{path} line 1: expected a header {expected}, got {shown!r}")
    for i, name in enumerate(header):
        if not name:
            raise ValueError(
                f"{prefix}{path} line 1: expected a header {expected} with distinct, non-empty "
                f"names, but column {i + 1} has no name ({shown!r})"
            )
        if name in header[:i]:
            raise ValueError(
                f"{prefix}{path} line 1: expected a header {expected} with distinct, non-empty "
                f"names, but column {name!r} appears twice (columns {header.index(name) + 1} and "
                f"{i + 1} of {shown!r}); rename or drop one"
            )
    return CsvTable(path=path, header=header, rows=rows, lines=lines)


def typed_column(values: list[str]) -> list[int] | list[str]:
    """Integers when every value is a non-negative integer written canonically, else the strings.

    Canonical means ASCII digits without a leading zero (``0``, ``7``, ``10``), at most 18 of
    them, and the largest value small enough to serve as a code (below 65536 or four times the
    number of values). Anything else keeps every value as its string, so ``007`` and ``7`` stay
    two values and ``²`` (a digit to :meth:`str.isdigit` that :class:`int` refuses) is a string.
    Strings are later mapped to codes in sorted string order
    (:func:`~fairmetric.data.dataset.encode_column`).
    """
    if not values or not all(_CANONICAL_INT.fullmatch(v) for v in values):
        return values
    ints = [int(v) for v in values]
    return ints if max(ints) < max(_MAX_CODE, 4 * len(ints)) else values
