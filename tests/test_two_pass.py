"""Coarse-to-fine pieces: face roll, the upright fine crop, the training framings, re-framed sets, refine passes,
the HELEN holdout and --exclude."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lightmark.constants import FINE_SHIFT_UP, FINE_SIDE_RATIO, LEFT_EYE, RIGHT_EYE
from lightmark.data.formats import load_dataset, read_name_lists
from lightmark.data.images import write_image
from lightmark.data.reframe import REFRAMES, Reframe, write_reframed
from lightmark.data.training import AugmentConfig, CropCache, LandmarkTrainSet
from lightmark.data.transforms import (
    WIDE_JITTER,
    FineJitter,
    crop_matrix,
    face_roll,
    landmark_box,
    transform_points,
    upright_matrix,
)
from lightmark.engine.predict import Predictor
from lightmark.errors import ConfigError
from lightmark.models import create_model
from lightmark.pose import MEAN_SHAPE_68

REPO = Path(__file__).resolve().parents[1]


def _face(roll_deg: float = 0.0, scale: float = 60.0, centre=(100.0, 120.0)) -> np.ndarray:
    """(68, 2) image points of the mean face, rolled clockwise on screen by ``roll_deg``."""
    pts = np.asarray(MEAN_SHAPE_68, np.float64)[:, :2]
    pts = (pts - pts.mean(0)) / np.ptp(pts, axis=0).max() * scale
    if pts[RIGHT_EYE, 1].mean() > pts[JAW_TIP, 1]:  # a y-up model: make y point down (eyes above the chin)
        pts[:, 1] *= -1
    t = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # clockwise on screen (y down)
    return pts @ rot.T + np.asarray(centre)


JAW_TIP = 8


@pytest.mark.parametrize("roll", [0.0, 25.0, -70.0, 90.0, 180.0, -135.0])
def test_face_roll_and_upright_crop_level_the_eyes(roll: float) -> None:
    pts = _face(roll)
    turned = face_roll(pts) - face_roll(_face(0.0))
    assert abs((turned - roll + 180.0) % 360.0 - 180.0) < 1e-6  # face_roll measures the roll, modulo 360
    m = upright_matrix(pts, 128)
    out = transform_points(pts, m)
    eyes = out[LEFT_EYE].mean(0) - out[RIGHT_EYE].mean(0)
    assert abs(eyes[1]) < 1e-3 and eyes[0] > 0  # level, and the subject's right eye on the image left
    assert out[JAW_TIP, 1] > out[RIGHT_EYE, 1].mean()  # upright: chin below the eyes
    # side = FINE_SIDE_RATIO x the upright landmark box; centre FINE_SHIFT_UP x side above the box centre
    centre, side = landmark_box(out)
    assert side == pytest.approx(128 / FINE_SIDE_RATIO, rel=1e-5)
    assert centre[0] == pytest.approx(63.5, abs=1e-3)
    assert centre[1] == pytest.approx(63.5 + FINE_SHIFT_UP * 128, abs=1e-3)


def test_fine_jitter_is_upright_up_to_its_noise() -> None:
    pts = _face(140.0)
    rng = np.random.default_rng(0)
    rolls, sides = [], []
    for _ in range(200):
        out = transform_points(pts, FineJitter(p_flip=0.0).sample(rng, pts, 128))
        rolls.append(face_roll(out))
        sides.append(landmark_box(out)[1])
    assert abs(np.mean(rolls)) < 1.5 and 4.0 < np.std(rolls) < 8.0  # angle_std 6 degrees around level
    assert np.median(sides) == pytest.approx(128 / FINE_SIDE_RATIO, rel=0.03)


def test_wide_jitter_spans_the_framings() -> None:
    rng = np.random.default_rng(1)
    pts = _face(0.0, scale=60.0, centre=(200.0, 200.0))
    centre, side = landmark_box(pts)
    boxes, rolls = [], []
    for _ in range(400):
        out = transform_points(pts, WIDE_JITTER.sample(rng, centre, side, 128))
        boxes.append(landmark_box(out)[1] / 128)
        rolls.append(face_roll(out))
    assert min(boxes) < 0.3 and max(boxes) > 0.8  # a quarter to nearly the whole crop
    assert np.ptp(rolls) > 300  # any roll


def test_training_mix_uses_each_framing(tmp_path: Path) -> None:
    """fine_fraction / wide_fraction route crops to the three framings; 0 keeps the old stream."""
    pts = _face(0.0, centre=(128.0, 128.0)).astype(np.float32)
    cache = CropCache(np.zeros((1, 256, 256, 3), np.uint8), pts[None], ["a"], "mem")
    old = LandmarkTrainSet([cache], 64, 8, augment=AugmentConfig(photometric=0.0))
    same = LandmarkTrainSet([cache], 64, 8, augment=AugmentConfig(photometric=0.0, fine_fraction=0.0))
    for i in range(8):
        assert torch.equal(old[(0, i)][1], same[(0, i)][1])
    mixed = LandmarkTrainSet(
        [cache], 64, 64, augment=AugmentConfig(photometric=0.0, fine_fraction=0.5, wide_fraction=0.5)
    )
    sides = np.array([landmark_box(mixed[(0, i)][1].numpy())[1] / 64 for i in range(64)])
    assert (np.abs(sides - 1 / FINE_SIDE_RATIO) < 0.08).mean() > 0.3  # the fine framing is common
    assert sides.min() < 0.35  # wide crops show small faces


def test_reframe_moves_points_with_the_image(tmp_path: Path) -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    img[10, 40] = 255  # one bright pixel at (x=40, y=10)
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "a.png", img)
    pts = np.zeros((68, 2), np.float32)
    pts[:] = (40.0, 10.0)
    (src / "annot.pkl").write_bytes(pickle.dumps((["a.png"], [[tuple(p) for p in pts]])))
    ds = load_dataset(src)
    for r in (Reframe("r", roll_deg=90.0), Reframe("s", scale=0.5, shift=(0.1, -0.2))):
        out = load_dataset(write_reframed(ds, r, tmp_path / r.name))
        moved = out.samples[0].landmarks[0]
        from lightmark.data.images import read_image

        im = read_image(out.samples[0].image_path)
        y, x = np.unravel_index(im[..., 0].argmax(), im.shape[:2])
        assert np.hypot(x - moved[0], y - moved[1]) < 1.0
    assert set(REFRAMES) >= {"none", "scale_0.5", "scale_1.5", "shift_x_0.2", "shift_y_0.2", "roll_90", "roll_180"}
    # roll 90 counter-clockwise on screen: a point right of the centre moves above it
    m = Reframe("r", roll_deg=90.0).matrix(64, 64)
    assert transform_points(np.array([[41.5, 31.5]]), m)[0] == pytest.approx([31.5, 21.5], abs=1e-4)


def test_reframed_sets_are_written_once(tmp_path: Path, monkeypatch) -> None:
    """Every re-framing is written on first use and read back afterwards (a complete copy is not written again);
    a half-written one is written again."""
    import lightmark.data.reframe as reframe_mod

    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "a.png", np.full((64, 64, 3), 90, np.uint8))
    (src / "annot.pkl").write_bytes(pickle.dumps((["a.png"], [[(32.0, 32.0)] * 68])))
    ds = load_dataset(src)
    writes = []
    real = reframe_mod.write_reframed
    monkeypatch.setattr(reframe_mod, "write_reframed", lambda d, r, out: writes.append(r.name) or real(d, r, out))
    sets = reframe_mod.reframed_sets(ds, tmp_path / "work")
    assert sorted(sets) == sorted(REFRAMES) and sorted(writes) == sorted(REFRAMES)
    assert all(len(d) == 1 for d in sets.values())
    writes.clear()
    (tmp_path / "work" / "roll_90" / "annot.pkl").unlink()  # half-written
    reframe_mod.reframed_sets(ds, tmp_path / "work")
    assert writes == ["roll_90"]


def test_refine_passes_recrop_on_the_last_points() -> None:
    """refine=1 runs the model twice, the second time on the upright crop of the first pass's points."""
    torch.manual_seed(0)
    model = create_model("shufflenetv2_x0_5_heatmap", input_size=64).eval()
    image = (np.random.default_rng(0).uniform(0, 255, (96, 96, 3))).astype(np.uint8)
    calls: list[np.ndarray] = []
    one = Predictor(model, backend="torch", refine=0)
    two = Predictor(model, backend="torch", refine=1)
    run = two.run_model_outputs
    two.run_model_outputs = lambda x: calls.append(x) or run(x)  # count the forward passes
    first = one.predict(image)
    second = two.predict(image)
    assert len(calls) == 2 and one.refine == 0 and two.refine == 1
    expected = two.predict_crops(np.stack([np.ascontiguousarray(_warp_fine(two, image, first))]))  # second pass by hand
    back = transform_points(expected[0], np.linalg.inv(np.vstack([two.fine_matrix(first), [0, 0, 1]]))[:2])
    np.testing.assert_allclose(second, back, atol=1e-3)
    assert Predictor(model, backend="torch").refine == model.config.refine_passes == 0
    assert two.with_threads(1).refine == 1  # a copy for timing keeps the passes
    with pytest.raises(ConfigError):
        Predictor(model, backend="torch", refine=-1)


