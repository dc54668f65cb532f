"""Embedding models: timm backbone + projection head, export and loading."""

from fairmetric.models.embed import embed_dataset
from fairmetric.models.embedder import Embedder, load_embedder, save_embedder

__all__ = ["Embedder", "embed_dataset", "load_embedder", "save_embedder"]
