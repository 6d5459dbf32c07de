"""Visualisation helpers on synthetic arrays: outputs exist, decode, and show the landmarks."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lightmark.constants import NUM_LANDMARKS
from lightmark.errors import OutputError
from lightmark.viz import contact_sheet, draw_landmarks, plot_ced, plot_training, save_png, worst_gallery


def _face_points(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2 * size, 0.8 * size, (NUM_LANDMARKS, 2))


def _read_png(path) -> np.ndarray:
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_viz_import_has_no_matplotlib_side_effect() -> None:
    code = "import sys, lightmark.viz; print('matplotlib' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_draw_landmarks_changes_pixels_near_points() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    pts = _face_points(200)
    out = draw_landmarks(img, pts, lines=False)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert img.max() == 0  # input untouched
    for x, y in pts:
        assert out[int(round(y)), int(round(x)), 1] > 0  # green at every point
    # nothing far from every point
    assert out[:30].max() == 0 and out[-30:].max() == 0
    assert out[..., 0].max() == 0 and out[..., 2].max() == 0


def test_draw_landmarks_gt_colour_lines_and_radius() -> None:
    img = np.full((400, 400, 3), 40, np.uint8)
    pts = _face_points(400)
    gt = pts + 30.0
    out = draw_landmarks(img, pts, gt=gt)
    gx, gy = np.round(gt[0]).astype(int)
    assert out[gy, gx, 0] > 200 and out[gy, gx, 1] < 100  # ground truth in red
    with_lines = (draw_landmarks(img, pts) != img).any(axis=2).sum()
    no_lines = (draw_landmarks(img, pts, lines=False) != img).any(axis=2).sum()
    assert with_lines > no_lines
    big = (draw_landmarks(img, pts, radius=6, lines=False) != img).any(axis=2).sum()
    assert big > no_lines
    # the FaceSynthetics layout (68 points then 2 pupils) gets the contours too
    pupils = np.vstack([pts, pts[36:38] + 5.0])
    assert (draw_landmarks(img, pupils) != img).any(axis=2).sum() > (
        draw_landmarks(img, pupils, lines=False) != img
    ).any(axis=2).sum()
    # grayscale input and nan points are accepted
    pts_nan = pts.copy()
    pts_nan[5] = np.nan
    assert draw_landmarks(np.zeros((50, 60), np.uint8), pts_nan * 0.1).shape == (50, 60, 3)


def test_contact_sheet_layout() -> None:
    imgs = [np.full((100 + 10 * i, 80, 3), 30 * i, np.uint8) for i in range(5)]
    lms = [_face_points(80, i) for i in range(5)]
    sheet = contact_sheet(imgs, lms, cols=2, tile=64, captions=[f"img {i}" for i in range(5)])
    assert sheet.shape == (3 * 64, 2 * 64, 3) and sheet.dtype == np.uint8
    assert sheet[2 * 64 :, 64:].max() == 0  # the sixth slot is empty
    assert contact_sheet(imgs[:2], None, cols=8, tile=32).shape == (32, 64, 3)
    with pytest.raises(ValueError):
        contact_sheet([], None)
    with pytest.raises(ValueError):
        contact_sheet(imgs, lms[:2])


def test_save_png_round_trip(tmp_path) -> None:
    img = np.zeros((10, 12, 3), np.uint8)
    img[..., 0] = 255  # pure red in RGB
    path = save_png(tmp_path / "sub" / "red.png", img)
    back = _read_png(path)
    assert back.shape == (10, 12, 3) and back[0, 0].tolist() == [0, 0, 255]  # BGR on disk


def test_save_png_failure_is_an_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: (False, None))
    with pytest.raises(OutputError, match="PNG encoding failed"):
        save_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_plot_ced_writes_png(tmp_path) -> None:
    rng = np.random.default_rng(0)
    path = plot_ced({"a": rng.uniform(0, 8, 50), "b": rng.uniform(1, 14, 50)}, tmp_path / "ced.png")
    assert path.exists() and _read_png(path).shape[0] > 100
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_training_writes_png(tmp_path) -> None:
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1)} for e in range(5)]
    for e in (1, 3):
        history[e]["val_nme"] = 5.0 - e
    history[2]["val_nme"] = None
    path = plot_training(history, tmp_path / "train.png")
    assert _read_png(path).shape[1] > 100
    # no validation at all
    assert plot_training([{"epoch": 0, "train_loss": 0.5}], tmp_path / "t2.png").exists()


def test_plot_scaling_writes_png(tmp_path) -> None:
    from lightmark.viz import plot_scaling

    curves = {"a": {96_000: 3.4, 288_000: 3.0, 960_000: 2.8}, "b": {96_000: 3.0}}  # series of different lengths
    path = plot_scaling(curves, tmp_path / "scaling.png", dashed={"a, yaw 60-90": {96_000: 4.2, 288_000: float("nan")}})
    assert _read_png(path).shape[1] > 100 and not list(tmp_path.glob(".*.tmp"))


def test_worst_gallery(tmp_path) -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    gts = [_face_points(64, i) for i in range(6)]
    preds = [g + rng.normal(0, 2, g.shape) for g in gts]
    nmes = np.array([1.0, 9.0, 3.0, np.nan, 7.0, 2.0])
    path = worst_gallery(imgs, preds, gts, nmes, tmp_path / "worst.png", k=4, cols=2, tile=48)
    assert _read_png(path).shape == (96, 96, 3)
    with pytest.raises(ValueError):
        worst_gallery(imgs, preds[:2], gts, nmes, tmp_path / "x.png")
