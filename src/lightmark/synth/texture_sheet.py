"""A contact sheet of the FaceSynthetics textures: how they are fitted, unwrapped and worn (for eyeballing)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import OutputError
from ..utils import atomic_save_bytes
from ..viz import contact_sheet
from .assets import get_assets
from .face_model import FaceModel, load_face_model
from .fit import FaceFit, fit_landmarks
from .generator import SynthConfig, render_sample, sample_seed
from .raster import rasterize, vertex_normals
from .textures import TextureSource, list_samples, prepare_textures, read_sample

CLEAN = dict(
    p_glasses=0.0, p_hand=0.0, p_object=0.0, p_blur=0.0, p_noise=0.0, p_jpeg=0.0, p_colour_shift=0.0, p_grayscale=0.0
)


def fit_overlay(image: np.ndarray, fit: FaceFit, model: FaceModel) -> np.ndarray:
    """``image`` (H,W,3) uint8 RGB with the fitted mesh's visible skin drawn over it, half transparent (grey,
    shaded by the angle to the camera)."""
    assets = get_assets(model, 256)
    X = fit.camera.to_camera(model.vertices(fit.identity, fit.expression))
    vn = np.empty_like(X)
    fn = vertex_normals(X, assets.tris, vn)
    front = np.einsum("ij,ij->i", fn, X[assets.tris[:, 0]]) < 0
    H, W = image.shape[:2]
    K = fit.camera.K
    xs, ys = K[0, 0] * X[:, 0] / X[:, 2] + K[0, 2], K[1, 1] * X[:, 1] / X[:, 2] + K[1, 2]
    tid = np.full((H, W), -1, np.int32)
    bary = np.zeros((H, W, 2), np.float32)
    rasterize(xs, ys, X[:, 2].copy(), assets.tris, front, tid, bary, np.full((H, W), np.inf, np.float32))
    hit = tid >= 0
    n = fn[tid[hit]]
    shade = np.abs(n[:, 2]) / np.linalg.norm(n, axis=1)
    out = image.astype(np.float32)
    out[hit] = 0.45 * out[hit] + 0.55 * (60 + 180 * shade)[:, None] * np.array([0.85, 0.95, 1.0])
    return out.clip(0, 255).astype(np.uint8)


def _sample_rows(
    model: FaceModel, names: tuple[str, ...], folder: str | os.PathLike, paths: list[Path], yaw: float, size: int
) -> tuple[list[np.ndarray], list[np.ndarray | None], list[np.ndarray | None], list[str]]:
    """Per sample: original, fit overlay, unwrapped albedo (face tile) and a render wearing it at ``yaw``."""
    samples = {s.name: s for s in list_samples(folder)}
    by_name = {}
    for p in paths:
        with np.load(p) as d:
            by_name[str(d["name"])] = p
    images, pts, gts, caps = [], [], [], []
    for k, name in enumerate(names):
        image, ldmks, seg = read_sample(samples[name])
        fit = fit_landmarks(model, ldmks, image.shape[0])
        proj = fit.camera.project(model.vertices(fit.identity, fit.expression)[model.landmarks68])
        src = TextureSource([by_name[name]])
        albedo = src.get(0, 256).albedo[:, :256]
        y = -yaw if float(proj[30, 0]) > float(proj[:, 0].mean()) else yaw  # the other way
        cfg = SynthConfig(
            size=size,
            texture_share=1.0,
            hair_style_p=(0, 0.5, 0.5, 0, 0),
            p_beard=0.0,
            skin_tone_range=(0.3, 0.3),  # clamped to the texture's own tone (textures.skin_tone)
            **CLEAN,
            extra={"pose": (y, 0, 0)},
        )
        render, r_pts, _, _ = render_sample(sample_seed(7, k), cfg, model, None, src)
        images += [image, fit_overlay(image, fit, model), albedo, render]
        pts += [None, proj, None, r_pts[:68]]
        gts += [ldmks, ldmks, None, None]
        caps += [f"FaceSynthetics {name}", f"fit {fit.mean_residual:.2f} px", "albedo (face tile)", f"yaw {y:.0f}"]
    return images, pts, gts, caps


def render_texture_sheet(
    path: str | os.PathLike,
    textures: str | os.PathLike,
    names: tuple[str, ...] = ("000000", "000009", "000044", "000028"),
    count: int = 16,
    seed: int = 0,
    tile: int = 256,
    face_model: FaceModel | str | os.PathLike | None = None,
) -> np.ndarray:
    """Write a JPEG sheet: for the FaceSynthetics samples ``names`` of ``textures`` the original (with its labels,
    red), the fitted mesh over it (fitted landmarks), the unwrapped albedo and a new face wearing it at another
    pose; then ``count`` random faces wearing the folder's textures at yaw 0-80 with their 68 landmarks.
    Returns the sheet (RGB).

    Raises:
        OutputError: the JPEG cannot be encoded or written.
    """
    model = face_model if isinstance(face_model, FaceModel) else load_face_model(face_model)
    paths = prepare_textures(textures, model)
    images, pts, gts, caps = _sample_rows(model, names, textures, paths, 45.0, tile)
    top = contact_sheet(images, pts, cols=4, tile=tile, captions=caps, gts=gts)
    src = TextureSource(paths)
    renders, r_pts, r_caps = [], [], []
    for i, yaw in enumerate(np.linspace(0.0, 80.0, count)):
        y = float(yaw) * (1 if i % 2 else -1) + 0.0  # no "-0"
        cfg = SynthConfig(size=tile, texture_share=1.0, extra={"pose": (y, 0.0, 0.0)})
        image, ldmks, _, params = render_sample(sample_seed(seed, i), cfg, model, None, src)
        renders.append(image)
        r_pts.append(ldmks[:68])
        r_caps.append(f"yaw {y:.0f} tex {params['texture']}")
    bottom = contact_sheet(renders, r_pts, cols=4, tile=tile, captions=r_caps)
    sheet = np.concatenate([top, bottom])
    ok, buf = cv2.imencode(".jpg", sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise OutputError(f"{path}: JPEG encoding failed")
    atomic_save_bytes(path, buf.tobytes())
    return sheet
