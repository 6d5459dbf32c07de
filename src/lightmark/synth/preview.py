"""Contact sheets of synthetic samples with their landmarks drawn (for eyeballing the engine's output)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import OutputError
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


def _dots(img: np.ndarray, pts: np.ndarray, colour: tuple[int, int, int], r: float, scale: float) -> None:
    """Filled sub-pixel discs at ``pts`` (N,2) (pixel-centre convention, before ``scale``) on ``img`` (RGB)."""
    import cv2

    for x, y in np.asarray(pts, np.float64) * scale + (scale - 1) / 2:
        cv2.circle(img, (round(x * 16), round(y * 16)), round(r * 16), colour, -1, cv2.LINE_AA, shift=4)


def render_scheme_sheet(
    path: str | os.PathLike,
    yaws: tuple[float, ...] = (0.0, 30.0, 60.0, 80.0),
    seeds: tuple[int, ...] = (3, 8, 12),
    size: int = 256,
    scale: int = 2,
    face_model: FaceModel | str | os.PathLike | None = None,
) -> np.ndarray:
    """A sheet (rows: ``seeds``, columns: head ``yaws``) of samples with the other label sets of
    :mod:`.landmark_sets` drawn, upscaled ``scale`` times: WFLW's 98 points (cyan; lower brow points magenta),
    the 68-point 3D jaw (red) and the 2D (visible-contour) jaw of ``wflw98_2d`` (yellow line; its even points,
    ``ibug68_2d``'s jaw, yellow; its odd points green). Written as JPEG or PNG by the suffix of ``path``; returns
    the sheet (RGB)."""
    import cv2

    from ..utils import atomic_save_bytes

    model = face_model if isinstance(face_model, FaceModel) else load_face_model(face_model)
    rows = []
    for seed in seeds:
        tiles = []
        for yaw in yaws:
            cfg = SynthConfig(size=size, p_hand=0.0, p_object=0.0, extra={"pose": (yaw, 0.0, 0.0)})
            image, ldmks, _, params = render_sample(sample_seed(seed, 0), cfg, model)
            big = cv2.resize(image, (size * scale, size * scale), interpolation=cv2.INTER_CUBIC)
            wflw, jaw2d = params["ldmks_wflw98"], params["ldmks_wflw98_2d"][:33]
            for jaw, colour in ((ldmks[:17], (255, 40, 40)), (jaw2d, (255, 230, 0))):
                line = np.round((jaw * scale + (scale - 1) / 2) * 16).astype(np.int32)
                cv2.polylines(big, [line], False, colour, 1, cv2.LINE_AA, shift=4)
            _dots(big, ldmks[:17], (255, 40, 40), 2.2, scale)
            _dots(big, wflw, (0, 230, 255), 1.4, scale)
            _dots(big, wflw[38:42], (255, 0, 255), 1.4, scale)
            _dots(big, wflw[47:51], (255, 0, 255), 1.4, scale)
            _dots(big, jaw2d[0::2], (255, 230, 0), 1.8, scale)
            _dots(big, jaw2d[1::2], (60, 255, 60), 1.8, scale)
            cv2.putText(big, f"yaw {yaw:.0f}", (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
            tiles.append(big)
        rows.append(np.concatenate(tiles, 1))
    legend = np.zeros((30, rows[0].shape[1], 3), np.uint8)
    for x, text, colour in (
        (8, "WFLW 98", (0, 230, 255)),
        (100, "WFLW lower brows", (255, 0, 255)),
        (260, "68-point 3D jaw", (255, 40, 40)),
        (410, "2D jaw: 68-point / wflw98_2d even", (255, 230, 0)),
        (720, "wflw98_2d odd", (60, 255, 60)),
    ):
        cv2.putText(legend, text, (x, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
    sheet = np.concatenate([*rows, legend], 0)
    ext = os.path.splitext(str(path))[1].lower() or ".png"
    ok, buf = cv2.imencode(ext, sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90] if ext in (".jpg", ".jpeg") else [])
    if not ok:
        raise OutputError(f"{path}: image encoding failed")
    atomic_save_bytes(path, buf.tobytes())
    return sheet
