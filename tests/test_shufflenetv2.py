"""The ShuffleNetV2 backbone's channel shuffle: the eager and the traced (ONNX) formulations are the same
permutation as the reference ``channel_shuffle(cat)``, so the trained weights keep their meaning bit for bit."""

from __future__ import annotations

import pytest
import torch

import lightmark.models.shufflenetv2 as sn
from lightmark.models import create_model, load_model, shipped_model_path


def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
    """The original unit: chunk, concatenate, then channel_shuffle (reads x.shape)."""
    if self.stride == 1:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch2(x2)), dim=1)
    else:
        out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
    return sn.channel_shuffle(out, 2)


@pytest.mark.parametrize("n", [1, 3, 58])
def test_shuffle_order_and_both_shuffle_cat_paths_match_channel_shuffle(monkeypatch, n):
    torch.manual_seed(n)
    a, b = torch.randn(2, n, 3, 5), torch.randn(2, n, 3, 5)
    ref = sn.channel_shuffle(torch.cat((a, b), 1), 2)
    assert torch.equal(sn.shuffle_cat(a, b, n), ref)  # eager: stack + flatten
    monkeypatch.setattr(sn, "_tracing", lambda: True)
    assert torch.equal(sn.shuffle_cat(a, b, n), ref)  # traced: cat + index_select of a constant order
    c = torch.arange(2 * n, dtype=torch.float32).view(1, 2 * n, 1, 1)
    assert torch.equal(sn.channel_shuffle(c, 2).flatten().long(), sn.shuffle_order(2 * n))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_shuffle_cat_is_what_jit_trace_records():
    """Under tracing the unit takes the Gather path (no shape reads), and the trace computes the same thing, on
    another batch size too."""
    unit = sn.InvertedResidual(24, 24, 1).eval()
    with torch.no_grad():
        traced = torch.jit.trace(unit, torch.randn(1, 24, 8, 8))
        graph = str(traced.graph)
        assert "index_select" in graph and "aten::size" not in graph
        x = torch.randn(3, 24, 8, 8)
        assert torch.equal(traced(x), unit(x))


@pytest.mark.parametrize("width", [0.5, 1.0])
def test_backbone_equals_the_reference_formulation(monkeypatch, width):
    torch.manual_seed(0)
    model = create_model(f"shufflenetv2_x{str(width).replace('.', '_')}_heatmap", input_size=64).eval()
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        new = model.backbone(x)
        monkeypatch.setattr(sn.InvertedResidual, "forward", _reference_forward)
        old = model.backbone(x)
    assert all(torch.equal(a, b) for a, b in zip(new, old, strict=True))


@pytest.mark.parametrize("track", ["protocol", "mixed"])
def test_shipped_weights_give_the_same_landmarks(monkeypatch, track):
    path = shipped_model_path(track)
    assert path.is_file()  # tracked in the repository: never a reason to skip
    model = load_model(path).eval()
    x = torch.rand(3, 3, model.config.input_size, model.config.input_size) * 255
    with torch.no_grad():
        new = model.landmarks(x)
        monkeypatch.setattr(sn.InvertedResidual, "forward", _reference_forward)
        old = model.landmarks(x)
    assert (new - old).abs().max().item() < 1e-5


@pytest.mark.parametrize("width", [1.0, 2.0])
def test_pad_stage_changes_no_output(width):
    """Stage 2's 58 (x1.0) / 122 (x2.0) channel branches padded to a multiple of 8 with zero weights: the features
    keep their values, the padded channels stay exactly 0, and the next stage reads the same result."""
    torch.manual_seed(0)
    backbone = sn.ShuffleNetV2(width).eval()
    for mod in backbone.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
            mod.bias.data.uniform_(-1, 1)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x)
        n = backbone.stage2[0].branch_channels
        width_out = sn.pad_stage(backbone, 2)
        out = backbone(x)
    assert width_out == 2 * (-(-n // 8) * 8) and width_out % 8 == 0 and n % 8 != 0
    stem, c3, c4, c5 = out
    assert c3.shape[1] == width_out and torch.equal(c3[:, : 2 * n], ref[1])  # c3: the same values first
    assert torch.count_nonzero(c3[:, 2 * n :]) == 0  # then exact zeros
    assert torch.equal(stem, ref[0]) and torch.allclose(c4, ref[2], atol=1e-5) and torch.allclose(c5, ref[3], atol=1e-5)
    assert sn.pad_stage(backbone, 4) == 2 * backbone.stage4[0].branch_channels  # already a multiple of 8: nothing


def test_pad_stage_of_an_aligned_stage_is_a_no_op():
    backbone = sn.ShuffleNetV2(0.5).eval()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    assert sn.pad_stage(backbone, 2) == 48
    assert all(torch.equal(v, before[k]) for k, v in backbone.state_dict().items())
