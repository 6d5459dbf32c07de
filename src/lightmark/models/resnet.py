"""ResNet backbones (He et al., 2016) for landmark heads, written here (no torchvision): the seed recipe's
"ResNet with direct regression and wing loss" as a registry entry beside the ShuffleNetV2 models.

Shapes for a (B, 3, S, S) input (S divisible by 32), stage widths c = ``width`` x RESNET_WIDTHS[depth] (BasicBlock
for 18 and 34, Bottleneck x4 for 50; ``width`` 0.5 halves every layer, which brings ResNet-18 from 47 MB to 12 MB):
    c2    (B, c[0], S/4,  S/4)   conv 7x7 s2 + maxpool s2 + layer1
    c3    (B, c[1], S/8,  S/8)   layer2
    c4    (B, c[2], S/16, S/16)  layer3
    c5    (B, c[3], S/32, S/32)  layer4
The four maps play the part of ShuffleNetV2's (stem, c3, c4, c5), so both heads read either backbone.
"""

from __future__ import annotations

import torch
from torch import nn

RESNET_BLOCKS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
RESNET_WIDTHS: dict[int, tuple[int, int, int, int]] = {
    18: (64, 128, 256, 512),
    34: (64, 128, 256, 512),
    50: (256, 512, 1024, 2048),
}


def _conv_bn(cin: int, cout: int, k: int, s: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def scaled_widths(widths: tuple[int, ...], width: float, name: str = "ResNet") -> tuple[int, ...]:
    """``widths`` times the multiplier ``width`` (in (0, 2], else ValueError naming the backbone ``name``), each
    rounded to a multiple of 8 (at least 8): ONNX Runtime's blocked layout wants multiples of 8."""
    if not 0 < width <= 2:
        raise ValueError(f"{name} width must be in (0, 2], got {width}")
    return tuple(max(8, round(c * width / 8) * 8) for c in widths)


class _Block(nn.Module):
    """A residual block: ``basic`` (3x3, 3x3) or ``bottleneck`` (1x1, 3x3, 1x1 with 4x expansion); stride on the
    3x3 (ResNet v1.5), a 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, kind: str, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if kind == "basic":
            self.body = nn.Sequential(_conv_bn(cin, cout, 3, stride), _conv_bn(cout, cout, 3, act=False))
        else:
            mid = cout // 4
            self.body = nn.Sequential(
                _conv_bn(cin, mid, 1), _conv_bn(mid, mid, 3, stride), _conv_bn(mid, cout, 1, act=False)
            )
        self.short = nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class ResNet(nn.Module):
    """Backbone returning (c2, c3, c4, c5) feature maps; see the module docstring for shapes."""

    def __init__(self, depth: int = 18, width: float = 1.0) -> None:
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
        kind, repeats = RESNET_BLOCKS[depth]
        self.channels = scaled_widths(RESNET_WIDTHS[depth], width)
        (stem,) = scaled_widths((64,), width)
        self.stem = nn.Sequential(_conv_bn(3, stem, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], stem
        for i, (cout, n) in enumerate(zip(self.channels, repeats, strict=True)):
            first = _Block(kind, cin, cout, 1 if i == 0 else 2)
            stages.append(nn.Sequential(first, *(_Block(kind, cout, cout, 1) for _ in range(n - 1))))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c2 = self.layer1(self.stem(x))  # (B, c0, S/4, S/4)
        c3 = self.layer2(c2)  # (B, c1, S/8, S/8)
        c4 = self.layer3(c3)  # (B, c2, S/16, S/16)
        c5 = self.layer4(c4)  # (B, c3, S/32, S/32)
        return c2, c3, c4, c5
