"""The figure of the landmark-definition audit (``docs/landmark_audit.jpg``, :mod:`.landmark_audit`): the measured
mean offsets and the corrected definition on the neutral ICT face, and samples with both definitions drawn."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .face_model import PARTS, FaceModel
from .landmark_audit import surface_normals, surface_points, tangent_frames, vertex_definition

GREEN, MAGENTA, RED, YELLOW, CYAN, WHITE = (
    (60, 220, 60),
    (255, 60, 255),
    (255, 50, 50),
    (255, 220, 0),
    (0, 230, 255),
    (255, 255, 255),
)
"""RGB colours: current definition, FaceSynthetics-matched definition, labels, measured offsets, text."""
EDGE_CLASSES: dict[int, tuple[int, int, int]] = {5: YELLOW, 6: YELLOW, 10: CYAN, 11: CYAN}
"""Segmentation classes outlined in the sample panels: the eyebrows (5, 6) and the lips (10, 11)."""


def _shaded_face(V: np.ndarray, T: np.ndarray, to_px) -> np.ndarray:
    """(H,W,3) uint8 grey frontal render of the triangles ``T`` of ``V`` (painter's algorithm, Lambert shading);
    ``to_px`` maps model (x, y) (N,2) to pixel coordinates and carries the image size as ``to_px.size``."""
    img = np.full((to_px.size, to_px.size, 3), 28, np.uint8)
    fn = np.cross(V[T[:, 1]] - V[T[:, 0]], V[T[:, 2]] - V[T[:, 0]])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    shade = np.clip(fn @ light, 0.0, 1.0) * 0.75 + 0.2
    front = fn[:, 2] > 0
    order = np.argsort(V[T].mean(1)[:, 2])
    px = (to_px(V[:, :2]) * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    for k in order[front[order]]:
        g = int(shade[k] * 200)
        cv2.fillConvexPoly(img, px[T[k]], (g, g, int(g * 0.95)), cv2.LINE_AA, 4)
    return img


class _Frontal:
    """Model (x, y) -> pixels of a ``size`` image framing the 68 landmarks of ``V`` (y up -> rows down)."""

    def __init__(self, P: np.ndarray, size: int, margin: float = 0.12):
        lo, hi = P.min(0), P.max(0)
        self.size = size
        self.s = size * (1 - 2 * margin) / float(max(hi - lo))
        self.c = (lo + hi) / 2

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        d = (np.asarray(xy, np.float64) - self.c) * self.s
        return np.stack([d[:, 0], -d[:, 1]], 1) + self.size / 2


def mean_face_panel(
    model: FaceModel,
    measured: np.ndarray,
    definition: tuple[np.ndarray, np.ndarray],
    size: int = 720,
    gain: float = 3.0,
) -> np.ndarray:
    """(size,size,3) uint8 RGB: the neutral ICT face seen from the front with the current 68 vertices (green), the
    measured mean offsets ``measured`` (68,2) cm (right, up along the surface; full fit) as yellow arrows magnified
    ``gain`` times, and the corrected ``definition`` (ids (68,3), weights (68,3)) as magenta points with red arrows
    from the current vertex (true scale)."""
    V = model.neutral.astype(np.float64)
    T = model.triangles[(model.triangles < PARTS["face"][1]).all(1)]
    ids, w = vertex_definition(model)
    cur = V[model.landmarks68]
    tp = _Frontal(cur[:, :2], size)
    img = _shaded_face(V, T, tp)
    Tf = tangent_frames(surface_normals(model, V, ids, w))
    meas = cur + gain * np.einsum("pij,pj->pi", Tf, measured)
    new = surface_points(V, *definition)
    a, b, c = tp(cur[:, :2]), tp(meas[:, :2]), tp(new[:, :2])
    for p, q in zip(a, b, strict=True):
        cv2.arrowedLine(img, _pt(p), _pt(q), YELLOW, 1, cv2.LINE_AA, tipLength=0.3)
    for p, q in zip(a, c, strict=True):
        if np.linalg.norm(q - p) > 0.5:
            cv2.arrowedLine(img, _pt(p), _pt(q), RED, 2, cv2.LINE_AA, tipLength=0.35)
    _dots(img, a, GREEN, 3)
    moved = np.linalg.norm(c - a, axis=1) > 0.5
    _dots(img, c[moved], MAGENTA, 3)
    _text(img, "neutral ICT face: current vertex (green) -> ibug68_fs (magenta)", 10, 22)
    _text(img, f"yellow: mean full-fit offset on the mesh, x{gain:g}", 10, 46)
    return img


def sample_panel(
    image: np.ndarray,
    sets: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    size: int = 360,
    title: str = "",
    seg: np.ndarray | None = None,
) -> np.ndarray:
    """(size,size,3) uint8 RGB crop of ``image`` (RGB) around the first point set, with each point set (P,2) drawn in
    its colour (connected as the 68-point contours) and, given ``seg``, the outlines of its eyebrow and lip classes
    (:data:`EDGE_CLASSES`, thin lines)."""
    from ..constants import CONTOURS

    ref = np.asarray(sets[0][0], np.float64)
    c = (ref.min(0) + ref.max(0)) / 2
    half = float(np.ptp(ref, axis=0).max()) * 0.62
    s = size / (2 * half)
    M = np.array([[s, 0, size / 2 - s * c[0]], [0, s, size / 2 - s * c[1]]])
    out = cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_CUBIC, borderValue=(20, 20, 20))
    for cls, col in EDGE_CLASSES.items() if seg is not None else ():
        cnts, _ = cv2.findContours((seg == cls).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for c_ in cnts:
            q = c_[:, 0].astype(np.float64) @ M[:, :2].T + M[:, 2]
            cv2.polylines(out, [(q * 16).astype(np.int32)], True, col, 1, cv2.LINE_AA, 4)
    for pts, col in sets:
        q = np.asarray(pts, np.float64) @ M[:, :2].T + M[:, 2]
        for a, b, closed in CONTOURS:
            cv2.polylines(out, [(q[a:b] * 16).astype(np.int32)], closed, col, 1, cv2.LINE_AA, 4)
        _dots(out, q, col, 2)
    if title:
        _text(out, title, 6, 18)
    return out


def grid(tiles: Sequence[np.ndarray], cols: int) -> np.ndarray:
    """Tiles (same size) in rows of ``cols`` (the last row padded)."""
    h, w = tiles[0].shape[:2]
    rows = [list(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    rows[-1] += [np.zeros((h, w, 3), np.uint8)] * (cols - len(rows[-1]))
    return np.concatenate([np.concatenate(r, 1) for r in rows], 0)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _dots(img: np.ndarray, pts: np.ndarray, col: tuple[int, int, int], r: int) -> None:
    for p in np.asarray(pts):
        cv2.circle(img, _pt(p), r, col, -1, cv2.LINE_AA)


def _text(img: np.ndarray, s: str, x: int, y: int, scale: float = 0.5) -> None:
    """White text on a dark box, baseline at ``y``."""
    (w, h), base = cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (x - 3, y - h - 4), (x + w + 3, y + base + 1), (15, 15, 15), -1)
    cv2.putText(img, s, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)
