"""Contact sheets of synthetic samples with their landmarks drawn (for eyeballing the engine's output)."""

from __future__ import annotations

import os

import numpy as np

from ..viz import contact_sheet, save_png
from .face_model import FaceModel, load_face_model
from .generator import SynthConfig, render_sample, sample_seed


def render_contact_sheet(
    path: str | os.PathLike,
    count: int = 64,
    seed: int = 0,
    size: int = 192,
    cols: int = 8,
    face_model: FaceModel | str | os.PathLike | None = None,
    config: SynthConfig | None = None,
) -> np.ndarray:
    """Render ``count`` samples (the same ones as ``render_dataset(seed=seed)`` at ``size``) into a PNG sheet
    with the 68 landmarks and the 2 pupils drawn and the head yaw/pitch printed; returns the sheet (RGB).

    Raises:
        OutputError: the PNG cannot be encoded or written (nothing is dropped silently).
    """
    model = face_model if isinstance(face_model, FaceModel) else load_face_model(face_model)
    cfg = config or SynthConfig(size=size)  # a given config keeps its own size
    images, landmarks, captions = [], [], []
    for i in range(count):
        image, ldmks, _, params = render_sample(sample_seed(seed, i), cfg, model)  # ldmks (70,2): 68 + pupils
        images.append(image)
        landmarks.append(ldmks)
        captions.append(f"{i} yaw {params['yaw']:.0f} pitch {params['pitch']:.0f}")
    sheet = contact_sheet(images, landmarks, cols=cols, tile=int(cfg.size), captions=captions)
    save_png(path, sheet)
    return sheet
