"""Heatmap encoding and decoding, kept apart from the networks (mmpose-style codecs).

Coordinate convention: pixel-centre coordinates (pixel ``i`` spans ``[i - 0.5, i + 0.5]``). Heatmap cell
``(i, j)`` of stride ``s = input_size / heatmap_size`` is centred on input coordinate
``x = (j + 0.5) * s - 0.5``, ``y = (i + 0.5) * s - 0.5``; conversely a point at input ``x`` sits at heatmap
coordinate ``u = (x + 0.5) / s - 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["HeatmapCodec", "soft_argmax", "DECODE_METHODS"]

DECODE_METHODS: tuple[str, ...] = ("argmax", "dark")


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


@dataclass(frozen=True)
class HeatmapCodec:
    """Gaussian heatmap codec for square inputs.

    Attributes:
        input_size: side of the network input in pixels.
        heatmap_size: side of the heatmaps.
        sigma: standard deviation of the target Gaussians, in heatmap cells.
    """

    input_size: int
    heatmap_size: int
    sigma: float = 1.5

    def __post_init__(self) -> None:
        if self.input_size <= 0 or self.heatmap_size <= 0:
            raise ValueError("input_size and heatmap_size must be positive")
        if not self.sigma > 0:
            raise ValueError("sigma must be positive")

    @property
    def stride(self) -> float:
        """Input pixels per heatmap cell."""
        return self.input_size / self.heatmap_size

    def to_heatmap(self, xy: np.ndarray) -> np.ndarray:
        """Input-pixel coordinates -> heatmap coordinates (any shape ending in 2)."""
        return (np.asarray(xy, dtype=np.float64) + 0.5) / self.stride - 0.5

    def to_input(self, uv: np.ndarray) -> np.ndarray:
        """Heatmap coordinates -> input-pixel coordinates (any shape ending in 2)."""
        return (np.asarray(uv, dtype=np.float64) + 0.5) * self.stride - 0.5

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
        grid = np.arange(n, dtype=np.float64)
        gx = np.exp(-((grid[None, :] - uv[:, :1]) ** 2) / (2.0 * self.sigma**2))  # (K, W)
        gy = np.exp(-((grid[None, :] - uv[:, 1:]) ** 2) / (2.0 * self.sigma**2))  # (K, H)
        hm = gy[:, :, None] * gx[:, None, :] * visible[:, None, None]
        return hm.astype(np.float32), visible.astype(np.float32)

    def decode(self, heatmaps: np.ndarray, method: str = "dark") -> np.ndarray:
        """Heatmaps -> points in input pixels.

        Args:
            heatmaps: ``(B, K, H, W)`` or ``(K, H, W)`` (torch tensors are accepted and detached).
            method: ``"argmax"`` (peak cell plus the classic quarter-cell shift towards the higher
                neighbour) or ``"dark"`` (Zhang et al., CVPR 2020: blur with the codec's Gaussian, take the
                log, and apply one Newton step ``-H^-1 grad`` of the second-order Taylor expansion at the
                peak; exact for a Gaussian heatmap a few sigma away from the border, where the zero-padded
                blur biases it by up to half a cell).

        Returns:
            ``(B, K, 2)`` or ``(K, 2)`` float64 ``(x, y)`` input-pixel coordinates.
        """
        if method not in DECODE_METHODS:
            raise ValueError(f"unknown decode method {method!r}; known: {', '.join(DECODE_METHODS)}")
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
        if method == "argmax":
            uv += _quarter_offset(flat, rows, px, py)
        else:
            uv += _dark_offset(flat, rows, px, py, self.sigma)
        out = self.to_input(uv).reshape(b, k, 2)
        return out[0] if single else out


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
