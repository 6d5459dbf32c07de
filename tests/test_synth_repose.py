"""Re-posing pictures in 3D (lightmark.synth.repose): labels, pictures, mirror symmetry, the dataset writer, errors.

The tests on real pictures need the ICT Face Model and the FaceSynthetics / 300-W samples in ../shared/data (skipped
with a message when absent, failing when CI=true).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import require_shared
from lightmark.cli import main
from lightmark.data.formats import load_dataset, read_ldmks
from lightmark.errors import ConfigError, DatasetError
from lightmark.schemes import get_scheme
from lightmark.synth.labels import BACKGROUND
from lightmark.synth.repose import (
    INDEX_NAME,
    ReposeConfig,
    prepare_source,
    repose,
    repose_dataset,
    repose_mesh,
    turned_camera,
)
from lightmark.synth.scene import MODEL_TO_CAMERA, Camera, head_angles, rotation_matrix

ICT_NPZ = "ict_face_model/ict_face_model_light.npz"
FS = "facesynthetics_100"
HELEN = "300w_helen_train"
FLIP = list(get_scheme("ibug68").flip_perm)


@pytest.fixture(scope="module")
def ict():
    from lightmark.synth import load_face_model

    return load_face_model(require_shared(ICT_NPZ))


def _fs_sample(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Picture (512,512,3) RGB, 68 labels, 2 pupils and person mask (the segmentation's non-background) of a
    FaceSynthetics sample."""
    folder = require_shared(FS)
    image = cv2.imread(str(folder / f"{name}.png"))[:, :, ::-1].copy()
    ldmks, pupils = read_ldmks(folder / f"{name}_ldmks.txt")
    seg = cv2.imread(str(folder / f"{name}_seg.png"), cv2.IMREAD_UNCHANGED)
    return image, ldmks.astype(np.float64), pupils.astype(np.float64), seg != BACKGROUND


@pytest.fixture(scope="module")
def fs1(ict):
    """Sample 000001 (yaw ~13 degrees) as given and prepared."""
    image, ldmks, pupils, mask = _fs_sample("000001")
    return image, ldmks, pupils, mask, prepare_source(ict, image, ldmks, "3d", pupils, mask)


def _mirror(points: np.ndarray, width: int, perm: list[int] | None = FLIP) -> np.ndarray:
    out = np.array(points, np.float64)[perm if perm is not None else slice(None)]
    out[:, 0] = width - 1 - out[:, 0]
    return out


# ----------------------------------------------------------------------------------------------- geometry (no data)


def test_head_angles_invert_rotation_matrix():
    rng = np.random.default_rng(0)
    for _ in range(200):
        angles = (rng.uniform(-89, 89), rng.uniform(-60, 60), rng.uniform(-60, 60))
        np.testing.assert_allclose(head_angles(rotation_matrix(*angles)), angles, atol=1e-7)


def test_turned_camera_keeps_the_pivot_pitch_and_roll():
    cam = Camera(
        K=np.array([[800.0, 0, 255.5], [0, 800.0, 255.5], [0, 0, 1]]),
        R=MODEL_TO_CAMERA @ rotation_matrix(20.0, -12.0, 7.0),
        t=np.array([1.0, -2.0, 60.0]),
        size=512,
    )
    pivot = np.array([0.0, -4.5, 1.2])
    new = turned_camera(cam, pivot, -75.0)
    np.testing.assert_allclose(head_angles(MODEL_TO_CAMERA.T @ new.R), (-75.0, -12.0, 7.0), atol=1e-9)
    np.testing.assert_allclose(new.R @ pivot + new.t, cam.R @ pivot + cam.t, atol=1e-9)


def test_bad_arguments_are_config_errors(tmp_path, capsys):
    for bad in (
        dict(poses=0),
        dict(yaw_max=95.0),
        dict(yaws=[0.0, 120.0]),
        dict(yaws=[]),
        dict(expression=1.5),
        dict(size=8),
        dict(jaw="sideways"),
    ):
        with pytest.raises(ConfigError):
            ReposeConfig(**bad).check()
    square, lm = np.zeros((64, 64, 3), np.uint8), np.full((68, 2), 30.0)
    for image, points, kw in (
        (np.zeros((64, 80, 3), np.uint8), lm, {}),  # not square
        (square, lm[:60], {}),
        (square, np.full((68, 2), np.nan), {}),
        (square, lm, {"jaw": "3D"}),
        (square, lm, {"pupils": np.zeros((1, 2))}),
        (square, lm, {"mask": np.ones((32, 32))}),
    ):
        with pytest.raises(ConfigError):
            prepare_source(None, image, points, **kw)  # checked before the model is needed
    code = main(["repose", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--poses", "0", "--quiet"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lightmark repose: error: poses: expected 1 or more")


# ----------------------------------------------------------------------------------------------- real pictures


def test_zero_turn_gives_back_the_fit_and_the_picture(ict, fs1):
    image, ldmks, pupils, _, src = fs1
    fit = src.fit
    r = repose(src, src.pose[0])
    proj = fit.camera.project(ict.vertices(fit.identity, fit.expression)[ict.landmarks68])
    np.testing.assert_allclose(r.landmarks["ibug68"], proj, atol=1e-3)  # the fit's own projected landmarks
    assert np.linalg.norm(r.landmarks["ibug68"] - ldmks, axis=1).mean() < 2.5  # the fit residual (~1.1 px here)
    assert np.linalg.norm(r.pupils - pupils, axis=1).max() < 1.5  # the surface points under the pupils
    face = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(ldmks[17:].astype(np.float32)).astype(np.int32), 1)
    diff = np.abs(r.image.astype(np.float64) - image).mean(2)
    assert diff[face > 0].mean() < 5.0, diff[face > 0].mean()  # measured 2.2 (0-255 levels)
    assert diff[face == 0].mean() < 3.0, diff[face == 0].mean()  # measured 0.7


