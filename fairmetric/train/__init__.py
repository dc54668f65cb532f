"""Experiment configs and the training loop."""

from fairmetric.train.config import ExperimentConfig, load_config, save_config
from fairmetric.train.trainer import Trainer, build_data, build_model, train

__all__ = [
    "ExperimentConfig",
    "Trainer",
    "build_data",
    "build_model",
    "load_config",
    "save_config",
    "train",
]
