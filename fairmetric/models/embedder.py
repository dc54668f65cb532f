"""The embedding model: a timm backbone, a projection head and optional L2 normalisation.

``Embedder`` holds only what is deployed. Training-time extras (attribute heads, adversaries) live
outside it, so :func:`save_embedder` exports exactly the model a user ships and
:func:`load_embedder` rebuilds it without any training state.
"""

from __future__ import annotations

import difflib
import json
import math
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from fairmetric.utils import atomic_write_bytes

__all__ = [
    "Embedder",
    "save_embedder",
    "load_embedder",
    "MODEL_FILE",
    "CONFIG_FILE",
    "MAX_EMBEDDING_DIM",
    "MAX_IMAGE_SIDE",
    "load_backbone_weights",
    "read_weights",
]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_FORMAT = "fairmetric-embedder"


_MLP_NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": None}

#: Upper bounds on sizes, checked before anything is allocated (a typo such as an extra zero in a
#: config would otherwise allocate gigabytes, or fail deep inside torch)
MAX_EMBEDDING_DIM = 65536
MAX_IMAGE_SIDE = 4096  # image height, width and channels
MAX_VECTOR_DIM = 2**20  # features of a vector input
MAX_MLP_WIDTH = 65536
MAX_MLP_LAYERS = 1000
MAX_INPUT_ELEMENTS = 2**27  # values in one input (C * H * W): 512 MiB of float32
MAX_MLP_PARAMETERS = 2**30  # 4 GiB of float32 weights


def _check_size(name: str, value: Any, high: int, low: int = 1) -> int:
    """``value`` as an int in ``[low, high]``, else a ``ValueError`` naming ``name``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _mlp_backbone(
    in_features: int, hidden: int = 128, layers: int = 2, norm: str = "batch"
) -> nn.Module:
    """``layers`` × (Linear, norm, ReLU). ``norm``: ``batch`` (statistics of the batch, so per
    process in distributed training on CPU), ``layer`` (per sample) or ``none``."""
    if norm not in _MLP_NORMS:
        raise ValueError(f"norm must be one of {', '.join(_MLP_NORMS)}, got {norm!r}")
    _check_size("hidden (the MLP's width)", hidden, MAX_MLP_WIDTH)
    _check_size("layers (the MLP's depth)", layers, MAX_MLP_LAYERS, low=0)
    weights = (in_features * hidden + (layers - 1) * hidden * hidden) if layers else 0
    if weights > MAX_MLP_PARAMETERS:
        raise ValueError(
            f"an MLP of {layers} layers of width {hidden} on {in_features} input features has "
            f"{weights:,} weights (at most {MAX_MLP_PARAMETERS:,}); lower hidden or layers"
        )
    blocks: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        blocks.append(nn.Linear(width, hidden))
        if _MLP_NORMS[norm] is not None:
            blocks.append(_MLP_NORMS[norm](hidden))
        blocks.append(nn.ReLU())
        width = hidden
    return nn.Sequential(*blocks)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a local weights file (.safetensors or a torch file, loaded with weights_only=True)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt files raise many different types
        raise ValueError(
            f"pretrained weights file {path} is corrupt or not a weights file "
            f"({type(e).__name__}: {str(e)[:200]})"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"pretrained weights file {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_strict(
    model: nn.Module, state: dict[str, torch.Tensor], what: str, ignore: tuple[str, ...] = ()
) -> None:
    """Load ``state`` into ``model``, refusing any missing, unexpected or mis-shaped tensor.

    Keys starting with one of ``ignore`` may be extra (a classifier dropped at num_classes=0).
    ``what`` starts the error message, which names the offending keys.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(ignore)]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{what}: missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape "
            f"{wrong[:5]} ({len(missing)}/{len(unexpected)}/{len(wrong)} in all)"
        )
    model.load_state_dict({k: state[k] for k in own})


def load_backbone_weights(model: nn.Module, path: Path) -> None:
    """Load ``path`` into ``model`` strictly, except for the classifier (dropped at num_classes=0)."""
    classifier = (getattr(model, "pretrained_cfg", {}) or {}).get("classifier") or ()
    prefixes = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))
    _load_strict(
        model,
        read_weights(path),
        f"pretrained weights {path} do not fit this backbone (are they for another architecture "
        "or another in_chans?)",
        ignore=prefixes,
    )


