"""Visualisation: landmark overlays (OpenCV), contact sheets, CED and training plots (matplotlib, Agg).

Images are RGB ``uint8`` arrays ``(H, W, 3)`` (grayscale ``(H, W)`` is converted); colours are RGB tuples.
Matplotlib is imported lazily and drawn through an explicit Agg canvas (no pyplot, no global backend
switch). Every file is written atomically as PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import OutputError
from .metrics import auc, ced_curve, failure_rate
from .schemes import LandmarkScheme, get_scheme, scheme_for_count
from .utils import atomic_save_bytes

__all__ = ["draw_landmarks", "contact_sheet", "plot_ced", "plot_training", "worst_gallery", "save_png"]

_SHIFT = 4  # cv2 fixed-point fractional bits: sub-pixel drawing at 1/16 px
_GT_COLOR = (255, 0, 0)


def _to_rgb_u8(image: np.ndarray) -> np.ndarray:
    """Copy of ``image`` as ``(H, W, 3)`` uint8 RGB."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 if img.dtype.kind == "f" and img.max(initial=0) <= 1.0 else img, 0, 255)
        img = img.astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {np.shape(image)}")
    return np.ascontiguousarray(img).copy()


def _fixed(pt: np.ndarray) -> tuple[int, int]:
    return int(round(float(pt[0]) * (1 << _SHIFT))), int(round(float(pt[1]) * (1 << _SHIFT)))


def _contours(num_points: int, scheme: str | LandmarkScheme | None) -> tuple[tuple[int, int, bool], ...]:
    """The drawing segments for ``num_points`` points: the given scheme's (its points may be followed by extras,
    e.g. FaceSynthetics' 2 pupils), else those of the first scheme with that many points, or with 2 fewer (68
    points + 2 pupils); none for an unknown count.

    Raises:
        ValueError: fewer points than the given scheme has.
    """
    if scheme is not None:
        s = get_scheme(scheme)
        if num_points < s.num_points:
            raise ValueError(f"points: {num_points} points, but scheme {s.name!r} has {s.num_points}")
        return s.contours
    s = scheme_for_count(num_points) or scheme_for_count(num_points - 2)
    return s.contours if s is not None else ()


