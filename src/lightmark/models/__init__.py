"""Models: the registry, the landmark network, checkpoints and cost figures."""

from .checkpoint import (
    DEFAULT_TRACK,
    SHIPPED_MODELS,
    Checkpoint,
    default_model_path,
    load_checkpoint,
    load_model,
    resolve_model_path,
    save_checkpoint,
    shipped_model_path,
    weights_of,
)
from .info import MAX_MODEL_MB, count_macs, count_parameters, float32_size_mb, model_summary
from .landmark_model import LandmarkGraph, LandmarkModel, ModelConfig, build_codec
from .registry import create_model, list_models, model_config, register_model

__all__ = [
    "DEFAULT_TRACK",
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
    "save_checkpoint",
    "weights_of",
]
