"""Turn what a user points ``fairmetric audit`` at into an :class:`EmbeddingSet`.

Accepted sources:

- an embedding file: ``.npz`` or ``.safetensors`` written by :meth:`EmbeddingSet.save`;
- a ``.npy`` matrix plus a CSV of labels and attributes (``labels_csv``: header ``label,<attr>...``
  with distinct names, one row per embedding; ids such as ``007`` stay strings, see
  :func:`~fairmetric.data.csv_table.typed_column`), or a ``.npy`` / ``.npz`` / ``.safetensors``
  matrix plus a CSV or Parquet table whose columns are chosen by name (``columns``);
- a CSV or Parquet table (:mod:`fairmetric.sources.tables`) with a label column, attribute
  columns, an optional id column and either a text column, embedded by a text ``encoder``
  (:mod:`fairmetric.sources.text`: sentence-transformers, transformers or ``module:function``
  receiving ``list[str]``), or a Parquet embedding column (a list column of precomputed
  embeddings);
- a fairmetric run folder (its ``config.yaml`` describes the data) or exported model folder (give a
  ``config``), embedded on the config's split;
- a timm model name (its pooled features, ``pretrained=False`` or a local ``weights`` file), with a
  ``config`` describing the data;
- ``module:function``: any Python callable mapping a batch of inputs (a float tensor, images in
  ``[0, 1]`` or vectors) to embeddings (a tensor or array), with a ``config`` describing the data —
  the way to audit released image models such as face-recognition networks.

``split="all"`` embeds the whole dataset of a config (every split, concatenated).

Model sources are embedded batched under :func:`torch.inference_mode` with the speed settings
``precision`` (fp32, bf16, fp16), ``channels_last`` and ``num_workers``; a model folder's config
supplies those it sets in its ``train`` section (so a run is embedded the way it was trained).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError
from fairmetric.sources.files import load_embedding_file
from fairmetric.sources.image_data import embed_images, load_image_source
from fairmetric.sources.models import CallableEncoder, data_split, import_callable
from fairmetric.sources.tables import TABLE_SUFFIXES, Columns, read_table, select_columns, texts_of

__all__ = [
    "CallableEncoder",
    "Columns",
    "embed_images",
    "load_image_source",
    "load_source",
    "load_table",
]


def load_table(
    path: str | Path,
    *,
    columns: Columns | None = None,
    encoder: Any = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = False,
) -> EmbeddingSet:
    """A CSV / Parquet table of samples as an :class:`EmbeddingSet`.

    Args:
        path: the table.
        columns: which columns hold the label, attributes, ids, and the text or the
            precomputed embeddings (:class:`~fairmetric.sources.tables.Columns`).
        encoder: with a text column: an encoder spec (``sentence-transformers:FOLDER_OR_PACKAGE``,
            ``transformers:FOLDER``, ``module:function``) or a callable ``list[str] -> (B, D)``
            (see :mod:`fairmetric.sources.text`).
        batch_size: texts per encoder call.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for a model encoder.
        progress: a progress bar over batches (on a terminal only).

    Raises:
        UserError: a missing or unknown column, neither or both of a text and an embedding
            column, a text column without an encoder (or an encoder without one), an empty text,
            a label column with one value (see :func:`~fairmetric.sources.tables.select_columns`).
    """
    columns = columns or Columns()
    table = read_table(path)
    if (columns.text is None) == (columns.embedding is None):
        raise UserError(
            f"a table source needs one of --text-column (text, embedded by --encoder) or "
            f"--embedding-column (precomputed embeddings, Parquet) (columns of {table.path}: "
            f"{', '.join(table.names)})"
        )
    metadata: dict[str, Any] = {"source": str(path)}
    if columns.embedding is not None:
        if encoder is not None:
            raise UserError("--encoder embeds a --text-column; an --embedding-column is used as is")
        table.check(columns.embedding, "--embedding-column")
        fields = select_columns(table, columns)
        matrix = table.embeddings(columns.embedding)
        metadata["embedding_column"] = columns.embedding
    else:
        from fairmetric.sources.text import encode_texts, load_text_encoder

        if encoder is None:
            raise UserError(
                f"--text-column {columns.text!r} needs --encoder: "
                "sentence-transformers:FOLDER_OR_PACKAGE, transformers:FOLDER or module:function"
            )
        texts = texts_of(table, columns.text)
        fields = select_columns(table, columns)
        model = load_text_encoder(encoder, device=device)
        matrix = encode_texts(model, texts, batch_size=batch_size, progress=progress)
        metadata.update({"encoder": model.spec, "text_column": columns.text, **model.info})
    return EmbeddingSet(embeddings=matrix, allow_invalid=True, metadata=metadata, **fields)


def load_source(
    source: str | Path,
    *,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    split: str = "test",
    labels_csv: str | Path | None = None,
    weights: str | Path | None = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = False,
    precision: str | None = None,
    channels_last: bool | None = None,
    num_workers: int | None = None,
    columns: Columns | None = None,
    encoder: Any = None,
    random_weights: bool = False,
    images: str | Path | None = None,
    images_csv: str | Path | None = None,
    path_column: str | None = None,
    skip_unreadable: bool = False,
) -> EmbeddingSet:
    """Resolve an audit source (see the module docstring) into an :class:`EmbeddingSet`.

    A timm name or ``open_clip:ARCH`` is embedded by
    :func:`~fairmetric.sources.image_data.load_image_source`: with ``weights`` (or
    ``random_weights=True``), on a folder of ``images`` listed in ``images_csv`` (columns by
    name: ``path_column``, ``columns.label``, ``columns.attributes``) or on the config's data.

    ``columns`` chooses the columns of a table source or of ``labels_csv`` by name; ``encoder``
    embeds a table's text column (see :func:`load_table`).

    Rows with NaN/Inf are kept (``allow_invalid``) so the audit can report or drop them.

    ``precision`` (``fp32``, ``bf16``, ``fp16``), ``channels_last`` and ``num_workers`` set how a
    model source is embedded (see :func:`~fairmetric.models.embed.embed_dataset`); ``None``
    takes a model folder's config's ``train`` settings (with its ``pin_memory`` and
    ``prefetch_factor``), else fp32, contiguous layout, no workers. Embedding files ignore them.
    """
    from fairmetric.models.embed import embed_dataset, inference_settings

    text = str(source)
    path = Path(text)
    suffix = path.suffix.lower()
    image_args = {
        "weights": weights,
        "random_weights": random_weights,
        "images": images,
        "images_csv": images_csv,
        "path_column": path_column,
        "skip_unreadable": skip_unreadable,
        "columns": columns,
        "config": config,
        "overrides": overrides,
        "split": split,
        "batch_size": batch_size,
        "device": device,
        "progress": progress,
        "precision": precision,
        "channels_last": channels_last,
        "num_workers": num_workers,
    }
    if images is not None or random_weights or weights is not None or text.startswith("open_clip:"):
        return _image_source(text, **image_args)
    if suffix in TABLE_SUFFIXES:
        if labels_csv is not None:
            raise UserError(
                f"{path} is itself the table: choose its columns with --label-column, "
                "--attribute-columns, ... instead of --labels"
            )
        return load_table(
            path,
            columns=columns,
            encoder=encoder,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    if encoder is not None:
        raise UserError(
            "--encoder embeds the text column of a table source (.csv, .parquet); for a model "
            "that embeds images, give it as SOURCE (module:function, a timm name) with --config"
        )
    if columns is not None and columns.any() and suffix not in (".npz", ".safetensors", ".npy"):
        raise UserError(
            "column flags (--label-column, --text-column, ...) apply to a table source (.csv, "
            ".parquet) or to a matrix's --labels table"
        )
    if suffix in (".npz", ".safetensors", ".npy"):
        return load_embedding_file(path, labels_csv, text, columns)
    if path.is_dir():
        from fairmetric.models.embedder import CONFIG_FILE, load_embedder

        model_dir = path / "model" if (path / "model" / CONFIG_FILE).is_file() else path
        if not (model_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is neither a fairmetric run folder (model/{CONFIG_FILE}) nor an "
                f"exported model folder ({CONFIG_FILE})"
            )
        if config is None and (path / "config.yaml").is_file():
            config = path / "config.yaml"
        dataset, cfg = data_split(config, overrides, split, f"the model in {path}")
        speed = inference_settings(cfg.train)
        model: nn.Module = load_embedder(model_dir)
    elif ":" in text and not path.exists():
        speed = {}
        model = CallableEncoder(import_callable(text))  # a typo fails before any data work
        dataset, _ = data_split(config, overrides, split, f"the encoder {text}")
    else:
        import timm

        if not timm.is_model(text):
            if path.suffix or path.exists():
                raise ValueError(
                    f"cannot audit {text!r}: not an embedding file (.npz, .safetensors, .npy + "
                    "--labels), a model folder, a timm model name or module:function"
                )
            raise FileNotFoundError(
                f"{text!r} is not an existing file or folder, a timm model name, or module:function"
            )
        return _image_source(text, **image_args)
    given = {"precision": precision, "channels_last": channels_last, "num_workers": num_workers}
    speed.update({k: v for k, v in given.items() if v is not None})
    return embed_dataset(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        progress=progress,
        metadata={"source": text, "split": split},
        allow_invalid=True,
        distributed=None,  # under torchrun the processes share the embedding
        **speed,
    )


def _image_source(source: str, *, columns: Columns | None, images_csv: Any, **kwargs: Any):
    """A timm name or ``open_clip:ARCH`` (see :mod:`fairmetric.sources.images`)."""
    from fairmetric.sources.image_data import load_image_source

    if not source.startswith("open_clip:"):
        import timm

        if not timm.is_model(source):
            raise UserError(
                f"--weights, --random-weights and --images apply to a timm model name or "
                f"open_clip:ARCH SOURCE, got {source!r}"
            )
    columns = columns or Columns()
    extra = [f for f, v in (("--text-column", columns.text), ("--embedding-column",
             columns.embedding), ("--id-column", columns.id)) if v is not None]  # fmt: skip
    if extra:
        raise UserError(
            f"{', '.join(extra)} apply to table sources; an image folder's ids are its image "
            "paths, chosen with --path-column"
        )
    given = {k: kwargs.pop(k) for k in ("precision", "channels_last", "num_workers")}
    return load_image_source(
        source,
        table=images_csv,
        label_column=columns.label,
        attribute_columns=columns.attributes,
        **kwargs,
        **{k: v for k, v in given.items() if v is not None},
    )