def _warp_fine(predictor: Predictor, image: np.ndarray, points: np.ndarray) -> np.ndarray:
    from lightmark.data.transforms import warp

    return warp(image, predictor.fine_matrix(points), predictor.input_size)


def test_refining_crop_is_levelled_by_the_roll_the_model_was_trained_with() -> None:
    """The mean 3D face turned by 70 degrees of yaw and tilted by 25 of pitch, not rolled: its eye line reads
    about 10 degrees. An eye-line model's refining crop levels the eyes; a ``fine_head_roll`` model's leaves
    the face as it is (the head is upright)."""
    import cv2

    from lightmark.pose import MEAN_SHAPE_68, camera_matrix, head_roll, project, rotation_from_angles

    cam = camera_matrix(400, 400)
    depth = float(cam[0, 0]) * 2.0 * float(np.ptp(MEAN_SHAPE_68[:, 0])) / 200.0
    pts = project(MEAN_SHAPE_68, cv2.Rodrigues(rotation_from_angles(70.0, -25.0, 0.0))[0], np.array([0, 0, depth]), cam)
    eye = Predictor(create_model("shufflenetv2_x0_5_heatmap"), backend="torch")
    head = Predictor(create_model("shufflenetv2_x0_5_heatmap", fine_head_roll=True), backend="torch")
    assert abs(face_roll(pts)) > 5.0
    assert face_roll(transform_points(pts, eye.fine_matrix(pts))) == pytest.approx(0.0, abs=1e-3)
    in_head_crop = transform_points(pts, head.fine_matrix(pts))
    assert head_roll(in_head_crop) == pytest.approx(0.0, abs=0.5)
    assert face_roll(in_head_crop) == pytest.approx(face_roll(pts), abs=1.0)
    assert face_roll(transform_points(pts, head.fine_matrix(pts, angle_deg=face_roll(pts)))) == pytest.approx(
        0, abs=1e-3
    )


