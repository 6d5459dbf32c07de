"""Contact sheets of synthetic samples with their landmarks drawn (for eyeballing the engine's output)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..constants import CONTOURS
from ..utils import atomic_save_bytes
from .face_model import FaceModel, load_face_model
from .generator import SynthConfig, render_sample, sample_seed


def draw_landmarks(image: np.ndarray, ldmks: np.ndarray, label: str | None = None) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with the 68-point contours (green), the points and the pupils (red)."""
    im = np.ascontiguousarray(image).copy()
    scale = max(1.0, im.shape[0] / 256)
    for a, b, closed in CONTOURS:
        pts = np.round(np.asarray(ldmks[a:b]) * 4).astype(np.int32)
        cv2.polylines(im, [pts], closed, (0, 255, 0), 1, cv2.LINE_AA, shift=2)
    for x, y in ldmks[:68]:
        cv2.circle(im, (int(round(x * 4)), int(round(y * 4))), int(4 * scale), (255, 255, 0), -1, cv2.LINE_AA, 2)
    for x, y in ldmks[68:70]:
        cv2.circle(im, (int(round(x * 4)), int(round(y * 4))), int(6 * scale), (255, 0, 0), -1, cv2.LINE_AA, 2)
    if label:
        cv2.putText(
            im, label, (3, int(12 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return im


def contact_sheet(tiles: list[np.ndarray], cols: int = 8) -> np.ndarray:
    """Tile equally sized RGB images row by row (missing tiles black)."""
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = t
    return sheet


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
    with the landmarks drawn and the head yaw/pitch printed; returns the sheet (RGB)."""
    model = face_model if isinstance(face_model, FaceModel) else load_face_model(face_model)
    cfg = config or SynthConfig(size=size)
    tiles = []
    for i in range(count):
        img, ldmks, _, p = render_sample(sample_seed(seed, i), cfg, model)
        tiles.append(draw_landmarks(img, ldmks, f"{i} yaw {p['yaw']:.0f} pitch {p['pitch']:.0f}"))
    sheet = contact_sheet(tiles, cols)
    ok, buf = cv2.imencode(".png", sheet[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if ok:
        atomic_save_bytes(path, buf.tobytes())
    return sheet
