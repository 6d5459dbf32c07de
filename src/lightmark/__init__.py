"""lightmark: light-weight 68-point facial landmarks, trained on synthetic faces, fast on a CPU.

>>> from lightmark import Predictor
>>> points = Predictor().predict("face.jpg")   # (68, 2) in image pixels
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "Predictor": ("lightmark.engine.predict", "Predictor"),
    "PredictionResults": ("lightmark.engine.predict", "PredictionResults"),
    "evaluate": ("lightmark.engine.evaluate", "evaluate"),
    "EvaluationReport": ("lightmark.engine.evaluate", "EvaluationReport"),
    "train": ("lightmark.engine.train", "train"),
    "TrainConfig": ("lightmark.engine.train", "TrainConfig"),
    "create_model": ("lightmark.models", "create_model"),
    "list_models": ("lightmark.models", "list_models"),
    "load_model": ("lightmark.models", "load_model"),
    "ModelConfig": ("lightmark.models.config", "ModelConfig"),
    "load_dataset": ("lightmark.data.formats", "load_dataset"),
    "read_image": ("lightmark.data.images", "read_image"),
    "write_submission": ("lightmark.submission", "write_submission"),
    "check_submission": ("lightmark.submission", "check_submission"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .data.formats import load_dataset
    from .data.images import read_image
    from .engine.evaluate import EvaluationReport, evaluate
    from .engine.predict import PredictionResults, Predictor
    from .engine.train import TrainConfig, train
    from .models import create_model, list_models, load_model
    from .models.config import ModelConfig
    from .submission import check_submission, write_submission


def __getattr__(name: str):
    """Import heavy modules (torch, cv2, onnxruntime) only when their names are first used: ``import lightmark``
    imports nothing but this file."""
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'lightmark' has no attribute {name!r}")


__all__ = [
    "EvaluationReport",
    "ModelConfig",
    "PredictionResults",
    "Predictor",
    "TrainConfig",
    "check_submission",
    "create_model",
    "evaluate",
    "list_models",
    "load_dataset",
    "load_model",
    "read_image",
    "train",
    "write_submission",
]
