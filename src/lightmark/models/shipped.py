"""The models shipped with the package, by track name, and how a model argument resolves to a file (no torch).

Each shipped model is one network in two files in ``lightmark/weights/``:

* ``lightmark_<track>.onnx``: the inference graph (BatchNorm folded into the convolutions), with the model config
  in its metadata. It is in every install, wheels included: prediction needs nothing else.
* ``lightmark_<track>.pt``: the torch checkpoint (unfolded weights, training config, validation NME) that the
  torch backend, fine-tuning (``lightmark train --init <track>``) and ``lightmark export`` start from. It is in
  the source repository and an editable install (``pip install -e .``) but not in the wheel: folded weights cannot
  be unfolded back into BatchNorm statistics, so the checkpoint is a separate file, shipped once, with the source.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..errors import ModelError

SHIPPED_MODELS: dict[str, str] = {
    "protocol": "lightmark_protocol.pt",  # synthetic training data only (the challenge's rules)
    "mixed": "lightmark_mixed.pt",  # synthetic + real 300-W faces
    "mixed_resnet18": "lightmark_mixed_resnet18.pt",  # the mixed track's more accurate, slower model (opt-in)
    "wflw98": "lightmark_wflw98.pt",  # WFLW's 98 points, synthetic faces only (from the protocol model)
}
"""The torch checkpoints of the shipped models, by track name (each with its ONNX twin ``X.onnx`` beside it)."""
SHIPPED_TERMS: dict[str, str] = {
    "protocol": "trained on synthetic faces and the FaceSynthetics samples only: Microsoft C-UDA 1.0, non-commercial",
    "mixed": "trained also on real iBUG 300-W (HELEN) faces: research use only (and FaceSynthetics C-UDA 1.0)",
    "mixed_resnet18": "the mixed track's data and recipe on a ResNet-18 (half width): more accurate, about 4x the "
    "time; research use only (300-W) and FaceSynthetics C-UDA 1.0",
    "wflw98": "WFLW's 98 points; the protocol model fine-tuned on rendered faces only: Microsoft C-UDA 1.0, "
    "non-commercial (its starting point saw the FaceSynthetics samples)",
}
"""The terms each shipped model's weights inherit from its training data (the code is MIT)."""
DEFAULT_TRACK = "mixed"
"""The track of the default model: of the 68-point shipped models with its architecture (the fast MobileNet that the
speed figures, the detector's thresholds and the video demo are measured with), the one with the lower validation NME
(tests check this). ``mixed_resnet18`` is more accurate and slower: opt-in (``Predictor("mixed_resnet18")``)."""
REAL_FACE_TRACKS: frozenset[str] = frozenset({"mixed", "mixed_resnet18"})
"""The shipped tracks trained on real faces (the others follow the challenge's synthetic-only protocol)."""
CHECKPOINT_HINT = (
    "the shipped models' torch checkpoints come with the source repository (src/lightmark/weights/*.pt, "
    "`pip install -e '.[train]'` in a clone), not with the wheel, which ships their ONNX graphs only"
)
"""Why a shipped ``.pt`` can be absent, and where to get it (see the README's "Models" section)."""


def _weights_dir() -> Path:
    return Path(str(resources.files("lightmark") / "weights"))


def _check_track(track: str) -> None:
    if track not in SHIPPED_MODELS:
        raise ModelError(f"unknown shipped model {track!r}; shipped: {', '.join(SHIPPED_MODELS)}")


def shipped_model_path(track: str) -> Path:
    """Path of the torch checkpoint of a shipped model, by track name (:data:`SHIPPED_MODELS`; absent in a wheel
    install: see :data:`CHECKPOINT_HINT`)."""
    _check_track(track)
    return _weights_dir() / SHIPPED_MODELS[track]


def shipped_onnx_path(track: str) -> Path:
    """Path of the ONNX graph of a shipped model (present in every install)."""
    return shipped_model_path(track).with_suffix(".onnx")


def default_model_path() -> Path:
    """Path of the default model's torch checkpoint (track :data:`DEFAULT_TRACK`)."""
    return shipped_model_path(DEFAULT_TRACK)


def shipped_track(model: str | os.PathLike | None) -> str | None:
    """The shipped track a model argument names (None: the default track), else None (a file path)."""
    if model is None:
        return DEFAULT_TRACK
    if isinstance(model, str) and model in SHIPPED_MODELS and not Path(model).exists():
        return model
    return None


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """None -> the default model; a shipped track name (``"protocol"``, ``"mixed"``) that is not also an existing
    file -> that shipped model's checkpoint; anything else -> a checkpoint path."""
    track = shipped_track(model)
    return shipped_model_path(track) if track is not None else Path(model)


def missing_model_message(path: str | os.PathLike) -> str:
    """The one-line error for a model file that is not there (names the shipped models, or why a shipped
    checkpoint is absent)."""
    path = Path(path)
    shipped = {shipped_model_path(t) for t in SHIPPED_MODELS}
    if path in shipped:
        return f"{path}: not in this install ({CHECKPOINT_HINT})"
    hint = "" if path.suffix else f" (shipped models: {', '.join(SHIPPED_MODELS)}; or a checkpoint path)"
    return f"{path}: model file not found{hint}"
