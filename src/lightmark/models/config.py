"""The model configuration (:class:`ModelConfig`), importable without torch.

Inference with ONNX Runtime needs the config (input size, crop framing, flip permutation...) but not the torch
network: the shipped ``.onnx`` files carry it in their metadata (``lightmark.config``), and this module rebuilds it
with nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..constants import CROP_SHIFT_UP, CROP_SIDE_RATIO, FLIP_PERM, NUM_LANDMARKS

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

HEADS: tuple[str, ...] = ("heatmap", "regression")
DECODER_NAMES: tuple[str, ...] = ("soft_argmax", "argmax", "dark")
"""Heatmap decoders (:data:`lightmark.codecs.DECODERS`, which imports torch; a test keeps the two equal)."""
HEATMAP_LOSS_NAMES: tuple[str, ...] = ("heatmap_kl", "heatmap_mse", "adaptive_wing")
"""Heatmap losses (the keys of :data:`lightmark.losses.HEATMAP_LOSSES`, which imports torch; a test keeps the two
equal)."""


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved inside every checkpoint and every exported ONNX graph."""

    name: str
    width: float = 1.0  # ShuffleNetV2 width multiplier (0.5, 1.0, 1.5, 2.0)
    head: str = "heatmap"  # "heatmap" (soft-argmax decoding) or "regression" (PFLD-like)
    input_size: int = 128  # square input side in pixels, multiple of 32
    num_landmarks: int = NUM_LANDMARKS
    head_channels: int = 96  # FPN width of the heatmap head / hidden width of the regression head
    heatmap_stride: int = 8  # 4 or 8: heatmap side = input_size / heatmap_stride
    beta: float = 1.0  # soft-argmax inverse temperature
    heatmap_sigma: float = 1.5  # target Gaussian of the heatmap loss, in heatmap cells
    heatmap_loss: str = "heatmap_kl"  # a name in lightmark.losses.HEATMAP_LOSSES
    decoder: str = "soft_argmax"  # heatmap decoding at inference: soft_argmax | argmax | dark (lightmark.codecs)
    refine_passes: int = 0  # default extra passes at inference, each on the upright crop of the last points
    fine_ratio: float = CROP_SIDE_RATIO  # the refining crop: side / upright landmark box (trained framing)
    fine_shift_up: float = CROP_SHIFT_UP  # the refining crop's centre above the box centre, fraction of the side
    mean: tuple[float, float, float] = IMAGENET_MEAN  # RGB, 0-255 scale
    std: tuple[float, float, float] = IMAGENET_STD
    flip_perm: tuple[int, ...] = field(default_factory=lambda: FLIP_PERM)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be 'heatmap' or 'regression', got {self.head!r}")
        if self.heatmap_stride not in (4, 8):
            raise ValueError(f"heatmap_stride must be 4 or 8, got {self.heatmap_stride}")
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        if self.input_size <= 0:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if self.head == "heatmap":  # what the heatmap codec (lightmark.codecs.HeatmapCodec) would refuse
            if not self.heatmap_sigma > 0 or not self.beta > 0:
                raise ValueError(f"sigma and beta must be positive, got {self.heatmap_sigma}, {self.beta}")
            if self.decoder not in DECODER_NAMES:
                raise ValueError(f"unknown decoder {self.decoder!r}; known: {', '.join(DECODER_NAMES)}")
            if self.heatmap_loss not in HEATMAP_LOSS_NAMES:
                known = ", ".join(HEATMAP_LOSS_NAMES)
                raise ValueError(f"unknown heatmap loss {self.heatmap_loss!r}; known: {known}")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.flip_perm = tuple(int(v) for v in self.flip_perm)

    def to_dict(self) -> dict:
        """Plain-data form stored in checkpoints (``ModelConfig(**d)`` rebuilds it)."""
        return asdict(self)
