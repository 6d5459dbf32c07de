"""A small model registry (timm style): named factories returning a :class:`ModelConfig`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import ModelError
from .config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    from .landmark_model import LandmarkModel

_FACTORIES: dict[str, Callable[[], ModelConfig]] = {}

REFERENCE_MODELS: frozenset[str] = frozenset({"resnet50_regression"})
"""Registered for comparison rows only: over the 15 MB limit (``info.MAX_MODEL_MB``), never shipped."""


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Decorator: register a config factory under its function name."""
    _FACTORIES[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_FACTORIES)


def model_config(name: str, **overrides) -> ModelConfig:
    """The registered config of ``name`` with field overrides (e.g. ``input_size=192``, ``scheme="wflw98"``: a
    scheme override also derives ``num_landmarks`` and ``flip_perm`` again, unless they are overridden too)."""
    if name not in _FACTORIES:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    cfg = _FACTORIES[name]()
    if "scheme" in overrides:
        overrides = {"num_landmarks": None, "flip_perm": None, **overrides}
    try:
        return replace(cfg, **overrides)
    except (TypeError, ValueError) as e:  # ValueError: e.g. input_size not a multiple of 32
        raise ModelError(f"bad option for model {name!r}: {e}") from None


def create_model(name: str, **overrides) -> LandmarkModel:
    """Build an untrained model by registered name: ``create_model("shufflenetv2_x1_0_heatmap", input_size=160)``."""
    from .landmark_model import LandmarkModel  # torch: imported by the models only, not by the registry

    return LandmarkModel(model_config(name, **overrides))


@register_model
def shufflenetv2_x0_5_heatmap() -> ModelConfig:
    return ModelConfig("shufflenetv2_x0_5_heatmap", width=0.5, head="heatmap", head_channels=64)


@register_model
def shufflenetv2_x1_0_heatmap() -> ModelConfig:
    return ModelConfig("shufflenetv2_x1_0_heatmap", width=1.0, head="heatmap", head_channels=96)


@register_model
def shufflenetv2_x1_5_heatmap() -> ModelConfig:
    return ModelConfig("shufflenetv2_x1_5_heatmap", width=1.5, head="heatmap", head_channels=128)


@register_model
def shufflenetv2_x2_0_heatmap() -> ModelConfig:
    return ModelConfig("shufflenetv2_x2_0_heatmap", width=2.0, head="heatmap", head_channels=128)


@register_model
def shufflenetv2_x0_5_regression() -> ModelConfig:
    return ModelConfig("shufflenetv2_x0_5_regression", width=0.5, head="regression", head_channels=64)


@register_model
def shufflenetv2_x1_0_regression() -> ModelConfig:
    return ModelConfig("shufflenetv2_x1_0_regression", width=1.0, head="regression", head_channels=128)


@register_model
def mobilenet_x1_0_heatmap() -> ModelConfig:
    """Few, wide layers (:mod:`lightmark.models.mobilenet`): about ShuffleNetV2 x1.0's parameters and MACs in 29
    convolutions instead of 65 (19 against 55 in the backbones), for a faster single pass on a CPU."""
    return ModelConfig("mobilenet_x1_0_heatmap", backbone="mobilenet", width=1.0, head="heatmap", head_channels=96)


@register_model
def resnet18_regression() -> ModelConfig:
    """The seed recipe's ResNet regressor (train it with the wing loss, the default): ResNet-18 at half width
    (within the 15 MB limit; full width is 47 MB) + the PFLD-like head."""
    return ModelConfig("resnet18_regression", backbone="resnet18", width=0.5, head="regression", head_channels=128)


@register_model
def resnet18_heatmap() -> ModelConfig:
    """ResNet-18 at half width with the heatmap head (per-point confidence, so ``predict``'s default reading and the
    guarded flip test apply): the capacity check of session 19."""
    return ModelConfig("resnet18_heatmap", backbone="resnet18", width=0.5, head="heatmap", head_channels=96)


@register_model
def resnet50_regression() -> ModelConfig:
    """The heavier reference (over the 15 MB limit: a comparison row, not a shippable model)."""
    return ModelConfig("resnet50_regression", backbone="resnet50", head="regression", head_channels=256)
