"""Models: the registry, the landmark network, checkpoints and cost figures.

The config (:class:`ModelConfig`), the registry of configs and the shipped models' paths import without torch;
the network, checkpoints and cost figures import torch when their names are first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ModelConfig
from .registry import create_model, list_models, model_config, register_model
from .shipped import (
    DEFAULT_TRACK,
    REAL_FACE_TRACKS,
    SHIPPED_MODELS,
    default_model_path,
    resolve_model_path,
    shipped_model_path,
    shipped_onnx_path,
)

_LAZY = {  # name -> submodule (each imports torch)
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_model": "checkpoint",
    "save_checkpoint": "checkpoint",
    "weights_of": "checkpoint",
    "MAX_MODEL_MB": "info",
    "count_macs": "info",
    "count_parameters": "info",
    "float32_size_mb": "info",
    "model_summary": "info",
    "LandmarkGraph": "landmark_model",
    "LandmarkModel": "landmark_model",
    "build_codec": "landmark_model",
}

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint, weights_of
    from .info import MAX_MODEL_MB, count_macs, count_parameters, float32_size_mb, model_summary
    from .landmark_model import LandmarkGraph, LandmarkModel, build_codec


def __getattr__(name: str):
    """Import the torch-based submodules only when one of their names is first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_TRACK",
    "REAL_FACE_TRACKS",
    "SHIPPED_MODELS",
    "MAX_MODEL_MB",
    "Checkpoint",
    "LandmarkGraph",
    "LandmarkModel",
    "ModelConfig",
    "build_codec",
    "count_macs",
    "count_parameters",
    "create_model",
    "default_model_path",
    "float32_size_mb",
    "list_models",
    "load_checkpoint",
    "load_model",
    "model_config",
    "model_summary",
    "register_model",
    "resolve_model_path",
    "shipped_model_path",
    "shipped_onnx_path",
    "save_checkpoint",
    "weights_of",
]
