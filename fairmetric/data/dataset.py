"""The attribute-aware dataset every part of fairmetric reads.

An :class:`AttributeDataset` yields ``(x, label, attributes)`` items and exposes the label and
attribute columns as arrays *without loading any input*, so samplers, splits and audits can work on
the metadata alone.
"""

from __future__ import annotations

import copy
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "AttributeDataset",
    "TensorAttributeDataset",
    "ImageFileDataset",
    "MissingImageError",
    "UnreadableImageError",
    "encode_column",
    "drop_unreadable",
    "read_image",
    "unreadable_images",
    "warn_skipped",
]


def encode_column(values: Sequence[Any] | np.ndarray, *, name: str) -> tuple[np.ndarray, list[str]]:
    """Map a column of labels or attribute values to integer codes.

    Integer columns (and integer-valued non-negative floats) are kept as they are (their names are
    the decimal strings of the values 0..max); other floats are mapped to ``0..K-1`` in numeric
    order; any other values (strings, booleans) are mapped in sorted *string* order (so "10" comes
    before "2": give numbers as numbers). The mapping is returned so reports can show the original
    names.

    Args:
        values: the column, one entry per sample.
        name: the column's name, used in error messages.

    Returns:
        ``(codes, names)``: ``codes`` is an ``int64`` array, ``names[c]`` is the original value of
        code ``c``.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"column {name!r} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "O":
        _check_no_missing(arr, name)
    if arr.dtype.kind in "UO" and not isinstance(values, np.ndarray):
        _check_one_kind(values, name)
    if arr.size == 0:
        return arr.astype(np.int64), []
    if arr.dtype.kind in "iu":
        if arr.min() < 0:
            raise ValueError(
                f"column {name!r} has negative integer codes (min {arr.min()}); integer codes must "
                "be 0..K-1, or pass the values as strings to have them mapped"
            )
        codes = arr.astype(np.int64)
        return codes, [str(v) for v in range(int(codes.max()) + 1)]
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"column {name!r} contains NaN or infinite values")
        if np.all(arr == np.round(arr)) and arr.min() >= 0:
            codes = arr.astype(np.int64)
            return codes, [str(v) for v in range(int(codes.max()) + 1)]
        uniques, codes = np.unique(arr, return_inverse=True)  # numeric order
        return codes.astype(np.int64), [str(u) for u in uniques]
    uniques, codes = np.unique(arr.astype(str), return_inverse=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _check_no_missing(arr: np.ndarray, name: str) -> None:
    """``None`` or NaN in a column would become a class named "None" / "nan"."""
    missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        raise ValueError(
            f"column {name!r} has missing values (None or NaN) in {len(missing)} rows, e.g. row "
            f"{missing[0]}; drop those rows or give them a value"
        )


def _check_one_kind(values: Sequence[Any], name: str) -> None:
    """Strings mixed with numbers would be compared as text (``7`` and ``"7"`` one value)."""
    text = [v for v in values if isinstance(v, (str, np.str_))]
    if text and len(text) != len(values):
        other = next(v for v in values if not isinstance(v, (str, np.str_)))
        raise ValueError(
            f"column {name!r} mixes strings and other values (e.g. {text[0]!r} and {other!r}), "
            "which would be compared as text; give every value as a string or every value as a "
            "number"
        )


class AttributeDataset(Dataset):
    """A labelled dataset whose samples also carry sensitive attributes.

    Items are ``(x, label, attributes)`` with ``label`` an ``int`` and ``attributes`` a ``LongTensor``
    of shape ``(A,)``. Subclasses implement :meth:`load_input`; everything else (array views, name
    mappings, subsets) lives here.

    Args:
        labels: class label per sample (integers ``0..C-1`` or any values, mapped to integers).
        attributes: ``(N, A)`` attribute values, or a mapping ``{attribute_name: column}``.
        attribute_names: names of the ``A`` attribute columns (required when ``attributes`` is an
            array).
        label_names: original names of the label codes (filled in automatically when labels are
            given as strings).
        attribute_value_names: ``{attribute_name: [name of code 0, name of code 1, ...]}``.
        name: a short name of the dataset, used in reports.
    """

    def __init__(
        self,
        *,
        labels: Sequence[Any] | np.ndarray,
        attributes: np.ndarray | dict[str, Sequence[Any]] | None = None,
        attribute_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        attribute_value_names: dict[str, Sequence[str]] | None = None,
        name: str = "dataset",
    ) -> None:
        codes, auto_label_names = encode_column(labels, name="labels")
        n = len(codes)
        self.labels: np.ndarray = codes
        self.label_names: list[str] = (
            list(label_names) if label_names is not None else auto_label_names
        )
        if n and len(self.label_names) <= int(codes.max()):
            raise ValueError(
                f"label_names has {len(self.label_names)} entries but labels go up to "
                f"{int(codes.max())}; give one name per label code"
            )

        value_names = dict(attribute_value_names or {})
        if attributes is None:
            attributes = np.zeros((n, 0), dtype=np.int64)
            attribute_names = []
        if isinstance(attributes, dict):
            if attribute_names is not None and list(attribute_names) != list(attributes):
                raise ValueError(
                    "attribute_names disagrees with the keys of the attributes mapping"
                )
            attribute_names = list(attributes)
            columns = [attributes[a] for a in attribute_names]
        else:
            arr = np.asarray(attributes)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError(f"attributes must be (N, A), got shape {arr.shape}")
            if attribute_names is None:
                raise ValueError(
                    "attribute_names is required when attributes is an array: "
                    "give one name per column"
                )
            if len(attribute_names) != arr.shape[1]:
                raise ValueError(
                    f"attribute_names has {len(attribute_names)} names but attributes has "
                    f"{arr.shape[1]} columns"
                )
            columns = [arr[:, j] for j in range(arr.shape[1])]
        attribute_names = [str(a) for a in attribute_names]
        if len(set(attribute_names)) != len(attribute_names):
            raise ValueError(f"attribute names must be unique, got {attribute_names}")

        encoded = []
        for a, col in zip(attribute_names, columns):
            col_codes, auto_names = encode_column(col, name=a)
            if len(col_codes) != n:
                raise ValueError(
                    f"attribute {a!r} has {len(col_codes)} values but there are {n} labels; "
                    "every sample needs one value per attribute"
                )
            encoded.append(col_codes)
            value_names.setdefault(a, auto_names)
            if col_codes.size and len(value_names[a]) <= int(col_codes.max()):
                raise ValueError(
                    f"attribute_value_names[{a!r}] has {len(value_names[a])} names but the codes "
                    f"go up to {int(col_codes.max())}; give one name per code (or leave it out "
                    "to use the codes' decimal strings)"
                )
        self.attributes: np.ndarray = (
            np.stack(encoded, axis=1) if encoded else np.zeros((n, 0), dtype=np.int64)
        )
        self.attribute_names: list[str] = attribute_names
        self.attribute_value_names: dict[str, list[str]] = {
            a: list(value_names[a]) for a in attribute_names
        }
        self.name = name

    # -- metadata ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        """Number of distinct labels present."""
        return int(len(np.unique(self.labels)))

    def attribute_index(self, attribute: str) -> int:
        """Column of ``attribute`` in :attr:`attributes`; a clear error lists the valid names."""
        if attribute not in self.attribute_names:
            raise ValueError(
                f"unknown attribute {attribute!r}; this dataset has: "
                f"{', '.join(self.attribute_names) or '(no attributes)'}"
            )
        return self.attribute_names.index(attribute)

    def attribute(self, attribute: str) -> np.ndarray:
        """The ``(N,)`` integer column of one attribute."""
        return self.attributes[:, self.attribute_index(attribute)]

    def value_name(self, attribute: str, code: int) -> str:
        """Original name of value ``code`` of ``attribute``."""
        names = self.attribute_value_names[self.attribute_names[self.attribute_index(attribute)]]
        return names[code] if 0 <= code < len(names) else str(code)

    # -- items ------------------------------------------------------------------------------
    def load_input(self, index: int) -> Any:
        """Load the input ``x`` of sample ``index`` (image tensor, feature vector, ...)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Any, int, torch.Tensor]:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        return (
            self.load_input(index),
            int(self.labels[index]),
            torch.from_numpy(self.attributes[index].copy()),
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> AttributeDataset:
        """A dataset of the given samples, keeping every name mapping."""
        return _Subset(self, np.asarray(indices, dtype=np.int64))

    def describe(self) -> str:
        """One line per attribute with the count of each value: a quick look at the balance."""
        lines = [f"{self.name}: {len(self)} samples, {self.num_classes} classes"]
        for j, a in enumerate(self.attribute_names):
            counts = np.bincount(
                self.attributes[:, j], minlength=len(self.attribute_value_names[a])
            )
            parts = [f"{self.value_name(a, v)}={c}" for v, c in enumerate(counts) if c]
            lines.append(f"  {a}: " + ", ".join(parts))
        return "\n".join(lines)


class _Subset(AttributeDataset):
    """A view on some samples of a parent dataset (no inputs are copied)."""

    def __init__(self, parent: AttributeDataset, indices: np.ndarray) -> None:
        if indices.size and (indices.min() < -len(parent) or indices.max() >= len(parent)):
            raise IndexError(f"subset indices out of range for a dataset of {len(parent)} samples")
        indices = np.where(indices < 0, indices + len(parent), indices)
        self.parent = parent
        self.indices = indices
        self.labels = parent.labels[indices]
        self.label_names = parent.label_names
        self.attributes = parent.attributes[indices]
        self.attribute_names = parent.attribute_names
        self.attribute_value_names = parent.attribute_value_names
        self.name = parent.name

    def load_input(self, index: int) -> Any:
        return self.parent.load_input(int(self.indices[index]))

    def subset(self, indices: Sequence[int] | np.ndarray) -> AttributeDataset:
        return _Subset(self.parent, self.indices[np.asarray(indices, dtype=np.int64)])

    def __getattr__(self, item: str) -> Any:
        # dataset-specific extras of the parent stay reachable; per-sample ones (an array or list
        # with one entry per parent sample, e.g. ``partition`` or ``paths``) are indexed
        if item in ("parent", "indices"):
            raise AttributeError(item)
        value = getattr(self.parent, item)
        if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == len(self.parent):
            return value[self.indices]
        if isinstance(value, list) and len(value) == len(self.parent):
            return [value[i] for i in self.indices]
        return value


class TensorAttributeDataset(AttributeDataset):
    """An in-memory dataset: inputs are rows of one tensor (images ``(N, C, H, W)`` or vectors)."""

    def __init__(self, inputs: torch.Tensor | np.ndarray, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        inputs = torch.as_tensor(inputs)
        if inputs.shape[0] != len(self.labels):
            raise ValueError(
                f"inputs has {inputs.shape[0]} rows but there are {len(self.labels)} labels"
            )
        if inputs.is_floating_point():
            inputs = inputs.float()
        self.inputs = inputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(3, 32, 32)`` or ``(16,)``."""
        return tuple(self.inputs.shape[1:])

    def load_input(self, index: int) -> torch.Tensor:
        return self.inputs[index]


#: the hint of a decode error when the dataset offers no way to skip unreadable files
UNREADABLE_HINT = "replace or delete the file"


class _OneLineAcrossWorkers:
    """An exception whose message stays the one line it was when a DataLoader worker re-raises
    it: torch rebuilds it in the main process from ``"Caught X in DataLoader worker process N.
    Original Traceback ..."``, which would put a traceback in the message."""

    def __init__(self, message: str = "") -> None:
        marker = f"{type(self).__name__}: "
        if (
            message.startswith("Caught ")
            and "\nOriginal Traceback" in message
            and marker in message
        ):
            where = message.split("\n", 1)[0].removesuffix(".").split(" ", 2)[-1]
            message = f"{message.rsplit(marker, 1)[1].strip()} ({where})"
        super().__init__(message)


class UnreadableImageError(_OneLineAcrossWorkers, ValueError):
    """An image file PIL cannot decode (the message names the file, the reason and the fix)."""


class MissingImageError(_OneLineAcrossWorkers, FileNotFoundError):
    """An image file that is not there (any more) when it is loaded."""


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for a file it cannot decode: truncated, empty, not an image, corrupt."""
    from PIL import Image

    return (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
            Image.DecompressionBombError)  # fmt: skip


def _open_rgb(path: Path) -> tuple[Any, str | None]:
    """``(image, None)`` with the image fully decoded in RGB, or ``(None, reason)``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB"), None  # decodes the whole image: truncation fails here
    except FileNotFoundError:
        return None, "the file is missing"
    except _decode_errors() as e:
        if isinstance(e, UnidentifiedImageError):
            empty = path.is_file() and path.stat().st_size == 0
            return None, "the file is empty" if empty else "not an image format PIL can read"
        if isinstance(e, PermissionError):
            return None, "permission denied"
        if "truncated" in str(e).lower():
            return None, f"the image data is truncated ({e})"
        return None, f"{type(e).__name__}: {e}"


def read_image(path: str | Path, *, hint: str = UNREADABLE_HINT) -> Any:
    """The image at ``path`` fully decoded and converted to RGB (a PIL image).

    Raises:
        MissingImageError: (a ``FileNotFoundError``) no file at ``path``.
        UnreadableImageError: (a ``ValueError``) PIL cannot decode it (truncated, empty, not an image, unreadable); the
            message names the file, the reason and ``hint`` (the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingImageError(f"image file missing: {path}")
    img, reason = _open_rgb(path)
    if reason is not None:
        raise UnreadableImageError(f"cannot read image {path}: {reason}; {hint}")
    return img


def unreadable_images(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """``(path, reason)`` of every file of ``paths`` that :func:`read_image` cannot read
    (decodes each image once: as slow as one pass over the data)."""
    bad = []
    for p in map(Path, paths):
        reason = _open_rgb(p)[1]
        if reason is not None:
            bad.append((p, reason))
    return bad


#: the hint of a decode error when the loader offers ``skip_unreadable``
SKIP_HINT = (
    "replace or delete the file, or skip unreadable images with skip_unreadable=True "
    "(data.params.skip_unreadable=true)"
)
_SHOW_SKIPPED = 5


def warn_skipped(
    name: str, where: str | Path, skipped: Sequence[tuple[str, str]], total: int
) -> str:
    """Warn that ``skipped`` ``(path, reason)`` of ``total`` images were left out; the text of the
    warning is returned. Raises a ``ValueError`` when every image was."""
    shown = "; ".join(f"{p} ({reason})" for p, reason in skipped[:_SHOW_SKIPPED])
    if len(skipped) > _SHOW_SKIPPED:
        shown += f"; and {len(skipped) - _SHOW_SKIPPED} more"
    if len(skipped) == total:
        raise ValueError(
            f"{name}: none of the {total} images listed in {where} can be read: {shown}"
        )
    text = (
        f"{name}: skipped {len(skipped)} unreadable image(s) of {total} listed in {where}: {shown}"
    )
    warnings.warn(text, stacklevel=3)
    return text


def drop_unreadable(dataset: ImageFileDataset, *, where: str | Path) -> AttributeDataset:
    """``dataset`` without the images PIL cannot read (each image is decoded once, now).

    The unreadable ones are reported with a warning and listed as ``(path, reason)`` in
    ``skipped`` (on the dataset and, through it, on every subset).

    Returns:
        ``dataset`` itself when every image is readable, else a subset of the readable ones.
    """
    bad = unreadable_images(dataset.paths)
    dataset.skipped = tuple((str(p), reason) for p, reason in bad)
    if not bad:
        return dataset
    warn_skipped(dataset.name, where, dataset.skipped, len(dataset))
    drop = {p for p, _ in bad}
    return dataset.subset([i for i, p in enumerate(dataset.paths) if p not in drop])


class ImageFileDataset(AttributeDataset):
    """Images on disk, loaded lazily with PIL and turned into tensors by ``transform``.

    A file PIL cannot decode raises a :class:`ValueError` naming it (never a PIL traceback).

    Args:
        paths: one image path per sample.
        transform: maps a PIL image to a tensor; default resizes to ``image_size`` and scales to
            ``[0, 1]``.
        image_size: side of the square tensor the default transform produces.
        bboxes: optional ``(N, 4)`` crop boxes ``(x, y, width, height)`` in pixels.
        unreadable_hint: the fix a decode error suggests (e.g. how to skip unreadable files).
        root: the folder the dataset's own files name images relative to; it sets
            :attr:`sample_ids`.
        **kwargs: passed to :class:`AttributeDataset`.

    Attributes:
        sample_ids: one name per sample: its path relative to ``root`` as a POSIX string
            (``"Aaron_Peirsol/Aaron_Peirsol_0001.jpg"``; a path outside ``root`` gets ``..``
            steps), or ``str(path)`` without ``root``. They become the ids of the embeddings
            (:class:`~fairmetric.embeddings.EmbeddingSet`), so files naming images, such as
            verification pair lists, can be matched to rows; relative names make them
            independent of where the dataset lies.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        transform: Callable[[Any], torch.Tensor] | None = None,
        image_size: int = 64,
        bboxes: np.ndarray | None = None,
        unreadable_hint: str = UNREADABLE_HINT,
        root: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.unreadable_hint = unreadable_hint
        #: ``(path, reason)`` of the images a loader left out as unreadable (``skip_unreadable``)
        self.skipped: tuple[tuple[str, str], ...] = ()
        if len(paths) != len(self.labels):
            raise ValueError(f"got {len(paths)} image paths but {len(self.labels)} labels")
        self.paths = [Path(p) for p in paths]
        self.sample_ids: list[str] = (
            [str(p) for p in self.paths]
            if root is None
            else [_relative_name(p, Path(root)) for p in self.paths]
        )
        self.image_size = int(image_size)
        self.transform = transform or default_image_transform(self.image_size)
        self.bboxes = None if bboxes is None else np.asarray(bboxes, dtype=np.float64)
        if self.bboxes is not None and self.bboxes.shape != (len(self.paths), 4):
            raise ValueError(
                f"bboxes must have shape ({len(self.paths)}, 4) as (x, y, width, height), "
                f"got {self.bboxes.shape}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.image_size, self.image_size)

    def with_transform(
        self, transform: Callable[[Any], torch.Tensor], *, image_size: int | None = None
    ) -> ImageFileDataset:
        """A copy (same files, labels, attributes and ids) whose images go through ``transform``.

        Used to feed a released model its own preprocessing (e.g. timm's resize, centre crop
        and normalisation) instead of the default square resize.

        Args:
            transform: maps a PIL image (RGB, cropped to its box if any) to a tensor.
            image_size: the side of the tensors ``transform`` makes (sets :attr:`input_shape`;
                default: unchanged).
        """
        new = copy.copy(self)
        new.transform = transform
        if image_size is not None:
            new.image_size = int(image_size)
        return new

    def load_input(self, index: int) -> torch.Tensor:
        img = read_image(self.paths[index], hint=self.unreadable_hint)
        if self.bboxes is not None:
            x, y, w, h = self.bboxes[index]
            img = img.crop((int(x), int(y), int(x + w), int(y + h)))
        return self.transform(img)


def _relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string, by the names alone (no file system
    access, symbolic links not followed); ``..`` steps for a path outside ``root``."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # outside root, or one path absolute and the other relative
        pass
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # on another drive (Windows)
        return path.as_posix()


def default_image_transform(image_size: int) -> Callable[[Any], torch.Tensor]:
    """Resize to a square of side ``image_size`` and convert to a float tensor in ``[0, 1]``."""
    from torchvision import transforms

    return transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()])
