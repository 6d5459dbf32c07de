"""Tests of lightmark.data.wflw: WFLW list files (written here, never real data) and their datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightmark.data import detect_format, load_dataset, write_image
from lightmark.data.wflw import (
    WFLW_ATTRIBUTES,
    WFLW_DECIMALS,
    WflwRecord,
    format_wflw_line,
    load_wflw,
    looks_like_wflw,
    read_wflw,
    subset,
    subset_masks,
    write_wflw,
)
from lightmark.errors import AnnotationError, DatasetError
from lightmark.schemes import LandmarkScheme, get_scheme

SIDE = 48


def _record(seed: int, image: str, flags: tuple[int, ...] = (0, 0, 0, 0, 0, 0)) -> WflwRecord:
    rng = np.random.default_rng(seed)
    pts = 2 + rng.random((98, 2)) * (SIDE - 4)
    box = (1, 2, SIDE - 2, SIDE - 1)
    return WflwRecord(pts, box, tuple(bool(f) for f in flags), image)


def _records() -> list[WflwRecord]:
    return [
        _record(0, "0--Parade/0_Parade_a.jpg", (1, 0, 0, 0, 0, 0)),
        _record(1, "0--Parade/0_Parade_a.jpg", (0, 1, 0, 0, 1, 0)),
        _record(2, "1--Handshaking/1_b.jpg", (1, 0, 1, 1, 0, 1)),
    ]


def test_round_trip(tmp_path: Path) -> None:
    records = _records()
    records[2].box = (10.5, 2.0, 40.25, 44.0)
    path = tmp_path / "list_98pt_rect_attr_test.txt"
    write_wflw(records, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and len(lines[0].split()) == 196 + 4 + 6 + 1
    assert lines[0].split()[196:] == ["1", "2", str(SIDE - 2), str(SIDE - 1), "1", "0", "0", "0", "0", "0"] + [
        "0--Parade/0_Parade_a.jpg"
    ]
    back = read_wflw(path)
    for r, b in zip(records, back, strict=True):
        np.testing.assert_array_equal(b.landmarks, np.round(r.landmarks, WFLW_DECIMALS))  # exact to 6 decimals
        assert b.landmarks.dtype == np.float64 and b.landmarks.shape == (98, 2)
        assert b.box == r.box and b.attributes == r.attributes and b.image == r.image
        assert b.image_path is None
    path2 = tmp_path / "again.txt"
    write_wflw(back, path2)
    assert path2.read_text() == path.read_text()  # written text is a fixed point
    assert read_wflw(path, images_root=tmp_path)[2].image_path == tmp_path / "1--Handshaking/1_b.jpg"


def test_released_line_format(tmp_path: Path) -> None:
    """A line as WFLW releases it: 6-decimal coordinates, integer box, flags, path."""
    coords = " ".join(f"{100 + i * 0.5:.6f} {200 - i * 0.25:.6f}" for i in range(98))
    line = f"{coords} 90 150 190 260 0 1 0 0 1 0 51--Dresses/51_Dresses_wearingdress_51_377.jpg"
    path = tmp_path / "list.txt"
    path.write_text(line + "\n\n")
    (r,) = read_wflw(path)
    assert r.landmarks[1].tolist() == [100.5, 199.75] and r.box == (90.0, 150.0, 190.0, 260.0)
    assert [a for a in WFLW_ATTRIBUTES if r.has(a)] == ["expression", "occlusion"]
    assert format_wflw_line(r) == line
    assert looks_like_wflw(path) and not looks_like_wflw(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: p[:-2] + p[-1:], "expected 206 numbers and an image path"),
        (lambda p: p[:200] + ["2"] + p[201:], "flags must be 0 or 1"),
        (lambda p: ["nan"] + p[1:], "NaN or inf"),
        (lambda p: ["x"] + p[1:], "not a number"),
        (lambda p: p[:-1] + ["../outside.jpg"], "outside the images folder"),
    ],
)
def test_bad_lines(tmp_path: Path, edit, match: str) -> None:
    parts = format_wflw_line(_record(0, "a/b.jpg")).split()
    path = tmp_path / "list.txt"
    path.write_text("\n" + " ".join(edit(parts)) + "\n")
    with pytest.raises(AnnotationError, match=r"list\.txt: line 2: .*" + match):
        read_wflw(path)
    assert not looks_like_wflw(path)


def test_subsets() -> None:
    records = _records()
    assert subset(records, "pose") == [records[0], records[2]]
    assert subset(records, "occlusion") == [records[1]]
    masks = subset_masks(records)
    assert list(masks) == list(WFLW_ATTRIBUTES)
    np.testing.assert_array_equal(masks["make_up"], [False, False, True])
    with pytest.raises(DatasetError, match="unknown WFLW attribute 'hat'"):
        subset(records, "hat")


def _tree(tmp_path: Path) -> Path:
    """WFLW's layout: WFLW_annotations/list_98pt_rect_attr_train_test/<list> and WFLW_images/<event>/<image>."""
    for r in _records():
        p = tmp_path / "WFLW_images" / r.image
        if not p.exists():
            write_image(p, np.full((SIDE, SIDE, 3), 100, np.uint8))
    lst = tmp_path / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    lst.parent.mkdir(parents=True)
    write_wflw(_records(), lst)
    return lst