def test_two_pass_models_record_their_framing() -> None:
    from lightmark.engine.train import TrainConfig, _model_overrides

    cfg = TrainConfig(train=["x"], fine_fraction=0.5)
    over = _model_overrides(cfg)
    assert over["refine_passes"] == 1 and over["fine_ratio"] == FINE_SIDE_RATIO
    model = create_model("shufflenetv2_x0_5_heatmap", **over)
    assert Predictor(model, backend="torch").refine == 1
    assert over["fine_head_roll"] is False  # the fine pass was trained levelled by the eye line
    single = _model_overrides(TrainConfig(train=["x"]))
    assert "refine_passes" not in single and single["fine_head_roll"] is True


def test_helen_holdout_is_fixed_and_read_by_exclude(tmp_path: Path) -> None:
    names = read_name_lists([str(REPO / "splits" / "helen_holdout_170.txt")])
    assert len(names) == 170 and all(n.endswith(".jpg") for n in names)
    photos = {n.rsplit("_", 1)[0] for n in names}
    assert len(photos) < 170  # whole photos: several faces of one photo stay together
    with pytest.raises(ConfigError, match="cannot read"):
        read_name_lists([str(tmp_path / "missing.txt")])


def test_crop_matrix_angle_convention() -> None:
    """crop_matrix(angle = face_roll) levels a face: the rule upright_matrix relies on."""
    pts = _face(33.0)
    m = crop_matrix(pts.mean(0), 200.0, 128, face_roll(pts))
    out = transform_points(pts, m)
    assert abs(face_roll(out)) < 1e-4


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(70.0, -25.0, 0.0), (60.0, -20.0, 15.0), (0.0, 0.0, 40.0)])
def test_head_roll_does_not_tilt_with_yaw(yaw: float, pitch: float, roll: float) -> None:
    """The mean 3D face turned and projected (pose.rotation_from_angles' roll reads as minus face_roll's): the
    head pose's roll gives the true roll back within a degree, where a turned, tilted face's eye line is 5-10
    degrees off."""
    import cv2

    from lightmark.pose import MEAN_SHAPE_68, camera_matrix, head_roll, project, rotation_from_angles

    cam = camera_matrix(400, 400)
    depth = float(cam[0, 0]) * 2.0 * float(np.ptp(MEAN_SHAPE_68[:, 0])) / 200.0  # the face about 200 px wide
    rvec = cv2.Rodrigues(rotation_from_angles(yaw, pitch, roll))[0]
    pts = project(MEAN_SHAPE_68, rvec, np.array([0.0, 0.0, depth]), cam)
    assert head_roll(pts) == pytest.approx(-roll, abs=1.0)
    if yaw:
        assert abs(face_roll(pts) + roll) > 4.0