def test_labels_are_the_landmark_vertices_projected_at_the_new_pose(ict, fs1):
    src = fs1[4]
    cam, mesh = src.fit.camera, repose_mesh(ict)
    expr = np.clip(src.fit.expression + 0.3 * (np.arange(ict.num_expression) % 3 == 0), 0, 1)
    r = repose(src, 40.0, expr)
    # independently: the model's landmarks with the new expression, turned about the pivot (fixed in the camera)
    _, pitch, roll = head_angles(MODEL_TO_CAMERA.T @ cam.R)
    R = MODEL_TO_CAMERA @ rotation_matrix(40.0, pitch, roll)
    X = (ict.vertices(src.fit.identity, expr)[ict.landmarks68] - mesh.pivot) @ R.T + (cam.R @ mesh.pivot + cam.t)
    uv = X[:, :2] / X[:, 2:] * cam.K[0, 0] + cam.K[:2, 2]
    np.testing.assert_allclose(r.landmarks["ibug68"], uv, atol=1e-3)
    assert head_angles(MODEL_TO_CAMERA.T @ r.camera.R)[0] == pytest.approx(40.0)
    # the 2D jaw differs from the 3D one on the jaw only (and not at the chin)
    same = [i for i in range(68) if i not in range(0, 8) and i not in range(9, 17)]
    np.testing.assert_array_equal(r.landmarks["ibug68_2d"][same], r.landmarks["ibug68"][same])
    assert np.abs(r.landmarks["ibug68_2d"] - r.landmarks["ibug68"]).max() > 1.0  # the turned-away cheek marched


