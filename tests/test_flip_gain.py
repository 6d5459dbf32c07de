"""scripts/flip_gain.py: the error split into the offset all faces share and the rest, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def flip_gain():
    return load_script("flip_gain")


def test_error_parts_splits_shared_offset_from_per_face_error(flip_gain) -> None:
    truth = np.zeros((2, 2, 2))
    # Face 0: both points 3 px right; face 1: point 0 3 px right, point 1 4 px down.
    points = np.array([[[3.0, 0.0], [3.0, 0.0]], [[3.0, 0.0], [0.0, 4.0]]])
    r = flip_gain.error_parts(points, truth)
    assert r["nme"] == pytest.approx((3 + 3 + 3 + 4) / 4 / 384 * 100)
    assert r["mean_dx"] == pytest.approx(9 / 4) and r["mean_dy"] == pytest.approx(4 / 4)
    # Per-point mean offsets: point 0 (3, 0), point 1 (1.5, 2) -> lengths 3 and 2.5.
    assert r["rms_shared"] == pytest.approx(np.sqrt((9 + 6.25) / 2))
    # Residuals: point 0 none; point 1 (+-1.5, -+2) in both faces -> length 2.5 in two of the four.
    assert r["rms_per_face"] == pytest.approx(np.sqrt(2 * 6.25 / 4))


def test_a_shift_every_face_shares_is_all_shared(flip_gain) -> None:
    truth = np.random.default_rng(0).uniform(0, 384, (5, 68, 2))
    r = flip_gain.error_parts(truth + [2.0, -1.0], truth)
    assert r["rms_shared"] == pytest.approx(np.sqrt(5)) and r["rms_per_face"] == pytest.approx(0, abs=1e-9)


def test_facing_reads_the_nose_side(flip_gain) -> None:
    face = np.zeros((1, 68, 2))
    face[0, 0, 0], face[0, 16, 0] = 100.0, 200.0  # jaw ends: middle 150, width 100
    face[0, 30, 0] = 130.0  # nose tip 20 px left of the middle
    assert flip_gain.facing(face)[0] == pytest.approx(-0.2)
    face[0, 30, 0] = 175.0
    assert flip_gain.facing(face)[0] == pytest.approx(0.25)
