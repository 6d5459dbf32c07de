"""Tests of the synthetic face engine (lightmark.synth).

The face-model readers and the rasteriser are tested on tiny inputs written here; rendering tests need the
ICT Face Model in ../shared/data (skipped with a message when absent, failing when CI=true).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import require_shared
from lightmark.data.formats import format_ldmks, load_dataset, read_ldmks
from lightmark.errors import DatasetError, OutputError
from lightmark.synth import (
    SynthConfig,
    format_landmarks,
    load_face_model,
    load_sample,
    read_obj,
    render_dataset,
    render_sample,
    sample_seed,
)
from lightmark.synth import labels as L
from lightmark.synth.face_model import ENV_VAR
from lightmark.synth.preview import render_contact_sheet
from lightmark.synth.raster import rasterize
from lightmark.synth.scene import Camera, project_points, rotation_matrix

ICT_NPZ = "ict_face_model/ict_face_model_light.npz"
SMALL = 128
# small, fast, deterministic configuration for the tests
TEST_CFG = dict(size=SMALL)


# ------------------------------------------------------------------------------------------- tiny OBJ models

NEUTRAL = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1.0]], np.float64)


def _write_obj(path: Path, verts: np.ndarray, faces: bool = True) -> None:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    if faces:
        lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", "vt 0.5 0.5"]
        lines += ["f 1/1 2/2 3/3 4/4", "f 1/1 2/2 5/5", "f 2/2 3/3 5/5"]
    path.write_text("# test mesh\n" + "\n".join(lines) + "\n")


def _write_facex(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir()
    d_id = np.zeros_like(NEUTRAL)
    d_id[4] = [0.0, 0.0, 0.5]
    d_ex = np.zeros_like(NEUTRAL)
    d_ex[1] = [0.25, -0.5, 0.0]
    _write_obj(folder / "generic_neutral_mesh.obj", NEUTRAL)
    _write_obj(folder / "identity000.obj", NEUTRAL + d_id)
    _write_obj(folder / "jawOpen.obj", NEUTRAL + d_ex)
    cfg = {"expressions": ["jawOpen"], "landmarks68": [0, 1, 2, 3] * 17}
    (folder / "vertex_indices.json").write_text(json.dumps(cfg))
    return d_id, d_ex


def test_obj_reader_triangulates_polygons(tmp_path):
    _write_obj(tmp_path / "m.obj", NEUTRAL)
    v, vt, tris, uvt = read_obj(tmp_path / "m.obj")
    np.testing.assert_allclose(v, NEUTRAL)
    assert vt.shape == (5, 2)
    # quad a b c d -> (a, d, c), (a, c, b): the winding of the ICT .npz
    assert tris.tolist() == [[0, 3, 2], [0, 2, 1], [0, 4, 1], [1, 4, 2]]
    assert uvt.tolist() == tris.tolist()


def test_facex_folder_reader_deltas(tmp_path):
    d_id, d_ex = _write_facex(tmp_path / "FaceXModel")
    for path in (tmp_path / "FaceXModel", tmp_path):  # the folder itself or its parent
        m = load_face_model(path)
        assert m.num_vertices == 5 and m.num_identity == 1 and m.expression_names == ("jawOpen",)
        np.testing.assert_allclose(m.neutral, NEUTRAL, atol=1e-6)
        np.testing.assert_allclose(m.identity[0], d_id, atol=1e-6)
        np.testing.assert_allclose(m.expression[0], d_ex, atol=1e-6)
        np.testing.assert_allclose(m.vertices([2.0], [0.5]), NEUTRAL + 2 * d_id + 0.5 * d_ex, atol=1e-6)
        assert len(m.triangles) == 4 and m.landmarks68.shape == (68,)


def test_npz_round_trip(tmp_path):
    _write_facex(tmp_path / "FaceXModel")
    m = load_face_model(tmp_path / "FaceXModel")
    m.save_npz(tmp_path / "model.npz")
    m2 = load_face_model(tmp_path / "model.npz")
    for k in ("neutral", "triangles", "uv", "uv_triangles", "landmarks68"):
        np.testing.assert_array_equal(getattr(m, k), getattr(m2, k))
    np.testing.assert_allclose(m2.expression, m.expression, atol=1e-3)  # stored as float16
    assert m2.expression_names == m.expression_names


def test_face_model_errors(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="not found"):
        load_face_model(tmp_path / "nope.npz")
    with pytest.raises(DatasetError, match="not a face model folder"):
        load_face_model(tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_face_model(tmp_path / "bad.npz")
    _write_facex(tmp_path / "FaceXModel")
    (tmp_path / "FaceXModel" / "jawOpen.obj").unlink()
    with pytest.raises(DatasetError, match="jawOpen.obj: missing"):
        load_face_model(tmp_path / "FaceXModel")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.npz"))
    with pytest.raises(DatasetError, match="not found"):
        load_face_model()


def test_engine_refuses_other_topologies(tmp_path):
    _write_facex(tmp_path / "FaceXModel")
    m = load_face_model(tmp_path / "FaceXModel")
    with pytest.raises(DatasetError, match="ICT Face Model topology"):
        render_dataset(tmp_path / "out", 1, size=64, face_model=m, progress=False)


# ------------------------------------------------------------------------------------------- rasteriser


def _raster(xs, ys, zs, tris, size=8):
    tid = np.full((size, size), -1, np.int32)
    bary = np.zeros((size, size, 2), np.float32)
    zb = np.full((size, size), np.inf, np.float32)
    rasterize(np.asarray(xs, float), np.asarray(ys, float), np.asarray(zs, float), np.asarray(tris, np.int32),
              np.ones(len(tris), bool), tid, bary, zb)  # fmt: skip
    return tid, bary, zb


def test_raster_pixel_centre_convention():
    # triangle (0,0) (4,0) (0,4): covers exactly the pixel centres (col, row) with col + row <= 4
    tid, bary, _ = _raster([0, 4, 0], [0, 0, 4], [1, 1, 1], [[0, 1, 2]])
    rows, cols = np.mgrid[0:8, 0:8]
    np.testing.assert_array_equal(tid == 0, (cols + rows <= 4))
    # barycentrics: pixel (row 1, col 2) = 1/4 * (1 - ...) -> weights of vertices 1 and 2 are x/4 and y/4
    np.testing.assert_allclose(bary[1, 2], [0.5, 0.25], atol=1e-6)


def test_raster_no_pinholes_and_depth_test():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(50):
        # a random convex quad split along a diagonal: every pixel centre inside is covered
        ang = np.sort(rng.uniform(0, 2 * np.pi, 4))
        pts = rng.uniform(3, 5, 2) + rng.uniform(1.5, 3.5, (4, 1)) * np.stack([np.cos(ang), np.sin(ang)], 1)
        poly = pts.astype(np.float32).reshape(-1, 1, 2)
        if not cv2.isContourConvex(poly):
            continue
        tid, _, _ = _raster(pts[:, 0], pts[:, 1], [1, 1, 1, 1], [[0, 1, 2], [0, 2, 3]])
        for r in range(8):
            for col in range(8):
                if cv2.pointPolygonTest(poly, (float(col), float(r)), True) > 1e-3:
                    assert tid[r, col] >= 0, (pts, r, col)
                    checked += 1
    assert checked > 200  # the quads drawn did cover pixels to check
    # the nearer of two overlapping triangles wins whatever the order
    xs, ys = [0, 7, 0, 0, 7, 0], [0, 0, 7, 0, 0, 7]
    tid, _, zb = _raster(xs, ys, [5, 5, 5, 2, 2, 2], [[0, 1, 2], [3, 4, 5]])
    assert tid[1, 1] == 1 and zb[1, 1] == pytest.approx(2)
    tid, _, _ = _raster(xs, ys, [2, 2, 2, 5, 5, 5], [[0, 1, 2], [3, 4, 5]])
    assert tid[1, 1] == 0


def test_camera_scaled_keeps_pixel_centres():
    K = np.array([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
    cam = Camera(K=K, R=np.eye(3), t=np.array([0, 0, 50.0]), size=64)
    X = np.random.default_rng(1).normal(0, 5, (10, 3))
    small = cam.project(X)
    big = cam.scaled(2).project(X)
    # pixel (r, c) of the small image covers pixels 2r, 2r+1 of the large one: centre 2c + 0.5
    np.testing.assert_allclose(big, 2 * small + 0.5, atol=1e-9)


# ------------------------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def ict():
    return load_face_model(require_shared(ICT_NPZ))


def _project(P, X):
    h = np.asarray(X, np.float64) @ P[:, :3].T + P[:, 3]
    return h[:, :2] / h[:, 2:3]


def test_vertices_are_the_linear_model(ict):
    rng = np.random.default_rng(0)
    idc, ex = rng.normal(size=ict.num_identity), rng.uniform(0, 1, ict.num_expression) * (rng.random(53) < 0.2)
    with np.load(require_shared(ICT_NPZ)) as d:
        ref = d["neutral"] + np.tensordot(idc, d["identity"].astype(np.float64), 1)
        ref += np.tensordot(ex, d["expression"].astype(np.float64), 1)
    np.testing.assert_allclose(ict.vertices(idc, ex), ref, atol=2e-4)


def test_render_sample_landmarks_are_projections(ict):
    cfg = SynthConfig(**TEST_CFG)
    for i in range(4):
        img, ldmks, seg, p = render_sample(sample_seed(7, i), cfg, ict)
        assert img.shape == (SMALL, SMALL, 3) and img.dtype == np.uint8
        assert seg.shape == (SMALL, SMALL) and seg.dtype == np.uint8
        assert ldmks.shape == (70, 2) and ldmks.dtype == np.float32
        V = ict.vertices(p["identity"], p["expression"])
        np.testing.assert_allclose(ldmks[:68], _project(p["P"], V[ict.landmarks68]), atol=1e-3)
        np.testing.assert_allclose(ldmks[68:], _project(p["P"], p["pupils_model"]), atol=1e-3)
        # P is K [R | t] of the reported pose, R includes the head rotation
        np.testing.assert_allclose(p["P"], p["K"] @ np.c_[p["R"], p["t"]], atol=1e-9)
        # the pupils sit on the eyeballs in front of their eye's landmarks (subject's right eye first)
        for k, eye in ((0, slice(36, 42)), (1, slice(42, 48))):
            centre = V[ict.landmarks68[eye]].mean(0)
            assert np.linalg.norm(p["pupils_model"][k] - centre) < 1.5
        assert p["pupils_model"][0, 0] < 0 < p["pupils_model"][1, 0]
        # the face is framed: landmark box side within the configured fraction range (approximately)
        side = (ldmks[:68].max(0) - ldmks[:68].min(0)).max() / SMALL
        assert 0.28 < side < 0.47
        assert set(np.unique(seg).tolist()) <= set(L.CLASS_NAMES)


def test_segmentation_at_landmarks(ict):
    """Frontal, neutral, unoccluded faces: the pupils are on the eye classes (FaceSynthetics sides) and the
    nose tip on the nose; the label map is sampled at the pixel centres of the landmark convention."""
    cfg = SynthConfig(
        **TEST_CFG, yaw_max=15, pitch_sigma=3, roll_sigma=3, expression_scale=0.0, p_wink=0.0,
        p_glasses=0.0, p_hand=0.0, p_object=0.0, gaze_yaw_max=5, gaze_pitch_range=(-3, 3),
    )  # fmt: skip
    for i in range(3):
        _, ldmks, seg, _ = render_sample(sample_seed(3, i), cfg, ict)
        at = [seg[int(round(y)), int(round(x))] for x, y in ldmks]
        assert at[68] == L.EYE_SUBJECT_RIGHT and at[69] == L.EYE_SUBJECT_LEFT
        assert at[30] == L.NOSE
        assert seg[0, 0] == L.BACKGROUND or seg[0, 0] == L.OCCLUDER


def test_render_is_deterministic(ict):
    cfg = SynthConfig(**TEST_CFG)
    a = render_sample(sample_seed(1, 5), cfg, ict)
    b = render_sample(sample_seed(1, 5), cfg, ict)
    c = render_sample(sample_seed(1, 6), cfg, ict)
    for x, y in zip(a[:3], b[:3], strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "synth_config.json"}


def test_render_dataset_format_determinism_resume(ict, tmp_path):
    n = 5
    a, b = tmp_path / "a", tmp_path / "b"
    threads = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        st = render_dataset(a, n, size=SMALL, seed=11, workers=1, face_model=ict, progress=False)
        assert cv2.getNumThreads() == 3  # rendered here on one OpenCV thread; the caller's count is back
    finally:
        cv2.setNumThreads(threads)
    assert st["written"] == n and st["skipped"] == 0
    fa = _files(a)
    suffixes = (".png", "_ldmks.txt", "_seg.png", "_ldmks_wflw98.txt", "_ldmks_ibug68_2d.txt", "_ldmks_wflw98_2d.txt")
    assert len(fa) == 6 * n and {f"{i:06d}{s}" for i in range(n) for s in suffixes} == set(fa)
    # same seed, two worker processes: identical bytes
    st = render_dataset(b, n, size=SMALL, seed=11, workers=2, face_model=ict, progress=False)
    assert st["written"] == n
    assert _files(b) == fa
    # the written landmarks (3 decimals) are the projections of the model's landmark vertices and of the
    # pupils through the sample's camera, computed here from the returned parameters
    cfg = SynthConfig(size=SMALL)
    for i in range(n):
        img, ldmks, seg, p = render_sample(sample_seed(11, i), cfg, ict)
        text = (a / f"{i:06d}_ldmks.txt").read_text().splitlines()
        assert len(text) == 70 and all(len(v.split(".")[1]) == 3 for t in text for v in t.split())
        written = np.loadtxt(a / f"{i:06d}_ldmks.txt")
        V = ict.vertices(p["identity"], p["expression"])
        np.testing.assert_allclose(written[:68], _project(p["P"], V[ict.landmarks68]), atol=1e-3)
        np.testing.assert_allclose(written[68:], _project(p["P"], p["pupils_model"]), atol=1e-3)
        np.testing.assert_array_equal(cv2.imread(str(a / f"{i:06d}.png"))[:, :, ::-1], img)
        np.testing.assert_array_equal(cv2.imread(str(a / f"{i:06d}_seg.png"), cv2.IMREAD_UNCHANGED), seg)
    # resume: nothing new; a deleted file is re-rendered identically
    mtimes = {p.name: p.stat().st_mtime_ns for p in a.iterdir()}
    st = render_dataset(a, n, size=SMALL, seed=11, workers=1, face_model=ict, progress=False)
    assert st["written"] == 0 and st["skipped"] == n
    assert all(p.stat().st_mtime_ns == mtimes[p.name] for p in a.iterdir() if p.name != "synth_config.json")
    (a / "000002_seg.png").unlink()
    st = render_dataset(a, n, size=SMALL, seed=11, workers=1, face_model=ict, progress=False)
    assert st["written"] == 1
    assert _files(a) == fa
    assert not list(a.glob(".*.tmp"))
    # a different seed (or configuration) in the same folder is refused
    with pytest.raises(DatasetError, match="another seed"):
        render_dataset(a, n, size=SMALL, seed=12, workers=1, face_model=ict, progress=False)
    # so is a folder whose record cannot be read (its samples' settings are unknown); the record is kept
    (b / "synth_config.json").write_text("{trunc", encoding="utf-8")
    with pytest.raises(DatasetError, match="synth_config.json: unreadable"):
        render_dataset(b, n, size=SMALL, seed=11, workers=1, face_model=ict, progress=False)
    assert (b / "synth_config.json").read_text(encoding="utf-8") == "{trunc"
    # the project's reader loads the folder (68 landmarks + pupils, segmentation beside)
    ds = load_dataset(a)
    assert ds.format == "facesynthetics" and len(ds) == n and ds.has_landmarks
    np.testing.assert_allclose(ds.landmarks_array()[0], np.loadtxt(a / "000000_ldmks.txt")[:68], atol=1e-6)
    assert ds[0].meta["pupils"].shape == (2, 2) and ds[0].meta["seg_path"].name == "000000_seg.png"


def test_written_landmarks_use_the_dataset_writer(ict, tmp_path):
    """The engine's _ldmks.txt is lightmark.data.formats' FaceSynthetics text (one writer, 3 decimals)."""
    render_dataset(tmp_path, 1, size=64, seed=5, workers=1, face_model=ict, progress=False)
    _, ldmks, _ = load_sample(tmp_path, 0)
    text = (tmp_path / "000000_ldmks.txt").read_text()
    assert text == format_landmarks(ldmks) == format_ldmks(ldmks)
    back, pupils = read_ldmks(tmp_path / "000000_ldmks.txt")
    np.testing.assert_allclose(np.concatenate([back, pupils]), ldmks, atol=1e-4)


def test_contact_sheet_writes_png_or_raises(ict, tmp_path, monkeypatch):
    cfg = SynthConfig(size=64, supersample=1)
    sheet = render_contact_sheet(tmp_path / "sheet.png", count=3, seed=2, cols=2, face_model=ict, config=cfg)
    assert sheet.shape == (128, 128, 3) and sheet[64:, 64:].max() == 0  # the fourth tile is empty
    assert cv2.imread(str(tmp_path / "sheet.png")).shape == sheet.shape
    # the same samples as the dataset's, landmarks drawn (green) on them
    img, _, _, _ = render_sample(sample_seed(2, 1), cfg, ict)
    drawn = sheet[:64, 64:]
    assert (drawn != img).any(axis=2).sum() > 50 and (drawn[..., 1] > img[..., 1]).sum() > 50
    # a PNG that cannot be encoded is an error, not a silently missing file
    real_imencode = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda ext, *a: (False, None) if ext == ".png" else real_imencode(ext, *a))
    with pytest.raises(OutputError, match="PNG encoding failed"):
        render_contact_sheet(tmp_path / "bad.png", count=1, face_model=ict, config=cfg)
    assert not (tmp_path / "bad.png").exists()


def test_backgrounds_folder(ict, tmp_path):
    bg = tmp_path / "bg"
    bg.mkdir()
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :30] = (0, 0, 255)  # red in BGR, left half
    img[:, 30:] = (0, 255, 0)  # right half: "the person", masked out by the seg map
    seg = np.zeros((40, 60), np.uint8)
    seg[:, 30:] = 1
    cv2.imwrite(str(bg / "000000.png"), img)
    cv2.imwrite(str(bg / "000000_seg.png"), seg)
    cfg = SynthConfig(p_colour_shift=0, p_grayscale=0, p_hand=0, p_object=0)
    st = render_dataset(
        tmp_path / "out", 2, size=64, workers=1, face_model=ict, backgrounds=bg, progress=False, config=cfg
    )
    assert st["written"] == 2
    for i in range(2):
        out = cv2.imread(str(tmp_path / "out" / f"{i:06d}.png"))
        segm = cv2.imread(str(tmp_path / "out" / f"{i:06d}_seg.png"), cv2.IMREAD_UNCHANGED)
        bgpix = out[segm == 0].astype(float)
        # background pixels come from the red part only (green "person" pixels were filled from the red)
        assert bgpix[:, 1].mean() + 50 < bgpix[:, 2].mean()
    with pytest.raises(DatasetError):
        render_dataset(tmp_path / "x", 1, face_model=ict, backgrounds=tmp_path / "none", progress=False)


def test_face_model_reads_release_layout_like_npz(ict, tmp_path):
    """The .obj reader on a slice of the real neutral mesh reproduces the .npz triangulation."""
    with np.load(require_shared(ICT_NPZ)) as d:
        tris = d["triangles"][:6]
    # the first faces of the release are quads (a b c d) stored as (a, d, c), (a, c, b) in the npz
    quads = [(t0[0], t1[2], t0[2], t0[1]) for t0, t1 in zip(tris[0::2], tris[1::2], strict=True)]
    used = sorted({int(v) for q in quads for v in q})
    remap = {v: i for i, v in enumerate(used)}
    lines = [f"v {x} {y} {z}" for x, y, z in ict.neutral[used]]
    lines += ["f " + " ".join(str(remap[int(v)] + 1) for v in q) for q in quads]
    (tmp_path / "m.obj").write_text("\n".join(lines) + "\n")
    _, _, t, _ = read_obj(tmp_path / "m.obj")
    back = np.array(used)[t]
    np.testing.assert_array_equal(back, tris)


def test_project_points_matches_camera():
    cam = Camera(
        K=np.array([[50.0, 0, 10], [0, 60, 12], [0, 0, 1]]),
        R=rotation_matrix(20, -10, 5),
        t=np.array([1.0, 2, 40]),
        size=24,
    )
    X = np.random.default_rng(2).normal(0, 3, (7, 3))
    Xc = X @ cam.R.T + cam.t
    ref = np.c_[50 * Xc[:, 0] / Xc[:, 2] + 10, 60 * Xc[:, 1] / Xc[:, 2] + 12]
    np.testing.assert_allclose(project_points(cam.P, X), ref, atol=1e-9)


@pytest.mark.parametrize("size", [255, 256])
def test_procedural_background_of_any_size(size: int) -> None:
    """Odd sides used to fail (the sensor noise was drawn at half size and doubled)."""
    from lightmark.synth.compose import procedural_background

    img = procedural_background(np.random.default_rng(0), size)
    assert img.shape == (size, size, 3) and img.min() >= 0.0 and img.max() <= 1.0
