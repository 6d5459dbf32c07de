"""Training samples: labels stay on the pixels they describe through crop, rotation and mirror flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightmark.constants import FLIP_PERM
from lightmark.data.training import AugmentConfig, CropCache, LandmarkTrainSet
from lightmark.data.transforms import CropJitter


def _face_cache(size: int = 224) -> CropCache:
    """One cached 'face': a plausible 68-point layout, with coloured blobs at points 0 (red), 16 (green) and
    30 (blue) - the two jaw ends and the nose tip."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([112 - 35 * np.cos(t), 100 + 40 * np.sin(t)], 1)  # 0 at the image left, 16 at the right
    rng = np.random.default_rng(0)
    inner = rng.uniform([85, 80], [140, 130], (51, 2))
    pts = np.concatenate([jaw, inner]).astype(np.float32)
    pts[30] = (112, 110)
    img = np.zeros((size, size, 3), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for idx, ch in ((0, 0), (16, 1), (30, 2)):
        x, y = pts[idx]
        img[..., ch][(xx - x) ** 2 + (yy - y) ** 2 <= 4**2] = 255
    return CropCache(images=img[None], landmarks=pts[None], names=["f"], source="test")


def _centroid(channel: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(channel > 64)
    w = channel[ys, xs].astype(float)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_follow_pixels_through_rotation_and_flip(seed: int) -> None:
    jitter = CropJitter(rotation_deg=30.0, p_rotate=1.0, p_flip=0.5)
    ts = LandmarkTrainSet([_face_cache()], 128, 16, augment=AugmentConfig(jitter, photometric=0.0), seed=seed)
    flips = 0
    for i in range(16):
        x, y, _ = ts[(0, i)]
        img, pts = x.numpy().transpose(1, 2, 0), y.numpy()
        red, green, blue = (_centroid(img[..., c]) for c in range(3))
        np.testing.assert_allclose(pts[30], blue, atol=0.6)  # the nose tip maps to itself
        if np.linalg.norm(pts[0] - red) < np.linalg.norm(pts[0] - green):  # not mirrored
            np.testing.assert_allclose(pts[0], red, atol=0.6)
            np.testing.assert_allclose(pts[16], green, atol=0.6)
        else:  # mirrored: point 0 of the output is the original point 16 (FLIP_PERM[0] == 16)
            flips += 1
            np.testing.assert_allclose(pts[0], green, atol=0.6)
            np.testing.assert_allclose(pts[16], red, atol=0.6)
            assert pts[0][0] < pts[16][0]  # still the image-left jaw end, as in an unflipped face
    assert 0 < flips < 16
    assert FLIP_PERM[0] == 16


def test_items_are_a_function_of_seed_epoch_index() -> None:
    ts = LandmarkTrainSet([_face_cache()], 64, 8, seed=3)
    a, b = ts[(2, 5)], ts[(2, 5)]
    assert np.array_equal(a[0].numpy(), b[0].numpy()) and np.array_equal(a[1].numpy(), b[1].numpy())
    c = ts[(3, 5)]
    assert not np.array_equal(a[1].numpy(), c[1].numpy())


def test_point_weights_follow_the_mirror_permutation() -> None:
    pw = np.ones(68, np.float32)
    pw[0] = 0.0  # the image-left jaw end of the source face
    jitter = CropJitter(rotation_deg=0.0, p_rotate=0.0, p_flip=0.5)
    ts = LandmarkTrainSet(
        [_face_cache()], 64, 16, augment=AugmentConfig(jitter, photometric=0.0), seed=0, point_weights=[pw]
    )
    seen = set()
    for i in range(16):
        _, y, w = ts[(0, i)]
        assert w.shape == (68,) and w.dtype == torch.float32
        zero = int(np.flatnonzero(w.numpy() == 0)[0])
        # unflipped: source point 0 stays index 0; flipped: it becomes output index 16 (the image-right end)
        assert zero in (0, 16) and (w.numpy() == 0).sum() == 1
        seen.add(zero)
    assert seen == {0, 16}


def test_point_weights_must_match_the_caches() -> None:
    with pytest.raises(ValueError, match="one per cache"):
        LandmarkTrainSet([_face_cache()], 64, 8, point_weights=[None, None])
    with pytest.raises(ValueError, match="expected shape"):
        LandmarkTrainSet([_face_cache()], 64, 8, point_weights=[np.ones(5)])
