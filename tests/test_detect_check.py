"""scripts/detect_check.py's scene builder: pasted landmarks land where the pasted pixels went."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_script

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def dc():
    return load_script("detect_check")


def tiny_face(colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 192x192 'face' whose 68 landmarks sit on integer pixels, each marked by a 3x3 red square, at least 9 px
    apart: a jaw arc (0-16), a brow row (17-26) above, a grid inside (27-67)."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([64 + 54 * np.cos(t), 54 + 66 * np.sin(t)], 1)
    brows = np.stack([24 + 9 * np.arange(10), np.full(10, 30)], 1)
    grid = np.stack(np.meshgrid(np.arange(34, 95, 10), np.arange(42, 93, 10)), -1).reshape(-1, 2)[:41]
    lm = np.round(np.vstack([jaw, brows, grid])).astype(np.float64) + 32  # room for the mask around the face
    img = np.empty((192, 192, 3), np.uint8)
    img[:] = colour
    for x, y in lm.astype(int):
        img[y - 1 : y + 2, x - 1 : x + 2] = (255, 0, 0)
    return img, lm


def red_centroid(img: np.ndarray, p: np.ndarray, r: int = 5) -> np.ndarray:
    x0, y0 = int(round(p[0])) - r, int(round(p[1])) - r
    win = img[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1].astype(np.float64)
    w = np.clip(200 - win[:, :, 2], 0, None)  # linear in the red mark's coverage (the faces are B=200)
    yy, xx = np.mgrid[0 : 2 * r + 1, 0 : 2 * r + 1]
    return np.array([(w * xx).sum() / w.sum() + x0, (w * yy).sum() / w.sum() + y0])


@pytest.mark.parametrize("seed", range(6))
def test_pasted_landmarks_follow_pixels(dc, seed):
    faces = [tiny_face((60, 120, 200)), tiny_face((40, 90, 200))]
    bg = np.full((720, 1280, 3), 128, np.uint8)
    img, truths = dc.make_group_photo(np.random.default_rng(seed), faces, (1280, 720), bg)
    assert img.shape == (720, 1280, 3) and img.dtype == np.uint8
    assert len(truths) == 2
    for lm, (_, orig) in zip(truths, faces, strict=True):
        assert lm.shape == (68, 2)
        scale = np.linalg.norm(lm[0] - lm[16]) / np.linalg.norm(orig[0] - orig[16])
        assert 69.5 <= scale * np.ptp(orig[:, 0]) <= 200.5  # face width before the roll
        r = int(np.clip(3 * scale, 2, 5))  # the window holds one mark: marks are at least 9 * scale px apart
        offsets = []
        for p in lm:
            px = img[int(round(p[1])), int(round(p[0]))].astype(int)
            assert px[0] > px[2], (p, px)  # the red mark, not the blue face
            offsets.append(red_centroid(img, p, r) - p)
        assert np.abs(offsets).max() < 0.6  # each mark's centre within a fraction of a pixel (interpolation)
        assert np.abs(np.mean(offsets, 0)).max() < 0.1  # and no shift overall: the same pixel convention
    (a, b) = truths
    boxes = [(lm.min(0), lm.max(0)) for lm in truths]
    disjoint = (boxes[0][1] < boxes[1][0]).any() or (boxes[1][1] < boxes[0][0]).any()
    assert disjoint, "faces overlap"
    assert np.linalg.norm(a.mean(0) - b.mean(0)) > 70


def test_deterministic_and_default_background(dc):
    faces = [tiny_face((60, 120, 200)), tiny_face((40, 90, 200))]
    one = dc.make_group_photo(np.random.default_rng(5), faces, (640, 480))
    two = dc.make_group_photo(np.random.default_rng(5), faces, (640, 480))
    assert np.array_equal(one[0], two[0])
    assert all(np.array_equal(x, y) for x, y in zip(one[1], two[1], strict=True))
    assert one[0].shape == (480, 640, 3)


def test_match_is_greedy_one_to_one(dc):
    _, lm = tiny_face((0, 0, 0))
    truths = [lm, lm + 300]
    dets = [{"lm": lm + 1.0}, {"lm": lm + 0.5}, {"lm": lm + 300}, {"lm": lm + 150}]
    assert dc.match(dets, truths) == [None, 0, 1, None]
