"""Checkpoints that carry their own config; safe loading (``torch.load(weights_only=True)``)."""

from __future__ import annotations

import io
import os
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, UnsafeFileError
from ..utils import atomic_save_bytes
from .landmark_model import LandmarkModel, ModelConfig

CHECKPOINT_FORMAT = "lightmark-checkpoint-v1"
SHIPPED_MODELS: dict[str, str] = {
    "protocol": "lightmark_protocol.pt",  # synthetic training data only (the challenge's rules)
    "mixed": "lightmark_mixed.pt",  # synthetic + real 300-W faces
}
"""The models shipped inside the package, by track name (each with its ONNX twin ``X.onnx`` beside ``X.pt``)."""
DEFAULT_TRACK = "mixed"
"""The track of the default model: the shipped model with the lower validation NME (tests check this)."""


def shipped_model_path(track: str) -> Path:
    """Path of a model shipped inside the package: ``"protocol"`` or ``"mixed"``."""
    if track not in SHIPPED_MODELS:
        raise ModelError(f"unknown shipped model {track!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return Path(str(resources.files("lightmark") / "weights" / SHIPPED_MODELS[track]))


def default_model_path() -> Path:
    """Path of the default model shipped inside the package (track :data:`DEFAULT_TRACK`)."""
    return shipped_model_path(DEFAULT_TRACK)


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """None -> the default model; a shipped track name (``"protocol"``, ``"mixed"``) that is not also an existing
    file -> that shipped model; anything else -> a checkpoint path."""
    if model is None:
        return default_model_path()
    if isinstance(model, str) and model in SHIPPED_MODELS and not Path(model).exists():
        return shipped_model_path(model)
    return Path(model)


def save_checkpoint(path: str | os.PathLike, model: LandmarkModel, **extra: Any) -> None:
    """Write ``{format, config, state_dict, **extra}`` atomically. ``extra`` must hold only tensors and
    plain Python data (dicts, lists, str, int, float, bool, None) so that ``weights_only`` loading works."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        **extra,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_save_bytes(path, buf.getvalue())


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "Re-running")


def _torch_reason(e: BaseException) -> str:
    """The informative line of torch.load's weights-only error (e.g. "Unsupported operand 120", or
    "Trying to load unsupported GLOBAL posix.system ..."), not its multi-line boilerplate."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(_TORCH_BOILERPLATE)]
    return (useful or lines or [type(e).__name__])[0][:200]


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict without running any code from the file.

    Raises:
        ModelError: missing, truncated or not a lightmark checkpoint.
        UnsafeFileError: the file references Python objects outside the weights-only allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = _torch_reason(e)
        if "GLOBAL" in str(e) or "Unsupported global" in str(e):  # a global outside the weights-only allow-list
            raise UnsafeFileError(f"{path}: refused to load, the file references code ({msg})") from None
        raise ModelError(f"{path}: not a readable checkpoint ({msg})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable checkpoint ({_first_line(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not a lightmark checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    return ckpt


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> LandmarkModel:
    """Rebuild the model a checkpoint dict describes and load its weights."""
    try:
        cfg = ModelConfig(**ckpt["config"])
        model = LandmarkModel(cfg)
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{source}: weights do not fit the model ({_first_line(e)})") from None
    return model.eval()


def load_model(path: str | os.PathLike | None = None, use_ema: bool = True) -> LandmarkModel:
    """Load a trained model in eval mode on the CPU: a checkpoint path, a shipped track name (``"protocol"``,
    ``"mixed"``), or None for the default model.

    A training checkpoint that holds EMA weights (``ema_state_dict``) loads them when ``use_ema``.
    """
    path = resolve_model_path(path)
    ckpt = load_checkpoint(path)
    if use_ema and isinstance(ckpt.get("ema_state_dict"), dict):
        ckpt = {**ckpt, "state_dict": ckpt["ema_state_dict"]}
    return model_from_checkpoint(ckpt, str(path))
