"""Crop geometry, flips with the mirror permutation, gamma LUT."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lightmark.constants import FLIP_PERM
from lightmark.data.transforms import (
    CropJitter,
    apply_gamma,
    crop_matrix,
    flip_landmarks,
    gamma_lut,
    invert_affine,
    is_flipped,
    transform_points,
    warp,
    whole_image_matrix,
)


def test_whole_image_matrix_maps_pixel_centres() -> None:
    m = whole_image_matrix(384, 384, 128)
    # pixel-centre convention: the outer edges -0.5 and 383.5 map to -0.5 and 127.5; centre 191.5 -> 63.5
    pts = transform_points(np.array([[-0.5, -0.5], [383.5, 383.5], [191.5, 191.5]]), m)
    np.testing.assert_allclose(pts, [[-0.5, -0.5], [127.5, 127.5], [63.5, 63.5]], atol=1e-5)


def test_warp_moves_a_dot_where_the_points_go() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    img[116:125, 66:75] = 255  # a 9x9 blob centred on (x=70, y=120)
    m = crop_matrix((100.0, 110.0), 150.0, 64, angle_deg=25.0)
    out = warp(img, m, 64)
    ys, xs = np.nonzero(out[..., 0] > 0)
    w = out[ys, xs, 0].astype(float)
    x, y = (xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()  # blob centroid
    px = transform_points(np.array([[70.0, 120.0]]), m)[0]
    assert abs(x - px[0]) < 0.3 and abs(y - px[1]) < 0.3


def test_inverse_round_trip() -> None:
    m = crop_matrix((50.0, 60.0), 80.0, 128, angle_deg=-13.0, flip=True)
    p = np.random.default_rng(0).uniform(0, 100, (68, 2))
    np.testing.assert_allclose(transform_points(transform_points(p, m), invert_affine(m)), p, atol=1e-3)


def test_flip_matrix_and_permutation() -> None:
    m = crop_matrix((49.5, 49.5), 100.0, 100, flip=True)  # the whole 100 px image, mirrored
    assert is_flipped(m) and not is_flipped(crop_matrix((49.5, 49.5), 100.0, 100))
    # the first column maps to the last
    assert transform_points(np.array([[0.0, 50.0]]), m)[0, 0] == pytest.approx(99.0)


def test_flip_landmarks_twice_is_identity_and_swaps_eyes() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 99, (68, 2)).astype(np.float32)
    f = flip_landmarks(p, 100)
    np.testing.assert_allclose(flip_landmarks(f, 100), p, atol=1e-5)
    # point 36 (right eye outer corner) of the mirror image is the mirror of point 45
    assert f[36, 0] == pytest.approx(99 - p[45, 0]) and f[36, 1] == pytest.approx(p[45, 1])
    assert FLIP_PERM[8] == 8 and FLIP_PERM[0] == 16


def test_jitter_matches_the_challenge_statistics() -> None:
    rng = np.random.default_rng(0)
    jit = CropJitter(rotation_deg=0.0, p_flip=0.0)
    ratios, shifts = [], []
    for _ in range(2000):
        m = jit.sample(rng, np.array([100.0, 100.0]), 50.0, 128)
        side = 128 / np.hypot(m[0, 0], m[0, 1])
        ratios.append(side / 50.0)
        centre = transform_points(np.array([[100.0, 100.0]]), m)[0]  # box centre inside the crop
        shifts.append((centre[1] - 63.5) / 128)
    assert np.mean(ratios) == pytest.approx(1.9, abs=0.03)
    assert np.mean(shifts) == pytest.approx(0.084, abs=0.01)  # box centre sits below the crop centre


def test_jitter_sample_rotated_keeps_the_framing() -> None:
    """Statistically, rotated samples keep the box centre below the crop centre (not sideways)."""
    jit = CropJitter(rotation_deg=30.0, p_rotate=1.0, p_flip=0.0, shift_std=(0.0, 0.0), side_std=0.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        m = jit.sample(rng, np.array([100.0, 100.0]), 50.0, 128)
        centre = transform_points(np.array([[100.0, 100.0]]), m)[0]
        assert centre[0] == pytest.approx(63.5, abs=1e-6)
        assert centre[1] == pytest.approx(63.5 + 0.084 * 128, abs=1e-6)


def test_warp_antialias_keeps_geometry() -> None:
    """Shrinking 3x with area pre-filtering maps a blob to the same place as the plain warp."""
    img = np.zeros((384, 384, 3), np.uint8)
    img[150:171, 240:261] = 255  # centred on (250, 160)
    m = whole_image_matrix(384, 384, 128)
    for aa in (False, True):
        out = warp(img, m, 128, antialias=aa)[..., 0].astype(float)
        ys, xs = np.nonzero(out)
        w = out[ys, xs]
        c = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
        np.testing.assert_allclose(c, transform_points(np.array([[250.0, 160.0]]), m)[0], atol=0.05)


@pytest.mark.parametrize("angle", [0.0, 25.0])
@pytest.mark.parametrize("side", [300.0, 200.0])  # shrink by 4.5x (k = 4, even: a half-pixel shift) and 3x
def test_warp_window_keeps_geometry(side: float, angle: float) -> None:
    """The inference warp (box-filtered window, then bilinear) puts a blob where the map sends its centre and
    agrees with the training warp pixel for pixel to within a few grey levels."""
    from lightmark.data.transforms import crop_matrix, warp_window

    img = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(img, (330, 250), 14, (255, 255, 255), -1)
    m = crop_matrix((320.0, 240.0), side * 1.9, 128, angle_deg=angle)
    out = warp_window(img, m, 128)[..., 0].astype(float)
    ys, xs = np.nonzero(out)
    w = out[ys, xs]
    c = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
    np.testing.assert_allclose(c, transform_points(np.array([[330.0, 250.0]]), m)[0], atol=0.05)
    assert np.abs(out - warp(img, m, 128)[..., 0].astype(float)).mean() < 2.0


def test_gamma_lut() -> None:
    lut = gamma_lut(2.0)
    assert lut[0] == 0 and lut[255] == 255 and lut[64] == round(255 * (64 / 255) ** 0.5)
    img = np.full((2, 2, 3), 64, np.uint8)
    assert apply_gamma(img, 1.0) is img
    assert apply_gamma(img, 2.0)[0, 0, 0] == lut[64]


def test_crop_statistics_hand_computed() -> None:
    from lightmark.data.transforms import crop_statistics

    # a 100 px landmark box whose centre is 19 px below the centre of a 190 px crop: ratio 1.9, shift 0.1
    box = np.array([[45.5, 64.5], [145.5, 164.5]])  # centre (95.5, 114.5); crop centre (94.5, 94.5)
    pts = np.stack([box, box + [1.0, 0.0]])  # second face 1 px to the right
    stats = crop_statistics(pts, np.array([[190, 190], [190, 190]]))
    assert stats["side_mean"] == pytest.approx(1.9) and stats["side_std"] == pytest.approx(0.0)
    assert stats["shift_up_mean"] == pytest.approx(20 / 190)
    assert stats["shift_x_std"] == pytest.approx(0.5 / 190)


@pytest.mark.parametrize("k", [3, 4, 5, 6])  # k = 2 is OpenCV's own area resize
def test_area_shrink_is_opencvs_area_resize(k: int) -> None:
    """Each pixel is the mean of its k x k block, as cv2.resize(INTER_AREA) gives it: equal for odd k, within one
    grey level for even k (a mean ending in .5 may round either way); 3-channel and 1-channel, contiguous out."""
    import cv2

    from lightmark.data.transforms import area_shrink

    rng = np.random.default_rng(k)
    for shape in ((7 * k, 5 * k, 3), (4 * k, 9 * k)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        ref = cv2.resize(img, (shape[1] // k, shape[0] // k), interpolation=cv2.INTER_AREA).astype(int)
        out = area_shrink(img, k)
        assert out.shape == ref.shape and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
        assert np.abs(out.astype(int) - ref).max() <= (0 if k % 2 else 1)
        block = img[:k, :k].reshape(k, k, -1).astype(float).mean((0, 1))  # the first pixel by hand
        assert np.abs(out[0, 0].astype(float) - block).max() <= 0.5