def test_dataset_from_a_list(tmp_path: Path) -> None:
    lst = _tree(tmp_path)
    assert detect_format(lst) == "wflw"
    ds = load_dataset(lst, scheme="wflw98", require_landmarks=True)
    assert ds.format == "wflw" and ds.scheme == "wflw98" and ds.root == tmp_path / "WFLW_images"
    assert ds.names == ["0--Parade/0_Parade_a#0.jpg", "0--Parade/0_Parade_a#1.jpg", "1--Handshaking/1_b.jpg"]
    assert ds[0].image_path == ds[1].image_path == tmp_path / "WFLW_images/0--Parade/0_Parade_a.jpg"
    assert ds.landmarks_array().shape == (3, 98, 2)
    np.testing.assert_allclose(ds[2].landmarks, _records()[2].landmarks, atol=1e-5)
    assert ds[2].meta["attributes"]["blur"] and ds[2].meta["box"].tolist() == [1, 2, SIDE - 2, SIDE - 1]
    pose = subset(ds, "pose")
    assert pose.names == [ds.names[0], ds.names[2]] and pose.scheme == "wflw98"
    np.testing.assert_array_equal(subset_masks(ds)["expression"], [False, True, False])


def test_dataset_as_68_points(tmp_path: Path) -> None:
    lst = _tree(tmp_path)
    ds = load_dataset(lst)  # the default scheme: 68 points through WFLW's map
    assert ds.scheme == "ibug68" and ds.landmarks_array().shape == (3, 68, 2)
    expected = get_scheme("wflw98").as_ibug68(_records()[0].landmarks)
    np.testing.assert_allclose(ds[0].landmarks, expected, atol=1e-5)
    same = load_wflw(lst, tmp_path / "WFLW_images", scheme="ibug68_2d")
    assert same.scheme == "ibug68_2d"
    np.testing.assert_array_equal(same.landmarks_array(), ds.landmarks_array())


def test_dataset_errors(tmp_path: Path) -> None:
    lst = _tree(tmp_path)
    five = LandmarkScheme("five", 5, (0, 1, 2, 4, 3), (), (3, 4), {"all": (0, 1, 2, 3, 4)}, None, (0,))
    with pytest.raises(DatasetError, match="WFLW labels 98 points"):
        load_wflw(lst, scheme=five)
    (tmp_path / "WFLW_images" / "1--Handshaking" / "1_b.jpg").unlink()
    with pytest.raises(AnnotationError, match="line 3: missing image file 1--Handshaking/1_b.jpg"):
        load_wflw(lst)
    lonely = tmp_path / "elsewhere" / "list.txt"
    lonely.parent.mkdir()
    write_wflw(_records()[2:], lonely)
    with pytest.raises(DatasetError, match="cannot find the images"):
        load_wflw(lonely)
    far = _records()[0]
    far.landmarks[5] = (10 * SIDE, 3)
    write_wflw([far], lst)
    with pytest.raises(AnnotationError, match="point 5 .* is far outside"):
        load_wflw(lst)
