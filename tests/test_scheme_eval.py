"""Scoring a model of one landmark scheme on labels of another (evaluate(scheme=), train --val-scheme)."""

from __future__ import annotations

import numpy as np
import pytest

from lightmark.data.formats import load_dataset
from lightmark.engine.evaluate import in_scheme
from lightmark.errors import ConfigError
from lightmark.schemes import get_scheme


def test_in_scheme_maps_98_points_to_68() -> None:
    pts = np.random.default_rng(0).random((3, 98, 2))
    out = in_scheme(pts, "wflw98", "ibug68")
    np.testing.assert_array_equal(out, pts[:, list(get_scheme("wflw98").to_ibug68)])
    np.testing.assert_array_equal(in_scheme(pts[:, :68], "ibug68", "ibug68_2d"), pts[:, :68])  # same 68 order
    with pytest.raises(ConfigError, match="no map"):
        in_scheme(pts[:, :68], "ibug68", "wflw98")


def test_a_wflw98_model_is_scored_on_68_point_labels(tmp_path) -> None:
    """evaluate(scheme="ibug68") of a 98-point model on a 68-point set: its 68-point subset is scored; loading the
    same set in the model's own scheme finds no 98-point labels."""
    torch = pytest.importorskip("torch")
    import cv2

    from lightmark.data.formats import write_pts
    from lightmark.engine.evaluate import evaluate
    from lightmark.errors import LightmarkError
    from lightmark.models import create_model

    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
        write_pts(tmp_path / f"f{i}.pts", 30 + 60 * rng.random((68, 2)))
    torch.manual_seed(0)
    model = create_model("shufflenetv2_x0_5_heatmap", scheme="wflw98").eval()
    report = evaluate(model, tmp_path, scheme="ibug68", progress=False)
    assert report.predictions.landmarks.shape == (3, 68, 2) and np.isfinite(report.summary["nme_challenge"])
    from lightmark.engine.predict import Predictor
    from lightmark.metrics import nme

    own = Predictor(model, backend="torch", framing="whole").predict_dataset(load_dataset(tmp_path), progress=False)
    subset = own.landmarks[:, list(get_scheme("wflw98").to_ibug68)]  # the 98 points' map to the 68
    np.testing.assert_allclose(report.predictions.landmarks, subset, atol=1e-4)
    truth = np.stack([s.landmarks for s in load_dataset(tmp_path).samples])
    assert report.summary["nme_challenge"] == pytest.approx(float(nme(subset, truth, 128.0).mean()), rel=1e-5)
    with pytest.raises(LightmarkError, match="--scheme ibug68"):  # the error says how to score it
        evaluate(model, tmp_path, progress=False)


def test_a_missing_label_set_names_its_files(tmp_path) -> None:
    """A FaceSynthetics-layout folder without a scheme's label files says which files it looked for."""
    import cv2

    from lightmark.data.formats import load_dataset, write_ldmks
    from lightmark.errors import DatasetError

    cv2.imwrite(str(tmp_path / "000000.png"), np.zeros((64, 64, 3), np.uint8))
    write_ldmks(tmp_path / "000000_ldmks.txt", np.full((68, 2), 30.0), np.full((2, 2), 30.0))
    assert load_dataset(tmp_path, require_landmarks=True).has_landmarks
    with pytest.raises(DatasetError, match="scheme 'wflw98'.*NNNNNN_ldmks_wflw98.txt"):
        load_dataset(tmp_path, require_landmarks=True, scheme="wflw98")