def test_the_picture_moves_with_the_labels(ict, fs1):
    """Each inner landmark's colour in the re-posed picture is its colour in the source picture (the pixels follow
    the surface), far closer than the colour at another landmark."""
    image, _, _, _, src = fs1
    fit = src.fit
    proj = fit.camera.project(ict.vertices(fit.identity, fit.expression)[ict.landmarks68])
    inner = list(range(27, 68))

    def colours(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
        blur = cv2.blur(img.astype(np.float32), (5, 5))
        ij = np.round(pts).astype(int)
        return blur[ij[:, 1], ij[:, 0]]

    before = colours(image, proj[inner])
    for yaw in (src.pose[0] - 25.0, src.pose[0] + 25.0):
        after = colours(repose(src, yaw).image, repose(src, yaw).landmarks["ibug68"][inner])
        own = np.abs(after - before).mean()
        other = np.abs(after[::-1] - before).mean()
        assert own < 0.5 * other, (yaw, own, other)  # measured 8-13 vs 46


def test_mirrored_picture_gives_mirrored_labels(ict, fs1):
    image, ldmks, pupils, mask, src = fs1
    W = image.shape[1]
    src_m = prepare_source(
        ict, np.ascontiguousarray(image[:, ::-1]), _mirror(ldmks, W), "3d", _mirror(pupils, W, [1, 0]), mask[:, ::-1]
    )
    a, b = repose(src, 30.0), repose(src_m, -30.0)
    for scheme in ("ibug68", "ibug68_2d"):
        d = np.linalg.norm(b.landmarks[scheme] - _mirror(a.landmarks[scheme], W), axis=1)
        assert d.max() < 1.5, (scheme, d.max())  # measured 0.2 px (the two fits differ a little)
    assert np.linalg.norm(b.pupils - _mirror(a.pupils, W, [1, 0]), axis=1).max() < 1.5
    assert np.abs(b.image.astype(np.float64) - a.image[:, ::-1]).mean() < 3.0  # measured 0.2


def _copy(folder: Path, names: list[str], dest: Path) -> Path:
    dest.mkdir(parents=True)
    for n in names:
        for p in folder.glob(f"{n}*"):
            shutil.copy(p, dest / p.name)
    return dest


def test_written_dataset_loads_and_resumes(ict, tmp_path):
    src = _copy(require_shared(FS), ["000001", "000003"], tmp_path / "fs")
    out = tmp_path / "out"
    cfg = ReposeConfig(poses=2, size=128, expression=0.5)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        stats = repose_dataset(src, out, cfg, seed=3, face_model=ict, progress=False)
        assert cv2.getNumThreads() == 3  # re-posed here on one OpenCV thread; the caller's count is back
    finally:
        cv2.setNumThreads(threads)
    assert (stats["written"], stats["skipped"], stats["rejected"]) == (4, 0, 0)
    ds = load_dataset(out, require_landmarks=True)  # what `lightmark train --train OUT` reads
    assert ds.format == "facesynthetics" and len(ds) == 4
    assert all(s.landmarks.shape == (68, 2) and s.meta["pupils"].shape == (2, 2) for s in ds)
    assert cv2.imread(str(ds[0].image_path)).shape == (128, 128, 3)
    ds2 = load_dataset(out, require_landmarks=True, scheme="ibug68_2d")
    assert len(ds2) == 4 and np.array_equal(ds2[0].landmarks[17:], ds[0].landmarks[17:])
    with open(out / INDEX_NAME, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["source"] for r in rows] == ["000001.png", "000001.png", "000003.png", "000003.png"]
    assert len({r["yaw"] for r in rows}) == 4
    again = repose_dataset(src, out, cfg, seed=3, face_model=ict, progress=False)
    assert (again["written"], again["skipped"]) == (0, 4)
    with pytest.raises(DatasetError, match="another seed"):
        repose_dataset(src, out, cfg, seed=4, face_model=ict, progress=False)


def test_helen_faces_are_fitted_through_their_inner_points(ict, tmp_path):
    folder = require_shared(HELEN)
    src = _copy(folder, ["100040721_2"], tmp_path / "helen")
    out = tmp_path / "out"
    stats = repose_dataset(src, out, ReposeConfig(yaws=[-45.0, 20.0], expression=0.0), face_model=ict, progress=False)
    assert stats["written"] == 2
    ds = load_dataset(out, require_landmarks=True)
    assert all(s.landmarks.shape == (68, 2) and "pupils" not in s.meta for s in ds)  # 300-W has no pupils
    assert ds[0].image_path.name == "000000.png" and cv2.imread(str(ds[0].image_path)).shape == (384, 384, 3)
    # jaw="auto" read the .pts jaw as the visible outline, so it was not fitted: moving it changes nothing
    lm = load_dataset(src, require_landmarks=True)[0].landmarks.astype(np.float64)
    image, person = cv2.imread(str(src / "100040721_2.jpg"))[:, :, ::-1].copy(), np.ones((384, 384))
    moved = lm.copy()
    moved[:17] += (15.0, -10.0)
    a, b = (prepare_source(ict, image, p, "2d", mask=person) for p in (lm, moved))
    assert a.residual < 3.0  # over points 17-67
    np.testing.assert_allclose(repose(a, 30.0).landmarks["ibug68"], repose(b, 30.0).landmarks["ibug68"], atol=0.01)


def test_excluded_pictures_are_not_reposed(ict, tmp_path):
    """``exclude`` (like ``lightmark train --exclude``) leaves the listed source pictures out: the mixed track
    re-poses HELEN faces without the 170 holdout ones."""
    src = _copy(require_shared(FS), ["000001", "000003"], tmp_path / "fs")
    names = tmp_path / "held.txt"
    names.write_text("# held out\n000001.png\n")
    cfg = ReposeConfig(poses=1, size=64, expression=0.0, exclude=[str(names)])
    stats = repose_dataset(src, tmp_path / "out", cfg, face_model=ict, progress=False)
    assert stats["written"] == 1
    with open(tmp_path / "out" / INDEX_NAME, newline="") as f:
        assert [r["source"] for r in csv.DictReader(f)] == ["000003.png"]
    names.write_text("000001.png\n000003.png\n")
    with pytest.raises(DatasetError, match="every picture is excluded"):
        repose_dataset(src, tmp_path / "out2", cfg, face_model=ict, progress=False)
    with pytest.raises(ConfigError, match="cannot read"):
        repose_dataset(src, tmp_path / "out3", ReposeConfig(exclude=[str(tmp_path / "no.txt")]), face_model=ict)


def test_folders_written_before_a_new_setting_still_resume(ict, tmp_path):
    """A folder whose repose_config.json predates a setting (here ``exclude``) resumes when the setting is left at
    its default, and is refused once it is not."""
    import json

    src = _copy(require_shared(FS), ["000001"], tmp_path / "fs")
    out, cfg = tmp_path / "out", ReposeConfig(poses=1, size=64, expression=0.0)
    repose_dataset(src, out, cfg, face_model=ict, progress=False)
    meta = json.loads((out / "repose_config.json").read_text())
    del meta["config"]["exclude"]
    (out / "repose_config.json").write_text(json.dumps(meta))
    assert repose_dataset(src, out, cfg, face_model=ict, progress=False)["skipped"] == 1
    names = tmp_path / "none.txt"
    names.write_text("not_a_picture.png\n")
    with pytest.warns(UserWarning, match="none excluded"), pytest.raises(DatasetError, match="another seed"):
        repose_dataset(src, out, ReposeConfig(poses=1, size=64, expression=0.0, exclude=[str(names)]), face_model=ict)
