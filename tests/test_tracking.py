"""The tracker's fixed point on a still face, smoothing without lag, any roll, and the demo CSV's columns."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import UprightFraming, require_shared
from lightmark.data.transforms import invert_affine
from lightmark.demo import (
    MEAN_SHAPE_68,
    ConstantVelocityFilter,
    DemoConfig,
    FaceTracker,
    LandmarkSmoother,
    OneEuroFilter,
    make_detectors,
    render_path_clip,
)
from lightmark.demo.runner import CSV_HEADER, _csv_row
from lightmark.demo.tracking import TrackedFace, crop_change
from lightmark.detectors import BoxToFace, Detection
from lightmark.pose import estimate_head_pose

FACE = MEAN_SHAPE_68[:, :2] / np.ptp(MEAN_SHAPE_68[:, :2], axis=0).max()  # unit-side frontal face


def _placed(centre, side, roll_deg):
    a = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.asarray(centre) + side * FACE @ rot.T


class DriftingModel(UprightFraming):
    """A landmark model whose answer depends on where the crop sits (as a real one does, by a fraction of a pixel):
    the true points plus a shift that is a fixed pseudo-random function of the crop. Re-framing every frame on such
    answers never settles."""

    backend = "drifting"

    def __init__(self, truth):
        self.truth = truth

    def landmarks(self, frame, mats):
        out = []
        for m in mats:
            shift = 0.4 * np.sin(np.array([m[0, 2] * 7.1 + m[0, 0] * 13.0, m[1, 2] * 5.3 - m[0, 1] * 11.0]))
            out.append(self.truth + shift)
        return np.asarray(out, np.float32)


class FixedDetector:
    name = "fixed"
    box_to_face = BoxToFace()

    def __init__(self, points):
        lo, hi = points.min(0), points.max(0)
        self.detection = Detection(box=np.concatenate([lo, hi]), score=1.0)

    def detect(self, frame):
        return [self.detection]


@pytest.mark.parametrize("hold", [0.0, 1.0])
def test_crop_reaches_a_fixed_point_on_a_repeated_frame(hold):
    truth = _placed((320, 240), 150, 0)
    tracker = FaceTracker(DriftingModel(truth), FixedDetector(truth), DemoConfig(hold_crop=hold, redetect_every=0))
    frame = np.zeros((480, 640, 3), np.uint8)
    crops, points = [], []
    for i in range(30):
        face = tracker.update(frame, i / 30)[0]
        if i:  # frame 0 starts the track from the detection
            crops.append(tracker.tracks[0].crop.copy())
            points.append(face.raw)
    moved = [crop_change(a, b, 128) for a, b in zip(crops[-10:], crops[-9:], strict=False)]
    if hold:
        assert all(np.array_equal(c, crops[-1]) for c in crops[-10:])  # the crop transform stops changing...
        assert np.array_equal(points[-1], points[-10]) and max(moved) < 1e-9  # ...and so do the points
        assert tracker.crops_held >= 25
    else:
        assert max(moved) > 0.05  # re-framed on every answer: it keeps wandering


def test_crop_follows_a_moving_face():
    """Holding is for a still face: a face sliding 3 px/frame moves the crop with it (lag below the hold band)."""
    truth0 = _placed((200, 240), 150, 0)
    model = DriftingModel(truth0)
    tracker = FaceTracker(model, FixedDetector(truth0), DemoConfig(redetect_every=0))
    frame = np.zeros((480, 640, 3), np.uint8)
    for i in range(40):
        model.truth = truth0 + [3.0 * i, 0.0]
        tracker.update(frame, i / 30)
    crop = tracker.tracks[0].crop
    centre = invert_affine(crop)[:, :2] @ np.full(2, 63.5) + invert_affine(crop)[:, 2]
    assert abs(centre[0] - model.truth[:, 0].mean()) < 5.0


def test_smoother_has_no_lag_on_a_ramp():
    """A face sliding, zooming and rolling at constant speed: the smoothed points stay on the truth (no lag), where
    One Euro on the points themselves trails behind by pixels."""
    t = np.arange(90) / 30
    faces = [_placed((100 + 90 * ti, 240 + 30 * ti), 150 * (1 + 0.2 * ti), 90 * ti) for ti in t]
    rng = np.random.default_rng(0)
    for smoother in (LandmarkSmoother(), LandmarkSmoother(motion=1000.0)):
        out = np.array([smoother(f + rng.normal(0, 0.3, f.shape), ti) for f, ti in zip(faces, t, strict=True)])
        err = np.linalg.norm(out - np.array(faces), axis=-1).mean(-1)
        assert err[30:].max() < 0.35  # below the 0.3 px noise per coordinate: no lag
    old = OneEuroFilter(min_cutoff=1.0, beta=8.0 / 150)
    out = np.array([old(f, ti) for f, ti in zip(faces, t, strict=True)])
    assert np.linalg.norm(out - np.array(faces), axis=-1).mean(-1)[30:].min() > 1.0


def test_smoother_smooths_a_still_face_and_passes_an_expression():
    rng = np.random.default_rng(1)
    face = _placed((320, 240), 150, 30)
    smoother = LandmarkSmoother()
    noisy = face + rng.normal(0, 0.5, (150, 68, 2))
    out = np.array([smoother(p, i / 30) for i, p in enumerate(noisy)])
    assert out[30:].std(0).mean() < 0.5 * noisy[30:].std(0).mean()
    opened = face.copy()
    opened[48:68, 1] += np.where(np.arange(48, 68) >= 57, 15.0, 0.0)[:20]  # the mouth opens by 15 px, at once
    smoother(opened, 5.0)
    late = [smoother(opened, 5.0 + k / 30) for k in range(1, 10)]
    assert np.abs(late[-1] - opened).max() < 3.0  # follows within a third of a second


def test_constant_velocity_filter():
    f = ConstantVelocityFilter(100.0)
    ys = [f(np.array([2.0 * i]), i / 30) for i in range(60)]
    assert abs(ys[-1][0] - 118.0) < 1e-3  # a constant speed: no lag once settled
    with pytest.raises(ValueError):
        ConstantVelocityFilter(0.0)


@pytest.mark.parametrize("roll", [0, 45, 90, 135, 170, -150, -100])
def test_head_pose_any_roll(roll):
    pts = _placed((320, 240), 150, roll)
    pose = estimate_head_pose(pts, (640, 480))
    assert pose.error < 0.15
    assert abs((pose.roll + roll + 180) % 360 - 180) < 5.0  # pose roll is counter-clockwise, ours clockwise


def test_demo_csv_keeps_its_columns():
    assert CSV_HEADER[:6] == ["frame", "time", "face_id", "yaw", "pitch", "roll"]
    assert CSV_HEADER[6:] == [f"{c}{i}" for i in range(68) for c in "xy"]
    pts = _placed((320, 240), 150, 0).astype(np.float32)
    row = _csv_row(3, 0.1, TrackedFace(0, pts, pts, estimate_head_pose(pts, (640, 480)), False))
    assert len(row) == len(CSV_HEADER) and row[:3] == [3, "0.1000", 0]


@pytest.fixture(scope="module")
def roll_clip():
    """A real face (the first AFLW2000-3D validation crop) over a textured background, turning a full circle."""
    from lightmark.data.formats import load_dataset
    from lightmark.data.images import read_image

    sample = load_dataset(require_shared("aflw2000/val")).samples[0]
    rng = np.random.default_rng(0)
    bg = np.clip(110 + rng.normal(0, 25, (60, 80, 3)), 0, 255).astype(np.uint8)
    import cv2

    bg = cv2.GaussianBlur(cv2.resize(bg, (640, 480)), (0, 0), 3)
    n = 72  # 5 degrees per frame
    poses = np.stack([np.full(n + 8, 320.0), np.full(n + 8, 240.0), np.full(n + 8, 160.0), np.zeros(n + 8)], 1)
    poses[8:, 3] = np.arange(1, n + 1) * 360.0 / n
    return render_path_clip(read_image(sample.image_path), sample.landmarks, bg, poses, noise=3.0)


def test_full_roll_is_tracked_without_a_lost_frame(roll_clip):
    from lightmark import Predictor

    cfg = DemoConfig(threads=1)
    det, search = make_detectors(None, cfg)
    tracker = FaceTracker(Predictor(threads=1), det, cfg, search_detector=search)
    for i, frame in enumerate(roll_clip.frames):
        faces = tracker.update(frame, i / 30)
        assert faces, f"no face in frame {i} (roll {roll_clip.poses[i, 3]:.0f})"
        err = np.linalg.norm(faces[0].raw - roll_clip.landmarks[i], axis=1).mean()
        assert err < 0.15 * roll_clip.face_sides[i], (i, err)
    assert tracker.lost == 0 and tracker.new_tracks == 1


def test_an_upside_down_face_is_found_by_the_search(roll_clip):
    from lightmark import Predictor

    frame = roll_clip.frames[8 + 36]  # rolled 180 degrees
    cfg = DemoConfig(threads=1)
    det, search = make_detectors(None, cfg)
    assert not det.detect(frame)  # the upright detector alone does not see it
    faces = FaceTracker(Predictor(threads=1), det, cfg, search_detector=search).update(frame, 0.0)
    assert faces and np.linalg.norm(faces[0].raw - roll_clip.landmarks[44], axis=1).mean() < 0.15 * 160
