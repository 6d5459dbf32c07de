"""The landmark network: a backbone (ShuffleNetV2, MobileNet, ResNet) + heatmap or direct-regression head, and its
codec.

The network takes raw RGB pixels (B, 3, S, S) as float in [0, 255]; ``forward`` returns its raw outputs (heatmap
logits (B, K, S/stride, S/stride), or (B, K, 2) coordinates in units of the input side). ``model.codec`` (built
from the config, so it travels with the weights) turns them into landmark coordinates (B, K, 2) in input pixels
(pixel-centre convention: x = 0 is the centre of the first column): ``model.landmarks(x)``. Normalisation happens
inside the model, so its ONNX twin needs nothing but a resize.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import Backbone, Head
from ..codecs import Codec, HeatmapCodec, RegressionCodec
from .config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from .shufflenetv2 import ShuffleNetV2, conv_bn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LandmarkGraph", "LandmarkModel", "ModelConfig", "build_codec"]


def build_codec(config: ModelConfig) -> Codec:
    """The codec a model config describes: Gaussian heatmaps for heatmap heads, plain coordinates otherwise."""
    if config.head is Head.REGRESSION:
        return RegressionCodec(config.input_size)
    return HeatmapCodec(
        config.input_size,
        config.input_size // config.heatmap_stride,
        sigma=config.heatmap_sigma,
        beta=config.beta,
        heatmap_loss=config.heatmap_loss,
        decoder=config.decoder,
    )


class DSBlock(nn.Module):
    """Depthwise-separable 5x5 conv block with a residual connection: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(ch, ch, 5, groups=ch, act=False), conv_bn(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FaceHead(nn.Module):
    """Face / no-face logit from the deepest features: (B, C, h, w) -> (B,) (averaged over the map, then linear).
    Fitted on a trained, frozen model (:func:`lightmark.engine.face_head.fit_face_head`); :meth:`LandmarkModel.outputs`
    gives its probability."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, 1)

    def forward(self, c5: torch.Tensor) -> torch.Tensor:
        return self.fc(c5.mean((2, 3))).squeeze(1)


class HeatmapHead(nn.Module):
    """FPN-style top-down head: multi-scale features -> (B, K, S/stride, S/stride) heatmap logits."""

    def __init__(self, in_channels: tuple[int, int, int, int], num_landmarks: int, ch: int, stride: int = 8) -> None:
        super().__init__()
        levels = 4 if stride == 4 else 3  # stride 8 stops at c3
        self.lateral = nn.ModuleList(conv_bn(c, ch, 1) for c in in_channels[4 - levels :])  # [stem,] c3, c4, c5
        self.smooth = nn.ModuleList(DSBlock(ch) for _ in range(levels - 1))  # at S/16, S/8[, S/4]
        self.refine = DSBlock(ch)
        self.out = nn.Conv2d(ch, num_landmarks, 1)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        feats = feats[4 - len(self.lateral) :]
        p = self.lateral[-1](feats[-1])  # (B, ch, S/32, S/32)
        for i, smooth in enumerate(self.smooth):
            f = feats[-2 - i]
            p = smooth(F.interpolate(p, scale_factor=2.0, mode="nearest") + self.lateral[-2 - i](f))  # S/16, S/8..
        return self.out(self.refine(p))  # (B, K, S/stride, S/stride)


def head_state_to_stride4(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A stride-8 heatmap head's weights in a stride-4 head: its laterals (c3, c4, c5) move up one place, its
    smoothing blocks (S/16, S/8) and output keep theirs, the new stride-4 lateral and smoothing block come from
    ``fresh`` (the new model's own initial state) with the scale and shift of their last batch norm at zero: the
    lateral adds nothing and the block is the identity, so the new head starts as the old one's upsampled output
    (up to the refining block's 5x5 kernel, which now spans half as much of the face). Other keys pass through."""
    out = {}
    for k, v in state.items():
        m = re.match(r"head\.lateral\.(\d+)\.(.*)", k)
        out[f"head.lateral.{int(m[1]) + 1}.{m[2]}" if m else k] = v
    for k, v in fresh.items():
        if k.startswith(("head.lateral.0.", "head.smooth.2.")):
            silent = k.startswith(("head.lateral.0.1.", "head.smooth.2.body.1.1.")) and k.endswith((".weight", ".bias"))
            out[k] = torch.zeros_like(v) if silent else v
    return out


class RegressionHead(nn.Module):
    """PFLD-like head: pooled multi-scale features -> (B, K, 2) coordinates in units of the input side."""

    def __init__(self, in_channels: tuple[int, int, int, int], num_landmarks: int, ch: int) -> None:
        super().__init__()
        self.k = num_landmarks
        self.squeeze = conv_bn(in_channels[3], 4 * ch, 1)
        pooled = in_channels[2] + in_channels[3] + 4 * ch
        self.fc = nn.Sequential(nn.Linear(pooled, 4 * ch), nn.ReLU(inplace=True), nn.Linear(4 * ch, 2 * num_landmarks))

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        _, _, c4, c5 = feats
        z = torch.cat((c4.mean((2, 3)), c5.mean((2, 3)), self.squeeze(c5).mean((2, 3))), dim=1)  # (B, c2 + c3 + 4ch)
        return self.fc(z).view(-1, self.k, 2) + 0.5  # (B, K, 2), 0..1 of the input side


def build_backbone(config: ModelConfig) -> nn.Module:
    """The backbone a config names: ShuffleNetV2, MobileNet or a ResNet of the named depth, at ``width``; each
    returns four feature maps at strides 4, 8, 16 and 32 and lists their widths in ``channels``."""
    if config.backbone is Backbone.SHUFFLENETV2:
        return ShuffleNetV2(config.width)
    if config.backbone is Backbone.MOBILENET:
        from .mobilenet import MobileNet

        return MobileNet(config.width)
    from .resnet import ResNet

    return ResNet(int(config.backbone.removeprefix("resnet")), config.width)


class LandmarkModel(nn.Module):
    """Backbone + head. ``forward(x)`` -> raw outputs; ``landmarks(x)`` -> (B, K, 2) input-pixel coordinates."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        chans = self.backbone.channels
        if config.head is Head.HEATMAP:
            self.head: nn.Module = HeatmapHead(chans, config.num_landmarks, config.head_channels, config.heatmap_stride)
        else:
            self.head = RegressionHead(chans, config.num_landmarks, config.head_channels)
        self.face = FaceHead(chans[3]) if config.face_head else None
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    @property
    def codec(self) -> Codec:
        """The codec of the current config (a decoder changed in ``config`` takes effect at once)."""
        return build_codec(self.config)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x: (B, 3, S, S) RGB float in [0, 255] -> the backbone's four maps (strides 4, 8, 16, 32)."""
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) RGB float in [0, 255] -> raw outputs: heatmap logits (B, K, S/stride, S/stride) or
        (B, K, 2) coordinates in units of the input side (regression head)."""
        return self.head(self.features(x))

    def landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) RGB float in [0, 255] -> (B, K, 2) landmark coordinates in input pixels (decoded)."""
        return self.codec.decode(self.forward(x))

    def landmarks_and_confidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, 3, S, S) -> (B, K, 2) landmarks in input pixels and (B, K) per-point confidence in [0, 1]
        (:meth:`~lightmark.codecs.HeatmapCodec.confidence`; None for a regression head)."""
        points, conf, _ = self.outputs(x)
        return points, conf

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """x: (B, 3, S, S) -> :meth:`landmarks_and_confidence` and the (B,) probability that the input is a face,
        from the face head (None without one)."""
        feats = self.features(x)
        raw = self.head(feats)
        codec = self.codec
        return codec.decode(raw), codec.confidence(raw), self.face_probability(feats)

    def face_probability(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """The backbone's maps (:meth:`features`) -> (B,) P(face) from the face head (None without one)."""
        return None if self.face is None else torch.sigmoid(self.face(feats[-1]))


class LandmarkGraph(nn.Module):
    """Pixels in, landmarks out: the graph that ONNX export traces (``model.landmarks`` as a module)."""

    def __init__(self, model: LandmarkModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """x: (B, 3, S, S) RGB float in [0, 255] -> (B, K, 2) input pixels, the (B, K) confidence when the head
        has one, and the (B,) face probability when the model has a face head."""
        points, confidence, face = self.model.outputs(x)
        if confidence is None:
            return points
        return (points, confidence) if face is None else (points, confidence, face)
