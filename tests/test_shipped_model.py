"""The model that ships inside the package: loadable, within budget, and as accurate as the README says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
from lightmark.engine.evaluate import evaluate
from lightmark.engine.predict import Predictor
from lightmark.models import (
    DEFAULT_TRACK,
    MAX_MODEL_MB,
    SHIPPED_MODELS,
    default_model_path,
    float32_size_mb,
    load_checkpoint,
    load_model,
    shipped_model_path,
)

SAMPLE = Path(__file__).parents[1] / "src" / "lightmark" / "assets" / "sample_face.jpg"
TRACKS = sorted(SHIPPED_MODELS)


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
    assert "val_nme" in ck and "train_config" in ck, "the shipped model should say how it was trained and scored"
    assert ck.get("track") == track
    real = [p for p in ck["train_config"]["train"] if "300w" in p.lower() or "aflw" in p.lower()]
    if track == "protocol":  # the challenge's rules: no real landmark data
        assert not real, f"the protocol-track model was trained on real faces: {real}"
    else:
        assert real, "the mixed-track model should include real faces"


def test_default_model_is_the_shipped_one_with_the_lower_validation_nme() -> None:
    recorded = {t: load_checkpoint(shipped_model_path(t))["val_nme"] for t in TRACKS}
    assert DEFAULT_TRACK == min(recorded, key=recorded.get)
    assert default_model_path() == shipped_model_path(DEFAULT_TRACK)


def test_sample_face_prediction_is_a_face() -> None:
    pts = Predictor().predict(SAMPLE)
    assert pts.shape == (68, 2) and np.isfinite(pts).all()
    # a plausible face: the box of the points fills a sensible part of the 384 px crop, eyes above the mouth
    w, h = np.ptp(pts, axis=0)
    assert 100 < max(w, h) < 330
    assert pts[36:48, 1].mean() < pts[48:68, 1].mean()


@pytest.mark.parametrize("track", TRACKS)
def test_validation_nme_matches_the_recorded_figure(track: str) -> None:
    """Evaluating each shipped model on the 199 validation crops reproduces the NME stored in its checkpoint."""
    val = require_shared("aflw2000/val")
    report = evaluate(track, val, progress=False)
    recorded = load_checkpoint(shipped_model_path(track))["val_nme"]
    assert report.summary["n"] == 199
    assert report.summary["nme_challenge"] == pytest.approx(recorded, abs=0.02)
    json.dumps(report.to_dict())  # serialisable


def test_mirror_equivariance_and_flip_test() -> None:
    """The prediction on a mirrored face, mirrored back and re-ordered by FLIP_PERM, lands near the prediction on
    the face itself; flip-test averaging (which relies on the same permutation) stays close to both."""
    from lightmark.constants import FLIP_PERM
    from lightmark.data.images import read_image

    img = read_image(SAMPLE)
    w = img.shape[1]
    p = Predictor(backend="torch")
    a = p.predict(img)
    b = p.predict(np.ascontiguousarray(img[:, ::-1]))
    b[:, 0] = w - 1 - b[:, 0]
    b = b[list(FLIP_PERM)]
    assert np.linalg.norm(a - b, axis=1).mean() < 15.0  # px on a 384 px crop (no permutation: ~50)
    f = Predictor(backend="torch", flip_test=True).predict(img)
    np.testing.assert_allclose(f, (a + b) / 2, atol=1e-3)
