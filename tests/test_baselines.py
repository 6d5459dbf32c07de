"""Reference predictors go through the same evaluation code as lightmark's models."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import require_shared
from lightmark.data.formats import load_dataset
from lightmark.engine.baselines import centre_box, dlib_shape_predictor_path
from lightmark.engine.evaluate import evaluate
from lightmark.engine.predict import PredictionResults


def test_centre_box_is_the_centre_256_box_of_a_384_crop() -> None:
    assert centre_box(384, 384) == (64, 64, 319, 319)  # inclusive corners: 256 x 256 pixels
    assert centre_box(600, 300) == (200, 50, 399, 249)  # 2/3 of the shorter side, centred: 200 x 200
    assert centre_box(100, 100) == (17, 17, 83, 83)  # side 66.7 -> 67 pixels from round(16.7)


class _Oracle:
    """A fake predictor that returns the ground truth shifted by (dx, 0), and says it found half the faces."""

    def __init__(self, dataset, dx: float) -> None:
        self.dataset, self.dx = dataset, dx

    def predict_dataset(self, dataset, batch_size: int = 1, progress: bool = True) -> PredictionResults:
        gt = dataset.landmarks_array() + np.array([self.dx, 0.0], np.float32)
        n = len(dataset)
        return PredictionResults(
            names=dataset.names,
            landmarks=gt,
            image_sizes=np.full((n, 2), 384),
            paths=[s.image_path for s in dataset.samples],
            detected=np.arange(n) % 2 == 0,
        )

    def describe(self) -> dict:
        return {"model": "oracle"}


def test_any_predictor_with_predict_dataset_is_scored_the_same_way() -> None:
    ds = load_dataset(require_shared("aflw2000/val"))
    rep = evaluate(_Oracle(ds, 3.84), ds, progress=False)
    assert rep.summary["nme_challenge"] == pytest.approx(1.0, abs=1e-4)  # 3.84 px / 384 = 1%
    assert rep.meta["model"] == "oracle" and rep.meta["detected"] == (len(ds) + 1) // 2
    assert rep.meta["nme_challenge_detected"] == pytest.approx(1.0, abs=1e-4)
    rows = rep.to_dict()["per_image"]
    assert [r["detected"] for r in rows[:3]] == [True, False, True]


@pytest.mark.skipif(
    dlib_shape_predictor_path() is None and os.environ.get("CI", "").lower() != "true",
    reason="dlib baseline not installed (lightmark[dlib]); CI installs it, so there it fails instead",
)
def test_dlib_baseline_on_validation_crops() -> None:
    from lightmark.engine.baselines import DlibPredictor

    ds = load_dataset(require_shared("aflw2000/val"))
    ds.samples = ds.samples[:12]
    rep = evaluate(DlibPredictor(), ds, progress=False, latency=True)
    assert rep.summary["n"] == 12 and 0 < rep.meta["detected"] < 12  # both the detector's and the centre box
    assert rep.meta["nme_challenge_detected"] < rep.meta["nme_challenge_not_detected"]
    assert 0.5 < rep.summary["nme_challenge"] < 30  # a real 68-point predictor, far from random
    lat = rep.meta["latency_ms"]
    assert lat["threads"] == 1 and lat["runs"] == 200 and 0 < lat["median"] <= lat["p90"] and lat["hog_detect_ms"] > 0


@pytest.mark.skipif(
    dlib_shape_predictor_path() is None and os.environ.get("CI", "").lower() != "true",
    reason="dlib baseline not installed (lightmark[dlib]); CI installs it, so there it fails instead",
)
def test_dlib_predict_takes_float_boxes() -> None:
    from lightmark.data.images import read_image
    from lightmark.engine.baselines import DlibPredictor

    image = read_image(load_dataset(require_shared("aflw2000/val")).samples[0].image_path)
    a = DlibPredictor().predict(image, box=(64.2, 63.8, 319.4, 319.0))
    b = DlibPredictor().predict(image, box=(64, 64, 319, 319))
    assert a.shape == (68, 2) and np.array_equal(a, b)


def test_latency_needs_a_timing_method() -> None:
    from lightmark.errors import ConfigError

    ds = load_dataset(require_shared("aflw2000/val"))
    with pytest.raises(ConfigError, match="cannot be timed"):
        evaluate(_Oracle(ds, 0.0), ds, progress=False, latency=True)


def test_fit_mesh_map_recovers_a_known_combination_of_vertices() -> None:
    from lightmark.engine.baselines import fit_mesh_map

    rng = np.random.default_rng(0)
    mesh = rng.uniform(0, 100, (60, 30, 2))  # 60 faces, 30 vertices each, unrelated to each other
    a, b = rng.permutation(30)[:2]  # two vertices
    lm = np.repeat(mesh[:, [a]], 68, axis=1)  # every point on vertex a...
    lm[:, 5] = 0.6 * mesh[:, a] + 0.4 * mesh[:, b]  # ...but point 5: 0.6 a + 0.4 b
    m = fit_mesh_map(mesh, lm, np.ones(60), k=2, ridge=0.0)
    assert m.index[0, 0] == a and m.weights[0, 0] == pytest.approx(1.0)  # nearest vertex first, all the weight
    assert sorted(m.index[5]) == sorted([a, b])  # the two vertices nearest point 5 on average
    assert dict(zip(m.index[5], m.weights[5], strict=True))[b] == pytest.approx(0.4, abs=1e-9)
    np.testing.assert_allclose(m.apply(mesh), lm, atol=1e-4)
    np.testing.assert_allclose(m.weights.sum(1), 1.0)


def test_fit_mesh_map_is_scale_free_and_its_ridge_pulls_towards_equal_weights() -> None:
    from lightmark.engine.baselines import fit_mesh_map

    rng = np.random.default_rng(1)
    mesh = rng.uniform(0, 100, (40, 20, 2))
    lm = mesh[:, :4].mean(1, keepdims=True) + rng.normal(0, 3, (40, 68, 2))  # noisy points among vertices 0-3
    size = rng.uniform(20, 40, 40)
    s = rng.uniform(0.5, 3.0, 40)[:, None, None]  # each face scaled on its own, its size with it
    a = fit_mesh_map(mesh, lm, size)
    b = fit_mesh_map(mesh * s, lm * s, size * s[:, 0, 0])
    assert np.array_equal(a.index, b.index)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-9)
    assert not np.allclose(a.weights, 0.25, atol=0.05)  # the data move the weights...
    np.testing.assert_allclose(fit_mesh_map(mesh, lm, size, ridge=1e6).weights, 0.25, atol=1e-4)  # ...a ridge does not
    np.testing.assert_allclose(fit_mesh_map(mesh, lm, size, ridge=1e6).weights.sum(1), 1.0)


def test_mesh_map_moves_with_the_face_and_its_fall_back_shape_fills_the_box() -> None:
    from lightmark.engine.baselines import MeshMap, place_in_box

    m = MeshMap(np.array([[0, 1]] * 68), np.array([[0.25, 0.75]] * 68), np.full((68, 2), 0.5))
    mesh = np.array([[0.0, 0.0], [4.0, 8.0]])
    np.testing.assert_allclose(m.apply(mesh)[0], [3.0, 6.0])  # 0.25 * (0, 0) + 0.75 * (4, 8)
    np.testing.assert_allclose(m.apply(mesh * 2 + 10)[0], [16.0, 22.0])  # rows sum to 1: moves and scales with it
    assert m.apply(np.stack([mesh, mesh])).shape == (2, 68, 2)
    np.testing.assert_allclose(place_in_box(np.array([[0.0, 0.0], [0.5, 1.0]]), (10, 20, 30, 60)), [[10, 20], [20, 60]])


def test_predict_each_gathers_a_baselines_points_and_what_it_found() -> None:
    from lightmark.engine.baselines import predict_each

    ds = load_dataset(require_shared("aflw2000/val"))
    ds.samples = ds.samples[:3]
    calls = []

    def fake(image: np.ndarray) -> tuple[np.ndarray, bool]:
        calls.append(image.shape)
        return np.full((68, 2), len(calls), np.float32), len(calls) != 2

    r = predict_each(fake, ds, "fake", progress=False)
    assert r.names == ds.names and calls == [(384, 384, 3)] * 3
    assert r.landmarks.shape == (3, 68, 2) and r.landmarks[2, 0, 0] == 3
    assert r.detected.tolist() == [True, False, True] and r.image_sizes.tolist() == [[384, 384]] * 3


def test_mediapipe_baseline_falls_back_to_its_mean_shape_in_the_centre_box() -> None:
    from lightmark.engine.baselines import MediaPipeMeshPredictor, MeshMap
    from lightmark.errors import LightmarkError

    shape = np.zeros((68, 2))
    shape[1] = 1.0  # point 1 at the far corner of the unit box
    mesh_map = MeshMap(np.zeros((68, 1), np.int64), np.ones((68, 1)), shape)
    p = object.__new__(MediaPipeMeshPredictor)  # no mediapipe needed: the mesh is stubbed
    p.mesh_map, p.mesh = mesh_map, lambda image: None
    points, found = p.predict_found(np.zeros((384, 384, 3), np.uint8))
    assert not found and points[0].tolist() == [64, 64] and points[1].tolist() == [319, 319]  # centre_box(384, 384)
    p.mesh = lambda image: np.full((468, 2), 7.0)
    points, found = p.predict_found(np.zeros((384, 384, 3), np.uint8))
    assert found and np.all(points == 7.0)
    p.mesh_map = None
    with pytest.raises(LightmarkError, match="mesh_map"):
        p.predict_found(np.zeros((8, 8, 3), np.uint8))


def test_mediapipe_baseline_says_what_to_install() -> None:
    import importlib.util

    from lightmark.engine.baselines import MediaPipeMeshPredictor
    from lightmark.errors import LightmarkError

    if importlib.util.find_spec("mediapipe") is not None:
        pytest.skip("mediapipe is installed here: the missing-dependency message cannot be seen")
    with pytest.raises(LightmarkError, match="mediapipe==0.10.21"):
        MediaPipeMeshPredictor()
