"""CelebA read from its official on-disk layout (nothing is downloaded).

The layout, as distributed by the authors and as torchvision's ``CelebA`` stores it under
``<root>/celeba``::

    img_align_celeba/000001.jpg ...
    identity_CelebA.txt        "000001.jpg 2880"
    list_attr_celeba.txt       count / the 40 attribute names / "000001.jpg -1  1 ..."
    list_eval_partition.txt    "000001.jpg 0"   (0 = train, 1 = valid, 2 = test)
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

__all__ = ["load_celeba", "CELEBA_ATTRIBUTES"]

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)  # fmt: skip
"""The 40 attribute names of ``list_attr_celeba.txt``, in file order."""

_LAYOUT = (
    "CelebA: the layout is img_align_celeba/, identity_CelebA.txt, list_attr_celeba.txt, "
    "list_eval_partition.txt (the authors' files; torchvision keeps them in <root>/celeba/)"
)
_PARTITIONS = {"0": "train", "1": "valid", "2": "test"}
_VALUES = frozenset(("-1", "1"))


def load_celeba(
    root: str | Path,
    *,
    attributes: Sequence[str] = ("Male", "Young", "Pale_Skin"),
    image_size: int = 64,
    transform: Callable[[Any], torch.Tensor] | None = None,
    skip_unreadable: bool = False,
) -> ImageFileDataset | AttributeDataset:
    """Load CelebA with identities as labels and binary face attributes as sensitive attributes.

    Args:
        root: the folder holding the CelebA files, or a parent folder holding ``celeba/``.
        attributes: CelebA attribute names to keep (see :data:`CELEBA_ATTRIBUTES`); each becomes a
            binary column with value names ``["no", "yes"]``.
        image_size: side of the square image tensors.
        transform: maps a PIL image to a tensor (default: resize and scale to ``[0, 1]``).
        skip_unreadable: decode every image now and leave out those PIL cannot read (with a
            warning; ``dataset.skipped`` lists ``(path, reason)``); without it an unreadable
            image raises a ``ValueError`` naming it when it is loaded.

    Returns:
        An :class:`ImageFileDataset` named ``"celeba"`` in the order of ``list_attr_celeba.txt``,
        with an extra ``partition`` array (``"train"``, ``"valid"`` or ``"test"`` per sample);
        its ``sample_ids`` are the file names the CelebA lists use (``"000001.jpg"``).

    Raises:
        FileNotFoundError: a file or folder of the layout is missing.
        ValueError: an unknown attribute name, or a malformed line (named by file and line).
    """
    base = _find_base(Path(root))
    unknown = [a for a in attributes if a not in CELEBA_ATTRIBUTES]
    if unknown:
        raise ValueError(
            f"CelebA: unknown attribute(s) {unknown}; valid names are: {', '.join(CELEBA_ATTRIBUTES)}"
        )
    image_dir = _require(base / "img_align_celeba", folder=True)
    files, table = _read_attribute_table(_require(base / "list_attr_celeba.txt"))
    identity = _read_mapping(_require(base / "identity_CelebA.txt"))
    partition = _read_mapping(_require(base / "list_eval_partition.txt"))

    ids, parts = [], []
    for f in files:
        id_, line = _lookup(identity, f, base / "identity_CelebA.txt")
        if not (id_.isascii() and id_.isdigit()):
            raise ValueError(
                f"CelebA: {base / 'identity_CelebA.txt'} line {line}: identity {id_!r} is no integer"
            )
        code, line = _lookup(partition, f, base / "list_eval_partition.txt")
        if code not in _PARTITIONS:
            raise ValueError(
                f"CelebA: {base / 'list_eval_partition.txt'} line {line}: partition {code!r} is "
                "not 0 (train), 1 (valid) or 2 (test)"
            )
        ids.append(int(id_))
        parts.append(_PARTITIONS[code])

    identities, labels = np.unique(np.array(ids, dtype=np.int64), return_inverse=True)
    columns = {a: table[:, CELEBA_ATTRIBUTES.index(a)] for a in attributes}
    dataset = ImageFileDataset(
        [image_dir / f for f in files],
        transform=transform,
        image_size=image_size,
        labels=labels.astype(np.int64),
        label_names=[str(i) for i in identities],
        attributes=columns,
        attribute_value_names={a: ["no", "yes"] for a in attributes},
        name="celeba",
        unreadable_hint=SKIP_HINT,
        root=image_dir,
    )
    dataset.partition = np.array(parts, dtype="<U5")
    return drop_unreadable(dataset, where=image_dir) if skip_unreadable else dataset


def _find_base(root: Path) -> Path:
    """``root`` itself, or ``root/celeba`` (torchvision's layout) when that is where the files are."""
    if not root.is_dir():
        raise FileNotFoundError(f"CelebA: expected a folder at {root}; {_LAYOUT}")
    nested = root / "celeba"
    if not (root / "list_attr_celeba.txt").exists() and nested.is_dir():
        return nested
    return root


def _require(path: Path, *, folder: bool = False) -> Path:
    if not (path.is_dir() if folder else path.is_file()):
        raise FileNotFoundError(f"CelebA: expected {path}{'/' if folder else ''}; {_LAYOUT}")
    return path


def _read_attribute_table(path: Path) -> tuple[list[str], np.ndarray]:
    """File names and the ``(N, 40)`` 0/1 table of ``list_attr_celeba.txt`` (-1 becomes 0)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ValueError(
            f"CelebA: {path} line 1: expected the number of images, then the 40 attribute names "
            "on line 2"
        )
    header = lines[1].split()
    if tuple(header) != CELEBA_ATTRIBUTES:
        raise ValueError(
            f"CelebA: {path} line 2: expected the 40 CelebA attribute names, got {len(header)} "
            f"names starting {header[:3]}"
        )
    files: list[str] = []
    rows: list[list[bool]] = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 41 or not _VALUES.issuperset(fields[1:]):
            raise ValueError(
                f"CelebA: {path} line {number}: expected a file name and 40 values -1 or 1, "
                f"got {line.strip()!r}"
            )
        files.append(fields[0])
        rows.append([v == "1" for v in fields[1:]])
    if not files:
        raise ValueError(f"CelebA: {path} lists no images")
    return files, np.array(rows, dtype=np.int64)


def _read_mapping(path: Path) -> dict[str, tuple[str, int]]:
    """``{file name: (value, line number)}`` from a two-column file like ``identity_CelebA.txt``."""
    mapping: dict[str, tuple[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(
                    f"CelebA: {path} line {number}: expected '<file name> <value>', "
                    f"got {line.strip()!r}"
                )
            mapping[fields[0]] = (fields[1], number)
    return mapping


def _lookup(mapping: dict[str, tuple[str, int]], file: str, path: Path) -> tuple[str, int]:
    if file not in mapping:
        raise ValueError(f"CelebA: {path} has no line for {file}, which list_attr_celeba.txt lists")
    return mapping[file]
