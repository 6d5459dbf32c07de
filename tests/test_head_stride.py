"""A stride-4 heatmap head started from a stride-8 one (head_state_to_stride4, train --heatmap-stride 4 --init)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from lightmark.engine.train import TrainConfig, _build_model  # noqa: E402
from lightmark.errors import ConfigError  # noqa: E402
from lightmark.models import create_model, save_checkpoint  # noqa: E402
from lightmark.models.landmark_model import head_state_to_stride4  # noqa: E402

NAME = "shufflenetv2_x0_5_heatmap"


def _silence_refine(model: torch.nn.Module) -> None:
    """Make the head's refining block the identity (its last batch norm at zero scale and shift)."""
    bn = model.head.refine.body[1][1]
    bn.weight.data.zero_()
    bn.bias.data.zero_()


def test_the_stride4_head_starts_as_the_stride8_heads_upsampled_output() -> None:
    """With the refining block out of the way, the new head's logits are the old ones repeated 2x2, exactly; with
    it, the decoded points stay within a pixel or so of the old ones."""
    torch.manual_seed(0)
    s8 = create_model(NAME).eval()
    s4 = create_model(NAME, heatmap_stride=4).eval()
    s4.load_state_dict(head_state_to_stride4(s8.state_dict(), s4.state_dict()))  # strict: every key present
    x = torch.rand(2, 3, 128, 128) * 255
    with torch.no_grad():
        p8, p4 = s8.landmarks(x).numpy(), s4.landmarks(x).numpy()
        assert np.abs(p4 - p8).mean() < 2.0  # input pixels of 128; a fresh head is far off (tens of pixels)
        _silence_refine(s8), _silence_refine(s4)
        h8, h4 = s8(x), s4(x)
    assert h8.shape[-1] == 16 and h4.shape[-1] == 32
    np.testing.assert_allclose(h4.numpy(), F.interpolate(h8, scale_factor=2.0, mode="nearest").numpy(), atol=1e-5)


def test_a_fresh_stride4_head_is_not_the_stride8_one() -> None:
    """The check above can fail: without the mapping, the same comparison is far off."""
    torch.manual_seed(0)
    s8 = create_model(NAME).eval()
    s4 = create_model(NAME, heatmap_stride=4).eval()
    _silence_refine(s8), _silence_refine(s4)
    x = torch.rand(2, 3, 128, 128) * 255
    with torch.no_grad():
        gap = (s4(x) - F.interpolate(s8(x), scale_factor=2.0, mode="nearest")).abs().max().item()
    assert gap > 1e-2


def test_train_init_from_a_stride8_checkpoint(tmp_path) -> None:
    """`lightmark train --heatmap-stride 4 --init <stride-8 model>` keeps the backbone's weights; the reverse is
    refused."""
    torch.manual_seed(0)
    s8 = create_model(NAME, input_size=64)
    save_checkpoint(tmp_path / "s8.pt", s8)
    cfg = TrainConfig(train=["x"], model=NAME, input_size=64, heatmap_stride=4, init=str(tmp_path / "s8.pt"))
    s4 = _build_model(cfg, resume=False)
    assert s4.config.heatmap_stride == 4
    for k, v in s8.state_dict().items():
        if k.startswith("backbone."):
            assert torch.equal(s4.state_dict()[k], v), k
    save_checkpoint(tmp_path / "s4.pt", s4)
    back = TrainConfig(train=["x"], model=NAME, input_size=64, heatmap_stride=8, init=str(tmp_path / "s4.pt"))
    with pytest.raises(ConfigError, match="stride-4"):
        _build_model(back, resume=False)
