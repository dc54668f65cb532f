"""A generic image dataset: a folder of images plus a CSV of labels and attributes.

The CSV has a header and one row per image; by default its columns are ``path,label,<attribute
columns...>``::

    path,label,gender,skin
    images/a.png,alice,female,dark
    images/b.png,bob,male,light

Columns are found by name, so any table works once its columns are named: ``path_column``,
``label_column`` and ``attribute_columns`` (default: every other column), e.g.
``load_folder_csv(root, csv_file="people.csv", path_column="file", label_column="person",
attribute_columns=["skin", "sex"])``; other columns are ignored.

Paths are relative to ``root`` and must stay inside it once resolved (symbolic links followed):
a row like ``../../etc/passwd``, or an absolute path elsewhere, is refused naming the row unless
``allow_outside_root=True``. A column whose values are all non-negative integers written plainly
(``0``, ``7``, ``10``; see :func:`~fairmetric.data.csv_table.typed_column`) is read as integer
codes; any other column is read as strings (``007`` and ``7`` are two values), mapped to integers
in sorted order with the names kept. Header names must be distinct.

Images are decoded when loaded; one PIL cannot read raises a ``ValueError`` naming the file. With
``skip_unreadable=True`` every image is decoded once up front and the unreadable ones are dropped,
with a warning and the list in ``dataset.skipped``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from fairmetric.data.csv_table import CsvTable, read_csv_table, typed_column
from fairmetric.data.dataset import (
    SKIP_HINT,
    ImageFileDataset,
    unreadable_images,
    warn_skipped,
)

__all__ = ["load_folder_csv"]


def load_folder_csv(
    root: str | Path,
    *,
    csv_file: str | Path = "labels.csv",
    image_size: int = 64,
    transform: Callable[[Any], torch.Tensor] | None = None,
    name: str = "folder",
    skip_unreadable: bool = False,
    allow_outside_root: bool = False,
    path_column: str = "path",
    label_column: str = "label",
    attribute_columns: Sequence[str] | None = None,
) -> ImageFileDataset:
    """Load images listed in a CSV with their labels and sensitive attributes.

    Args:
        root: the dataset folder; image paths and ``csv_file`` are relative to it.
        csv_file: the CSV (a header naming its columns), relative to ``root`` or absolute.
        image_size: side of the square image tensors.
        transform: maps a PIL image to a tensor (default: resize and scale to ``[0, 1]``).
        name: the dataset's name in reports.
        skip_unreadable: decode every image now and drop those PIL cannot read (truncated,
            empty, not an image), with a warning; ``dataset.skipped`` lists ``(path, reason)``.
            Without it an unreadable image raises a ``ValueError`` naming it when it is loaded.
        allow_outside_root: accept image paths that resolve outside ``root``.
        path_column: the column of the image paths.
        label_column: the column of the class labels (e.g. the identity).
        attribute_columns: the columns of the sensitive attributes, in this order (default:
            every column but the path and label columns, in the file's order).

    Returns:
        An :class:`ImageFileDataset` in the order of the CSV rows (less the skipped ones); its
        ``sample_ids`` are the CSV's paths relative to ``root`` (``images/a.png``).

    Raises:
        FileNotFoundError: ``root``, the CSV or a listed image is missing.
        ValueError: a malformed header or row (named by file and line), a named column the
            header lacks, a path outside ``root``, no rows, or (with ``skip_unreadable``) no
            readable image.
    """
    for flag, value in (
        ("skip_unreadable", skip_unreadable),
        ("allow_outside_root", allow_outside_root),
    ):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: {flag} must be true or false, got {value!r}")
    roles = _check_column_names(name, path_column, label_column, attribute_columns)
    root = Path(root)
    expected = f"'{path_column},{label_column},<attribute columns...>'"
    layout = (
        f"the layout is an image folder plus a CSV with header {expected} (columns found by "
        "name) and image paths relative to the folder"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: expected a folder at {root}; {layout}")
    csv_path = root / csv_file
    if not csv_path.is_file():
        raise FileNotFoundError(f"{name}: expected {csv_path}; {layout}")

    table = read_csv_table(csv_path, required=(), expected=expected, prefix=f"{name}: ")
    header = table.header
    for column, role in roles.items():
        if column not in header:
            raise ValueError(
                f"{name}: {csv_path} line 1: expected a header {expected}, got "
                f"{','.join(header)!r}: no column {column!r} ({role}); name the columns with "
                "path_column, label_column and attribute_columns (--path-column, "
                "--label-column, --attribute-columns)"
            )
    p, lab = header.index(path_column), header.index(label_column)
    attributes = (
        [h for h in header if h not in (path_column, label_column)]
        if attribute_columns is None
        else list(attribute_columns)
    )
    for row, line in zip(table.rows, table.lines):
        if len(row) != len(header) or not row[p] or not row[lab] or "\x00" in row[p]:
            raise ValueError(
                f"{name}: {csv_path} line {line}: expected {len(header)} values "
                f"({','.join(header)}) with a path and a label, got {row}"
            )
    if not table.rows:
        raise ValueError(f"{name}: {csv_path} lists no images")

    paths = [root / r[p] for r in table.rows]
    if not allow_outside_root:
        _check_inside(root, table, paths, name, p)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name}: {len(missing)} image(s) listed in {csv_path} are missing, first: {missing[0]}"
        )
    rows = table.rows
    skipped: tuple[tuple[str, str], ...] = ()
    if skip_unreadable:
        skipped = tuple((str(p), reason) for p, reason in unreadable_images(paths))
        if skipped:
            warn_skipped(name, csv_path, skipped, len(paths))
            drop = {p for p, _ in skipped}
            keep = [i for i, p in enumerate(paths) if str(p) not in drop]
            paths = [paths[i] for i in keep]
            rows = [rows[i] for i in keep]

    def column(h: str) -> list[int] | list[str]:
        j = header.index(h)
        return typed_column([r[j] for r in rows])

    dataset = ImageFileDataset(
        paths,
        transform=transform,
        image_size=image_size,
        labels=column(label_column),
        attributes={a: column(a) for a in attributes},
        name=name,
        unreadable_hint=SKIP_HINT,
        root=root,
    )
    dataset.skipped = skipped
    return dataset


def _check_column_names(
    name: str, path_column: Any, label_column: Any, attribute_columns: Any
) -> dict[str, str]:
    """``{column: role}`` of the named columns; each name a non-empty string, used once."""
    if isinstance(attribute_columns, str) or not (
        attribute_columns is None or isinstance(attribute_columns, Sequence)
    ):
        raise ValueError(
            f"{name}: attribute_columns must be a list of column names, got {attribute_columns!r}"
        )
    named = [("path_column", path_column), ("label_column", label_column)]
    named += [("attribute_columns", a) for a in attribute_columns or ()]
    roles: dict[str, str] = {}
    for arg, column in named:
        if not isinstance(column, str) or not column:
            raise ValueError(f"{name}: {arg} must be a non-empty column name, got {column!r}")
        if column in roles:
            raise ValueError(
                f"{name}: column {column!r} is named twice ({roles[column]} and {arg}); each "
                "column has one role"
            )
        roles[column] = arg
    return roles


def _check_inside(
    root: Path, table: CsvTable, paths: list[Path], name: str, column: int = 0
) -> None:
    """Every path, resolved (symbolic links followed), lies inside ``root``."""
    base = root.resolve()
    for row, line, path in zip(table.rows, table.lines, paths):
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as e:  # a symbolic-link loop, a path too long
            raise ValueError(
                f"{name}: {table.path} line {line}: image path {row[column]!r} cannot be "
                f"resolved ({e})"
            ) from None
        if not resolved.is_relative_to(base):
            raise ValueError(
                f"{name}: {table.path} line {line}: image path {row[column]!r} resolves to "
                f"{resolved}, outside the dataset folder {base}; image paths must stay inside it "
                "(set allow_outside_root=True, data.params.allow_outside_root=true, to read "
                "files elsewhere)"
            )
