"""The model configuration (:class:`ModelConfig`), importable without torch.

Inference with ONNX Runtime needs the config (input size, crop framing, flip permutation...) but not the torch
network: the shipped ``.onnx`` files carry it in their metadata (``lightmark.config``), and this module rebuilds it
with nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

from ..choices import Backbone, Decoder, Head, HeatmapLoss
from ..constants import CROP_SHIFT_UP, CROP_SIDE_RATIO
from ..errors import ConfigError
from ..schemes import DEFAULT_SCHEME, LandmarkScheme, get_scheme

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


TEST_TIME_FIELDS = ("flip_test",)
"""ModelConfig fields that say how a trained model is read by default, not what it is: a fine-tune (``lightmark
train --init``) takes them from the model it starts from, and ``scripts/set_test_defaults.py`` sets them on a
finished checkpoint."""


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved inside every checkpoint and every exported ONNX graph.

    ``scheme`` names the landmark layout (:mod:`lightmark.schemes`); ``num_landmarks`` and ``flip_perm`` are derived
    from it (None = take the scheme's) and kept as fields so that configs saved before schemes existed - which have
    them but no ``scheme`` - load as ``ibug68``, and so that ONNX metadata readers find them. A given value that
    disagrees with the scheme is an error. To change the scheme of a config, reset both:
    ``replace(cfg, scheme="wflw98", num_landmarks=None, flip_perm=None)`` (``model_config`` does it for you).
    """

    name: str
    width: float = 1.0  # width multiplier (ShuffleNetV2: 0.5, 1.0, 1.5, 2.0; MobileNet, ResNet: any in (0, 2])
    backbone: Backbone = Backbone.SHUFFLENETV2  # configs saved before this field are ShuffleNetV2
    head: Head = Head.HEATMAP  # heatmaps (decoded by `decoder`) or direct regression (PFLD-like)
    input_size: int = 128  # square input side in pixels, multiple of 32
    num_landmarks: int | None = None  # the scheme's point count (None: derived; always an int after __init__)
    head_channels: int = 96  # FPN width of the heatmap head / hidden width of the regression head
    heatmap_stride: int = 8  # 4 or 8: heatmap side = input_size / heatmap_stride
    beta: float = 1.0  # soft-argmax inverse temperature
    heatmap_sigma: float = 1.5  # target Gaussian of the heatmap loss, in heatmap cells
    heatmap_loss: HeatmapLoss = HeatmapLoss.KL  # the codec's heatmap term (lightmark.losses.HEATMAP_LOSSES)
    decoder: Decoder = Decoder.SOFT_ARGMAX  # heatmap decoding at inference (lightmark.codecs)
    refine_passes: int = 0  # default extra passes at inference, each on the upright crop of the last points
    flip_test: bool = False  # read each crop mirrored too by default (Predictor's guarded flip test)
    fine_ratio: float = CROP_SIDE_RATIO  # the refining crop: side / upright landmark box (trained framing)
    fine_shift_up: float = CROP_SHIFT_UP  # the refining crop's centre above the box centre, fraction of the side
    fine_head_roll: bool = False  # level refining crops by the head pose's roll (pose.head_roll), not the eye line
    face_head: bool = False  # a face / no-face output, P(face): it scales the face score (heatmap heads only)
    mean: tuple[float, float, float] = IMAGENET_MEAN  # RGB, 0-255 scale
    std: tuple[float, float, float] = IMAGENET_STD
    flip_perm: tuple[int, ...] | None = None  # the scheme's mirror permutation (None: derived)
    scheme: str = DEFAULT_SCHEME  # landmark scheme name (lightmark.schemes); configs without one are ibug68

    def __post_init__(self) -> None:
        self.backbone = Backbone.parse(self.backbone, "backbone")  # ConfigError (a ValueError) listing the names
        self.head = Head.parse(self.head, "head")
        self.decoder = Decoder.parse(self.decoder, "decoder")
        self.heatmap_loss = HeatmapLoss.parse(self.heatmap_loss, "heatmap loss")
        if self.heatmap_stride not in (4, 8):
            raise ValueError(f"heatmap_stride must be 4 or 8, got {self.heatmap_stride}")
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        if self.input_size <= 0:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if self.face_head and self.head is not Head.HEATMAP:
            raise ValueError("face_head needs the heatmap head (it scales the face score, the mean confidence)")
        if self.head is Head.HEATMAP and not (self.heatmap_sigma > 0 and self.beta > 0):  # the codec would refuse
            raise ValueError(f"sigma and beta must be positive, got {self.heatmap_sigma}, {self.beta}")
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self._derive_from_scheme()

    def _derive_from_scheme(self) -> None:
        """Fill ``num_landmarks`` and ``flip_perm`` from the scheme; refuse given values that disagree with it."""
        s = get_scheme(self.scheme)  # ConfigError (a ValueError) listing the known names
        self.scheme = s.name
        if self.num_landmarks is None:
            self.num_landmarks = s.num_points
        elif int(self.num_landmarks) != s.num_points:
            raise ConfigError(
                f"num_landmarks {self.num_landmarks} does not match scheme {s.name!r} ({s.num_points} points)"
            )
        self.num_landmarks = int(self.num_landmarks)
        if self.flip_perm is None:
            self.flip_perm = s.flip_perm
        elif tuple(int(v) for v in self.flip_perm) != s.flip_perm:
            raise ConfigError(f"flip_perm does not match the mirror permutation of scheme {s.name!r}")
        self.flip_perm = s.flip_perm

    @property
    def landmark_scheme(self) -> LandmarkScheme:
        """The :class:`~lightmark.schemes.LandmarkScheme` of :attr:`scheme`."""
        return get_scheme(self.scheme)

    def to_dict(self) -> dict:
        """Plain-data form stored in checkpoints and ONNX metadata, enums as their values (:meth:`from_dict`
        rebuilds it)."""
        return {k: v.value if isinstance(v, Enum) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict`'s form; a dict without ``scheme`` (saved before schemes) is
        ``ibug68``. Same as ``ModelConfig(**data)``, with a clear error for unknown keys.

        Raises:
            ConfigError: unknown keys, or values a config refuses.
        """
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown model config key(s): {', '.join(map(str, unknown))}")
        try:
            return cls(**data)
        except TypeError as e:  # e.g. no "name"
            raise ConfigError(f"malformed model config ({e})") from None
