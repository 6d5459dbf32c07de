"""The MobileNetV1-style backbone: few, wide layers for a faster CPU pass (issue 13's architecture table)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lightmark.models import MAX_MODEL_MB, create_model, model_summary  # noqa: E402
from lightmark.models.mobilenet import MOBILENET_REPEATS, MobileNet  # noqa: E402


@pytest.mark.parametrize(("width", "c5"), [(1.0, 512), (0.5, 256)])
def test_mobilenet_feature_shapes(width: float, c5: int) -> None:
    net = MobileNet(width).eval()
    with torch.no_grad():
        feats = net(torch.zeros(2, 3, 128, 128))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]  # strides 4, 8, 16, 32
    assert [f.shape[1] for f in feats] == list(net.channels) and net.channels[-1] == c5


@pytest.mark.parametrize("overrides", [{"heatmap_stride": 4}, {"head": "regression"}, {"width": 0.5, "input_size": 96}])
def test_mobilenet_with_every_head(overrides: dict, tmp_path) -> None:
    """Both heads read it (the stride-4 heatmap reads its S/4 map), and its config travels with its weights."""
    from lightmark.models import load_model, save_checkpoint

    model = create_model("mobilenet_x1_0_heatmap", **overrides).eval()
    size, k = model.config.input_size, model.config.num_landmarks
    x = torch.rand(2, 3, size, size) * 255
    with torch.no_grad():
        raw, pts = model(x), model.landmarks(x)
    assert pts.shape == (2, k, 2)
    if model.config.head == "heatmap":
        assert raw.shape[-1] == size // model.config.heatmap_stride
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config == model.config and loaded.config.backbone == "mobilenet"
    with torch.no_grad():
        assert torch.equal(loaded.landmarks(x), pts)


def test_mobilenet_is_few_layers() -> None:
    """The point of the backbone: one stem conv and two convs per block, 19 in all, against ShuffleNetV2's 55."""
    convs = [m for m in MobileNet().modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 * sum(MOBILENET_REPEATS) == 19
    shuffle = create_model("shufflenetv2_x1_0_heatmap").backbone
    assert len([m for m in shuffle.modules() if isinstance(m, torch.nn.Conv2d)]) > 2 * len(convs)


def test_mobilenet_heatmap_entry() -> None:
    """The registry entry: under the size limit, heatmap head with confidence, about ShuffleNetV2 x1.0's size."""
    model = create_model("mobilenet_x1_0_heatmap").eval()
    s, ref = model_summary(model), model_summary(create_model("shufflenetv2_x1_0_heatmap"))
    assert s["size_mb"] <= MAX_MODEL_MB and 0.7 < s["params"] / ref["params"] < 1.1
    with torch.no_grad():
        pts, conf = model.landmarks_and_confidence(torch.rand(1, 3, 128, 128) * 255)
    k = model.config.num_landmarks
    assert pts.shape == (1, k, 2) and conf.shape == (1, k)


def test_mobilenet_exports_to_onnx_with_the_same_points() -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from lightmark import Predictor
    from lightmark.engine.export import onnx_bytes

    model = create_model("mobilenet_x1_0_heatmap").eval()
    onnx_pred = Predictor(model, onnx=onnx_bytes(model), threads=1, refine=0, framing="whole")
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        ref = model.landmarks(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(onnx_pred.run_model(x), ref, atol=1e-3)
