"""The face / no-face head: fitted on a frozen model, it leaves the landmarks alone and scales the confidence."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lightmark.engine.face_head import (  # noqa: E402
    FACE_CLASSES,
    background_windows,
    fit_face_head,
    fit_logistic,
    procedural_windows,
)
from lightmark.models import create_model, load_model, save_checkpoint  # noqa: E402
from lightmark.models.config import ModelConfig  # noqa: E402


def test_fit_logistic_separates_and_matches_its_probabilities() -> None:
    """Two Gaussian clouds: the fit puts each on its side, balances the classes (the weighted residuals sum to 0),
    and gives (w, b) in the raw feature units: shifting every feature by 100 leaves w and moves b by -100 sum(w)."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.5, 1.0, (200, 3)), rng.normal(-0.5, 1.0, (100, 3))].astype(np.float32) * [1, 10, 0.1]
    y = np.r_[np.ones(200), np.zeros(100)]
    w, b = fit_logistic(x, y, l2=0.0)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    assert (p[:200] > 0.5).mean() > 0.6 and (p[200:] < 0.5).mean() > 0.6
    weights = np.where(y > 0, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    assert abs(float((weights * (p - y)).sum())) < 1e-2 * len(y)  # the unregularised optimum: zero weighted residual
    w2, b2 = fit_logistic(x + 100, y, l2=0.0)
    np.testing.assert_allclose(w2, w, rtol=1e-3, atol=1e-4)
    assert b2 == pytest.approx(b - 100 * w.sum(), abs=1e-2)
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(x, np.ones(len(x)))


def test_the_face_head_leaves_points_and_confidence_and_travels(tmp_path) -> None:
    """After the fit, points and per-point confidence are unchanged, the face probability is the head's sigmoid
    (higher on the faces' class), and the head travels with the checkpoint and into the ONNX graph."""
    torch.manual_seed(0)
    model = create_model("shufflenetv2_x0_5_heatmap", input_size=64).eval()
    rng = np.random.default_rng(0)
    faces = rng.integers(100, 156, (12, 64, 64, 3)).astype(np.uint8)  # stand-ins: the fit only needs two classes
    blank = np.stack(procedural_windows(rng, 12, 64))
    x = torch.from_numpy(np.concatenate([faces, blank]).transpose(0, 3, 1, 2).copy()).float()
    with torch.no_grad():
        pts0, conf0, none = model.outputs(x)
    assert none is None
    report = fit_face_head(model, faces, blank)
    assert model.config.face_head and report["positives"] == 12 and report["negatives"] == 12
    with torch.no_grad():
        pts1, conf1, p_face = model.outputs(x)
    torch.testing.assert_close(pts1, pts0)
    torch.testing.assert_close(conf1, conf0)
    # the head holds the fitted weights: its probabilities on the fitting crops are the report's
    assert float(p_face[:12].mean()) == pytest.approx(report["p_face_positives"], abs=1e-4)
    assert float(p_face[12:].mean()) == pytest.approx(report["p_face_negatives"], abs=1e-4)
    assert report["balanced_accuracy"] > 0.9 and p_face[:12].mean() > p_face[12:].mean()
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config.face_head
    with torch.no_grad():
        torch.testing.assert_close(loaded.outputs(x)[2], p_face)
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from lightmark import Predictor
    from lightmark.engine.export import onnx_bytes

    onnx_pred = Predictor(loaded, onnx=onnx_bytes(loaded), threads=1, framing="whole")
    np.testing.assert_allclose(onnx_pred.face_probability(np.concatenate([faces, blank])), p_face.numpy(), atol=1e-4)
    assert onnx_pred.has_face_head
    crops = np.concatenate([faces, blank])
    # the landmark passes give it too (detect keeps their last pass's), from the same call; with the flip test the
    # crop's own, not the mirror image's (the call reads both): as face_probability reads it
    np.testing.assert_allclose(onnx_pred.read_crops(crops)[2], p_face.numpy(), atol=1e-4)
    flip = Predictor(loaded, onnx=onnx_bytes(loaded), threads=1, framing="whole", flip_test=True)
    mirrored = onnx_pred.face_probability(np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.abs(mirrored - p_face.numpy()).max() > 1e-3  # the mirror images score otherwise: the test can tell
    np.testing.assert_allclose(flip.read_crops(crops)[2], p_face.numpy(), atol=1e-4)
    plain = create_model("shufflenetv2_x0_5_heatmap", input_size=64).eval()
    no_head = Predictor(plain, onnx=onnx_bytes(plain), threads=1, framing="whole")
    assert not no_head.has_face_head and no_head.face_probability(faces) is None


def test_the_default_threshold_depends_on_the_face_head() -> None:
    from lightmark.engine.faces import MIN_SCORE, MIN_SCORE_WITHOUT_FACE_HEAD, MODEL_DEFAULT

    assert MODEL_DEFAULT.resolve(True) == MIN_SCORE < MODEL_DEFAULT.resolve(False) == MIN_SCORE_WITHOUT_FACE_HEAD
    assert str(MIN_SCORE) in repr(MODEL_DEFAULT) and str(MIN_SCORE_WITHOUT_FACE_HEAD) in repr(MODEL_DEFAULT)


def test_a_regression_model_gets_no_face_head() -> None:
    model = create_model("shufflenetv2_x0_5_regression", input_size=64).eval()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="heatmap"):
        fit_face_head(
            model, rng.integers(0, 255, (4, 64, 64, 3)).astype(np.uint8), np.stack(procedural_windows(rng, 4, 64))
        )
    assert model.face is None and not model.config.face_head


def test_a_face_score_is_scaled_by_the_face_probability() -> None:
    from lightmark.engine.faces import Face

    conf = np.full(68, 0.8)
    plain = Face(np.zeros(4), 0.9, np.zeros((68, 2)), conf)
    scaled = Face(np.zeros(4), 0.9, np.zeros((68, 2)), conf, face_probability=0.25)
    assert plain.face_score == pytest.approx(0.8) and scaled.face_score == pytest.approx(0.2)
    assert scaled.combined_score == pytest.approx(1.1)


def test_the_face_head_needs_a_heatmap_head() -> None:
    with pytest.raises(ValueError, match="heatmap"):
        ModelConfig("x", head="regression", face_head=True)


def test_background_windows_hold_no_face_pixel(tmp_path) -> None:
    """Windows come only from where the segmentation has no face class (hair and background allowed)."""
    import cv2

    seg = np.zeros((200, 200), np.uint8)
    seg[130:200, 130:200] = FACE_CLASSES[0]  # a face in the lower right
    seg[0:60, :] = 13  # hair is not a face
    img = np.zeros((200, 200, 3), np.uint8)
    img[130:, 130:] = 255  # face pixels white, everything else black
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "a_seg.png"), seg)
    wins = background_windows([tmp_path / "a_seg.png"], np.random.default_rng(0), 20, 32)
    assert len(wins) == 20 and all(w.shape == (32, 32, 3) and w.max() == 0 for w in wins)
    seg[:] = FACE_CLASSES[0]  # no window without a face: the picture is given up, no endless loop
    cv2.imwrite(str(tmp_path / "a_seg.png"), seg)
    assert background_windows([tmp_path / "a_seg.png"], np.random.default_rng(0), 5, 32, tries=10) == []


def test_fine_tuning_starts_without_the_face_head(tmp_path) -> None:
    """--init from a model with a face head trains the landmark weights (the head is fitted again afterwards)."""
    from lightmark.engine.train import TrainConfig, _build_model

    model = create_model("shufflenetv2_x0_5_heatmap", input_size=64).eval()
    rng = np.random.default_rng(0)
    fit_face_head(model, rng.integers(0, 255, (8, 64, 64, 3)).astype(np.uint8), procedural_windows(rng, 8, 64))
    save_checkpoint(tmp_path / "face.pt", model)
    cfg = TrainConfig(train=["x"], model="shufflenetv2_x0_5_heatmap", input_size=64, init=str(tmp_path / "face.pt"))
    tuned = _build_model(cfg, resume=False)
    assert tuned.face is None and not tuned.config.face_head
    torch.testing.assert_close(tuned.state_dict()["head.out.weight"], model.state_dict()["head.out.weight"])
