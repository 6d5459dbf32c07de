"""The named options of models, training and inference, as string enums (importable without torch).

Each member is a ``str`` equal to its value (``Head.HEATMAP == "heatmap"``), so configs saved as plain strings
(checkpoints, ONNX metadata, JSON) load unchanged and the command line takes the values; ``str()``, ``repr()``
and f-strings give the value (as messages quote it). :meth:`Choice.parse` turns a value into its member and
refuses anything else with the list of known values (:class:`~lightmark.errors.ConfigError`, a ``ValueError``).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from .errors import ConfigError

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """Base of lightmark's string enums: ``str(member)`` is its value, :meth:`parse` checks input."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    def __repr__(self) -> str:  # messages quote options as the user wrote them: 'dark', not <Decoder.DARK: 'dark'>
        return repr(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The members' values, in definition order (a CLI's ``choices``)."""
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls: type[C], value: str | C, what: str | None = None) -> C:
        """``value`` as a member of this enum.

        Raises:
            ConfigError: ``value`` is none of :meth:`values` (the message names ``what`` and lists them).
        """
        try:
            return cls(value)
        except ValueError:
            what = what or cls.__name__.lower()
            raise ConfigError(f"unknown {what} {value!r}; known: {', '.join(cls.values())}") from None


class DatasetFormat(Choice):
    """Dataset layouts :func:`lightmark.data.load_dataset` reads (:func:`lightmark.data.detect_format` tells them
    apart): the challenge's ``annot.pkl`` folder, FaceSynthetics' ``NNNNNN_ldmks.txt`` pairs, 300-W ``.pts``
    pairs, AFLW2000-3D ``.mat`` pairs, a WFLW list file, or images without labels."""

    CHALLENGE = "challenge"
    FACESYNTHETICS = "facesynthetics"
    PTS = "pts"
    AFLW2000 = "aflw2000"
    WFLW = "wflw"
    IMAGES = "images"


class Backbone(Choice):
    """Feature extractors (:mod:`lightmark.models`): ShuffleNetV2, a MobileNetV1-style stack and ResNets."""

    SHUFFLENETV2 = "shufflenetv2"
    MOBILENET = "mobilenet"
    RESNET18 = "resnet18"
    RESNET34 = "resnet34"
    RESNET50 = "resnet50"


class Head(Choice):
    """The network's output: heatmaps decoded to points, or points regressed directly (PFLD-like)."""

    HEATMAP = "heatmap"
    REGRESSION = "regression"


class Decoder(Choice):
    """Heatmap decoding at inference (:class:`lightmark.codecs.HeatmapCodec`): the differentiable soft-argmax
    (exportable to ONNX), or the peak with a sub-cell offset in numpy (quarter-offset argmax, DARK)."""

    SOFT_ARGMAX = "soft_argmax"
    ARGMAX = "argmax"
    DARK = "dark"


class HeatmapLoss(Choice):
    """Losses on ``(B, K, H, W)`` heatmaps (:data:`lightmark.losses.HEATMAP_LOSSES`)."""

    KL = "heatmap_kl"
    MSE = "heatmap_mse"
    ADAPTIVE_WING = "adaptive_wing"


class CoordinateLoss(Choice):
    """Losses on ``(B, K, 2)`` coordinates (:data:`lightmark.losses.COORDINATE_LOSSES`, training's ``loss``)."""

    WING = "wing"
    L1 = "l1"
    L2 = "l2"
    SMOOTH_L1 = "smooth_l1"


class Backend(Choice):
    """Inference engine of a :class:`~lightmark.Predictor`: torch, ONNX Runtime, or ``AUTO`` (ONNX Runtime where
    the model has an ONNX twin and runs on the CPU, else torch)."""

    AUTO = "auto"
    TORCH = "torch"
    ONNX = "onnx"


class ExportFormat(Choice):
    """What ``lightmark export`` writes: a slim checkpoint (config, deployable weights, provenance) or a
    pixels-in, landmarks-out float32 ONNX graph."""

    PT = "pt"
    ONNX = "onnx"
