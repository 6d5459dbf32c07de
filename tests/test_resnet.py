"""The ResNet backbones (seed recipe: ResNet + direct regression + wing loss) as registry entries."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lightmark.models import MAX_MODEL_MB, create_model, model_summary  # noqa: E402
from lightmark.models.resnet import ResNet  # noqa: E402


@pytest.mark.parametrize(("depth", "width", "c5"), [(18, 1.0, 512), (18, 0.5, 256), (50, 1.0, 2048)])
def test_resnet_feature_shapes(depth: int, width: float, c5: int) -> None:
    net = ResNet(depth, width).eval()
    with torch.no_grad():
        feats = net(torch.zeros(2, 3, 128, 128))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]  # strides 4, 8, 16, 32
    assert [f.shape[1] for f in feats] == list(net.channels) and net.channels[-1] == c5


def test_resnet_regression_entries() -> None:
    """resnet18_regression fits the 15 MB limit; resnet50_regression is the heavier reference row."""
    small, big = create_model("resnet18_regression").eval(), create_model("resnet50_regression").eval()
    assert model_summary(small)["size_mb"] <= MAX_MODEL_MB < model_summary(big)["size_mb"]
    assert small.config.backbone == "resnet18" and small.config.head == "regression"
    with torch.no_grad():
        pts = small.landmarks(torch.rand(1, 3, 128, 128) * 255)
    assert pts.shape == (1, 68, 2)


def test_configs_without_a_backbone_are_shufflenet() -> None:
    from lightmark.models.config import ModelConfig

    d = create_model("shufflenetv2_x1_0_heatmap").config.to_dict()
    d.pop("backbone")
    assert ModelConfig.from_dict(d).backbone == "shufflenetv2"
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig("x", backbone="vgg")
