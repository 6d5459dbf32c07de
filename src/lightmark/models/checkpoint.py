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
DEFAULT_WEIGHTS = "lightmark_default.pt"


def default_model_path() -> Path:
    """Path of the model shipped inside the package."""
    return Path(str(resources.files("lightmark") / "weights" / DEFAULT_WEIGHTS))


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
    """Load a trained model (the shipped default when ``path`` is None), in eval mode on the CPU.

    A training checkpoint that holds EMA weights (``ema_state_dict``) loads them when ``use_ema``.
    """
    path = Path(path) if path is not None else default_model_path()
    ckpt = load_checkpoint(path)
    if use_ema and isinstance(ckpt.get("ema_state_dict"), dict):
        ckpt = {**ckpt, "state_dict": ckpt["ema_state_dict"]}
    return model_from_checkpoint(ckpt, str(path))
