"""ShuffleNetV2 backbone (Ma et al., 2018), written for landmark heads: returns multi-scale features.

Shapes for a (B, 3, S, S) input (S divisible by 32), widths c = STAGE_WIDTHS[width]:
    stem  (B, 24,   S/4,  S/4)   conv 3x3 s2 + maxpool s2
    c3    (B, c[1], S/8,  S/8)   stage 2
    c4    (B, c[2], S/16, S/16)  stage 3
    c5    (B, c[3], S/32, S/32)  stage 4
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_WIDTHS: dict[float, tuple[int, int, int, int]] = {
    0.5: (24, 48, 96, 192),
    1.0: (24, 116, 232, 464),
    1.5: (24, 176, 352, 704),
    2.0: (24, 244, 488, 976),
}
STAGE_REPEATS: tuple[int, int, int] = (4, 8, 4)


def conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit: channel split (stride 1) or two-branch downsampling (stride 2)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch = cout // 2
        if stride == 2:
            self.branch1 = nn.Sequential(
                conv_bn(cin, cin, 3, 2, groups=cin, act=False),
                conv_bn(cin, branch, 1),
            )
            b2_in = cin
        else:
            assert cin == cout, "stride-1 units keep the width"
            self.branch1 = nn.Identity()
            b2_in = branch
        self.branch2 = nn.Sequential(
            conv_bn(b2_in, branch, 1),
            conv_bn(branch, branch, 3, stride, groups=branch, act=False),
            conv_bn(branch, branch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """Backbone returning (stem, c3, c4, c5) feature maps; see the module docstring for shapes."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if width not in STAGE_WIDTHS:
            raise ValueError(f"ShuffleNetV2 width must be one of {sorted(STAGE_WIDTHS)}, got {width}")
        c = STAGE_WIDTHS[width]
        self.channels = c
        self.stem = nn.Sequential(conv_bn(3, c[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        stages = []
        cin = c[0]
        for cout, n in zip(c[1:], STAGE_REPEATS, strict=True):
            units = [InvertedResidual(cin, cout, 2)] + [InvertedResidual(cout, cout, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*units))
            cin = cout
        self.stage2, self.stage3, self.stage4 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.stem(x)  # (B, c0, S/4, S/4)
        c3 = self.stage2(s)  # (B, c1, S/8, S/8)
        c4 = self.stage3(c3)  # (B, c2, S/16, S/16)
        c5 = self.stage4(c4)  # (B, c3, S/32, S/32)
        return s, c3, c4, c5
