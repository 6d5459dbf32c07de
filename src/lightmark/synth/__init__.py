"""Synthetic face engine: unlimited labelled 68-point training faces rendered on the CPU from the ICT Face Model.

Entry points: :func:`render_dataset` (a FaceSynthetics-layout folder), :func:`render_sample` (one sample in
memory), :class:`SynthConfig` (every randomisation range), :func:`load_face_model`.
"""

from __future__ import annotations

from .face_model import FaceModel, default_face_model_path, load_face_model, read_obj
from .generator import SynthConfig, format_landmarks, load_sample, render_dataset, render_sample, sample_seed
from .labels import CLASS_NAMES

__all__ = [
    "CLASS_NAMES",
    "FaceModel",
    "SynthConfig",
    "default_face_model_path",
    "format_landmarks",
    "load_face_model",
    "load_sample",
    "read_obj",
    "render_dataset",
    "render_sample",
    "sample_seed",
]
