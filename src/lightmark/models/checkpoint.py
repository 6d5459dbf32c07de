"""Checkpoints that carry their own config (a typed :class:`Checkpoint`); safe loading
(``torch.load(weights_only=True)``)."""

from __future__ import annotations

import io
import math
import os
import pickle
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, UnsafeFileError
from ..utils import atomic_save_bytes
from .config import ModelConfig
from .landmark_model import LandmarkModel
from .shipped import (  # re-exported: their historical home
    DEFAULT_TRACK,
    SHIPPED_MODELS,
    default_model_path,
    missing_model_message,
    resolve_model_path,
    shipped_model_path,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_TRACK",
    "SHIPPED_MODELS",
    "Checkpoint",
    "default_model_path",
    "interpolate_checkpoints",
    "load_checkpoint",
    "load_model",
    "resolve_model_path",
    "save_checkpoint",
    "shipped_model_path",
    "weights_of",
]

CHECKPOINT_FORMAT = "lightmark-checkpoint-v1"


@dataclass
class Checkpoint:
    """A lightmark checkpoint: the model's config and weights, and, for a training run, what resuming needs.

    On disk it is a plain dict ``{"format", "config", "state_dict", ...}`` (each field below at the top level,
    ``extra`` merged in), readable with ``torch.load(weights_only=True)``.
    """

    config: dict  # ModelConfig.to_dict()
    state_dict: dict[str, torch.Tensor]  # the trained (raw) weights
    ema_state_dict: dict[str, torch.Tensor] | None = None  # exponential moving average of the weights
    optimizer: dict | None = None
    scheduler: dict | None = None
    epoch: int = 0  # epochs completed (with batch_in_epoch: where a resumed run continues)
    batch_in_epoch: int = 0
    history: list[dict] = field(default_factory=list)  # one row per epoch (see engine.train)
    best_nme: float = math.inf  # best validation NME of the run so far
    train_config: dict | None = None  # TrainConfig as plain data
    val_nme: float | None = None  # validation NME of the weights a slim export holds
    track: str | None = None  # "protocol" | "mixed" for the shipped models
    extra: dict = field(default_factory=dict)  # any other plain-data entries

    def weights(self, use_ema: bool = True) -> dict[str, torch.Tensor]:
        """The weights to deploy or evaluate: the EMA when there is one and ``use_ema``, else the raw weights.
        (The one place this rule is written.)"""
        return self.ema_state_dict if use_ema and self.ema_state_dict is not None else self.state_dict

    def build_model(self, use_ema: bool = True, source: str = "checkpoint") -> LandmarkModel:
        """The model this checkpoint describes, in eval mode on the CPU, with :meth:`weights` loaded."""
        try:
            model = LandmarkModel(ModelConfig.from_dict(self.config))
            model.load_state_dict(self.weights(use_ema))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ModelError(f"{source}: weights do not fit the model ({_first_line(e)})") from None
        return model.eval()

    def to_payload(self) -> dict:
        """The plain dict written to disk."""
        payload = {"format": CHECKPOINT_FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                payload.update(value)
            elif value is not None:
                payload[f.name] = value
        return payload

    @classmethod
    def from_payload(cls, payload: dict) -> Checkpoint:
        """Rebuild from the plain dict on disk (unknown keys land in ``extra``)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        data = {k: v for k, v in payload.items() if k in known}
        extra = {k: v for k, v in payload.items() if k not in known and k != "format"}
        return cls(**data, extra=extra)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically. Every entry must be a tensor or plain Python data (dicts, lists, str, int, float,
        bool, None) so that ``weights_only`` loading works."""
        buf = io.BytesIO()
        torch.save(self.to_payload(), buf)
        atomic_save_bytes(path, buf.getvalue())


def weights_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's state dict, for a checkpoint: contiguous tensors whatever the module's
    memory layout (a channels-last training run writes the weights an NCHW one would)."""
    return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in module.state_dict().items()}


def interpolate_checkpoints(start: Checkpoint, end: Checkpoint, alpha: float) -> Checkpoint:
    """Weight-space interpolation of two checkpoints of one network, ``(1 - alpha) * start + alpha * end`` (WiSE-FT:
    a fine-tuned model interpolated with the model it started from, to keep what fine-tuning forgot).

    Each side contributes its deployed weights (:meth:`Checkpoint.weights`: the EMA when there is one); integer
    buffers (BatchNorm's batch counters) are ``end``'s. The result is a slim checkpoint (no optimizer, no EMA) with
    ``end``'s config and training config, and ``extra["interpolated"]`` saying how it was made.

    Raises:
        ModelError: ``alpha`` outside [0, 1], or the two do not hold the same network.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ModelError(f"alpha: expected a weight in [0, 1], got {alpha}")
    if start.config != end.config:
        differ = sorted(k for k in start.config.keys() | end.config.keys() if start.config.get(k) != end.config.get(k))
        raise ModelError(f"the two checkpoints hold different networks (config differs in {', '.join(differ)})")
    a, b = start.weights(), end.weights()
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape or a[k].dtype != b[k].dtype for k in a):
        raise ModelError("the two checkpoints' weights do not match name for name, shape for shape and type for type")
    mixed = {k: torch.lerp(a[k], b[k], alpha) if b[k].is_floating_point() else b[k].clone() for k in b}
    return Checkpoint(
        dict(end.config),
        mixed,
        train_config=end.train_config,
        track=end.track,
        extra={"interpolated": {"alpha": alpha}},
    )


def save_checkpoint(path: str | os.PathLike, model: LandmarkModel, **extra: Any) -> None:
    """Write a checkpoint of ``model`` (config + weights) atomically; ``extra`` may set any :class:`Checkpoint`
    field by name, anything else is stored as plain data beside them."""
    names = {f.name for f in fields(Checkpoint)} - {"config", "state_dict", "extra"}
    known = {k: v for k, v in extra.items() if k in names}
    other = {k: v for k, v in extra.items() if k not in names}
    Checkpoint(model.config.to_dict(), weights_of(model), **known, extra=other).save(path)


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


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint without running any code from the file.

    Raises:
        ModelError: missing, truncated or not a lightmark checkpoint.
        UnsafeFileError: the file references Python objects outside the weights-only allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(missing_model_message(path))
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
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ModelError(f"{path}: not a lightmark checkpoint (no model config or weights)")
    try:
        return Checkpoint.from_payload(ckpt)
    except TypeError as e:
        raise ModelError(f"{path}: malformed checkpoint ({_first_line(e)})") from None


def load_model(path: str | os.PathLike | None = None, use_ema: bool = True) -> LandmarkModel:
    """Load a trained model in eval mode on the CPU: a checkpoint path, a shipped track name (``"protocol"``,
    ``"mixed"``), or None for the default model. A training checkpoint's EMA weights are used when ``use_ema``
    (:meth:`Checkpoint.weights`)."""
    path = resolve_model_path(path)
    return load_checkpoint(path).build_model(use_ema, str(path))
