"""A generic image dataset: a folder of images plus a CSV of labels and attributes.

The CSV has a header ``path,label,<attribute columns...>`` and one row per image::

    path,label,gender,skin
    images/a.png,alice,female,dark
    images/b.png,bob,male,light

Paths are relative to ``root`` (absolute paths are kept). A column whose values are all
non-negative integers is read as integer codes; any other column is read as strings, mapped to
integers in sorted order with the names kept.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fairmetric.data.dataset import ImageFileDataset

__all__ = ["load_folder_csv"]


def load_folder_csv(
    root: str | Path,
    *,
    csv_file: str | Path = "labels.csv",
    image_size: int = 64,
    transform: Callable[[Any], torch.Tensor] | None = None,
    name: str = "folder",
) -> ImageFileDataset:
    """Load images listed in a CSV with their labels and sensitive attributes.

    Args:
        root: the dataset folder; image paths and ``csv_file`` are relative to it.
        csv_file: the CSV (header ``path,label,<attributes...>``), relative to ``root`` or absolute.
        image_size: side of the square image tensors.
        transform: maps a PIL image to a tensor (default: resize and scale to ``[0, 1]``).
        name: the dataset's name in reports.

    Returns:
        An :class:`ImageFileDataset` in the order of the CSV rows.

    Raises:
        FileNotFoundError: ``root``, the CSV or a listed image is missing.
        ValueError: a malformed header or row (named by file and line), or no rows.
    """
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

    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:2] != ["path", "label"] or len(set(header)) != len(header) or "" in header:
            raise ValueError(
                f"{name}: {csv_path} line 1: expected a header 'path,label,<attribute columns...>' "
                f"with distinct, non-empty names, got {','.join(header)!r}"
            )
        rows = []
        for row in reader:
            if not any(v.strip() for v in row):
                continue
            if len(row) != len(header) or not row[0].strip() or not row[1].strip():
                raise ValueError(
                    f"{name}: {csv_path} line {reader.line_num}: expected {len(header)} values "
                    f"({','.join(header)}) with a path and a label, got {row}"
                )
            rows.append([v.strip() for v in row])
    if not rows:
        raise ValueError(f"{name}: {csv_path} lists no images")

    paths = [root / r[0] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name}: {len(missing)} image(s) listed in {csv_path} are missing, first: {missing[0]}"
        )
    columns = [_typed([r[j] for r in rows]) for j in range(len(header))]
    return ImageFileDataset(
        paths,
        transform=transform,
        image_size=image_size,
        labels=columns[1],
        attributes=dict(zip(header[2:], columns[2:])),
        name=name,
    )


def _typed(values: list[str]) -> list[int] | list[str]:
    """Integers when every value is a non-negative integer, else the strings."""
    return [int(v) for v in values] if all(v.isascii() and v.isdigit() for v in values) else values