class _HalfwayPredictor:
    """Stub for :func:`refine_faces`: each pass moves a face's points halfway to ``target`` (the crop is ignored)."""

    def __init__(self, target: np.ndarray) -> None:
        self.target, self.calls = target, []

    def fine_matrix(self, points: np.ndarray) -> np.ndarray:
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    def cut(self, image: np.ndarray, m: np.ndarray) -> np.ndarray:
        return image

    def read_mapped(self, crops: np.ndarray, mats: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = crops[:, 0, 0, 0].astype(int)  # each stub image carries its face's index
        self.calls.append(idx.tolist())
        new = (self.points[idx] + self.target[idx]) / 2
        return new, np.full(new.shape[:2], len(self.calls), np.float32), np.full(len(idx), 10.0 * len(self.calls))


def test_refine_faces_settles_only_faces_that_still_move() -> None:
    """Face 0 starts 8 % of its side off its target (each pass halves that: moves of 4 %, 2 %), face 1 starts 2 %
    off (moves of 1 %): with ``settle`` face 0 gets a second pass (its first moved more than SETTLE_MOVE = 3 %),
    face 1 does not; without ``settle`` both get exactly ``passes``."""
    from lightmark.engine.faces import SETTLE_MOVE, SETTLED_PASSES, refine_faces

    assert SETTLE_MOVE == 0.03 and SETTLED_PASSES == 2
    square = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])  # landmark box side 100
    images = [np.full((2, 2, 3), i, np.uint8) for i in range(3)]
    for settle, expected in ((True, [[0, 1], [0]]), (False, [[0, 1]])):
        target = np.stack([square, square, square])
        points = target + np.array([[8.0, 0.0], [2.0, 0.0], [0.0, 0.0]])[:, None]  # face 2: passes 0, never refined
        stub = _HalfwayPredictor(target)
        stub.points = points
        conf, face = np.zeros((3, 4), np.float32), np.zeros(3)
        refine_faces(stub, images, points, conf, np.array([1, 1, 0]), np.full(3, settle), face)
        assert stub.calls == expected
        np.testing.assert_allclose(points[:, 0, 0], [2.0, 1.0, 0.0] if settle else [4.0, 1.0, 0.0])
        assert conf[:, 0].tolist() == ([2, 1, 0] if settle else [1, 1, 0])
        assert face.tolist() == ([20, 10, 0] if settle else [10, 10, 0])  # each face keeps its last pass's