def _timm_backbone(
    name: str, in_chans: int, pretrained_weights: str | None, kwargs: dict[str, Any]
) -> nn.Module:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown backbone {name!r}: not a timm model name (see timm.list_models()), "
            f"nor 'mlp'.{hint}"
        )
    path = None
    if pretrained_weights is not None:
        path = Path(pretrained_weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained weights file not found: {path} (give a local .pth or .safetensors "
                "file; fairmetric never downloads weights)"
            )
    try:
        model = timm.create_model(
            name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs
        )
    except TypeError as e:
        raise ValueError(f"bad model.backbone_kwargs for {name!r}: {e}") from None
    if path is not None:
        # timm's own pretrained loading turns non-strict at num_classes=0 and would silently
        # leave a mismatched backbone random: load and check the file ourselves
        load_backbone_weights(model, path)
    return model


def _check_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    """``input_size`` as a tuple of ints, each in range: ``(D,)`` or ``(C, H, W)``."""
    if isinstance(input_size, (str, bytes)) or not hasattr(input_size, "__iter__"):
        raise ValueError(f"input_size must be (D,) or (C, H, W), got {input_size!r}")
    sizes = list(input_size)
    high = MAX_VECTOR_DIM if len(sizes) == 1 else MAX_IMAGE_SIDE
    try:
        checked = tuple(_check_size("input_size", s, high) for s in sizes)
    except ValueError:
        raise ValueError(
            f"input_size must hold integers between 1 and {high}, got {sizes}"
        ) from None
    if math.prod(checked) > MAX_INPUT_ELEMENTS:
        raise ValueError(
            f"input_size {list(checked)} has {math.prod(checked):,} values per input (at most "
            f"{MAX_INPUT_ELEMENTS:,}); use smaller images"
        )
    return checked


class Embedder(nn.Module):
    """Backbone + linear projection to ``embedding_dim`` + optional L2 normalisation.

    ``forward(x)`` computes ``e = normalize(W h(x) + b)`` where ``h`` is the pooled backbone
    feature. Image inputs are expected in ``[0, 1]``; the model standardises them with the
    backbone's mean and standard deviation itself, so an exported model needs no external
    preprocessing beyond resizing.

    Args:
        backbone: a timm model name (``pretrained=False`` unless ``pretrained_weights`` is given) or
            ``"mlp"`` for vector inputs.
        embedding_dim: size of the embedding.
        normalize: L2-normalise the output.
        input_size: shape of one input, ``(C, H, W)`` for images or ``(D,)`` for vectors.
        pretrained_weights: a local weights file for the timm backbone.
        backbone_kwargs: extra keyword arguments for ``timm.create_model`` (or ``hidden``,
            ``layers`` and ``norm`` -- ``batch``, ``layer`` or ``none`` -- for the MLP).
    """

    def __init__(
        self,
        *,
        backbone: str = "test_resnet",
        embedding_dim: int = 64,
        normalize: bool = True,
        input_size: Sequence[int] = (3, 32, 32),
        pretrained_weights: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_size("embedding_dim", embedding_dim, MAX_EMBEDDING_DIM)
        input_size = _check_input_size(input_size)
        backbone_kwargs = dict(backbone_kwargs or {})
        if backbone == "mlp":
            if len(input_size) != 1:
                raise ValueError(
                    f"the 'mlp' backbone takes vector inputs, got input_size={input_size}; "
                    "use a timm backbone for images"
                )
            if pretrained_weights is not None:
                raise ValueError(
                    "pretrained_weights applies to timm backbones only; the 'mlp' backbone "
                    "starts from random weights"
                )
            try:
                self.backbone = _mlp_backbone(input_size[0], **backbone_kwargs)
            except TypeError as e:
                raise ValueError(
                    f"bad backbone_kwargs for 'mlp' (hidden, layers, norm): {e}"
                ) from None
            mean = std = None
        else:
            if len(input_size) != 3:
                raise ValueError(
                    f"timm backbones take images (C, H, W), got input_size={input_size}; "
                    "use backbone='mlp' for vector inputs"
                )
            self.backbone = _timm_backbone(
                backbone, input_size[0], pretrained_weights, backbone_kwargs
            )
            cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
            mean, std = cfg.get("mean"), cfg.get("std")
            if mean is not None and len(mean) != input_size[0]:
                # e.g. grayscale input to a backbone configured for RGB: use the channel average
                mean = [sum(mean) / len(mean)] * input_size[0]
                std = [sum(std) / len(std)] * input_size[0]
        self.register_buffer(
            "input_mean",
            torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) if mean else torch.zeros(0),
        )
        self.register_buffer(
            "input_std",
            torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) if std else torch.zeros(0),
        )
        self.feature_dim = self._infer_feature_dim(input_size)
        self.head = nn.Linear(self.feature_dim, embedding_dim)
        self.embedding_dim = int(embedding_dim)
        self.normalize = bool(normalize)
        self.input_size = input_size
        self.backbone_name = backbone
        self.backbone_kwargs = backbone_kwargs

    @torch.no_grad()
    def _infer_feature_dim(self, input_size: tuple[int, ...]) -> int:
        # timm's num_features can disagree with the real width: measure it
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            out = self.backbone(self._standardize(torch.zeros(2, *input_size)))
        except RuntimeError as e:
            raise ValueError(
                f"backbone {self.backbone.__class__.__name__} cannot process inputs of "
                f"input_size={input_size} ({str(e)[:160]}); use larger images (data.image_size)"
            ) from None
        finally:
            self.backbone.train(was_training)
        if out.ndim != 2:
            raise ValueError(
                f"backbone {self.backbone.__class__.__name__} returned shape {tuple(out.shape)}; "
                "expected pooled features (N, F)"
            )
        return int(out.shape[1])

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mean.numel():
            return (x - self.input_mean) / self.input_std
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``h(x)``, shape ``(N, feature_dim)``."""
        return self.backbone(self._standardize(x))

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The raw (pre-normalisation) embedding ``W h + b``."""
        return self.head(h)

    def finalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Apply the output normalisation to a raw embedding."""
        return F.normalize(raw, dim=1) if self.normalize else raw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finalize(self.project(self.features(x)))

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model (its weights aside), JSON-serialisable."""
        return {
            "format": _FORMAT,
            "backbone": self.backbone_name,
            "embedding_dim": self.embedding_dim,
            "normalize": self.normalize,
            "input_size": list(self.input_size),
            "backbone_kwargs": self.backbone_kwargs,
            "feature_dim": self.feature_dim,
        }


