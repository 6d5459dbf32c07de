"""Training learns: a few hundred steps on line-drawn faces the test writes itself (no ../shared/data needed) bring
the validation error far below the untrained model's, and below the error of always answering the mean shape.

The faces are the 68-point 3D mean shape of :mod:`lightmark.pose` turned by a random yaw, pitch and roll,
drawn as a cartoon (skin-coloured face, dark jaw line, brows, nose, eyes, red mouth) on a noisy background. The
training set is written loose (FaceSynthetics layout: ``NNNNNN.png`` + ``NNNNNN_ldmks.txt``), the validation set
framed like the challenge's crops, so the whole path runs: reader, crop cache, augmentation, loop, EMA, evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lightmark.constants import CROP_SHIFT_UP, CROP_SIDE_RATIO
from lightmark.data.formats import load_dataset, write_ldmks
from lightmark.engine.evaluate import evaluate
from lightmark.engine.train import TrainConfig, train
from lightmark.metrics import challenge_norm, nme
from lightmark.models import create_model
from lightmark.pose import MEAN_SHAPE_68

SHIFT = 4  # cv2 drawing with 1/16-pixel vertex precision
TRAIN_SIZE, VAL_SIZE = 128, 96  # image sides, px
SEED = 3


def _pose_points(rng: np.random.Generator) -> np.ndarray:
    """(68, 2) orthographic projection of the mean face under a random pose and mouth opening, unit scale."""
    pts = MEAN_SHAPE_68.copy()
    pts[[56, 57, 58, 65, 66, 67, 7, 8, 9], 1] += rng.uniform(0.0, 12.0)  # open the mouth (lower lip and chin)
    pts[:, 0] *= rng.uniform(0.9, 1.1)  # face width
    yaw, pitch, roll = np.deg2rad([rng.uniform(-35, 35), rng.uniform(-15, 15), rng.uniform(-25, 25)])
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, sr, 0], [-sr, cr, 0], [0, 0, 1]])
    xy = (pts @ (r_roll @ r_pitch @ r_yaw).T)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    return (xy - (lo + hi) / 2) / (hi - lo).max()  # landmark box centred at 0, side 1


def _render_face(rng: np.random.Generator, size: int, pts: np.ndarray) -> np.ndarray:
    """A (size, size, 3) uint8 RGB cartoon of the face whose 68 landmarks are ``pts`` (image px)."""
    low = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)  # smooth coloured background
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    p = np.round(pts * (1 << SHIFT)).astype(np.int32)
    side = float(np.ptp(pts, axis=0).max())
    t = max(1, round(side / 30))
    skin = tuple(int(v) for v in rng.uniform([150, 90, 60], [250, 200, 170]))
    dark = tuple(int(v) for v in rng.uniform(0, 70, 3))
    brow_lift = pts[17:27] + (pts[17:27] - pts[36:48].mean(0)) * 0.6  # forehead above the brows
    hull = cv2.convexHull(np.round(np.concatenate([pts[:17], brow_lift]) * (1 << SHIFT)).astype(np.int32))
    cv2.fillPoly(img, [hull], skin, cv2.LINE_AA, SHIFT)
    for a, b, closed in ((0, 17, False), (17, 22, False), (22, 27, False), (27, 31, False), (31, 36, False)):
        cv2.polylines(img, [p[a:b]], closed, dark, t + (a in (17, 22)), cv2.LINE_AA, SHIFT)
    for a, b in ((36, 42), (42, 48)):
        cv2.fillPoly(img, [p[a:b]], (250, 250, 250), cv2.LINE_AA, SHIFT)
        cv2.polylines(img, [p[a:b]], True, dark, t, cv2.LINE_AA, SHIFT)
    cv2.fillPoly(img, [p[48:60]], (200, 40, 50), cv2.LINE_AA, SHIFT)
    cv2.fillPoly(img, [p[60:68]], (60, 10, 20), cv2.LINE_AA, SHIFT)
    return img


def _write_set(root: Path, n: int, seed: int, framing: str) -> Path:
    """n faces in FaceSynthetics layout. ``framing`` "loose": a 128 px image, the face anywhere near the middle,
    30-45% of the side; "challenge": a 96 px crop framed like the challenge's (side ~1.9 x the landmark box,
    centred 0.084 x side above it)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        unit = _pose_points(rng)
        if framing == "loose":
            size = TRAIN_SIZE
            box = rng.uniform(0.3, 0.45) * size
            centre = (size - 1) / 2 + rng.uniform(-0.15, 0.15, 2) * size
        else:
            size = VAL_SIZE
            box = size / np.clip(rng.normal(CROP_SIDE_RATIO, 0.12), 1.6, 2.2)
            centre = (size - 1) / 2 + (np.array([0.0, CROP_SHIFT_UP]) + rng.normal(0, 0.025, 2)) * size
        pts = unit * box + centre
        image = _render_face(rng, size, pts)
        cv2.imwrite(str(root / f"{i:06d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        write_ldmks(root / f"{i:06d}_ldmks.txt", pts)
    return root


def _mean_shape_nme(val: Path) -> float:
    """Challenge NME of answering every validation image with the mean of the validation labels (an oracle
    average face: what a model that ignores its input can at best do)."""
    ds = load_dataset(val, require_landmarks=True)
    gt = ds.landmarks_array()
    sizes = np.full((len(gt), 2), VAL_SIZE)
    return float(nme(np.broadcast_to(gt.mean(0), gt.shape), gt, challenge_norm(sizes)).mean())


@pytest.mark.slow
def test_a_few_hundred_steps_learn_the_landmarks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    train_dir = _write_set(tmp_path / "train", 64, seed=1, framing="loose")  # <= 64: the crop cache needs no pool
    val_dir = _write_set(tmp_path / "val", 48, seed=2, framing="challenge")
    cfg = TrainConfig(
        train=[str(train_dir)],
        val=str(val_dir),
        out=str(tmp_path / "run"),
        model="shufflenetv2_x0_5_heatmap",
        input_size=64,
        epochs=3,
        samples_per_epoch=100 * 16,  # 3 epochs x 100 steps of 16
        batch_size=16,
        lr=5e-3,
        warmup_steps=30,
        photometric=0.0,
        workers=0,
        threads=1,  # also deterministic: one thread, fixed summation order
        device="cpu",
        seed=SEED,
        log_every=0,
    )
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        torch.manual_seed(SEED)  # train() seeds the same way before creating its model: the same initial weights
        untrained = create_model(cfg.model, input_size=cfg.input_size)
        before = evaluate(untrained, val_dir, progress=False).summary["nme_challenge"]
        result = train(cfg, progress=False)
        saved = evaluate(result.best_path, val_dir, progress=False).summary["nme_challenge"]
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    curve = [row["val_nme"] for row in result.history]
    after, mean_shape = curve[-1], _mean_shape_nme(val_dir)
    figures = (
        f"validation NME (% of sqrt(W*H)): untrained {before:.3f}, after {result.history[-1]['step']} steps "
        f"{after:.3f} (per epoch {', '.join(f'{v:.3f}' for v in curve)}); mean-shape answer {mean_shape:.3f}; "
        f"{seconds:.1f} s"
    )
    print(figures)
    assert len(curve) == 3 and result.history[-1]["step"] == 300, figures
    assert after < 0.3 * before, figures  # far below the untrained model
    assert after < 0.6 * mean_shape, figures  # it localises the points, not just the average face
    assert curve[-1] < curve[0], figures  # still improving over the run
    assert saved == pytest.approx(result.best_nme, abs=1e-4), (saved, result.best_nme)  # best.pt is what scored
