"""A MobileNetV1-style backbone (Howard et al., 2017): few, wide depthwise-separable layers, for speed on a CPU.

Why it exists: on one CPU thread a small network's time is set by its number of layers as much as by its MACs.
ShuffleNetV2 x1.0's backbone runs 55 convolutions plus a split, a concat and a channel gather per unit; this stack
runs 19 convolutions and nothing else (29 and 65 with the heatmap head). With the heatmap head it has about the
same parameters and MACs as ShuffleNetV2 x1.0's heatmap model and runs ``predict(box=)`` markedly faster (the
figures: the architecture table of docs/speed.md, ``python scripts/arch_table.py``). The depthwise kernels are 5x5: they
cost no measurable time over 3x3 and widen the receptive field of so shallow a stack.

Shapes for a (B, 3, S, S) input (S divisible by 32), widths c = ``width`` x MOBILENET_WIDTHS:
    stem  (B, 16,   S/2,  S/2)   conv 3x3 s2
    c2    (B, c[0], S/4,  S/4)   1 block
    c3    (B, c[1], S/8,  S/8)   2 blocks
    c4    (B, c[2], S/16, S/16)  4 blocks
    c5    (B, c[3], S/32, S/32)  2 blocks
Each block is a depthwise 5x5 conv (the first of a stage with stride 2) and a pointwise 1x1 conv, each followed by
batch norm and ReLU; the other blocks of a stage add their input back (an identity shortcut, as in ResNet). The
four maps play the part of ShuffleNetV2's (stem, c3, c4, c5), so both heads read it.
"""

from __future__ import annotations

import torch
from torch import nn

from .resnet import scaled_widths
from .shufflenetv2 import conv_bn

MOBILENET_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)
MOBILENET_REPEATS: tuple[int, int, int, int] = (1, 2, 4, 2)
STEM_CHANNELS = 16
DEPTHWISE_KERNEL = 5


def separable(cin: int, cout: int, stride: int, k: int = DEPTHWISE_KERNEL) -> nn.Sequential:
    """Depthwise k x k conv (``stride``) + pointwise 1x1 conv, each with batch norm and ReLU:
    (B, cin, H, W) -> (B, cout, H / stride, W / stride)."""
    return nn.Sequential(conv_bn(cin, cin, k, stride, groups=cin), conv_bn(cin, cout, 1))


class ResidualSeparable(nn.Module):
    """:func:`separable` at stride 1 with an identity shortcut, ReLU after the sum (the pointwise conv's own ReLU
    moved there): (B, C, H, W) -> (B, C, H, W). The shortcut is one ``Add`` node per block, and no measurable
    time: the untrained stack timed through ``predict(box=)`` took 1.81 ms with shortcuts, 1.85 without."""

    def __init__(self, ch: int, k: int = DEPTHWISE_KERNEL) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(ch, ch, k, groups=ch), conv_bn(ch, ch, 1, act=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class MobileNet(nn.Module):
    """Backbone returning (c2, c3, c4, c5) feature maps; see the module docstring for shapes."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.channels = scaled_widths(MOBILENET_WIDTHS, width, "MobileNet")
        self.stem = conv_bn(3, STEM_CHANNELS, 3, 2)
        stages, cin = [], STEM_CHANNELS
        for cout, n in zip(self.channels, MOBILENET_REPEATS, strict=True):
            stages.append(nn.Sequential(separable(cin, cout, 2), *(ResidualSeparable(cout) for _ in range(n - 1))))
            cin = cout
        self.stage1, self.stage2, self.stage3, self.stage4 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c2 = self.stage1(self.stem(x))  # (B, c0, S/4, S/4)
        c3 = self.stage2(c2)  # (B, c1, S/8, S/8)
        c4 = self.stage3(c3)  # (B, c2, S/16, S/16)
        c5 = self.stage4(c4)  # (B, c3, S/32, S/32)
        return c2, c3, c4, c5
