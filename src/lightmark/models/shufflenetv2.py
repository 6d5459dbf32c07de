"""ShuffleNetV2 backbone (Ma et al., 2018), written for landmark heads: returns multi-scale features.

Shapes for a (B, 3, S, S) input (S divisible by 32), widths c = STAGE_WIDTHS[width]:
    stem  (B, 24,   S/4,  S/4)   conv 3x3 s2 + maxpool s2
    c3    (B, c[1], S/8,  S/8)   stage 2
    c4    (B, c[2], S/16, S/16)  stage 3
    c5    (B, c[3], S/32, S/32)  stage 4

Channel shuffle. Each unit ends by concatenating its two branches (B, n, H, W) + (B, n, H, W) and shuffling
the channels with 2 groups: output channel ``2j`` is channel ``j`` of the first branch, ``2j + 1`` channel ``j`` of
the second (:func:`shuffle_cat`). In eager mode this is one interleaving copy (``stack`` + ``flatten``); in a
traced graph (ONNX export) it is a ``Concat`` and one ``Gather`` with a constant channel order, so the exported
graph does no shape arithmetic on the dynamic batch axis (reading ``x.shape`` there costs ~3 nodes per value).
Both are the same permutation of the same values: the outputs are bit-identical.

Zero padding for ONNX Runtime (:func:`pad_stage`, applied by the ONNX export to its own copy of the model). ONNX
Runtime runs convolutions fastest in its blocked channel layout (NCHWc), which it cannot use for branches of 58
channels (stage 2 at width 1.0): there they run 2-5x slower per MAC. Padding those branches with channels whose
weights and batch-norm parameters are zero (so they stay exactly 0 through every ReLU) and giving the consumers
zero weights for them changes no output: the landmarks are the same within float rounding.
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
    """(B, C, H, W) -> (B, C, H, W) with the channels of ``groups`` groups interleaved: output channel
    ``g' * groups + g`` is input channel ``g * C / groups + g'`` (the reference formulation; units use
    :func:`shuffle_cat`)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def shuffle_order(channels: int, groups: int = 2) -> torch.Tensor:
    """The int64 channel order of :func:`channel_shuffle` on ``channels`` channels: output ``i`` takes input
    ``order[i]``."""
    return torch.arange(channels).view(groups, channels // groups).t().reshape(-1)


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def shuffle_cat(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """``channel_shuffle(torch.cat((a, b), 1), 2)`` for two (B, n, H, W) tensors, ``n`` given by the module
    (a traced graph reads no shape; see the module docstring): (B, 2n, H, W)."""
    if _tracing():
        return torch.cat((a, b), 1).index_select(1, shuffle_order(2 * n).to(a.device))
    return torch.stack((a, b), 2).flatten(1, 2)


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit: channel split (stride 1) or two-branch downsampling (stride 2)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch = cout // 2
        self.branch_channels = branch  # channels of each branch; a stride-1 unit splits its input at this index
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
        self.padded_channels = branch  # > branch_channels once zero-padded by pad_stage (export copies only)
        self.padded_order: torch.Tensor | None = None  # the padded form's output channel order (pad_stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padded_order is not None:  # zero-padded form (pad_stage): branches of padded_channels
            n, p = self.branch_channels, self.padded_channels
            a, b = (x[:, :n], self.branch2(x[:, n : n + p])) if self.stride == 1 else (self.branch1(x), self.branch2(x))
            return torch.cat((a, b), 1).index_select(1, self.padded_order.to(x.device))
        if self.stride == 1:
            n = self.branch_channels  # a constant slice (x.chunk would read x.shape in a traced graph)
            return shuffle_cat(x[:, :n], self.branch2(x[:, n:]), n)
        return shuffle_cat(self.branch1(x), self.branch2(x), self.branch_channels)


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


def _padded_conv(conv: nn.Conv2d, cin: int, cout: int) -> nn.Conv2d:
    """``conv`` with ``cin`` inputs and ``cout`` outputs (>= its own), the new weights zero; a depthwise conv stays
    depthwise (``cin == cout`` groups)."""
    depthwise = conv.groups > 1
    if depthwise and (conv.groups != conv.in_channels or cin != cout):
        raise ValueError("only plain and depthwise convolutions can be padded")
    new = nn.Conv2d(cin, cout, conv.kernel_size, conv.stride, conv.padding, groups=cin if depthwise else 1, bias=False)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[: conv.out_channels, : conv.weight.shape[1]] = conv.weight
    return new.to(conv.weight)


def _padded_bn(bn: nn.BatchNorm2d, c: int) -> nn.BatchNorm2d:
    """``bn`` over ``c`` channels (eval mode), the new ones mapping everything to exactly 0."""
    new = nn.BatchNorm2d(c, eps=bn.eps).eval()
    with torch.no_grad():
        new.weight.zero_()
        new.bias.zero_()
        new.running_mean.zero_()
        new.running_var.fill_(1.0)
        k = bn.num_features
        new.weight[:k], new.bias[:k] = bn.weight, bn.bias
        new.running_mean[:k], new.running_var[:k] = bn.running_mean, bn.running_var
    return new.to(bn.weight)


def _pad_conv_bn(block: nn.Sequential, cin: int, cout: int) -> None:
    block[0] = _padded_conv(block[0], cin, cout)
    block[1] = _padded_bn(block[1], cout)


def widen_input(conv: nn.Conv2d, cin: int) -> nn.Conv2d:
    """A plain conv taking ``cin`` input channels (the first ones its own, the others weighted 0): the consumer of a
    padded stage's output (:func:`pad_stage`)."""
    return _padded_conv(conv, cin, conv.out_channels)


def pad_stage(backbone: ShuffleNetV2, stage: int, multiple: int = 8) -> int:
    """Zero-pad the branches of ``backbone``'s stage ``stage`` (2, 3 or 4) to a multiple of ``multiple`` channels,
    in place, in eval mode (for an export copy: the padded form does not train). The stage's output then has
    ``2 * padded`` channels: its usual ones first, zeros after; the next stage's first unit is widened to take
    them. A consumer outside the backbone (a head reading that stage's features) must be widened by the caller
    (:func:`widen_input`).

    Returns:
        the stage's padded output width (its plain width when nothing needed padding).
    """
    units = getattr(backbone, f"stage{stage}")
    n = units[0].branch_channels
    p = -(-n // multiple) * multiple
    if p == n:
        return 2 * n
    backbone.eval()
    for u in units:
        if u.stride == 2:
            _pad_conv_bn(u.branch1[1], u.branch1[1][0].in_channels, p)
            _pad_conv_bn(u.branch2[0], u.branch2[0][0].in_channels, p)
            pad_idx = n  # a zero channel of branch1's output
            second = p  # where branch2 starts in cat(branch1, branch2)
        else:
            _pad_conv_bn(u.branch2[0], p, p)
            pad_idx = 2 * n  # a zero channel of branch2's output, after the n passed-through channels
            second = n
        _pad_conv_bn(u.branch2[1], p, p)
        _pad_conv_bn(u.branch2[2], p, p)
        order = [c for j in range(n) for c in (j, second + j)] + [pad_idx] * (2 * p - 2 * n)
        u.padded_channels, u.padded_order = p, torch.tensor(order, dtype=torch.long)
    if stage < 4:
        nxt = getattr(backbone, f"stage{stage + 1}")[0]
        _pad_conv_bn(nxt.branch1[0], 2 * p, 2 * p)  # depthwise over the padded channels
        nxt.branch1[1][0] = widen_input(nxt.branch1[1][0], 2 * p)
        nxt.branch2[0][0] = widen_input(nxt.branch2[0][0], 2 * p)
    return 2 * p
