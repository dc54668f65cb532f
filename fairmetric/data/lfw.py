"""Labeled Faces in the Wild read from its official on-disk layout (nothing is downloaded).

Images come from the authors' tarballs (``lfw/`` or ``lfw-deepfunneled/``, one folder per person,
``<Person_Name>/<Person_Name>_0001.jpg``); attributes from Kumar et al.'s ``lfw_attributes.txt``
(tab separated: a comment line, a header ``#  person  imagenum  Male  Asian ...``, then one row of
real-valued attribute scores per image, with spaces in the person's name).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairmetric.data.dataset import SKIP_HINT, ImageFileDataset, unreadable_images, warn_skipped

__all__ = ["load_lfw"]

_PEOPLE_FOLDERS = ("lfw", "lfw-deepfunneled", "lfw_funneled")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_LAYOUT = (
    "LFW: the layout is <root>/lfw/<Person_Name>/<Person_Name>_0001.jpg (or lfw-deepfunneled/, or "
    "root being the folder of people itself) plus Kumar et al.'s lfw_attributes.txt"
)


def load_lfw(
    root: str | Path,
    *,
    attributes_file: str | Path | None = None,
    attributes: Sequence[str] = ("Male",),
    image_size: int = 64,
    transform: Callable[[Any], torch.Tensor] | None = None,
    min_images_per_person: int = 1,
    skip_unreadable: bool = False,
) -> ImageFileDataset:
    """Load LFW with people as labels and binarised Kumar et al. attributes.

    An attribute score ``> 0`` becomes ``1`` (``"yes"``), otherwise ``0`` (``"no"``). Images with no
    row in the attribute table are dropped with a warning; ``min_images_per_person`` is applied to
    the images that remain.

    Args:
        root: folder holding ``lfw/`` (or ``lfw-deepfunneled/``), or the folder of people itself.
        attributes_file: Kumar et al.'s table; default ``<root>/lfw_attributes.txt``.
        attributes: column names of the table to keep, e.g. ``"Male"`` or ``"Middle Aged"``
            (underscores may stand for spaces).
        image_size: side of the square image tensors.
        transform: maps a PIL image to a tensor (default: resize and scale to ``[0, 1]``).
        min_images_per_person: drop people with fewer images than this.
        skip_unreadable: decode every image now and leave out those PIL cannot read (with a
            warning; ``dataset.skipped`` lists ``(path, reason)``), before
            ``min_images_per_person`` counts them; without it an unreadable image raises a
            ``ValueError`` naming it when it is loaded.

    Returns:
        An :class:`ImageFileDataset` named ``"lfw"``, sorted by person then image number, with
        person folder names (``"Aaron_Eckhart"``) as label names; its ``sample_ids`` are paths
        relative to the folder of people (``"Aaron_Eckhart/Aaron_Eckhart_0001.jpg"``), the same
        for ``lfw/`` and ``lfw-deepfunneled/``.

    Raises:
        FileNotFoundError: the people folder or the attribute table is missing.
        ValueError: an unknown attribute, a malformed line or image file name, or no image left.
    """
    root = Path(root)
    people = _find_people_folder(root)
    table_path = (
        Path(attributes_file) if attributes_file is not None else root / "lfw_attributes.txt"
    )
    if not table_path.is_file():
        raise FileNotFoundError(
            f"LFW: expected the attribute table at {table_path} (Kumar et al.'s lfw_attributes.txt; "
            f"pass attributes_file= if it lies elsewhere); {_LAYOUT}"
        )
    names, scores = _read_attribute_table(table_path)
    columns = [_column_index(names, a, table_path) for a in attributes]

    kept, dropped = [], 0
    for person, number, path in _list_images(people):
        row = scores.get((person.replace("_", " "), number))
        if row is None:
            dropped += 1
        else:
            kept.append((person, path, [int(row[j] > 0) for j in columns]))
    if dropped:
        warnings.warn(
            f"LFW: dropped {dropped} of {dropped + len(kept)} images that have no row in "
            f"{table_path}",
            stacklevel=2,
        )
    skipped: tuple[tuple[str, str], ...] = ()
    if skip_unreadable and kept:
        skipped = tuple((str(p), r) for p, r in unreadable_images([p for _, p, _ in kept]))
        if skipped:
            warn_skipped("LFW", people, skipped, len(kept))
            drop = {p for p, _ in skipped}
            kept = [k for k in kept if str(k[1]) not in drop]
    counts = Counter(person for person, _, _ in kept)
    kept = [k for k in kept if counts[k[0]] >= min_images_per_person]
    if not kept:
        raise ValueError(
            f"LFW: no image left under {people} after keeping those with a row in {table_path} "
            f"and at least {min_images_per_person} image(s) per person"
        )
    values = np.array([v for _, _, v in kept], dtype=np.int64).reshape(len(kept), len(columns))
    dataset = ImageFileDataset(
        [path for _, path, _ in kept],
        transform=transform,
        image_size=image_size,
        labels=[person for person, _, _ in kept],
        attributes={a: values[:, j] for j, a in enumerate(attributes)},
        attribute_value_names={a: ["no", "yes"] for a in attributes},
        name="lfw",
        unreadable_hint=SKIP_HINT,
        root=people,
    )
    dataset.skipped = skipped
    return dataset


def _find_people_folder(root: Path) -> Path:
    for name in _PEOPLE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    if root.is_dir() and any(p.is_dir() for p in root.iterdir()):
        return root
    raise FileNotFoundError(f"LFW: expected the folder of people at {root / 'lfw'}; {_LAYOUT}")


def _list_images(people: Path) -> list[tuple[str, int, Path]]:
    """``(person folder name, image number, path)`` of every image, sorted."""
    images = []
    for folder in sorted(p for p in people.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            person, _, number = path.stem.rpartition("_")
            if person != folder.name or not (number.isascii() and number.isdigit()):
                raise ValueError(
                    f"LFW: image {path} should be named {folder.name}_<number>{path.suffix}"
                )
            images.append((folder.name, int(number), path))
    return images


def _read_attribute_table(path: Path) -> tuple[list[str], dict[tuple[str, int], list[float]]]:
    """Attribute names and ``{(person, image number): scores}`` of ``lfw_attributes.txt``."""
    header: list[str] | None = None
    scores: dict[tuple[str, int], list[float]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if line.startswith("#"):
                fields = [c.strip() for c in line.lstrip("#").split("\t")]
                fields = [c for c in fields if c]
                if fields[:2] == ["person", "imagenum"]:
                    header = fields[2:]
                    repeated = sorted({h for h in header if header.count(h) > 1})
                    if repeated:
                        raise ValueError(
                            f"LFW: {path} line {number}: column {repeated[0]!r} appears twice in "
                            "the header; column names must be distinct"
                        )
                continue
            if header is None:
                raise ValueError(
                    f"LFW: {path} line {number}: data before the header line "
                    "'#\\tperson\\timagenum\\tMale\\t...'"
                )
            fields = line.split("\t")
            row: list[float] | None = None
            try:
                key = (fields[0].strip(), int(fields[1]))
                row = [float(v) for v in fields[2:]]
            except (ValueError, IndexError):
                pass
            if row is None or len(row) != len(header):
                raise ValueError(
                    f"LFW: {path} line {number}: expected a person, an image number and "
                    f"{len(header)} tab-separated scores, got {line[:80]!r}"
                )
            scores.setdefault(key, row)
    if header is None:
        raise ValueError(f"LFW: {path} has no header line '#\\tperson\\timagenum\\tMale\\t...'")
    return header, scores


def _column_index(names: list[str], attribute: str, path: Path) -> int:
    for candidate in (attribute, attribute.replace("_", " ")):
        if candidate in names:
            return names.index(candidate)
    raise ValueError(f"LFW: unknown attribute {attribute!r}; {path} has: {', '.join(names)}")
