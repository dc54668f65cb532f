"""`EmbeddingSet`: embeddings with their labels and sensitive attributes, the library's common currency.

Training writes one, released models are turned into one, audits and downstream probes read one. An
``EmbeddingSet`` is validated when it is built (shapes, lengths, finite values), so everything that
reads it can trust it, and it saves to and loads from ``.npz`` (read with ``allow_pickle=False``) or
``.safetensors`` without loss.

Rows may carry unique string ids (typically an image's path relative to its dataset folder), so
that files naming samples, such as published verification pair lists, can be matched to rows
(:meth:`EmbeddingSet.rows_of`) however the set was subset or filtered.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fairmetric.data.dataset import AttributeDataset
from fairmetric.utils import atomic_write

__all__ = ["EmbeddingSet", "FORMAT_VERSION", "SUPPORTED_SUFFIXES", "find_ids"]

FORMAT_VERSION = 1
"""Version of the on-disk layout written by :meth:`EmbeddingSet.save`; files from newer versions
are refused with a hint to upgrade. Optional additions that older readers can ignore (the ``ids``
of a set) do not change it, so files with and without ids are both version 1."""

SUPPORTED_SUFFIXES = (".npz", ".safetensors")

_KIND = "fairmetric.EmbeddingSet"
_ARRAY_KEYS = ("embeddings", "labels", "attributes")
_NPZ_KEYS = (*_ARRAY_KEYS, "label_names", "attribute_names", "header")
_SHOW_INDICES = 5


class EmbeddingSet:
    """Embeddings ``(N, D)`` with one class label and ``A`` sensitive attributes per row.

    Labels and attribute columns may be given as integer codes ``0..K-1`` or as any values (strings,
    booleans, ...), which are mapped to codes in sorted order with
    :func:`~fairmetric.data.dataset.encode_column`; the original names are kept in
    :attr:`label_names` and :attr:`attribute_value_names` for reports.

    Rows with NaN or Inf values are refused unless ``allow_invalid=True``; then
    :meth:`drop_invalid` removes them and says which they were. Float32 input that is already
    C-contiguous is stored without a copy.

    Rows may be named by ``ids``: one unique, non-empty string per row, e.g. the image's path
    relative to the dataset folder (what :func:`~fairmetric.models.embed.embed_dataset` stores
    for an image folder). They stay with their rows through :meth:`subset`,
    :meth:`drop_invalid`, :meth:`save` and :meth:`load`, and :meth:`rows_of` turns ids back into
    row positions, so a file naming samples (a published pair list) does not depend on the row
    order. Ids are kept as a numpy unicode array (``dtype=str``): one block that indexes, sorts
    and saves to ``.npz`` without pickling, at 4 bytes per character of the longest id per row
    (about 240 MB for a million 60-character paths). Numbers are refused rather than converted:
    the number ``7`` could stand for the name ``"7"`` or ``"007"``.

    Args:
        embeddings: ``(N, D)`` numeric array (or a CPU/GPU tensor); stored as ``float32``.
        labels: ``N`` class labels (integer codes or any values).
        attributes: ``(N, A)`` attribute values with ``attribute_names``, or a mapping
            ``{attribute_name: column}``; ``None`` for no attributes.
        attribute_names: names of the ``A`` columns when ``attributes`` is an array.
        label_names: names of the label codes (filled in when labels are not integer codes).
        attribute_value_names: ``{attribute_name: [name of code 0, name of code 1, ...]}``.
        metadata: JSON-serialisable facts about the set (source, model, split, ...). It is
            normalised through JSON (tuples become lists) so a saved set loads back equal.
        allow_invalid: keep rows with NaN/Inf values instead of raising.
        ids: ``N`` unique, non-empty strings without NUL characters naming the rows, or ``None``
            (stored in :attr:`ids` as a unicode array, or ``None``).

    Raises:
        ValueError: bad shapes, length mismatches, non-numeric or non-finite embeddings, names that
            do not match the codes, metadata that JSON cannot hold, or ids that are not unique
            non-empty strings.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    attributes: np.ndarray
    attribute_names: list[str]
    label_names: list[str]
    attribute_value_names: dict[str, list[str]]
    metadata: dict[str, Any]
    ids: np.ndarray | None

    def __init__(
        self,
        *,
        embeddings: Any,
        labels: Sequence[Any] | np.ndarray,
        attributes: np.ndarray | dict[str, Sequence[Any]] | None = None,
        attribute_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
        attribute_value_names: dict[str, Sequence[str]] | None = None,
        metadata: dict[str, Any] | None = None,
        allow_invalid: bool = False,
        ids: Sequence[str] | np.ndarray | None = None,
    ) -> None:
        emb = _as_embedding_matrix(embeddings)
        _check_lengths(emb.shape[0], labels, attributes)
        self.ids = None if ids is None else _as_ids(ids, emb.shape[0])
        # AttributeDataset holds the one implementation of label/attribute encoding.
        columns = AttributeDataset(
            labels=labels,
            attributes=attributes,
            attribute_names=attribute_names,
            label_names=label_names,
            attribute_value_names=attribute_value_names,
        )
        unknown = set(attribute_value_names or {}) - set(columns.attribute_names)
        if unknown:
            raise ValueError(
                f"attribute_value_names has names of unknown attributes {sorted(unknown)}; "
                f"the attributes are {columns.attribute_names}"
            )
        self.embeddings = emb
        self.labels = columns.labels
        self.attributes = columns.attributes
        self.attribute_names = columns.attribute_names
        self.label_names = [str(s) for s in columns.label_names]
        self.attribute_value_names = {
            a: [str(s) for s in v] for a, v in columns.attribute_value_names.items()
        }
        for a, names in self.attribute_value_names.items():
            repeated = sorted({s for s in names if names.count(s) > 1})
            if repeated:
                raise ValueError(
                    f"attribute_value_names[{a!r}] names two values {repeated[0]!r}; their groups "
                    "would be merged in reports: give every value of an attribute its own name"
                )
        for what, names in (
            ("label_names", self.label_names),
            ("attribute_names", self.attribute_names),
        ):
            if any("\x00" in s for s in names):
                raise ValueError(f"{what} must not contain NUL characters ('\\x00')")
        self.metadata = _normalise_metadata(metadata)

        if not allow_invalid:
            bad = np.flatnonzero(self.invalid_mask)
            if bad.size:
                raise ValueError(
                    f"embeddings has {bad.size} row(s) with NaN or Inf values (first indices: "
                    f"{_preview(bad)}); pass allow_invalid=True and call "
                    "EmbeddingSet.drop_invalid() to remove them"
                )

    @classmethod
    def _from_parts(cls, source: EmbeddingSet, rows: np.ndarray) -> EmbeddingSet:
        """A set of some rows of ``source``, skipping validation (the parts are already valid)."""
        out = cls.__new__(cls)
        out.embeddings = source.embeddings[rows]
        out.labels = source.labels[rows]
        out.attributes = source.attributes[rows]
        out.attribute_names = list(source.attribute_names)
        out.label_names = list(source.label_names)
        out.attribute_value_names = {a: list(v) for a, v in source.attribute_value_names.items()}
        out.metadata = json.loads(json.dumps(source.metadata))
        out.ids = None if source.ids is None else source.ids[rows]
        return out

    # -- views ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def __repr__(self) -> str:
        return (
            f"EmbeddingSet(n={len(self)}, dim={self.dim}, classes={self.num_classes}, "
            f"attributes={self.attribute_names})"
        )

    @property
    def dim(self) -> int:
        """Embedding dimension ``D``."""
        return int(self.embeddings.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of distinct labels present."""
        return int(np.unique(self.labels).size)

    @property
    def invalid_mask(self) -> np.ndarray:
        """``(N,)`` boolean mask of rows holding a NaN or Inf value."""
        # a row is finite iff its sum of squares is (NaN and Inf propagate); float64 avoids
        # overflow of large finite values, and no (N, D) temporary is made
        return ~np.isfinite(
            np.einsum("ij,ij->i", self.embeddings, self.embeddings, dtype=np.float64)
        )

    def attribute(self, name: str) -> np.ndarray:
        """The ``(N,)`` integer column of attribute ``name``.

        Raises:
            ValueError: ``name`` is not an attribute of this set (the message lists the valid ones).
        """
        if name not in self.attribute_names:
            raise ValueError(
                f"unknown attribute {name!r}; this set has: "
                f"{', '.join(self.attribute_names) or '(no attributes)'}"
            )
        return self.attributes[:, self.attribute_names.index(name)]

    def rows_of(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """The row positions of the samples named ``ids``, in the order given.

        Returns:
            An ``int64`` array with one position per id (an id asked for twice gets its row
            twice), ready for :meth:`subset` or for indexing :attr:`embeddings`.

        Raises:
            ValueError: this set has no ids, ``ids`` holds a value that is not a string, or some
                ids are not in this set (the message names up to five and says how many).
        """
        if self.ids is None:
            raise ValueError(
                "this EmbeddingSet has no ids: give them when building it "
                "(EmbeddingSet(..., ids=[...])), or embed an image folder, whose image paths "
                "relative to the folder become the ids"
            )
        if isinstance(ids, str):
            raise ValueError(f"rows_of() takes a sequence of ids, got the single string {ids!r}")
        wanted = list(ids)
        rows = find_ids(self.ids, wanted)
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            unknown = list(dict.fromkeys(wanted[k] for k in missing))
            shown = ", ".join(repr(s) for s in unknown[:_SHOW_INDICES])
            raise ValueError(
                f"{len(unknown)} id(s) are not in this set of {len(self)} rows: {shown}"
                f"{', ...' if len(unknown) > _SHOW_INDICES else ''} (its ids look like "
                f"{str(self.ids[0])!r})"
            )
        return rows

    def subset(self, indices: Sequence[int] | np.ndarray) -> EmbeddingSet:
        """The rows at ``indices`` (integer positions, or a boolean mask of length ``N``).

        Names, metadata and the rows' ids are kept. Raises ``IndexError`` for positions out of
        range and ``ValueError`` for an empty selection or a mask of the wrong length.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(
                    f"a boolean mask for subset() must have shape ({len(self)},), got {idx.shape}"
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise ValueError(
                f"subset() takes a 1-D array of integer positions or a boolean mask, got dtype "
                f"{idx.dtype} and shape {idx.shape}"
            )
        if idx.size == 0:
            raise ValueError("subset() selects no rows; an EmbeddingSet needs at least one row")
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise IndexError(f"subset indices out of range for a set of {len(self)} rows")
        return self._from_parts(self, idx)

    def drop_invalid(self) -> tuple[EmbeddingSet, np.ndarray]:
        """Remove the rows with NaN or Inf values.

        Returns:
            ``(clean_set, dropped_indices)``: ``dropped_indices`` are the removed row positions
            (``int64``, ascending; empty when every row is finite).

        Raises:
            ValueError: every row is invalid, so nothing would be left.
        """
        mask = self.invalid_mask
        if mask.all():
            raise ValueError(f"all {len(self)} rows have NaN or Inf values; nothing would be left")
        return self._from_parts(self, np.flatnonzero(~mask)), np.flatnonzero(mask)

    # -- files ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the set to ``path``; the suffix picks the format (``.npz`` or ``.safetensors``).

        The file is written to a temporary name in the same directory and moved into place, so a
        crash never leaves a half-written file under ``path``. Missing parent directories are
        created. Ids, when the set has them, go into an ``ids`` unicode array (``.npz``) or a JSON
        list under the header key ``ids`` (``.safetensors``); readers that predate ids ignore
        both.

        Returns:
            The path written.

        Raises:
            ValueError: an unsupported suffix, or ids too many for a ``.safetensors`` header
                (which safetensors caps at 100 MB; ``.npz`` has no such limit).
        """
        path = Path(path)
        suffix = _check_suffix(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "embeddings": self.embeddings,
            "labels": self.labels,
            "attributes": self.attributes,
        }
        header = {
            "kind": _KIND,
            "format_version": FORMAT_VERSION,
            "attribute_value_names": self.attribute_value_names,
            "metadata": self.metadata,
        }
        if suffix == ".npz":
            arrays["label_names"] = np.array(self.label_names, dtype=str)
            arrays["attribute_names"] = np.array(self.attribute_names, dtype=str)
            arrays["header"] = np.array(json.dumps(header))
            if self.ids is not None:
                arrays["ids"] = self.ids

            def write(f: BinaryIO) -> None:
                np.savez(f, **arrays)

        else:
            from safetensors.numpy import save as save_safetensors

            header["label_names"] = self.label_names
            header["attribute_names"] = self.attribute_names
            if self.ids is not None:
                header["ids"] = self.ids.tolist()
            text = {k: json.dumps(v) for k, v in header.items()}
            tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
            try:
                blob = save_safetensors(tensors, metadata=text)
            except _safetensors_error() as err:
                if self.ids is None:
                    raise
                # safetensors caps its JSON header (100 MB): a few million long ids exceed it
                raise ValueError(
                    f"cannot save {len(self)} ids in the header of {path} ({err}); save the set "
                    "as .npz, which stores ids as an array"
                ) from err

            def write(f: BinaryIO) -> None:
                f.write(blob)

        atomic_write(path, write)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, allow_invalid: bool = False) -> EmbeddingSet:
        """Read a set written by :meth:`save`; the suffix picks the format.

        Files without ids (all files written before sets had them) load with ``ids=None``.

        Args:
            path: an ``.npz`` or ``.safetensors`` file.
            allow_invalid: accept rows with NaN/Inf values (as in the constructor).

        Raises:
            FileNotFoundError: nothing at ``path``.
            ValueError: unsupported suffix, or the file is not an embedding file written by
                :meth:`save` (another kind of file, corrupt or truncated, or a newer format).
        """
        path = Path(path)
        suffix = _check_suffix(path)
        if not path.is_file():
            raise FileNotFoundError(f"embedding file not found: {path}")
        reader = _read_npz if suffix == ".npz" else _read_safetensors
        try:
            arrays, header = reader(path)
        except _NotAnEmbeddingFile:
            raise
        except _READ_ERRORS as err:
            raise ValueError(
                f"{path} is not a readable embedding file ({type(err).__name__}: {err}); expected "
                f"a {suffix} file written by EmbeddingSet.save()"
            ) from err
        try:
            return cls(
                embeddings=arrays["embeddings"],
                labels=arrays["labels"],
                attributes=arrays["attributes"],
                attribute_names=header["attribute_names"],
                label_names=header["label_names"],
                attribute_value_names=header["attribute_value_names"],
                metadata=header["metadata"],
                allow_invalid=allow_invalid,
                ids=header.get("ids"),
            )
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err


# -- construction helpers -------------------------------------------------------------------
def _as_embedding_matrix(embeddings: Any) -> np.ndarray:
    if hasattr(embeddings, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        embeddings = embeddings.detach().cpu().numpy()
    try:
        arr = np.asarray(embeddings)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"embeddings must be a rectangular numeric (N, D) array; could not convert it: {err}"
        ) from err
    if arr.dtype.kind not in "iuf":
        raise ValueError(
            f"embeddings must be numeric (float or integer), got dtype {arr.dtype}; convert them "
            "with np.asarray(x, dtype=np.float32)"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"embeddings must be 2-D (N, D), got shape {arr.shape}; reshape with "
            "x.reshape(len(x), -1) or stack the rows"
        )
    if arr.shape[0] == 0:
        raise ValueError("embeddings has no rows (N == 0); an EmbeddingSet needs at least one row")
    if arr.shape[1] == 0:
        raise ValueError(f"embeddings has shape {arr.shape}: the dimension D must be at least 1")
    with np.errstate(over="ignore"):  # float64 too large for float32 becomes Inf, caught later
        return np.ascontiguousarray(arr, dtype=np.float32)


def _check_lengths(n: int, labels: Any, attributes: np.ndarray | dict[str, Any] | None) -> None:
    """Name both lengths when labels or attributes do not have one entry per embedding row."""
    if np.ndim(labels) >= 1 and len(labels) != n:
        raise ValueError(
            f"embeddings has {n} rows but labels has {len(labels)} entries; give one label per row"
        )
    if isinstance(attributes, dict):
        lengths = {f"attribute {a!r}": len(col) for a, col in attributes.items()}
    elif attributes is not None and np.ndim(attributes) >= 1:
        lengths = {"attributes": len(attributes)}
    else:
        lengths = {}
    for what, length in lengths.items():
        if length != n:
            raise ValueError(
                f"embeddings has {n} rows but {what} has {length} values; give one attribute value "
                "per row"
            )


def _as_ids(ids: Sequence[str] | np.ndarray, n: int) -> np.ndarray:
    """``ids`` as a unicode array after checking they are ``n`` unique, non-empty strings."""
    if isinstance(ids, str) or np.ndim(ids) != 1:
        shape = "a single string" if isinstance(ids, str) else f"shape {np.shape(ids)}"
        raise ValueError(f"ids must be a sequence of {n} strings (one per row), got {shape}")
    if isinstance(ids, np.ndarray) and ids.dtype.kind not in "UO":
        raise ValueError(
            f"ids must be strings, got an array of dtype {ids.dtype}; ids name samples (e.g. image "
            "paths): convert numbers yourself (e.g. ids.astype(str)) if they are meant as names"
        )
    values = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
    if len(values) != n:
        raise ValueError(
            f"embeddings has {n} rows but ids has {len(values)} entries; give one id per row"
        )
    for k, value in enumerate(values):  # checked before numpy, which drops trailing NULs
        if not isinstance(value, str):
            raise ValueError(
                f"ids must be strings, but ids[{k}] is {value!r} ({type(value).__name__}); "
                "convert numbers yourself if they are meant as names"
            )
        if not value:
            raise ValueError(f"ids[{k}] is an empty string; every row needs a non-empty id")
        if "\x00" in value:
            raise ValueError(f"ids[{k}] = {value!r} contains a NUL character ('\\x00')")
    arr = np.array(values, dtype=str)
    ordered = np.sort(arr)
    if np.any(ordered[1:] == ordered[:-1]):
        first: dict[str, int] = {}
        for k, value in enumerate(values):
            if value in first:
                raise ValueError(
                    f"ids must be unique, but {value!r} names rows {first[value]} and {k}"
                )
            first[value] = k
    return arr


def find_ids(ids: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
    """The row of each of ``wanted`` in ``ids`` (unique strings without NUL characters, as an
    :class:`EmbeddingSet` holds them), ``-1`` where it is absent.

    One sort of ``ids`` and a binary search per wanted id: ``O((N + M) log N)``.

    Raises:
        ValueError: a wanted value is not a string.
    """
    wanted = list(wanted)
    for value in wanted:
        if not isinstance(value, str):
            raise ValueError(
                f"ids to look up must be strings, got {value!r} ({type(value).__name__})"
            )
    rows = np.full(len(wanted), -1, dtype=np.int64)
    ids = np.asarray(ids)
    if not wanted or ids.size == 0:
        return rows
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    query = np.array(wanted, dtype=str)
    at = np.minimum(np.searchsorted(ordered, query), len(ordered) - 1)
    # numpy drops trailing NULs ("a\x00" would become "a"); ids hold no NUL, so such a value
    # is never an id
    hit = (ordered[at] == query) & np.array(["\x00" not in v for v in wanted], dtype=bool)
    rows[hit] = order[at[hit]]
    return rows


def _normalise_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"metadata must be JSON-serialisable (str, int, float, bool, None, lists and dicts; "
            f"no NaN): {err}"
        ) from err


def _preview(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:_SHOW_INDICES])
    return f"[{shown}{', ...' if indices.size > _SHOW_INDICES else ''}]"


# -- file helpers ---------------------------------------------------------------------------
def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported embedding file suffix {path.suffix!r} in {path}; use one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def _safetensors_error() -> type[Exception]:
    try:
        from safetensors import SafetensorError
    except ImportError:  # older safetensors
        return RuntimeError
    return SafetensorError


_READ_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    UnicodeDecodeError,
    _safetensors_error(),
)


class _NotAnEmbeddingFile(ValueError):
    """A readable file that is not (or not a complete) embedding file."""


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise _NotAnEmbeddingFile(
            f"{path} holds a single .npy array, not an .npz archive written by EmbeddingSet.save()"
        )
    with data:
        if "header" not in data.files:
            raise _NotAnEmbeddingFile(
                f"{path} is not an embedding file: expected the keys {list(_NPZ_KEYS)} written by "
                f"EmbeddingSet.save(), found {sorted(data.files)}"
            )
        header_arr = data["header"]
        header = json.loads(str(header_arr)) if header_arr.dtype.kind == "U" else None
        _check_header(path, header)
        missing = [k for k in _NPZ_KEYS if k not in data.files]
        if missing:
            raise _NotAnEmbeddingFile(
                f"{path} is not a complete embedding file: it lacks {missing}"
            )
        arrays = {k: data[k] for k in _ARRAY_KEYS}
        for key in ("label_names", "attribute_names"):
            names = data[key]
            if names.ndim != 1 or names.dtype.kind != "U":
                raise _NotAnEmbeddingFile(f"{path}: {key!r} must be a 1-D unicode array")
            header[key] = [str(s) for s in names]
        if "ids" in data.files:  # optional: files written before sets had ids lack it
            ids = data["ids"]
            if ids.ndim != 1 or ids.dtype.kind != "U":
                raise _NotAnEmbeddingFile(f"{path}: 'ids' must be a 1-D unicode array")
            header["ids"] = ids
    return arrays, header


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        text = f.metadata() or {}
        header = {k: _json_or_raw(v) for k, v in text.items()}
        _check_header(path, header)
        missing = [k for k in _ARRAY_KEYS if k not in f.keys()]
        missing += [k for k in ("label_names", "attribute_names") if k not in header]
        if missing:
            raise _NotAnEmbeddingFile(
                f"{path} is not a complete embedding file: it lacks {missing}"
            )
        arrays = {k: f.get_tensor(k) for k in _ARRAY_KEYS}
    return arrays, header


def _json_or_raw(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _check_header(path: Path, header: Any) -> None:
    """Check the marker, the format version and the types of the header's fields."""
    if not isinstance(header, dict) or header.get("kind") != _KIND:
        raise _NotAnEmbeddingFile(
            f"{path} is not an embedding file: it lacks the {_KIND!r} marker that "
            "EmbeddingSet.save() writes"
        )
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _NotAnEmbeddingFile(f"{path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _NotAnEmbeddingFile(
            f"{path} uses embedding file format version {version}, newer than the version "
            f"{FORMAT_VERSION} this fairmetric reads; upgrade fairmetric"
        )
    expected = {
        "attribute_value_names": dict,
        "metadata": dict,
        "label_names": list,
        "attribute_names": list,
        "ids": list,
    }
    for key, kind in expected.items():
        if key in header and not isinstance(header[key], kind):
            raise _NotAnEmbeddingFile(f"{path}: header field {key!r} must be a {kind.__name__}")
    for key in ("attribute_value_names", "metadata"):
        if key not in header:
            raise _NotAnEmbeddingFile(f"{path} is not a complete embedding file: it lacks {key!r}")
