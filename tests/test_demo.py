"""The video demo: One Euro filter, head pose, detectors, and run_demo on a clip the test makes from a synthetic face.

Tracking logic is tested with an oracle landmark model and detector (they know the clip's true landmarks and
answer like a model would: the true points plus noise when the crop holds the face, a wrong small face when it does
not), so the tests need no trained weights; the real model and the shipped detectors run in their own tests.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json

import cv2
import numpy as np
import pytest

from conftest import UprightFraming, require_dlib, require_shared
from lightmark.cli import main
from lightmark.constants import FLIP_PERM
from lightmark.data.transforms import invert_affine, landmark_box
from lightmark.demo import (
    MEAN_SHAPE_68,
    DemoConfig,
    LandmarkSmoother,
    OneEuroFilter,
    estimate_head_pose,
    jitter,
    make_synthetic_clip,
    read_video,
    run_demo,
    still_jitter,
    still_jitter_report,
)
from lightmark.demo.runner import CSV_HEADER
from lightmark.demo.video import video_writer
from lightmark.detectors import BoxToFace, Detection, create_detector
from lightmark.detectors import dlib_hog as dlib_hog_mod
from lightmark.detectors.base import points_box as box_of
from lightmark.errors import LightmarkError
from lightmark.pose import (
    angles_from_rotation,
    camera_matrix,
    draw_pose_axes,
    project,
    ray_alignment,
    rotation_from_angles,
)

# ----------------------------------------------------------------------------------------------- One Euro filter


def test_one_euro_first_sample_and_constant_pass_through():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    x = np.array([[3.0, 4.0], [5.0, 6.0]])
    assert np.array_equal(f(x, 0.0), x)
    for i in range(1, 20):
        assert np.allclose(f(x, i / 30), x)


def test_one_euro_reduces_noise_on_a_still_signal():
    rng = np.random.default_rng(0)
    noisy = 100 + rng.normal(0, 1.0, (300, 68, 2))
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    smooth = np.array([f(x, i / 30) for i, x in enumerate(noisy)])
    assert still_jitter(noisy[30:]) / still_jitter(smooth[30:]) > 2.5


def test_one_euro_beta_cuts_lag_when_moving():
    t = np.arange(60) / 30
    ramp = 200.0 * t  # 200 px/s
    lags = {}
    for beta in (0.0, 0.1):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = np.array([f(x, ti) for x, ti in zip(ramp, t, strict=True)])
        lags[beta] = float(ramp[-1] - out[-1])
    assert 0 < lags[0.1] < lags[0.0] / 3


def test_one_euro_timestamps_and_reset():
    f = OneEuroFilter(1.0, 0.0)
    f(np.zeros(2), 1.0)
    y = f(np.ones(2), 1.1)
    assert np.all((y > 0) & (y < 1))
    assert np.array_equal(f(np.full(2, 9.0), 1.1), y)  # repeated timestamp: state kept
    f.reset()
    assert np.array_equal(f(np.full(2, 9.0), 2.0), np.full(2, 9.0))
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def test_landmark_smoother_is_scale_invariant():
    rng = np.random.default_rng(1)
    base = MEAN_SHAPE_68[:, :2]
    noise = rng.normal(0, 0.01, (100, 68, 2))
    outs = []
    for scale in (1.0, 4.0):
        s = LandmarkSmoother()
        outs.append(np.array([s(scale * (base + n), i / 30) for i, n in enumerate(noise)]) / scale)
    assert np.allclose(outs[0], outs[1], atol=1e-4)


def test_jitter_estimators():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.5, (2000, 4))
    assert jitter(noise) == pytest.approx(0.5, rel=0.1)
    moving = noise + np.linspace(0, 100, 2000)[:, None]  # slow motion does not count as jitter
    assert jitter(moving) == pytest.approx(0.5, rel=0.1)
    assert still_jitter(noise) == pytest.approx(0.5, rel=0.1)
    assert np.isnan(jitter(noise[:2]))


# --------------------------------------------------------------------------------------------------- head pose


@pytest.mark.parametrize("angles", [(0, 0, 0), (35, 0, 0), (0, -20, 0), (0, 0, 25), (-50, 15, -10)])
def test_head_pose_round_trip(angles):
    cam = camera_matrix(640, 480)
    rvec, _ = cv2.Rodrigues(rotation_from_angles(*angles))
    pts = project(MEAN_SHAPE_68, rvec, np.array([0.0, 0.0, 700.0]), cam)
    pose = estimate_head_pose(pts + np.random.default_rng(0).normal(0, 0.2, pts.shape), (640, 480))
    assert np.allclose(pose.as_tuple(), angles, atol=1.0)
    assert pose.error < 0.01
    # off the image centre: angles are measured from the line of sight (optionally from the optical axis)
    t = np.array([250.0, -120.0, 700.0])
    r_los = ray_alignment(t).T @ rotation_from_angles(*angles)
    pts = project(MEAN_SHAPE_68, cv2.Rodrigues(r_los)[0], t, cam)
    assert np.allclose(estimate_head_pose(pts, (640, 480)).as_tuple(), angles, atol=0.5)
    axis = estimate_head_pose(pts, (640, 480), line_of_sight=False)
    assert np.allclose(axis.as_tuple(), angles_from_rotation(r_los), atol=0.5)
    assert np.allclose(angles_from_rotation(rotation_from_angles(*angles)), angles, atol=1e-6)


def test_head_pose_signs_and_drawing():
    cam = camera_matrix(640, 480)
    rvec, _ = cv2.Rodrigues(rotation_from_angles(30, 0, 0))
    pts = project(MEAN_SHAPE_68, rvec, np.array([0.0, 0.0, 700.0]), cam)
    assert pts[30, 0] > pts[27, 0]  # yaw > 0: the nose tip points to the image right
    pose = estimate_head_pose(pts, (640, 480))
    img = np.zeros((480, 640, 3), np.uint8)
    assert draw_pose_axes(img, pose) is img and img.any()
    with pytest.raises(ValueError):
        estimate_head_pose(pts[:10], (640, 480))


def test_head_pose_yaw_matches_aflw2000_labels():
    from lightmark.data.formats import load_dataset

    ds = load_dataset(require_shared("aflw2000/val"))
    yaws = ds.yaws()
    est = np.array([abs(estimate_head_pose(s.landmarks, (384, 384)).yaw) for s in ds.samples])
    ok = np.isfinite(yaws)
    assert np.median(np.abs(est[ok] - yaws[ok])) < 4.0


# --------------------------------------------------------------------------------------------------- detectors


def test_demo_uses_the_library_detectors(monkeypatch):
    from lightmark.demo import make_detectors

    assert DemoConfig().detector == "blazeface"
    with pytest.raises(LightmarkError, match="unknown face detector"):
        make_detectors("yolo", DemoConfig())
    det, search = make_detectors(None, DemoConfig(threads=1))
    assert det.name == search.name == "blazeface" and det.rotations == () and search.rotations == (90, 180, 270)
    assert make_detectors(None, DemoConfig(rotated_redetect=False))[1] is None
    monkeypatch.setattr(dlib_hog_mod, "dlib_available", lambda: False)
    with pytest.raises(LightmarkError, match=r"lightmark\[dlib\]"):
        make_detectors("dlib-hog", DemoConfig())


def test_demo_flip_test_is_a_three_way_switch():
    """A ``bool | None`` config field becomes --x / --no-x, and neither leaves None (the model's own default), which
    the demo's predictor then takes from the model's config."""
    import argparse

    from lightmark.config_cli import add_config_options, config_from_args
    from lightmark.demo.runner import _make_predictor

    p = argparse.ArgumentParser()
    add_config_options(p, DemoConfig)
    got = [config_from_args(DemoConfig, p.parse_args(a)).flip_test for a in ([], ["--flip-test"], ["--no-flip-test"])]
    assert got == [None, True, False]
    assert _make_predictor("protocol", DemoConfig(), pin_threads=False).flip_test  # the protocol model's default
    assert not _make_predictor("protocol", DemoConfig(flip_test=False), pin_threads=False).flip_test
    assert not _make_predictor("mixed", DemoConfig(), pin_threads=False).flip_test


def test_cli_demo_names_the_missing_extra(monkeypatch, clip, capsys):
    monkeypatch.setattr(dlib_hog_mod, "dlib_available", lambda: False)
    assert main(["demo", "--source", str(clip.path), "--detector", "dlib-hog", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'lightmark[dlib]'" in err[0]


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(LightmarkError, match="not found"):
        run_demo(tmp_path / "nope.mp4", detector=OracleDetector([], np.zeros((0, 1, 68, 2))), model=_NullPredictor())


# ------------------------------------------------------------------------------------------- the test clip


def _synthetic_face():
    """A frontal synthetic face (lightmark.synth), or a FaceSynthetics sample when the engine cannot render."""
    try:
        from lightmark.synth import SynthConfig, render_sample

        require_shared("ict_face_model")
        names = {f.name for f in dataclasses.fields(SynthConfig)}
        frontal = dict(size=256, yaw_max=8.0, pitch_sigma=4.0, pitch_max=8.0, roll_sigma=3.0, roll_max=6.0,
                       p_glasses=0.0, p_hand=0.0, p_object=0.0, p_blur=0.0, p_noise=0.0, p_downsample=0.0,
                       box_fraction_range=(0.4, 0.45))  # fmt: skip
        img, lm, seg, _ = render_sample(0, SynthConfig(**{k: v for k, v in frontal.items() if k in names}))
        return img, lm[:68], seg
    except ImportError:  # the synth extra is not installed (numba): a FaceSynthetics sample instead
        from lightmark.data.formats import read_ldmks
        from lightmark.data.images import read_image

        root = require_shared("facesynthetics_100")
        seg = cv2.imread(str(root / "000000_seg.png"), cv2.IMREAD_UNCHANGED)
        return read_image(root / "000000.png"), read_ldmks(root / "000000_ldmks.txt")[0], seg


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    img, lm, seg = _synthetic_face()
    return make_synthetic_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", img, lm, seg, still=20, move=16, jump=12)


@pytest.fixture(scope="module")
def frames(clip):
    return read_video(clip.path)


def _key(frame: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(frame).tobytes()).hexdigest()


class OracleDetector:
    """Finds the true faces of known frames (boxes = their landmark boxes)."""

    name = "oracle"
    box_to_face = BoxToFace()

    def __init__(self, frames, gts):
        self.index = {_key(f): i for i, f in enumerate(frames)}
        self.gts = gts  # (T, F, 68, 2)
        self.calls = []

    def detect(self, frame):
        i = self.index[_key(frame)]
        self.calls.append(i)
        return [Detection(box=np.array(box_of(g)), score=1.0) for g in self.gts[i]]


class OraclePredictor(UprightFraming):
    """Answers like a landmark model (a :class:`~lightmark.demo.CropModel`) on known frames: the true points plus
    N(0, noise) when the crop holds a face, else a small wrong face in the middle of the crop."""

    backend = "oracle"

    def __init__(self, frames, gts, noise=0.8, seed=0, glitches=()):
        self.index = {_key(f): i for i, f in enumerate(frames)}
        self.gts = gts
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.glitches = set(glitches)  # frames whose first call answers wrongly (a momentary failure)

    def landmarks(self, frame, mats):
        out = []
        i = self.index[_key(frame)]
        glitch = i in self.glitches
        self.glitches.discard(i)
        for m in mats:
            back = invert_affine(m)
            centre = back[:, :2] @ np.full(2, self.input_size / 2 - 0.5) + back[:, 2]
            side = self.input_size * float(np.sqrt(abs(np.linalg.det(back[:, :2])))) / 1.45  # the framed face
            for g in [] if glitch else self.gts[i]:
                gc, gs = landmark_box(g)
                if np.linalg.norm(gc - centre) < 0.5 * side and 0.5 < gs / side < 2.0:
                    out.append(g + self.rng.normal(0, self.noise, g.shape))
                    break
            else:
                out.append(centre + 0.3 * side * (MEAN_SHAPE_68[:, :2] / np.ptp(MEAN_SHAPE_68[:, :2], axis=0).max()))
        return np.asarray(out, np.float32)


class _NullPredictor:
    backend = "none"
    input_size = 128

    def landmarks(self, frame, mats):
        raise AssertionError("not called")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_synthetic_clip(clip, frames):
    assert len(frames) == clip.frames == 48
    assert frames[0].shape == (clip.size[1], clip.size[0], 3)
    assert set(clip.segments) == {"still", "move", "jump"}
    before, after = clip.landmarks[clip.segments["jump"][0] - 1], clip.landmarks[clip.segments["jump"][0]]
    # a real jump: the face leaves the old crop (1.9 x the landmark box) completely
    assert np.linalg.norm(before.mean(0) - after.mean(0)) > 1.5 * landmark_box(before)[1]


# ------------------------------------------------------------------------------------------------ run_demo


def test_run_demo_outputs_smoothing_and_redetection(clip, frames, tmp_path):
    gts = clip.landmarks[:, None]  # (T, 1, 68, 2)
    det = OracleDetector(frames, gts)
    out, csv_path, json_path = tmp_path / "ann.mp4", tmp_path / "lm.csv", tmp_path / "lm.json"
    stats = run_demo(
        clip.path, out=out, csv=csv_path, json_path=json_path, model=OraclePredictor(frames, gts), detector=det
    )
    # outputs: annotated video readable, CSV rows = frames x faces, JSON mirrors it
    video = read_video(out)
    assert len(video) == clip.frames and video[0].shape == frames[0].shape
    assert np.abs(video[5].astype(int) - frames[5].astype(int)).mean() > 0.5  # something was drawn
    rows = _rows(csv_path)
    assert rows[0] == CSV_HEADER and len(rows) - 1 == stats.face_frames == clip.frames == stats.frames
    assert [int(r[0]) for r in rows[1:]] == list(range(clip.frames))
    data = json.loads(json_path.read_text())
    assert len(data["frames"]) == clip.frames and data["stats"]["face_frames"] == stats.face_frames
    assert stats.fps > 0 and set(stats.ms_per_frame) == {"detect", "landmarks", "pose"}
    # tracking: the detector ran once at the start, then only on schedule or when the face was lost
    assert stats.detector_runs < clip.frames / 2
    # smoothing lowers jitter on the still segment (positions vs the still truth)
    still = list(clip.segments["still"])[5:]
    smooth = np.array([data["frames"][i]["faces"][0]["landmarks"] for i in still])
    raw = np.array([data["frames"][i]["faces"][0]["raw"] for i in still])
    assert still_jitter(raw) / still_jitter(smooth) > 1.5
    assert stats.jitter_raw > stats.jitter_smoothed > 0 and stats.jitter > 1.5
    # the jump: the old crop loses the face, the tracker re-detects it in the same frame
    first = clip.segments["jump"][0]
    assert first in det.calls and stats.lost >= 1 and stats.faces >= 2
    for i in clip.segments["jump"]:
        got = np.array(data["frames"][i]["faces"][0]["raw"])
        assert np.abs(got - clip.landmarks[i]).mean() < 3.0
    # head pose exported per face
    yaw = [float(r[3]) for r in rows[1:]]
    assert all(np.isfinite(yaw)) and max(abs(y) for y in yaw) < 60


def test_still_jitter_report(clip, frames):
    gts = clip.landmarks[:, None]
    model, det = OraclePredictor(frames, gts, noise=1.0), OracleDetector(frames, gts)
    rep = still_jitter_report(clip.path, clip.segments["still"], model=model, detector=det)
    assert rep["frames"] == len(clip.segments["still"]) - 5
    assert rep["raw_px"] == pytest.approx(1.0, rel=0.3)  # the oracle's noise
    assert rep["factor"] > 1.5 and rep["smoothed_pct"] < rep["raw_pct"]


def test_momentary_loss_keeps_the_face_id(clip, frames, tmp_path):
    gts = clip.landmarks[:, None]
    csv_path = tmp_path / "glitch.csv"
    model = OraclePredictor(frames, gts, glitches=(7, 30))
    stats = run_demo(clip.path, csv=csv_path, model=model, detector=OracleDetector(frames, gts), max_frames=35)
    rows = _rows(csv_path)[1:]
    assert len(rows) == 35 and {r[2] for r in rows} == {"0"}  # frames 0-34: before the jump
    assert stats.lost == 2 and stats.faces == 1


def test_run_demo_several_faces(clip, frames, tmp_path):
    n = 20
    w = clip.size[0]
    two = [np.concatenate([f, f[:, ::-1]], axis=1) for f in frames[:n]]
    mirrored = clip.landmarks[:n][:, list(FLIP_PERM)].copy()
    mirrored[..., 0] = 2 * w - 1 - mirrored[..., 0]
    gts = np.stack([clip.landmarks[:n], mirrored], axis=1)  # (T, 2, 68, 2)
    path = tmp_path / "two.mp4"
    with video_writer(path, clip.fps, (2 * w, clip.size[1])) as write:
        for f in two:
            write(f)
    decoded = read_video(path)
    # the settings: a DemoConfig, whose fields keyword options replace
    for faces, options in ((2, {}), (1, {"max_faces": 1})):
        csv_path = tmp_path / f"two_{faces}.csv"
        stats = run_demo(
            path,
            csv=csv_path,
            config=DemoConfig(max_faces=2),
            model=OraclePredictor(decoded, gts),
            detector=OracleDetector(decoded, gts),
            **options,
        )
        rows = _rows(csv_path)[1:]
        assert len(rows) == stats.face_frames == faces * n
        assert len({r[2] for r in rows}) == faces
    with pytest.raises(TypeError, match="max_face"):
        run_demo(path, max_face=2, model=_NullPredictor(), detector=OracleDetector(decoded, gts))


def test_run_demo_with_a_real_predictor(clip, frames, tmp_path):
    """The shipped model in the loop, end to end: its points in the CSV follow the clip's face."""
    from lightmark.models import default_model_path

    model = default_model_path()
    gts = clip.landmarks[:, None]
    csv_path = tmp_path / "real.csv"
    det = OracleDetector(frames, gts)
    stats = run_demo(clip.path, csv=csv_path, model=model, detector=det, max_frames=10, threads=1)
    rows = _rows(csv_path)[1:]
    assert stats.frames == 10 and len(rows) == stats.face_frames == 10
    assert stats.backend in ("torch", "onnx") and det.calls[0] == 0  # the model ran, on the detector's first box
    pts = np.array([[float(v) for v in r[6:]] for r in rows]).reshape(10, 68, 2)
    side = np.ptp(clip.landmarks[0], axis=0).max()
    err = np.linalg.norm(pts - clip.landmarks[[int(r[0]) for r in rows]], axis=-1).mean()
    assert err < 0.06 * side, (err, side)  # a face followed, not points anywhere


@pytest.mark.parametrize("name", ["blazeface", "dlib-hog"])
def test_detectors_find_the_clip_face(clip, frames, name):
    if name == "dlib-hog":
        require_dlib()
    det = create_detector(name)
    found = det.detect(frames[0])
    assert len(found) == 1
    face = box_of(found[0].face_corners(det.box_to_face))
    true = box_of(clip.landmarks[0])
    centre = np.subtract(face[:2], true[:2]) + np.subtract(face[2:], true[2:])
    assert np.abs(centre / 2).max() < 0.2 * (true[2] - true[0])


def test_shipped_model_tracks_the_clip(clip, tmp_path, capsys):
    """The shipped model + BlazeFace through the CLI: tracks the face, smoothing lowers jitter, follows the jump."""
    from lightmark.models import default_model_path

    assert default_model_path().is_file()  # tracked in the repository: never a reason to skip
    json_path = tmp_path / "real.json"
    assert main(["demo", "--source", str(clip.path), "--json", str(json_path), "--out", str(tmp_path / "a.mp4")]) == 0
    assert "fps processing" in capsys.readouterr().out
    data = json.loads(json_path.read_text())
    tracked = [f for f in data["frames"] if f["faces"]]
    assert len(tracked) >= 0.9 * clip.frames
    still = [data["frames"][i]["faces"] for i in list(clip.segments["still"])[5:]]
    assert all(still)
    raw = np.array([f[0]["raw"] for f in still])
    smooth = np.array([f[0]["landmarks"] for f in still])
    assert still_jitter(smooth) < still_jitter(raw)
    side = landmark_box(clip.landmarks[0])[1]
    for i in list(clip.segments["jump"])[10:]:  # found again by the periodic detection (every 10 frames) at most
        faces = data["frames"][i]["faces"]
        assert faces and np.abs(np.mean(faces[0]["landmarks"], 0) - clip.landmarks[i].mean(0)).max() < 0.15 * side
