"""CUB-200-2011 read from its official on-disk layout (nothing is downloaded).

The layout of the official tarball (``attributes.txt`` lies next to ``CUB_200_2011/``)::

    attributes.txt                  "1 has_bill_shape::curved_(up_or_down)"
    CUB_200_2011/images.txt         "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
    CUB_200_2011/images/<that path>
    CUB_200_2011/image_class_labels.txt             "1 1"   (1-based class ids)
    CUB_200_2011/classes.txt                        "1 001.Black_footed_Albatross"
    CUB_200_2011/train_test_split.txt               "1 0"   (1 = train, 0 = test)
    CUB_200_2011/bounding_boxes.txt                 "1 60.0 27.0 325.0 304.0"   (x, y, w, h)
    CUB_200_2011/attributes/image_attribute_labels.txt
        "<image_id> <attribute_id> <is_present> <certainty_id> <time>"
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairmetric.data.dataset import (
    SKIP_HINT,
    AttributeDataset,
    ImageFileDataset,
    drop_unreadable,
)

__all__ = ["load_cub"]

_LAYOUT = (
    "CUB-200-2011: the layout is CUB_200_2011/ holding images/, images.txt, image_class_labels.txt, "
    "classes.txt, train_test_split.txt, bounding_boxes.txt and attributes/image_attribute_labels.txt, "
    "with attributes.txt in CUB_200_2011/ or its parent (as in the official tarball)"
)
_Table = dict[int, tuple[list[str], int]]


def load_cub(
    root: str | Path,
    *,
    attributes: Sequence[str] = ("has_primary_color",),
    image_size: int = 64,
    transform: Callable[[Any], torch.Tensor] | None = None,
    crop_to_bbox: bool = False,
    skip_unreadable: bool = False,
) -> ImageFileDataset | AttributeDataset:
    """Load CUB-200-2011 with bird species as labels and annotated attributes.

    An attribute is either a full name such as ``"has_primary_color::black"`` (a binary column,
    value names ``["no", "yes"]``) or a family such as ``"has_primary_color"`` (a categorical
    column: the value marked present with the highest certainty, ties going to the lowest attribute
    id; value names are the value parts, ``"black"`` ..., in attribute id order, then ``"none"``
    for images where no value of the family is marked present).

    Args:
        root: the ``CUB_200_2011`` folder or its parent.
        attributes: attribute names or families to keep.
        image_size: side of the square image tensors.
        transform: maps a PIL image to a tensor (default: resize and scale to ``[0, 1]``).
        crop_to_bbox: crop each image to its box from ``bounding_boxes.txt``.
        skip_unreadable: decode every image now and leave out those PIL cannot read (with a
            warning; ``dataset.skipped`` lists ``(path, reason)``); without it an unreadable
            image raises a ``ValueError`` naming it when it is loaded.

    Returns:
        An :class:`ImageFileDataset` named ``"cub"`` in the order of ``images.txt``, with class
        names from ``classes.txt`` and an extra ``partition`` array (``"train"`` or ``"test"``);
        its ``sample_ids`` are the paths of ``images.txt``, relative to ``images/``.

    Raises:
        FileNotFoundError: a file or folder of the layout is missing (files only needed for
            attributes or boxes are required only when asked for).
        ValueError: an unknown attribute, or a malformed line (named by file and line).
    """
    base = _find_base(Path(root))
    image_dir = _require(base / "images", folder=True)
    images = _read_table(_require(base / "images.txt"), 1)
    classes = _read_table(_require(base / "classes.txt"), 1)
    class_of = _read_table(_require(base / "image_class_labels.txt"), 1)
    split = _read_table(_require(base / "train_test_split.txt"), 1)
    if not images:
        raise ValueError(f"CUB: {base / 'images.txt'} lists no images")
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise ValueError(f"CUB: {base / 'classes.txt'} must number its classes 1..{len(classes)}")

    ids = list(images)
    labels, partition = [], []
    for iid in ids:
        (value,), line = _row(class_of, iid, base / "image_class_labels.txt")
        if not (value.isascii() and value.isdigit()) or int(value) not in classes:
            raise ValueError(
                f"CUB: {base / 'image_class_labels.txt'} line {line}: class {value!r} is not in "
                "classes.txt"
            )
        labels.append(int(value) - 1)
        (value,), line = _row(split, iid, base / "train_test_split.txt")
        if value not in ("0", "1"):
            raise ValueError(
                f"CUB: {base / 'train_test_split.txt'} line {line}: expected 1 (train) or 0 (test), "
                f"got {value!r}"
            )
        partition.append("train" if value == "1" else "test")

    bboxes = None
    if crop_to_bbox:
        boxes = _read_table(_require(base / "bounding_boxes.txt"), 4)
        bboxes = np.array([_box(boxes, i, base / "bounding_boxes.txt") for i in ids])

    columns, value_names = _attribute_columns(base, ids, attributes) if attributes else ({}, {})
    dataset = ImageFileDataset(
        [image_dir / images[i][0][0] for i in ids],
        transform=transform,
        image_size=image_size,
        bboxes=bboxes,
        labels=np.array(labels, dtype=np.int64),
        label_names=[classes[k][0][0] for k in range(1, len(classes) + 1)],
        attributes=columns,
        attribute_value_names=value_names,
        name="cub",
        unreadable_hint=SKIP_HINT,
        root=image_dir,
    )
    dataset.partition = np.array(partition, dtype="<U5")
    return drop_unreadable(dataset, where=image_dir) if skip_unreadable else dataset


def _attribute_columns(
    base: Path, ids: list[int], attributes: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """One integer column and its value names per requested attribute or family."""
    names = {
        aid: fields[0] for aid, (fields, _) in _read_table(_find_attribute_names(base), 1).items()
    }
    families: dict[str, list[int]] = {}
    for aid in sorted(names):
        families.setdefault(names[aid].split("::")[0], []).append(aid)
    by_name = {name: aid for aid, name in names.items()}
    members = {}
    for a in attributes:
        if a not in by_name and a not in families:
            raise ValueError(
                f"CUB: unknown attribute {a!r}; give a family (one of: {', '.join(families)}) or a "
                "full name such as 'has_primary_color::black'"
            )
        members[a] = [by_name[a]] if a in by_name else families[a]

    path = _require(base / "attributes" / "image_attribute_labels.txt")
    marks = _read_marks(path, {aid for aids in members.values() for aid in aids})
    columns: dict[str, np.ndarray] = {}
    value_names: dict[str, list[str]] = {}
    for a, aids in members.items():
        column = np.empty(len(ids), dtype=np.int64)
        for n, iid in enumerate(ids):
            missing = [aid for aid in aids if (iid, aid) not in marks]
            if missing:
                raise ValueError(f"CUB: {path} has no row for image {iid}, attribute {missing[0]}")
            if a in by_name:
                column[n] = marks[iid, aids[0]][0]
            else:
                column[n] = _most_certain([marks[iid, aid] for aid in aids])
        columns[a] = column
        value_names[a] = (
            ["no", "yes"]
            if a in by_name
            else [names[aid].split("::", 1)[1] for aid in aids] + ["none"]
        )
    return columns, value_names


def _read_marks(path: Path, wanted: set[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """``{(image id, attribute id): (is_present, certainty_id)}`` for the wanted attribute ids.

    Extra columns after the fourth, which some rows of the official file have, are ignored.
    """
    marks: dict[tuple[int, int], tuple[int, int]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                iid, aid = int(fields[0]), int(fields[1])
                mark = (int(fields[2]), int(fields[3])) if aid in wanted else (0, 0)
            except (ValueError, IndexError):
                mark = (-1, 0)
            if mark[0] not in (0, 1):
                raise ValueError(
                    f"CUB: {path} line {number}: expected '<image_id> <attribute_id> <is_present 0/1> "
                    f"<certainty_id> <time>', got {line.strip()!r}"
                )
            if aid in wanted:
                marks[iid, aid] = mark
    return marks


def _most_certain(marks: list[tuple[int, int]]) -> int:
    """Index of the present value with the highest certainty (ties: the first), else ``len``."""
    best = len(marks)
    for k, (present, certainty) in enumerate(marks):
        if present and (best == len(marks) or certainty > marks[best][1]):
            best = k
    return best


def _box(boxes: _Table, iid: int, path: Path) -> list[float]:
    fields, line = _row(boxes, iid, path)
    try:
        return [float(v) for v in fields]
    except ValueError:
        raise ValueError(
            f"CUB: {path} line {line}: expected '<image_id> <x> <y> <width> <height>'"
        ) from None


def _find_base(root: Path) -> Path:
    """``root`` itself, or ``root/CUB_200_2011`` when that is where the files are."""
    if not root.is_dir():
        raise FileNotFoundError(f"CUB: expected a folder at {root}; {_LAYOUT}")
    nested = root / "CUB_200_2011"
    if not (root / "images.txt").exists() and nested.is_dir():
        return nested
    return root


def _find_attribute_names(base: Path) -> Path:
    candidates = (base / "attributes.txt", base / "attributes" / "attributes.txt")
    for path in (*candidates, base.parent / "attributes.txt"):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"CUB: expected attributes.txt at {base.parent / 'attributes.txt'} or {candidates[0]}; "
        f"{_LAYOUT}"
    )


def _require(path: Path, *, folder: bool = False) -> Path:
    if not (path.is_dir() if folder else path.is_file()):
        raise FileNotFoundError(f"CUB: expected {path}{'/' if folder else ''}; {_LAYOUT}")
    return path


def _read_table(path: Path, columns: int) -> _Table:
    """``{id: (the other fields, line number)}`` of a file of lines ``<id> <columns fields>``."""
    table: _Table = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != columns + 1 or not (fields[0].isascii() and fields[0].isdigit()):
                raise ValueError(
                    f"CUB: {path} line {number}: expected an integer id and {columns} field(s), "
                    f"got {line.strip()!r}"
                )
            if int(fields[0]) in table:
                raise ValueError(f"CUB: {path} line {number}: id {fields[0]} appears twice")
            table[int(fields[0])] = (fields[1:], number)
    return table


def _row(table: _Table, iid: int, path: Path) -> tuple[list[str], int]:
    if iid not in table:
        raise ValueError(f"CUB: {path} has no line for image {iid}, which images.txt lists")
    return table[iid]
