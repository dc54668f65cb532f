"""Turn what a user points ``fairmetric audit`` at into an :class:`EmbeddingSet`.

Accepted sources:

- an embedding file: ``.npz`` or ``.safetensors`` written by :meth:`EmbeddingSet.save`;
- a ``.npy`` matrix plus a CSV of labels and attributes (``labels_csv``: header ``label,<attr>...``
  with distinct names, one row per embedding; ids such as ``007`` stay strings, see
  :func:`~fairmetric.data.csv_table.typed_column`);
- a fairmetric run folder (its ``config.yaml`` describes the data) or exported model folder (give a
  ``config``), embedded on the config's split;
- a timm model name (its pooled features, ``pretrained=False`` or a local ``weights`` file), with a
  ``config`` describing the data;
- ``module:function``: any Python callable mapping a batch of inputs (a float tensor, images in
  ``[0, 1]`` or vectors) to embeddings (a tensor or array), with a ``config`` describing the data —
  the way to audit released models such as sentence encoders or face-recognition networks.

Model sources are embedded batched under :func:`torch.inference_mode` with the speed settings
``precision`` (fp32, bf16, fp16), ``channels_last`` and ``num_workers``; a model folder's config
supplies those it sets in its ``train`` section (so a run is embedded the way it was trained).
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from fairmetric.embeddings import EmbeddingSet
from fairmetric.sources.files import load_embedding_file
from fairmetric.sources.models import CallableEncoder, Features, data_split, import_callable

__all__ = ["CallableEncoder", "load_source"]


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
) -> EmbeddingSet:
    """Resolve an audit source (see the module docstring) into an :class:`EmbeddingSet`.

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
    if suffix in (".npz", ".safetensors", ".npy"):
        return load_embedding_file(path, labels_csv, text)
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

        speed = {}
        if not timm.is_model(text):
            if path.suffix or path.exists():
                raise ValueError(
                    f"cannot audit {text!r}: not an embedding file (.npz, .safetensors, .npy + "
                    "--labels), a model folder, a timm model name or module:function"
                )
            raise FileNotFoundError(
                f"{text!r} is not an existing file or folder, a timm model name, or module:function"
            )
        from fairmetric.models.embedder import Embedder

        dataset, _ = data_split(config, overrides, split, f"the timm model {text}")
        model = Features(
            Embedder(
                backbone=text,
                embedding_dim=1,
                input_size=tuple(dataset.input_shape),
                pretrained_weights=None if weights is None else str(weights),
            )
        )
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
        **speed,
    )