def _draw_set(
    img: np.ndarray,
    pts: np.ndarray,
    color: tuple[int, int, int],
    radius: int,
    lines: bool,
    scheme: str | LandmarkScheme | None = None,
) -> None:
    color = tuple(int(c) for c in color)
    finite = np.all(np.isfinite(pts), axis=1)
    thickness = max(1, radius // 2)
    if lines:
        for start, stop, closed in _contours(len(pts), scheme):
            idx = list(range(start, stop)) + ([start] if closed else [])
            for a, b in zip(idx[:-1], idx[1:], strict=True):
                if finite[a] and finite[b]:
                    cv2.line(img, _fixed(pts[a]), _fixed(pts[b]), color, thickness, cv2.LINE_AA, _SHIFT)
    for p, ok in zip(pts, finite, strict=True):
        if ok:
            cv2.circle(img, _fixed(p), radius << _SHIFT, color, -1, cv2.LINE_AA, _SHIFT)


def draw_landmarks(
    image_rgb: np.ndarray,
    pts: np.ndarray,
    color: tuple[int, int, int] = (0, 255, 0),
    radius: int | None = None,
    lines: bool = True,
    gt: np.ndarray | None = None,
    gt_color: tuple[int, int, int] = _GT_COLOR,
    scheme: str | LandmarkScheme | None = None,
) -> np.ndarray:
    """Draw points (and their scheme's contours) on a copy of the image.

    Args:
        image_rgb: ``(H, W, 3)`` RGB (or ``(H, W)`` gray) image; not modified.
        pts: ``(K, 2)`` pixel coordinates (pixel-centre convention, drawn sub-pixel); ``nan`` points skipped.
        color: RGB colour of ``pts``.
        radius: dot radius in pixels; default ``max(1, round(min(H, W) / 200))``.
        lines: draw the contours of the landmark scheme (:mod:`lightmark.schemes`): ``scheme``'s, else the one
            the point count names (68 -> ``ibug68``, 98 -> ``wflw98``; 70 = 68 points then FaceSynthetics' 2
            pupils); dots only for other counts.
        gt: optional ``(K, 2)`` ground truth, drawn first (underneath) in ``gt_color``.
        scheme: landmark scheme name or object of ``pts`` and ``gt`` (None: from the point count).

    Returns:
        New ``(H, W, 3)`` uint8 RGB image.
    """
    img = _to_rgb_u8(image_rgb)
    if radius is None:
        radius = max(1, int(round(min(img.shape[:2]) / 200)))
    radius = max(1, int(radius))
    for arr, col in ((gt, gt_color), (pts, color)):
        if arr is None:
            continue
        a = np.asarray(arr, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"points: expected shape (K, 2), got {np.shape(arr)}")
        _draw_set(img, a, col, radius, lines, scheme)
    return img


def draw_faces(image_rgb: np.ndarray, faces: Sequence, color: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """Draw each face's detector box, its scores (``detector / face``) and its landmarks on a copy of the image;
    ``faces`` are :class:`~lightmark.engine.faces.Face` objects (anything with ``box``, ``score``, ``face_score``,
    ``landmarks``)."""
    img = _to_rgb_u8(image_rgb)
    thick = max(1, int(round(min(img.shape[:2]) / 400)))
    for f in faces:
        img = draw_landmarks(img, f.landmarks, color)
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thick)
        label = f"{f.score:.2f}" + ("" if f.face_score is None else f" / {f.face_score:.2f}")
        cv2.putText(img, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, color, thick)
    return img


def save_annotated(
    out_dir: str | os.PathLike,
    names: Sequence[str],
    paths: Sequence[str | os.PathLike],
    draw: Callable[[int, np.ndarray], np.ndarray],
    limit: int | None = None,
) -> list[Path]:
    """Write ``draw(i, image_i)`` for the first ``limit`` images as ``out_dir/<name>.jpg`` (sub-folders of the names
    kept, so equal file names never overwrite each other). Returns the written paths."""
    from .data.images import read_image, write_image

    out_dir = Path(out_dir)
    written = []
    for i, (name, path) in enumerate(zip(names, paths, strict=False)):
        if limit is not None and i >= limit:
            break
        dst = out_dir / Path(name).with_suffix(".jpg")
        write_image(dst, draw(i, read_image(path)))
        written.append(dst)
    return written


def _fit_tile(img: np.ndarray, tile: int) -> tuple[np.ndarray, float, float, float]:
    """Letterbox ``img`` into a ``tile x tile`` square; returns ``(tile_img, scale, off_x, off_y)``."""
    h, w = img.shape[:2]
    scale = tile / max(h, w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    out = np.zeros((tile, tile, 3), np.uint8)
    ox, oy = (tile - nw) // 2, (tile - nh) // 2
    out[oy : oy + nh, ox : ox + nw] = small
    return out, scale, float(ox), float(oy)


def _map_pts(pts: np.ndarray, scale: float, ox: float, oy: float) -> np.ndarray:
    """Pixel-centre coordinates through a resize by ``scale`` and a shift."""
    p = np.asarray(pts, dtype=np.float64)
    return (p + 0.5) * scale - 0.5 + np.array([ox, oy])


def _caption(img: np.ndarray, text: str) -> None:
    scale = max(0.3, img.shape[1] / 400)
    thick = 1
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(img, (0, 0), (min(img.shape[1], tw + 4), th + base + 4), (0, 0, 0), -1)
    cv2.putText(img, text, (2, th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def contact_sheet(
    images: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray | None] | None = None,
    cols: int = 8,
    tile: int = 160,
    captions: Sequence[str] | None = None,
    gts: Sequence[np.ndarray | None] | None = None,
    scheme: str | LandmarkScheme | None = None,
) -> np.ndarray:
    """Grid of letterboxed thumbnails, optionally with landmarks (and ground truth) and captions.

    Args:
        images: RGB images of any sizes.
        landmarks: one ``(K, 2)`` array (or None) per image, in that image's pixels.
        cols: maximum number of columns.
        tile: side of each square tile in pixels.
        captions: one string per image, written at the top-left of its tile.
        gts: optional ground truth per image, drawn in red under ``landmarks``.
        scheme: landmark scheme of the points (None: from the point count), as :func:`draw_landmarks`.

    Returns:
        ``(rows * tile, min(cols, n) * tile, 3)`` uint8 RGB.
    """
    n = len(images)
    if n == 0:
        raise ValueError("contact_sheet needs at least one image")
    if cols < 1 or tile < 8:
        raise ValueError("contact_sheet needs cols >= 1 and tile >= 8")
    for name, seq in (("landmarks", landmarks), ("captions", captions), ("gts", gts)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} images")
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    sheet = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    radius = max(1, tile // 100)
    for i, image in enumerate(images):
        cell, scale, ox, oy = _fit_tile(_to_rgb_u8(image), tile)
        pts = None if landmarks is None or landmarks[i] is None else _map_pts(landmarks[i], scale, ox, oy)
        gt = None if gts is None or gts[i] is None else _map_pts(gts[i], scale, ox, oy)
        if pts is not None or gt is not None:
            if pts is None:
                cell = draw_landmarks(cell, gt, color=_GT_COLOR, radius=radius, scheme=scheme)
            else:
                cell = draw_landmarks(cell, pts, radius=radius, gt=gt, scheme=scheme)
        if captions is not None and captions[i]:
            _caption(cell, str(captions[i]))
        r, c = divmod(i, cols)
        sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = cell
    return sheet


def save_png(path: str | os.PathLike, image_rgb: np.ndarray) -> Path:
    """Encode an RGB image as PNG and write it atomically. Returns the path."""
    img = _to_rgb_u8(image_rgb)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"{path}: PNG encoding failed")
    atomic_save_bytes(path, buf.tobytes())
    return Path(path)


def _new_figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib Figure bound to an Agg canvas (no pyplot state, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Any, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_save_bytes(path, buf.getvalue())
    return Path(path)


def plot_scaling(
    curves: dict[str, dict[int, float]],
    path: str | os.PathLike,
    title: str = "validation NME against samples seen",
    dashed: dict[str, dict[int, float]] | None = None,
) -> Path:
    """Scaling curves: for each label, NME (%) against training samples seen (log axis), one point per run trained
    to that budget (``{samples: nme}``); ``dashed`` curves (e.g. a yaw bin of each) share their solid twin's colour
    in order. Returns the PNG path."""
    fig = _new_figure((6.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    colours = [f"C{i}" for i in range(10)]
    for style, group in (("o-", curves), ("x--", dashed or {})):
        for i, (label, points) in enumerate(group.items()):
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], style, color=colours[i % 10], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training samples seen (augmented crops)")
    ax.set_ylabel("validation NME / 384 (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save_figure(fig, path)


def plot_ced(
    curves: dict[str, np.ndarray],
    path: str | os.PathLike,
    max_threshold: float = 10.0,
    title: str = "Cumulative error distribution",
    xlabel: str = "NME (%)",
) -> Path:
    """Plot the CED of each method to a PNG; the legend gives AUC and failure rate at ``max_threshold``.

    Args:
        curves: ``{label: (N,) per-image NME in percent}``.
        path: output PNG path.

    Returns:
        ``path``.
    """
    fig = _new_figure((6.4, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    for label, nmes in curves.items():
        e = np.asarray(nmes, dtype=np.float64).reshape(-1)
        t, frac = ced_curve(e, max_threshold)
        a, fr = auc(e, max_threshold), failure_rate(e, max_threshold)
        ax.plot(t, frac, label=f"{label} (AUC@{max_threshold:g} {a:.3f}, FR {fr:.1f}%, n={e.size})")
    ax.set_xlim(0, max_threshold)
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Fraction of images")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_training(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Plot the training loss (left axis, log scale when positive) and validation NME (right axis) per epoch.

    Args:
        history: records with ``epoch``, ``train_loss`` and optionally ``val_nme`` (missing or None skipped).
        path: output PNG path.

    Returns:
        ``path``.
    """

    def _series(key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for rec in history:
            v = rec.get(key)
            if v is not None and np.isfinite(float(v)):
                xs.append(float(rec["epoch"]))
                ys.append(float(v))
        return xs, ys

    fig = _new_figure((7.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ex, loss = _series("train_loss")
    ax.plot(ex, loss, color="tab:blue", marker=".", label="train loss")
    if loss and min(loss) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    ax.grid(True, alpha=0.3)
    vx, val = _series("val_nme")
    if val:
        ax2 = ax.twinx()
        ax2.plot(vx, val, color="tab:red", marker="o", label="val NME (%)")
        ax2.set_ylabel("val NME (%)", color="tab:red")
        best = int(np.argmin(val))
        ax2.set_title(f"best val NME {val[best]:.3f}% at epoch {vx[best]:g}", fontsize="small")
    fig.tight_layout()
    return _save_figure(fig, path)


def worst_gallery(
    images: Sequence[np.ndarray],
    preds: Sequence[np.ndarray] | np.ndarray,
    gts: Sequence[np.ndarray] | np.ndarray,
    nmes: np.ndarray,
    path: str | os.PathLike,
    k: int = 16,
    cols: int = 4,
    tile: int = 256,
    scheme: str | LandmarkScheme | None = None,
) -> Path:
    """Write a contact sheet of the ``k`` images with the largest NME (prediction green, ground truth red).

    Args:
        images: RGB images.
        preds, gts: ``(K, 2)`` points per image, in that image's pixels.
        nmes: ``(N,)`` per-image NME (percent), used for the order and the captions.
        path: output PNG path.
        scheme: landmark scheme of the points (None: from the point count).

    Returns:
        ``path``.
    """
    e = np.asarray(nmes, dtype=np.float64).reshape(-1)
    n = len(images)
    if not (len(preds) == len(gts) == e.size == n):
        raise ValueError("images, preds, gts and nmes must have the same length")
    if n == 0:
        raise ValueError("worst_gallery needs at least one image")
    order = np.argsort(np.where(np.isnan(e), np.inf, e), kind="stable")[::-1][: max(1, k)]
    sheet = contact_sheet(
        [images[i] for i in order],
        [preds[i] for i in order],
        cols=cols,
        tile=tile,
        captions=[f"#{i} NME {e[i]:.2f}%" for i in order],
        gts=[gts[i] for i in order],
        scheme=scheme,
    )
    return save_png(path, sheet)
