"""The model that ships inside the package: loadable, within budget, and as accurate as the README says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
from lightmark.engine.evaluate import evaluate
from lightmark.engine.predict import Predictor
from lightmark.errors import ConfigError
from lightmark.models import (
    DEFAULT_TRACK,
    MAX_MODEL_MB,
    REAL_FACE_TRACKS,
    SHIPPED_MODELS,
    default_model_path,
    float32_size_mb,
    load_checkpoint,
    load_model,
    shipped_model_path,
)

SAMPLE = Path(__file__).parents[1] / "src" / "lightmark" / "assets" / "sample_face.jpg"
TRACKS = sorted(SHIPPED_MODELS)
ROOT = Path(__file__).resolve().parent.parent
TRAINED_WITH_FLIP_TEST = {"mixed_resnet18"}  # fine-tuned from a start that had the flip test (set after protocol's)
README_EVALS = {"protocol": "protocol", "mixed": "mixed", "mixed_resnet18": "mixed_resnet18", "wflw98": "wflw98_val68"}


@pytest.mark.parametrize("track", TRACKS)
def test_shipped_weights_exist_and_fit_the_budget(track: str) -> None:
    path = shipped_model_path(track)
    assert path.is_file(), f"{path} is missing"
    assert path.stat().st_size <= MAX_MODEL_MB * 1e6
    model = load_model(track)
    assert float32_size_mb(model) <= MAX_MODEL_MB
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in model.parameters())


@pytest.mark.parametrize("track", TRACKS)
def test_shipped_checkpoint_records_how_it_was_trained_and_scored(track: str) -> None:
    ck = load_checkpoint(shipped_model_path(track))
    assert ck.val_nme is not None and ck.train_config is not None, "the shipped model should say how it was trained"
    assert ck.track == track
    real = [p for p in ck.train_config["train"] if "300w" in p.lower() or "aflw" in p.lower()]
    if track not in REAL_FACE_TRACKS:  # the challenge's rules: no real landmark data
        assert not real, f"the {track} model was trained on real faces: {real}"
    else:
        assert real, f"the {track} model should include real faces"


def test_default_model_is_the_shipped_one_with_the_lower_validation_nme() -> None:
    """Among the 68-point models of the default's architecture (the 98-point one's figure is of its 68-point subset);
    a 68-point model of a slower architecture ships as an opt-in only if it is more accurate than the default."""
    configs = {t: load_model(shipped_model_path(t)).config for t in TRACKS}
    recorded = {t: load_checkpoint(shipped_model_path(t)).val_nme for t in TRACKS if configs[t].num_landmarks == 68}
    fast = {t: v for t, v in recorded.items() if configs[t].name == configs[DEFAULT_TRACK].name}
    assert DEFAULT_TRACK == min(fast, key=fast.get)
    assert default_model_path() == shipped_model_path(DEFAULT_TRACK)
    slower = {t: v for t, v in recorded.items() if t not in fast}
    assert all(v < recorded[DEFAULT_TRACK] for v in slower.values()), slower


def test_makefile_regenerates_every_shipped_model() -> None:
    """``make onnx`` and ``make face-heads`` loop over the Makefile's SHIPPED_TRACKS: the registry's tracks, no more."""
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("SHIPPED_TRACKS = "))
    assert sorted(line.split("=", 1)[1].split()) == TRACKS


def test_sample_face_prediction_is_a_face() -> None:
    pts = Predictor().predict(SAMPLE)
    assert pts.shape == (68, 2) and np.isfinite(pts).all()
    # a plausible face: the box of the points fills a sensible part of the 384 px crop, eyes above the mouth
    w, h = np.ptp(pts, axis=0)
    assert 100 < max(w, h) < 330
    assert pts[36:48, 1].mean() < pts[48:68, 1].mean()


@pytest.mark.parametrize("track", TRACKS)
def test_validation_nme_matches_the_recorded_figure(track: str) -> None:
    """Evaluating each shipped model on the 199 validation crops (68 points: a 98-point model through its map)
    reproduces the README's figure (its results table reads ``docs/evals/<track>.json``, the whole-crop reading
    with the model's defaults) and, read as the training loop read it, the NME stored in its checkpoint: without
    flip test, except for a model that had the flip test while it trained (:data:`TRAINED_WITH_FLIP_TEST`)."""
    val = require_shared("aflw2000/val")
    report = evaluate(track, val, progress=False, scheme="ibug68")
    recorded = load_checkpoint(shipped_model_path(track)).val_nme
    readme = json.loads((ROOT / "docs" / "evals" / f"{README_EVALS[track]}.json").read_text())["nme_challenge"]
    assert report.summary["n"] == 199
    assert report.summary["nme_challenge"] == pytest.approx(readme, abs=0.02)
    as_trained = track in TRAINED_WITH_FLIP_TEST
    in_training = (
        report if report.meta["flip_test"] == as_trained else evaluate(track, val, progress=False, flip_test=False)
    )
    assert in_training.summary["nme_challenge"] == pytest.approx(recorded, abs=0.02)
    json.dumps(report.to_dict())  # serialisable


def test_mirror_equivariance_and_flip_test() -> None:
    """The prediction on a mirrored face, mirrored back and re-ordered by FLIP_PERM, lands near the prediction on
    the face itself; flip-test averaging (which relies on the same permutation) stays close to both."""
    from lightmark.data.images import read_image
    from lightmark.data.transforms import flip_landmarks

    img = read_image(SAMPLE)
    p = Predictor(backend="torch", framing="whole", refine=0)  # the crop as it is, one pass: the rule under test
    a = p.predict(img)
    b = flip_landmarks(p.predict(np.ascontiguousarray(img[:, ::-1])), img.shape[1])  # mapped back, FLIP_PERM
    assert np.linalg.norm(a - b, axis=1).mean() < 15.0  # px on a 384 px crop (no permutation: ~50)
    f = Predictor(backend="torch", flip_test=True, framing="whole", refine=0).predict(img)
    np.testing.assert_allclose(f, (a + b) / 2, atol=1e-3)


def test_merge_flip_against_a_hand_computed_case() -> None:
    """Three points on a 10 px crop, mirror permutation (2, 1, 0): the mirrored prediction is mapped back
    (x -> 9 - x), re-ordered, then averaged with the direct one."""
    from lightmark.engine.predict import merge_flip

    direct = np.array([[[1.0, 2.0], [5.0, 5.0], [8.0, 1.0]]], np.float32)
    mirrored = np.array([[[1.0, 1.0], [4.0, 5.0], [7.0, 3.0]]], np.float32)
    # mapped back: (8, 1), (5, 5), (2, 3); re-ordered: (2, 3), (5, 5), (8, 1)
    want = np.array([[[1.5, 2.5], [5.0, 5.0], [8.0, 1.0]]], np.float32)
    out = merge_flip(direct, mirrored, 10, (2, 1, 0))
    assert out.dtype == np.float32 and np.array_equal(out, want)
    two = merge_flip(np.concatenate([direct, direct]), np.concatenate([mirrored, direct]), 10, (2, 1, 0))
    # 2nd face, its direct points as the mirrored ones: back (8, 2), (4, 5), (1, 1); re-ordered (1, 1), (4, 5), (8, 2)
    assert np.array_equal(two[0], want[0]) and np.array_equal(two[1], [[1.0, 1.5], [4.5, 5.0], [8.0, 1.5]])
    assert merge_flip(np.zeros((0, 3, 2)), np.zeros((0, 3, 2)), 10, (2, 1, 0)).shape == (0, 3, 2)


def test_guarded_flip_keeps_the_more_confident_reading_where_the_two_disagree() -> None:
    """Two faces of three points on a 10 px crop, mirror permutation (2, 1, 0), guard at 0.2 x 10 = 2 px of mean
    point distance. Face 0: the mirrored reading maps back 1 px from the direct one at each point -> averaged, and
    so are the confidences (re-ordered). Face 1: it maps back 3 px off -> not averaged; the mirrored reading is the
    more confident one (mean 0.8 against 0.5), so it is kept whole, with its own (re-ordered) confidences."""
    from lightmark.engine.predict import merge_flip_readings

    direct = np.array([[[1.0, 2.0], [5.0, 5.0], [8.0, 1.0]]] * 2, np.float32)
    # face 0 mapped back: (2, 2), (6, 5), (9, 1), each 1 px to the right; face 1: each 3 px down
    mirrored = np.array(
        [[[0.0, 1.0], [3.0, 5.0], [7.0, 2.0]], [[1.0, 4.0], [4.0, 8.0], [8.0, 5.0]]], np.float32
    )  # x -> 9 - x, then re-ordered (2, 1, 0)
    conf = np.array([[0.9, 0.6, 0.3], [0.5, 0.5, 0.5]], np.float32)
    conf_mirrored = np.array([[0.1, 0.2, 0.4], [0.7, 0.8, 0.9]], np.float32)  # re-ordered: (0.4, 0.2, 0.1), (0.9, ...)
    points, merged = merge_flip_readings(direct, conf, mirrored, conf_mirrored, 10, (2, 1, 0), disagreement=0.2)
    np.testing.assert_allclose(points[0], [[1.5, 2.0], [5.5, 5.0], [8.5, 1.0]])
    np.testing.assert_allclose(merged[0], [0.65, 0.4, 0.2])
    np.testing.assert_allclose(points[1], [[1.0, 5.0], [5.0, 8.0], [8.0, 4.0]])
    np.testing.assert_allclose(merged[1], [0.9, 0.8, 0.7])
    assert points.dtype == np.float32 and merged.dtype == np.float32
    loose, _ = merge_flip_readings(direct, conf, mirrored, conf_mirrored, 10, (2, 1, 0), disagreement=0.5)
    np.testing.assert_allclose(loose[1], [[1.0, 3.5], [5.0, 6.5], [8.0, 2.5]])  # 3 px <= 5 px: averaged


def test_flip_test_default_travels_with_the_model() -> None:
    """The shipped protocol model reads crops mirrored too by default (its config's ``flip_test``), the mixed one
    does not; the caller's ``flip_test`` wins either way."""
    assert Predictor("protocol").flip_test and Predictor("protocol").config.flip_test
    assert not Predictor("mixed").flip_test
    assert not Predictor("protocol", flip_test=False).flip_test and Predictor("mixed", flip_test=True).flip_test
    assert Predictor("protocol").guards_flip and Predictor("protocol").describe()["flip_disagreement"] == 0.05
    assert Predictor("mixed").describe()["flip_disagreement"] is None  # no flip test, no guard
    assert not Predictor("mixed", flip_test=True, flip_disagreement=math.inf).guards_flip
    for bad in (-0.1, math.nan):
        with pytest.raises(ConfigError, match="flip_disagreement"):
            Predictor("mixed", flip_disagreement=bad)


def test_threads_change_nothing_process_wide() -> None:
    """``threads`` applies to the forward pass only: torch's process-wide count is set around it and restored."""
    import torch

    old = torch.get_num_threads()
    target = 1 if old != 1 else 2
    p = Predictor(backend="torch", threads=target, framing="whole")  # one forward pass per refining pass
    seen = []
    forward = p.model.outputs

    def spy(x):
        seen.append(torch.get_num_threads())
        return forward(x)

    p.model.outputs = spy
    try:
        p.predict(SAMPLE)
    finally:
        del p.model.outputs
    assert seen and set(seen) == {target} and torch.get_num_threads() == old
    with pytest.raises(ConfigError, match="threads"):
        Predictor(backend="torch", threads=0)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_with_threads_shares_model_and_graph(backend: str) -> None:
    from lightmark.data.images import read_image

    p = Predictor(backend=backend, flip_test=True, gamma=1.2)
    one = p.with_threads(1)
    assert one.model is p.model and one.backend == backend and one.threads == 1 and p.threads is None
    assert (one.flip_test, one.gamma, one.onnx_graph, one.onnx_path) == (True, 1.2, p.onnx_graph, p.onnx_path)
    if backend == "onnx":
        assert p.onnx_path is not None  # the shipped twin, opened again rather than re-exported
        assert one.session.get_session_options().intra_op_num_threads == 1
    img = read_image(SAMPLE)
    # torch sums in another order on one thread than on several: 0.002 px apart after two passes with flip test;
    # a copy that lost an option is 1.8 px (gamma) to 7.7 px (flip test) away on this face
    np.testing.assert_allclose(one.predict(img), p.predict(img), atol=0.01)


def test_batches_on_two_threads_match_one_thread() -> None:
    """predict_batch on 2 threads (the batch cut into chunks predicted side by side) returns what 1 thread does,
    face for face, with the confidence; the ONNX session runs one thread per call (no spinning pool)."""
    from lightmark.data.images import read_image

    img = read_image(SAMPLE)
    h, w = img.shape[:2]
    boxes = [(w * f, h * f, w * (1 - f), h * (1 - f)) for f in (0.2, 0.25, 0.3, 0.22, 0.28)]
    one, two = Predictor(backend="onnx", threads=1), Predictor(backend="onnx", threads=2)
    assert two.session.get_session_options().intra_op_num_threads == 1
    assert [len(c) for c in two._chunks(5)] == [3, 2] and len(one._chunks(5)) == 1
    p1, c1 = one.predict_batch_with_confidence([img] * 5, boxes)
    p2, c2 = two.predict_batch_with_confidence([img] * 5, boxes)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(c1, c2)
    assert len({round(float(p[0, 0]), 2) for p in p1}) == 5  # five different framings, in the given order


def test_onnx_graph_given_to_the_predictor() -> None:
    from lightmark.data.images import read_image
    from lightmark.engine.export import onnx_bytes

    auto = Predictor(backend="onnx")
    blob = onnx_bytes(auto.model)
    given = Predictor(auto.model, onnx=blob)  # "auto" with a graph runs it
    assert given.backend == "onnx" and given.onnx_graph is blob and given.onnx_path is None
    img = read_image(SAMPLE)
    np.testing.assert_allclose(given.predict(img), auto.predict(img), atol=1e-3)
    twin = Predictor(auto.model, backend="onnx", onnx=auto.onnx_path)
    assert twin.onnx_path == auto.onnx_path and np.array_equal(twin.predict(img), auto.predict(img))
    with pytest.raises(ConfigError, match="onnx="):
        Predictor(auto.model, backend="torch", onnx=blob)


def test_evaluation_latency_times_one_thread_through_the_predictor() -> None:
    import torch

    from lightmark.data.formats import load_dataset

    ds = load_dataset(require_shared("aflw2000/val"), require_landmarks=True)
    ds.samples = ds.samples[:4]
    old = torch.get_num_threads()
    rep = evaluate(Predictor(backend="onnx"), ds, progress=False, latency=True)
    lat = rep.meta["latency_ms"]
    assert (lat["threads"], lat["backend"], lat["runs"]) == (1, "onnx", 200) and 0 < lat["median"] <= lat["p90"]
    assert torch.get_num_threads() == old


@pytest.mark.parametrize("name", ["shufflenetv2_x0_5_heatmap", "shufflenetv2_x0_5_regression"])
def test_an_empty_batch_has_the_confidence_of_a_full_one(name: str) -> None:
    """No image gives (0, K, 2) points and a confidence of the same kind as for one image: (0, K) for a heatmap
    model, None for a regression head."""
    from lightmark.models import create_model

    p = Predictor(create_model(name).eval(), backend="torch", framing="whole")
    points, conf = p.predict_batch_with_confidence([])
    _, one = p.predict_batch_with_confidence([np.zeros((64, 64, 3), np.uint8)])
    assert points.shape == (0, p.config.num_landmarks, 2)
    assert (conf is None) == (one is None) == (p.config.head == "regression")
    if conf is not None:
        assert conf.shape == (0, p.config.num_landmarks)
