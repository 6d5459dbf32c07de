"""Codecs: how landmarks become training targets and how network outputs become landmarks (mmpose-style).

A codec sits between the data and the network: ``encode`` turns points into targets, ``loss`` scores the
network's raw outputs against points, ``decode`` turns raw outputs into ``(B, K, 2)`` input-pixel coordinates.
The network itself only returns raw outputs (heatmap logits or normalised coordinates); which codec a model
uses follows from its :class:`~lightmark.models.ModelConfig` (``head``, ``heatmap_stride``, ``beta``,
``heatmap_sigma``, ``heatmap_loss``, ``decoder``), so it travels with the weights.

Coordinate convention: pixel-centre coordinates (pixel ``i`` spans ``[i - 0.5, i + 0.5]``). Heatmap cell
``(i, j)`` of stride ``s = input_size / heatmap_size`` is centred on input coordinate
``x = (j + 0.5) * s - 0.5``, ``y = (i + 0.5) * s - 0.5``; conversely a point at input ``x`` sits at heatmap
coordinate ``u = (x + 0.5) / s - 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .choices import Decoder, HeatmapLoss
from .losses import HEATMAP_LOSSES

__all__ = ["Codec", "HeatmapCodec", "RegressionCodec", "soft_argmax", "Decoder", "PEAK_DECODERS"]

PEAK_DECODERS: tuple[Decoder, ...] = (Decoder.ARGMAX, Decoder.DARK)
"""Non-differentiable decoders of heatmaps (numpy): peak cell + quarter-cell shift, or DARK; the other one,
``Decoder.SOFT_ARGMAX``, is differentiable and exportable to ONNX."""


def _gaussian_blur(hm: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes of ``(..., H, W)`` (zero padding, radius 3 sigma)."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    h, w = hm.shape[-2:]
    pad = [(0, 0)] * (hm.ndim - 2)
    p = np.pad(hm, [*pad, (0, 0), (radius, radius)])
    out = sum(k[i] * p[..., :, i : i + w] for i in range(k.size))
    p = np.pad(out, [*pad, (radius, radius), (0, 0)])
    return sum(k[i] * p[..., i : i + h, :] for i in range(k.size))


class Codec(Protocol):
    """What training, inference and export need from a codec."""

    input_size: int

    @property
    def exportable(self) -> bool:
        """True when :meth:`decode` is a torch graph that ONNX export can trace."""

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw network outputs -> ``(B, K, 2)`` input-pixel coordinates (the inference decoder)."""

    def decode_train(self, raw: torch.Tensor) -> torch.Tensor:
        """Differentiable decoding that the coordinate loss trains through: ``(B, K, 2)`` input pixels."""

    def loss(self, raw: torch.Tensor, points: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Auxiliary loss of the raw outputs against ``points`` ``(B, K, 2)`` input pixels (0 when none)."""


@dataclass(frozen=True)
class HeatmapCodec:
    """Gaussian heatmap codec for square inputs.

    Attributes:
        input_size: side of the network input in pixels.
        heatmap_size: side of the heatmaps.
        sigma: standard deviation of the target Gaussians, in heatmap cells.
        beta: soft-argmax inverse temperature.
        heatmap_loss: the heatmap loss term (:data:`lightmark.losses.HEATMAP_LOSSES`); its value is accepted too.
        decoder: the decoding of :meth:`decode` at inference; its value is accepted too.
    """

    input_size: int
    heatmap_size: int
    sigma: float = 1.5
    beta: float = 1.0
    heatmap_loss: HeatmapLoss = HeatmapLoss.KL
    decoder: Decoder = Decoder.SOFT_ARGMAX

    def __post_init__(self) -> None:
        if self.input_size <= 0 or self.heatmap_size <= 0:
            raise ValueError("input_size and heatmap_size must be positive")
        if not self.sigma > 0 or not self.beta > 0:
            raise ValueError("sigma and beta must be positive")
        object.__setattr__(self, "decoder", Decoder.parse(self.decoder, "decoder"))  # frozen: set once here
        object.__setattr__(self, "heatmap_loss", HeatmapLoss.parse(self.heatmap_loss, "heatmap loss"))

    @property
    def stride(self) -> float:
        """Input pixels per heatmap cell."""
        return self.input_size / self.heatmap_size

    @property
    def exportable(self) -> bool:
        return self.decoder is Decoder.SOFT_ARGMAX

    def to_heatmap(self, xy: np.ndarray) -> np.ndarray:
        """Input-pixel coordinates -> heatmap coordinates (any shape ending in 2)."""
        return (np.asarray(xy, dtype=np.float64) + 0.5) / self.stride - 0.5

    def to_input(self, uv: np.ndarray) -> np.ndarray:
        """Heatmap coordinates -> input-pixel coordinates (any shape ending in 2)."""
        return (np.asarray(uv, dtype=np.float64) + 0.5) * self.stride - 0.5

    # -- targets ----------------------------------------------------------------------------------------------
    def encode(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render one Gaussian per point.

        Args:
            landmarks: ``(K, 2)`` points in input pixels.

        Returns:
            ``heatmaps`` ``(K, H, W)`` float32, ``exp(-d^2 / (2 sigma^2))`` with ``d`` the distance (in
            cells) to the sub-pixel point (amplitude 1; the largest cell is < 1 off-centre), and ``weight``
            ``(K,)`` float32: 1 for a point inside the map (input ``[-0.5, input_size - 0.5]``), else 0 with
            an all-zero heatmap (also for non-finite points).
        """
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"landmarks: expected shape (K, 2), got {np.shape(landmarks)}")
        n = self.heatmap_size
        uv = self.to_heatmap(pts)
        visible = np.all(np.isfinite(uv) & (uv >= -0.5) & (uv <= n - 0.5), axis=1)
        uv = np.where(visible[:, None], uv, 0.0)
        hm = self.gaussians(torch.from_numpy(uv[None])).numpy()[0] * visible[:, None, None]
        return hm.astype(np.float32), visible.astype(np.float32)

    def gaussians(self, uv: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` heatmap coordinates -> ``(B, K, H, W)`` amplitude-1 Gaussians of ``sigma`` cells (no mask)."""
        grid = torch.arange(self.heatmap_size, dtype=uv.dtype, device=uv.device)  # (H,) cell centres
        s2 = 2.0 * self.sigma**2
        gx = torch.exp(-((grid.view(1, 1, -1) - uv[..., :1]) ** 2) / s2)  # (B, K, W)
        gy = torch.exp(-((grid.view(1, 1, -1) - uv[..., 1:]) ** 2) / s2)  # (B, K, H)
        return gy.unsqueeze(-1) * gx.unsqueeze(-2)  # (B, K, H, W)

    def loss(self, raw: torch.Tensor, points: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Heatmap loss of logits ``raw`` ``(B, K, H, W)`` against ``points`` ``(B, K, 2)`` input pixels.

        ``heatmap_kl`` compares ``softmax(raw)`` with the target Gaussian normalised to sum 1; the regression
        losses (``heatmap_mse``, ``adaptive_wing``) compare ``softmax(raw)`` scaled to the target's mass with the
        amplitude-1 target, so every loss sees the same probability map that soft-argmax decodes."""
        target = self.gaussians((points + 0.5) / self.stride - 0.5)  # (B, K, H, W), amplitude 1
        mass = target.sum((2, 3), keepdim=True).clamp_min(1e-12)  # (B, K, 1, 1)
        fn = HEATMAP_LOSSES[self.heatmap_loss]
        if self.heatmap_loss is HeatmapLoss.KL:
            return fn(raw, target / mass, weight)
        prob = F.softmax(raw.flatten(2), dim=-1).view_as(raw)
        return fn(prob * mass, target, weight)

    # -- decoding ---------------------------------------------------------------------------------------------
    def decode_train(self, raw: torch.Tensor) -> torch.Tensor:
        """Soft-argmax of logits ``(B, K, H, W)`` -> ``(B, K, 2)`` input pixels (differentiable, exportable)."""
        return soft_argmax(raw, self.stride, self.beta)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` -> ``(B, K, 2)`` input pixels with :attr:`decoder` (float32 tensor).

        ``argmax`` and ``dark`` decode ``softmax(beta * raw)`` in numpy (no gradient, not exportable)."""
        if self.decoder is Decoder.SOFT_ARGMAX:
            return self.decode_train(raw)
        prob = F.softmax(raw.flatten(2) * self.beta, dim=-1).view_as(raw)
        xy = self.decode_maps(prob.detach().cpu().numpy(), self.decoder)
        return torch.from_numpy(xy.astype(np.float32)).to(raw.device)

    has_confidence = True

    def confidence(self, raw: torch.Tensor) -> torch.Tensor:
        """Per-point confidence of logits ``(B, K, H, W)`` -> ``(B, K)`` in [0, 1]: the largest probability mass of
        ``softmax(beta * raw)`` in any 3x3 cells (1: the whole map sits around one point; a uniform map gives
        9 / (H * W)). Exportable (an average pool and a max)."""
        b, k, h, w = raw.shape
        return peak_mass(torch.softmax(raw.reshape(b, k, h * w) * self.beta, dim=-1), k, h)

    def decode_maps(self, heatmaps: np.ndarray, method: Decoder = Decoder.DARK) -> np.ndarray:
        """Heatmaps -> points in input pixels, by their peaks.

        Args:
            heatmaps: ``(B, K, H, W)`` or ``(K, H, W)`` (torch tensors are accepted and detached).
            method: one of :data:`PEAK_DECODERS` (or its value): ``ARGMAX`` (peak cell plus the classic
                quarter-cell shift towards the higher neighbour) or ``DARK`` (Zhang et al., CVPR 2020: blur with
                the codec's Gaussian, take the log, and apply one Newton step ``-H^-1 grad`` of the second-order
                Taylor expansion at the peak; exact for a Gaussian heatmap a few sigma away from the border, where
                the zero-padded blur biases it by up to half a cell).

        Returns:
            ``(B, K, 2)`` or ``(K, 2)`` float64 ``(x, y)`` input-pixel coordinates.
        """
        method = Decoder.parse(method, "decoder")
        if method not in PEAK_DECODERS:
            raise ValueError(f"{method!s} is not a peak decoder; known: {', '.join(PEAK_DECODERS)}")
        if isinstance(heatmaps, torch.Tensor):
            heatmaps = heatmaps.detach().cpu().numpy()
        hm = np.asarray(heatmaps, dtype=np.float64)
        single = hm.ndim == 3
        if single:
            hm = hm[None]
        if hm.ndim != 4:
            raise ValueError(f"heatmaps: expected shape (B, K, H, W) or (K, H, W), got {np.shape(heatmaps)}")
        b, k, h, w = hm.shape
        flat = hm.reshape(b * k, h, w)
        idx = np.argmax(flat.reshape(b * k, -1), axis=1)
        py, px = np.divmod(idx, w)
        uv = np.stack([px, py], axis=1).astype(np.float64)
        rows = np.arange(b * k)
        if method is Decoder.ARGMAX:
            uv += _quarter_offset(flat, rows, px, py)
        else:
            uv += _dark_offset(flat, rows, px, py, self.sigma)
        out = self.to_input(uv).reshape(b, k, 2)
        return out[0] if single else out


@dataclass(frozen=True)
class RegressionCodec:
    """Direct regression: the network returns ``(B, K, 2)`` coordinates in units of the input side (0..1, the
    first pixel's centre at ``0.5 / input_size``); no auxiliary loss."""

    input_size: int

    exportable = True

    def encode(self, landmarks: np.ndarray) -> np.ndarray:
        """``(K, 2)`` input pixels -> ``(K, 2)`` float32 targets in units of the input side."""
        return ((np.asarray(landmarks, dtype=np.float64) + 0.5) / self.input_size).astype(np.float32)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` units of the side -> ``(B, K, 2)`` input pixels (differentiable)."""
        return raw * self.input_size - 0.5

    decode_train = decode

    has_confidence = False

    def confidence(self, raw: torch.Tensor) -> None:
        """A regression head has no per-point confidence."""
        return None

    def loss(self, raw: torch.Tensor, points: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """No auxiliary term: the coordinate loss is the whole loss."""
        return raw.new_zeros(())


def _quarter_offset(hm: np.ndarray, rows: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Classic +-0.25 cell shift towards the higher neighbour, where both neighbours exist. ``(M, 2)``."""
    _, h, w = hm.shape
    off = np.zeros((rows.size, 2))
    okx = (px > 0) & (px < w - 1)
    oky = (py > 0) & (py < h - 1)
    r, x, y = rows[okx], px[okx], py[okx]
    off[okx, 0] = 0.25 * np.sign(hm[r, y, x + 1] - hm[r, y, x - 1])
    r, x, y = rows[oky], px[oky], py[oky]
    off[oky, 1] = 0.25 * np.sign(hm[r, y + 1, x] - hm[r, y - 1, x])
    return off


def _dark_offset(hm: np.ndarray, rows: np.ndarray, px: np.ndarray, py: np.ndarray, sigma: float) -> np.ndarray:
    """DARK sub-pixel refinement (Newton step on the log of the blurred heatmap). ``(M, 2)`` cell offsets."""
    _, h, w = hm.shape
    peak = hm.reshape(hm.shape[0], -1).max(axis=1)
    blurred = _gaussian_blur(hm, sigma)
    bmax = blurred.reshape(hm.shape[0], -1).max(axis=1)
    scale = np.where((peak > 0) & (bmax > 0), peak / np.where(bmax > 0, bmax, 1.0), 1.0)
    logh = np.log(np.maximum(blurred * scale[:, None, None], 1e-10))
    off = np.zeros((rows.size, 2))
    ok = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1) & (peak > 0)
    r, x, y = rows[ok], px[ok], py[ok]
    f = logh[r, y, x]
    dx = 0.5 * (logh[r, y, x + 1] - logh[r, y, x - 1])
    dy = 0.5 * (logh[r, y + 1, x] - logh[r, y - 1, x])
    dxx = logh[r, y, x + 1] - 2.0 * f + logh[r, y, x - 1]
    dyy = logh[r, y + 1, x] - 2.0 * f + logh[r, y - 1, x]
    dxy = 0.25 * (logh[r, y + 1, x + 1] - logh[r, y + 1, x - 1] - logh[r, y - 1, x + 1] + logh[r, y - 1, x - 1])
    det = dxx * dyy - dxy**2
    # Only a strict local maximum (negative-definite Hessian) gives a meaningful Newton step.
    good = (det > 1e-12) & (dxx < 0)
    safe = np.where(good, det, 1.0)
    ox = -(dyy * dx - dxy * dy) / safe
    oy = -(dxx * dy - dxy * dx) / safe
    step = np.stack([ox, oy], axis=1)
    good &= np.all(np.abs(step) <= 1.0, axis=1)  # a larger step means the peak is not Gaussian-like
    step[~good] = 0.0
    off[ok] = step
    return off


def peak_mass(prob: torch.Tensor, k: int, side: int) -> torch.Tensor:
    """(B, K, side * side) probabilities -> (B, K) the largest mass in any 3x3 cells of each map (zero-padded at the
    border): the per-point confidence of :meth:`HeatmapCodec.confidence` and of the exported graph. ``k`` and
    ``side`` are given, not read from ``prob.shape``, so the ONNX graph holds no shape arithmetic."""
    local = F.avg_pool2d(prob.reshape(-1, 1, side, side), 3, stride=1, padding=1, count_include_pad=True) * 9.0
    return local.reshape(-1, k, side * side).amax(-1)


def soft_argmax(heatmaps: torch.Tensor, stride: float, beta: float = 1.0) -> torch.Tensor:
    """Differentiable, ONNX-exportable expectation of the point under ``softmax(beta * heatmaps)``.

    The softmax runs over the ``H * W`` cells of each map; the coordinate grids come from ``torch.arange`` so
    the exported graph keeps a dynamic batch dimension.

    Args:
        heatmaps: ``(B, K, H, W)`` logits.
        stride: input pixels per heatmap cell.
        beta: inverse temperature.

    Returns:
        ``(B, K, 2)`` ``(x, y)`` in input pixels (cell ``j`` is at ``(j + 0.5) * stride - 0.5``).
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps: expected shape (B, K, H, W), got {tuple(heatmaps.shape)}")
    h, w = heatmaps.shape[-2], heatmaps.shape[-1]
    prob = torch.softmax(heatmaps.flatten(2) * beta, dim=-1).view_as(heatmaps)
    dtype, device = heatmaps.dtype, heatmaps.device
    gx = (torch.arange(w, dtype=dtype, device=device) + 0.5) * stride - 0.5
    gy = (torch.arange(h, dtype=dtype, device=device) + 0.5) * stride - 0.5
    x = (prob.sum(dim=2) * gx).sum(dim=-1)
    y = (prob.sum(dim=3) * gy).sum(dim=-1)
    return torch.stack([x, y], dim=-1)
