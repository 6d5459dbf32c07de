"""``count_macs`` (the README's GMACs column) against multiply-accumulates counted by hand on tiny modules, and
against torch's own FLOP counter on every registered model.

Convention: one MAC per multiply of a weight by an input; biases, normalisation, activations, pooling and
resizing cost nothing. A conv output element costs (in_channels / groups) x kh x kw MACs, a linear output
element in_features MACs. ``count_macs(module, s)`` runs the module once on a (1, 3, s, s) input.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightmark.models import create_model, list_models, model_summary
from lightmark.models.info import count_macs


def test_single_conv() -> None:
    # 3 -> 8 channels, 3x3, padding 1, at 10x10: output 8 x 10 x 10 = 800 elements, each 3 x 3 x 3 = 27 MACs.
    assert count_macs(nn.Conv2d(3, 8, 3, padding=1), 10) == 800 * 27 == 21_600


def test_bias_costs_nothing() -> None:
    # 1x1 conv 3 -> 5 at 4x4: 5 x 16 = 80 outputs x 3 MACs = 240, with or without a bias.
    assert count_macs(nn.Conv2d(3, 5, 1, bias=True), 4) == count_macs(nn.Conv2d(3, 5, 1, bias=False), 4) == 240


def test_strided_conv_counts_its_output_only() -> None:
    # 3 -> 4, 3x3, stride 2, no padding, at 9x9: output side (9 - 3) // 2 + 1 = 4, so 4 x 4 x 4 = 64 outputs x 27.
    assert count_macs(nn.Conv2d(3, 4, 3, stride=2), 9) == 64 * 27 == 1_728


def test_rectangular_and_dilated_kernels() -> None:
    # 3 -> 2, 1x3 kernel, padding (0, 1), at 5x5: 2 x 25 = 50 outputs x (3 x 1 x 3 = 9) = 450.
    assert count_macs(nn.Conv2d(3, 2, (1, 3), padding=(0, 1)), 5) == 450
    # 3 -> 1, 3x3 dilated by 2 (5x5 span), no padding, at 7x7: 3 x 3 = 9 outputs x 27 = 243 (dilation is free).
    assert count_macs(nn.Conv2d(3, 1, 3, dilation=2), 7) == 243


def test_depthwise_and_grouped_convs() -> None:
    # Depthwise 3x3 (groups = channels = 3) at 8x8: 3 x 64 = 192 outputs, each 1 channel x 9 = 9 MACs -> 1_728.
    assert count_macs(nn.Conv2d(3, 3, 3, padding=1, groups=3), 8) == 1_728
    # Depthwise multiplier 2 (3 -> 6, groups 3): 6 x 64 = 384 outputs x 9 = 3_456.
    assert count_macs(nn.Conv2d(3, 6, 3, padding=1, groups=3), 8) == 3_456
    # Depthwise-separable block at 8x8: 1x1 3 -> 6 (384 x 3 = 1_152), depthwise 5x5 on 6 (384 x 25 = 9_600),
    # grouped 3x3 6 -> 4 in 2 groups (4 x 64 = 256 outputs x 3 channels x 9 = 6_912): 17_664.
    block = nn.Sequential(
        nn.Conv2d(3, 6, 1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 6, 5, padding=2, groups=6),
        nn.Conv2d(6, 4, 3, padding=1, groups=2),
    )
    assert count_macs(block, 8) == 1_152 + 9_600 + 6_912 == 17_664


def test_linear() -> None:
    # Flatten a 3 x 4 x 4 input (48 values), linear to 5: 5 outputs x 48 = 240 (bias free).
    assert count_macs(nn.Sequential(nn.Flatten(), nn.Linear(48, 5)), 4) == 240


def test_small_network() -> None:
    # At 6x6: conv 3 -> 4 3x3 pad 1 (4 x 36 = 144 outputs x 27 = 3_888); BN, ReLU, 2x2 max pool (free) -> 4 x 3 x 3;
    # flatten (36) -> linear 10 (360) -> ReLU -> linear 2 (20); nearest upsampling elsewhere is free.
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Upsample(scale_factor=2.0),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(36, 10),
        nn.ReLU(),
        nn.Linear(10, 2),
    )
    assert count_macs(net, 6) == 3_888 + 360 + 20 == 4_268


class _Twice(nn.Module):
    """One conv applied twice: its MACs count twice (they are executed twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


def test_a_layer_run_twice_counts_twice_and_free_ops_count_nothing() -> None:
    # 1x1 conv 3 -> 3 at 5x5: 75 outputs x 3 = 225 per call.
    assert count_macs(_Twice(), 5) == 2 * 225
    assert count_macs(nn.Sequential(nn.ReLU(), nn.AvgPool2d(2)), 8) == 0


def test_count_is_batch_one_and_restores_the_mode() -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2), nn.Dropout(0.5))
    net.train()
    before = [b.clone() for b in net[1].buffers()]
    assert count_macs(net, 4) == 2 * 16 * 3
    assert net.training  # training mode restored
    assert all(torch.equal(a, b) for a, b in zip(before, net[1].buffers(), strict=True))  # BN stats untouched
    net.eval()
    assert count_macs(net, 4) == 96 and not net.training


@pytest.mark.parametrize("name", list_models())
def test_registered_models_match_torch_flop_counter(name: str) -> None:
    """An independent count: torch's FlopCounterMode (2 FLOPs per MAC for conv and matmul) on the same pass;
    and ``model_summary``'s GMACs is this count in units of 1e9."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(name, input_size=64).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    macs = count_macs(model, 64)
    assert macs * 2 == counter.get_total_flops(), (macs, counter.get_total_flops())
    assert model_summary(model, 64)["gmacs"] == round(macs / 1e9, 4)
    if model.config.head == "heatmap":  # fully convolutional, every stride divides 64: cost grows with the area
        assert count_macs(model, 128) == 4 * macs
