"""Metrics: hand-computed values and property tests."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lightmark.constants import NUM_LANDMARKS, YAW_BIN_NAMES
from lightmark.metrics import (
    auc,
    box_norm,
    ced_curve,
    challenge_norm,
    failure_rate,
    interocular_norm,
    nme,
    point_errors,
    summarize,
    yaw_bin_masks,
)


def _face(n: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(50, 330, (n, NUM_LANDMARKS, 2))


def test_point_errors_and_challenge_nme_hand_computed() -> None:
    gt = _face(2)
    pred = gt + np.array([3.0, 4.0])  # every point off by a 3-4-5 triangle: 5 px
    np.testing.assert_allclose(point_errors(pred, gt), np.full((2, NUM_LANDMARKS), 5.0))
    norm = challenge_norm(np.array([[384, 384], [384, 384]]))
    np.testing.assert_allclose(norm, [384.0, 384.0])  # sqrt(384 * 384)
    np.testing.assert_allclose(nme(pred, gt, norm), [5 / 384 * 100] * 2)  # 1.3020833...%


def test_single_face_and_scalar_norm() -> None:
    gt = _face(1)[0]
    pred = gt.copy()
    pred[0] += [6.0, 8.0]  # one point off by 10 px -> mean 10/68 px
    out = nme(pred, gt, 100.0)
    assert out.shape == (1,)
    assert out[0] == pytest.approx(10 / 68 / 100 * 100)


def test_challenge_norm_non_square() -> None:
    # sqrt(w * h): 400 x 100 -> 200; a single (w, h) pair gives one value
    np.testing.assert_allclose(challenge_norm(np.array([400, 100])), [200.0])
    np.testing.assert_allclose(challenge_norm([[400, 100], [9, 16]]), [200.0, 12.0])


def test_box_norm_known_box() -> None:
    gt = np.zeros((NUM_LANDMARKS, 2))
    gt[:, 0] = np.linspace(10, 110, NUM_LANDMARKS)  # width 100
    gt[:, 1] = np.linspace(20, 45, NUM_LANDMARKS)  # height 25
    np.testing.assert_allclose(box_norm(gt), [50.0])  # sqrt(100 * 25)


def test_interocular_norm() -> None:
    gt = _face(1)[0]
    gt[36] = [100.0, 200.0]
    gt[45] = [160.0, 280.0]  # dx 60, dy 80 -> 100
    np.testing.assert_allclose(interocular_norm(gt), [100.0])
    with pytest.raises(ValueError):
        interocular_norm(np.zeros((5, 2)))


def test_nme_rejects_bad_input() -> None:
    gt = _face(2)
    with pytest.raises(ValueError):
        nme(gt, gt, np.array([1.0, 0.0]))  # zero normaliser
    with pytest.raises(ValueError):
        nme(gt, gt, np.array([1.0, 2.0, 3.0]))  # wrong count
    with pytest.raises(ValueError):
        point_errors(gt, gt[:, :10])
    with pytest.raises(ValueError):
        point_errors(np.zeros((2, 68, 3)), np.zeros((2, 68, 3)))


def test_failure_rate_and_auc_hand_computed() -> None:
    nmes = np.array([2.0, 5.0, 12.0, 10.0])
    # > 10 strictly: only 12 fails -> 1/4
    assert failure_rate(nmes) == pytest.approx(25.0)
    # CED F(t) = share of e_i <= t. Integral over [0, 10] = sum_i max(0, 10 - e_i) / 4
    #   = (8 + 5 + 0 + 0) / 4 = 3.25; normalised by 10 -> 0.325
    assert auc(nmes) == pytest.approx(0.325)
    # threshold 5: (3 + 0 + 0 + 0) / 4 / 5 = 0.15
    assert auc(nmes, threshold=5.0) == pytest.approx(0.15)
    assert auc(np.zeros(3)) == pytest.approx(1.0)
    assert auc(np.full(3, 50.0)) == pytest.approx(0.0)
    assert math.isnan(auc(np.array([]))) and math.isnan(failure_rate(np.array([])))


def test_ced_curve_and_trapezoid_agree_with_auc() -> None:
    nmes = np.array([2.0, 5.0, 12.0, 10.0])
    t, frac = ced_curve(nmes, max_threshold=10.0, steps=1001)
    assert t.shape == frac.shape == (1001,)
    assert t[0] == 0.0 and t[-1] == 10.0
    assert frac[0] == 0.0  # nothing <= 0
    assert frac[np.searchsorted(t, 2.0)] == pytest.approx(0.25)  # 2 <= 2
    assert frac[-1] == pytest.approx(0.75)  # 2, 5, 10 <= 10
    assert np.all(np.diff(frac) >= 0)
    trapz = np.sum((frac[1:] + frac[:-1]) / 2 * np.diff(t)) / 10.0
    assert trapz == pytest.approx(auc(nmes), abs=2e-3)


def test_yaw_bins_with_nan() -> None:
    yaws = np.array([0.0, -29.9, 30.0, 45.0, -60.0, 90.0, np.nan, 95.0])
    masks = yaw_bin_masks(yaws)
    assert list(masks) == list(YAW_BIN_NAMES)
    np.testing.assert_array_equal(masks["yaw_0_30"], [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(masks["yaw_30_60"], [0, 0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(masks["yaw_60_90"], [0, 0, 0, 0, 1, 1, 0, 0])  # 90 included, 95 not
    assert masks["yaw_0_30"].dtype == bool


def test_summarize_keys_values_and_json() -> None:
    gt = _face(4)
    pred = gt + np.array([3.0, 4.0])
    yaws = np.array([10.0, -40.0, 70.0, np.nan])
    s = summarize(pred, gt, np.array([384, 384]), yaws=yaws)
    keys = {"n", "nme_challenge", "nme_box", "nme_interocular", "fr_10", "auc_10", "fr_10_box", "auc_10_box"}
    assert keys | set(YAW_BIN_NAMES) | {"nme_challenge_balanced"} == set(s)
    assert s["n"] == 4
    assert s["nme_challenge"] == pytest.approx(5 / 384 * 100)
    assert s["nme_box"] == pytest.approx(float(np.mean(5 / box_norm(gt) * 100)))
    assert s["nme_interocular"] == pytest.approx(float(np.mean(5 / interocular_norm(gt) * 100)))
    assert s["fr_10"] == 0.0
    assert s["auc_10"] == pytest.approx(1 - 5 / 384 * 100 / 10)
    for name in YAW_BIN_NAMES:
        assert s[name]["n"] == 1  # the nan yaw is in no bin
        assert set(s[name]) == {"n", "nme_challenge", "nme_box"}
    assert s["nme_challenge_balanced"] == pytest.approx(5 / 384 * 100)
    for v in (s["nme_challenge"], s["fr_10"], s["auc_10_box"]):
        assert type(v) is float
    json.loads(json.dumps(s, allow_nan=False))


def test_summarize_without_yaws_and_empty_bin() -> None:
    gt = _face(2)
    s = summarize(gt, gt, [[384, 384], [200, 200]])
    assert "nme_challenge_balanced" not in s and s["nme_challenge"] == 0.0 and s["auc_10"] == 1.0
    s = summarize(gt, gt, [384, 384], yaws=[5.0, 10.0])
    assert s["yaw_60_90"] == {"n": 0, "nme_challenge": None, "nme_box": None}
    assert s["nme_challenge_balanced"] is None
    json.loads(json.dumps(s, allow_nan=False))
    with pytest.raises(ValueError):
        summarize(gt, gt, [384, 384], yaws=[5.0])


_coords = arrays(np.float64, (3, NUM_LANDMARKS, 2), elements=st.floats(0, 500, allow_nan=False))
_offsets = arrays(np.float64, (3, NUM_LANDMARKS, 2), elements=st.floats(-20, 20, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(gt=_coords, off=_offsets, shift=st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)))
def test_nme_translation_invariant_and_mean_distance(gt: np.ndarray, off: np.ndarray, shift: tuple) -> None:
    pred = gt + off
    norm = np.array([384.0, 100.0, 7.5])
    a = nme(pred, gt, norm)
    b = nme(pred + np.array(shift), gt + np.array(shift), norm)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-7)
    # the definition: mean over the 68 points of the Euclidean distance, / the face's normaliser, in percent
    d = pred - gt
    np.testing.assert_allclose(a, np.hypot(d[..., 0], d[..., 1]).mean(1) / norm * 100, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(gt=_coords, off=_offsets, k=st.floats(0, 10))
def test_nme_scales_linearly_with_error(gt: np.ndarray, off: np.ndarray, k: float) -> None:
    norm = np.array([384.0, 100.0, 7.5])
    np.testing.assert_allclose(nme(gt + k * off, gt, norm), k * nme(gt + off, gt, norm), rtol=1e-9, atol=1e-9)


def test_interocular_scores_by_hand() -> None:
    from lightmark.metrics import interocular_scores

    gt = np.zeros((1, 68, 2))
    gt[0, 45] = [10.0, 0.0]  # outer eye corners 36 / 45 are 10 px apart
    pred = gt.copy()
    pred[0, :17] += [1.0, 0.0]  # every jaw point 1 px off: 10 % of the inter-ocular distance
    pred[0, 30] += [0.0, 2.0]  # one inner point 2 px off: 20 % on one of 51 points
    s = interocular_scores(pred, gt)
    assert s["n"] == 1
    assert s["jaw_17"] == pytest.approx(10.0)
    assert s["inner_51"] == pytest.approx(20.0 / 51)
    assert s["all_68"] == pytest.approx((17 * 10.0 + 20.0) / 68)