def save_embedder(
    model: Embedder, directory: str | Path, *, extra: dict[str, Any] | None = None
) -> Path:
    """Export ``model`` as ``model.safetensors`` + ``config.json`` in ``directory`` (atomically).

    Only the :class:`Embedder` is written: attribute heads or adversaries used in training are not
    part of it. ``extra`` adds JSON metadata (e.g. the training run) to the config.
    """
    from safetensors.torch import save

    if not isinstance(model, Embedder):
        raise TypeError(f"save_embedder expects an Embedder, got {type(model).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(directory / MODEL_FILE, save(state))
    config = model.config()
    if extra:
        config["extra"] = extra
    atomic_write_bytes(directory / CONFIG_FILE, json.dumps(config, indent=2).encode())
    return directory


def load_embedder(directory: str | Path, *, map_location: str | torch.device = "cpu") -> Embedder:
    """Load a model exported by :func:`save_embedder` (no training code or state needed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, weights_path = directory / CONFIG_FILE, directory / MODEL_FILE
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} not found: an exported fairmetric model is a folder with {CONFIG_FILE} and "
                f"{MODEL_FILE} (written by `fairmetric train` into RUN/model)"
            )
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{cfg_path} is not valid JSON ({e}); re-export the model") from None
    if not isinstance(config, dict) or config.get("format") != _FORMAT:
        raise ValueError(f"{cfg_path} is not a fairmetric embedder config (no format={_FORMAT!r})")
    expected = {"backbone": str, "embedding_dim": int, "normalize": bool, "input_size": list}
    for key, tp in expected.items():
        if not isinstance(config.get(key), tp) or (tp is int and isinstance(config[key], bool)):
            raise ValueError(
                f"{cfg_path}: key {key!r} is missing or not a {tp.__name__}; re-export the model"
            )
    try:
        model = Embedder(
            backbone=config["backbone"],
            embedding_dim=config["embedding_dim"],
            normalize=config["normalize"],
            input_size=config["input_size"],
            backbone_kwargs=config.get("backbone_kwargs") or {},
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cfg_path} describes a model that cannot be built: {e}") from None
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(
            f"{weights_path} is corrupt or not a safetensors file ({e}); re-export the model"
        ) from None
    _load_strict(model, state, f"{weights_path} does not match the architecture in {cfg_path}")
    return model.to(map_location).eval()
