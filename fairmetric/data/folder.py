"""A generic image dataset: a folder of images plus a CSV of labels and attributes.

The CSV has a header ``path,label,<attribute columns...>`` and one row per image::

    path,label,gender,skin
    images/a.png,alice,female,dark
    images/b.png,bob,male,light

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

from collections.abc import Callable
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
) -> ImageFileDataset:
    """Load images listed in a CSV with their labels and sensitive attributes.

    Args:
        root: the dataset folder; image paths and ``csv_file`` are relative to it.
        csv_file: the CSV (header ``path,label,<attributes...>``), relative to ``root`` or absolute.
        image_size: side of the square image tensors.
        transform: maps a PIL image to a tensor (default: resize and scale to ``[0, 1]``).
        name: the dataset's name in reports.
        skip_unreadable: decode every image now and drop those PIL cannot read (truncated,
            empty, not an image), with a warning; ``dataset.skipped`` lists ``(path, reason)``.
            Without it an unreadable image raises a ``ValueError`` naming it when it is loaded.
        allow_outside_root: accept image paths that resolve outside ``root``.

    Returns:
        An :class:`ImageFileDataset` in the order of the CSV rows (less the skipped ones); its
        ``sample_ids`` are the CSV's paths relative to ``root`` (``images/a.png``).

    Raises:
        FileNotFoundError: ``root``, the CSV or a listed image is missing.
        ValueError: a malformed header or row (named by file and line), a path outside ``root``,
            no rows, or (with ``skip_unreadable``) no readable image.
    """
    for flag, value in (
        ("skip_unreadable", skip_unreadable),
        ("allow_outside_root", allow_outside_root),
    ):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: {flag} must be true or false, got {value!r}")
    root = Path(root)
    layout = (
        "the layout is an image folder plus a CSV with header 'path,label,<attribute columns...>' "
        "and image paths relative to the folder"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: expected a folder at {root}; {layout}")
    csv_path = root / csv_file
    if not csv_path.is_file():
        raise FileNotFoundError(f"{name}: expected {csv_path}; {layout}")

    table = read_csv_table(
        csv_path,
        required=("path", "label"),
        expected="'path,label,<attribute columns...>'",
        prefix=f"{name}: ",
    )
    header = table.header
    for row, line in zip(table.rows, table.lines):
        if len(row) != len(header) or not row[0] or not row[1] or "\x00" in row[0]:
            raise ValueError(
                f"{name}: {csv_path} line {line}: expected {len(header)} values "
                f"({','.join(header)}) with a path and a label, got {row}"
            )
    if not table.rows:
        raise ValueError(f"{name}: {csv_path} lists no images")

    paths = [root / r[0] for r in table.rows]
    if not allow_outside_root:
        _check_inside(root, table, paths, name)
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
    columns = [typed_column([r[j] for r in rows]) for j in range(len(header))]
    dataset = ImageFileDataset(
        paths,
        transform=transform,
        image_size=image_size,
        labels=columns[1],
        attributes=dict(zip(header[2:], columns[2:])),
        name=name,
        unreadable_hint=SKIP_HINT,
        root=root,
    )
    dataset.skipped = skipped
    return dataset


def _check_inside(root: Path, table: CsvTable, paths: list[Path], name: str) -> None:
    """Every path, resolved (symbolic links followed), lies inside ``root``."""
    base = root.resolve()
    for row, line, path in zip(table.rows, table.lines, paths):
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as e:  # a symbolic-link loop, a path too long
            raise ValueError(
                f"{name}: {table.path} line {line}: image path {row[0]!r} cannot be resolved ({e})"
            ) from None
        if not resolved.is_relative_to(base):
            raise ValueError(
                f"{name}: {table.path} line {line}: image path {row[0]!r} resolves to "
                f"{resolved}, outside the dataset folder {base}; image paths must stay inside it "
                "(set allow_outside_root=True, data.params.allow_outside_root=true, to read "
                "files elsewhere)"
            )
