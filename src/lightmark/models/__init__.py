"""Models: the registry, the landmark network, checkpoints and cost figures."""

from .checkpoint import (
    DEFAULT_TRACK,
    SHIPPED_MODELS,
    default_model_path,
    load_checkpoint,
    load_model,
    model_from_checkpoint,
    resolve_model_path,
    save_checkpoint,
    shipped_model_path,
)
from .info import MAX_MODEL_MB, count_macs, count_parameters, float32_size_mb, model_summary
from .landmark_model import LandmarkModel, ModelConfig
from .registry import create_model, list_models, model_config, register_model

__all__ = [
    "DEFAULT_TRACK",
    "SHIPPED_MODELS",
    "MAX_MODEL_MB",
    "LandmarkModel",
    "ModelConfig",
    "count_macs",
    "count_parameters",
    "create_model",
    "default_model_path",
    "float32_size_mb",
    "list_models",
    "load_checkpoint",
    "load_model",
    "model_config",
    "model_from_checkpoint",
    "model_summary",
    "register_model",
    "resolve_model_path",
    "shipped_model_path",
    "save_checkpoint",
]
