"""2D parts of a sample: backgrounds (procedural or from user images), occluders (hands, objects) and the
camera/ISP degradations applied to the final image. Images here are float32 sRGB in [0, 1], (H,W,3) RGB."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..constants import IMAGE_EXTENSIONS
from ..errors import DatasetError

# ------------------------------------------------------------------------------------------- backgrounds


def _natural_colour(rng: np.random.Generator, base: np.ndarray | None = None, spread: float = 1.0) -> np.ndarray:
    """A random RGB colour in [0,1], mostly desaturated (walls, furniture, foliage, sky), optionally near ``base``."""
    h = rng.uniform(0, 180)
    s = min(255.0, rng.beta(1.2, 3.0) * 255 * spread)
    v = rng.uniform(25, 245)
    c = cv2.cvtColor(np.uint8([[[h, s, v]]]), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255
    if base is not None:
        c = np.clip(base * rng.uniform(0.5, 1.0) + c * rng.uniform(0.0, 0.5), 0, 1)
    return c


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random background: gradient + noise + shapes/clutter, blurred by a random depth of field."""
    s = size
    base = _natural_colour(rng)
    other = _natural_colour(rng, base)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    g = np.clip((np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) * rng.uniform(0.5, 2.0) + 0.5, 0, 1)
    img = base[None, None, :] * (1 - g[:, :, None]) + other[None, None, :] * g[:, :, None]
    img = img.astype(np.float32)
    kind = rng.choice(5, p=[0.15, 0.25, 0.3, 0.15, 0.15])
    if kind == 1:  # blotchy noise (foliage, walls, stone)
        for cells in (4, 12, 40):
            n = cv2.resize(
                rng.standard_normal((cells, cells, 3)).astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC
            )
            img += (n * 0.3 + n.mean(2, keepdims=True) * 0.7) * rng.uniform(0.02, 0.12)
    elif kind in (2, 3):  # clutter: rectangles, lines, ellipses (indoor / street)
        n = int(rng.integers(5, 40))
        for _ in range(n):
            col = tuple(float(c) for c in _natural_colour(rng, base if rng.random() < 0.5 else None))
            t = rng.integers(3)
            if t == 0:
                p = rng.uniform(-0.2, 1.2, 2) * s
                q = p + rng.uniform(0.05, 0.6, 2) * s * rng.choice([-1, 1], 2)
                cv2.rectangle(img, tuple(int(v) for v in p), tuple(int(v) for v in q), col, -1)
            elif t == 1:
                p = rng.uniform(0, 1, 2) * s
                q = rng.uniform(0, 1, 2) * s
                cv2.line(
                    img, tuple(int(v) for v in p), tuple(int(v) for v in q), col, int(rng.integers(1, max(2, s // 25)))
                )
            else:
                p = rng.uniform(0, 1, 2) * s
                ax = rng.uniform(0.02, 0.3, 2) * s
                cv2.ellipse(img, (int(p[0]), int(p[1])), (int(ax[0]), int(ax[1])), rng.uniform(0, 180), 0, 360, col, -1)
        if kind == 3:  # bokeh highlights
            for _ in range(int(rng.integers(5, 30))):
                p = rng.uniform(0, 1, 2) * s
                r = int(rng.uniform(0.01, 0.06) * s) + 1
                col = tuple(float(c) for c in np.clip(rng.uniform(0.6, 1.0) * (0.7 + 0.3 * _natural_colour(rng)), 0, 1))
                cv2.circle(img, (int(p[0]), int(p[1])), r, col, -1, cv2.LINE_AA)
    elif kind == 4:  # room: floor / wall / ceiling planes with a window or door
        horizon = rng.uniform(0.5, 1.1) * s
        floor = _natural_colour(rng)
        img[int(horizon) :] = floor
        for _ in range(int(rng.integers(1, 4))):
            x0 = rng.uniform(-0.1, 0.9) * s
            y0 = rng.uniform(-0.1, 0.6) * s
            w, h = rng.uniform(0.1, 0.5) * s, rng.uniform(0.2, 0.8) * s
            col = _natural_colour(rng) * 0.5 + (0.5 if rng.random() < 0.5 else 0.0)
            cv2.rectangle(
                img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(c) for c in np.clip(col, 0, 1)), -1
            )
            cv2.rectangle(
                img,
                (int(x0), int(y0)),
                (int(x0 + w), int(y0 + h)),
                tuple(float(c) for c in base * 0.6),
                max(1, s // 60),
            )
    if rng.random() < 0.5:  # vignetting / uneven light
        v = 1.0 - rng.uniform(0.0, 0.5) * (((xx - rng.uniform(0.2, 0.8)) ** 2 + (yy - rng.uniform(0.2, 0.8)) ** 2) * 2)
        img *= np.clip(v, 0.3, 1.0)[:, :, None]
    img += (
        rng.normal(0, rng.uniform(0.0, 0.02), ((s + 1) // 2, (s + 1) // 2, 1))
        .astype(np.float32)
        .repeat(2, 0)
        .repeat(2, 1)[:s, :s]
    )
    sigma = rng.uniform(0.0, 4.0) * s / 256
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return np.clip(img, 0, 1)


def _fill_holes(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill pixels where ``valid`` is False with a smooth extrapolation of the valid ones (push-pull)."""
    levels = []
    im = img * valid[:, :, None]
    w = valid.astype(np.float32)
    while min(w.shape) > 4:
        levels.append((im, w))
        im = cv2.resize(im, (max(1, im.shape[1] // 2), max(1, im.shape[0] // 2)), interpolation=cv2.INTER_AREA)
        w = cv2.resize(w, (max(1, w.shape[1] // 2), max(1, w.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    cur = im / np.maximum(w, 1e-6)[:, :, None]
    if not (w > 0).any():
        cur[:] = img.mean((0, 1)) if img.size else 0.5
    for im_l, w_l in reversed(levels):
        up = cv2.resize(cur, (im_l.shape[1], im_l.shape[0]), interpolation=cv2.INTER_LINEAR)
        ww = np.clip(w_l, 0, 1)[:, :, None]
        cur = np.where(ww > 1e-6, im_l / np.maximum(w_l, 1e-6)[:, :, None], up) * np.minimum(ww * 4, 1) + up * (
            1 - np.minimum(ww * 4, 1)
        )
    return cur.astype(np.float32)


class BackgroundSource:
    """Background images from a folder (recursive). Where ``<stem>_seg.png`` exists beside an image (the
    FaceSynthetics layout) only its class-0 pixels are kept and the rest is filled from them."""

    def __init__(self, folder: str | os.PathLike):
        root = Path(folder)
        if not root.is_dir():
            raise DatasetError(f"{root}: background folder not found")
        files = []
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.stem.endswith("_seg") and p.is_file():
                files.append(p)
        if not files:
            raise DatasetError(f"{root}: no background images")
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        for _ in range(5):
            p = self.files[int(rng.integers(len(self.files)))]
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None and min(img.shape[:2]) >= 16:
                break
        else:
            return procedural_background(rng, size)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        h, w = img.shape[:2]
        valid = None
        seg_p = p.with_name(p.stem + "_seg.png")
        if seg_p.is_file():
            seg = cv2.imread(str(seg_p), cv2.IMREAD_UNCHANGED)
            if seg is not None and seg.shape[:2] == img.shape[:2]:
                valid = (seg if seg.ndim == 2 else seg[:, :, 0]) == 0
                # drop a margin around the masked-out subject (hair fringes, anti-aliased edges)
                k = max(3, int(min(h, w) * 0.015) | 1)
                valid = cv2.erode(valid.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
                if valid.mean() < 0.05:
                    valid = None
        # a square window: prefer one (of a few random tries) that holds no masked-out pixels
        integral = cv2.integral((~valid).astype(np.uint8)) if valid is not None else None
        best = None
        for _ in range(16 if valid is not None else 1):
            side = int(min(h, w) * rng.uniform(0.25 if valid is not None else 0.5, 1.0))
            y0 = int(rng.integers(0, h - side + 1))
            x0 = int(rng.integers(0, w - side + 1))
            bad = 0.0
            if integral is not None:
                bad = float(
                    integral[y0 + side, x0 + side]
                    - integral[y0, x0 + side]
                    - integral[y0 + side, x0]
                    + integral[y0, x0]
                ) / (side * side)
            if best is None or bad < best[0]:
                best = (bad, side, y0, x0)
            if bad <= 0.02:
                break
        bad, side, y0, x0 = best
        crop = img[y0 : y0 + side, x0 : x0 + side]
        if valid is not None and bad > 0.0:
            crop = _fill_holes(np.ascontiguousarray(crop), valid[y0 : y0 + side, x0 : x0 + side])
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        sigma = rng.uniform(0.0, 2.5) * size / 256
        if sigma > 0.3:
            crop = cv2.GaussianBlur(crop, (0, 0), sigma)
        return np.ascontiguousarray(crop, np.float32)


# ------------------------------------------------------------------------------------------- occluders


def _shaded_fill(img, mask_f, colour, rng, shading_dir):
    """Composite a flat colour with a linear shading ramp and fine noise into ``img`` where ``mask_f`` > 0."""
    h, w = mask_f.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(mask_f > 0.01)
    if len(xs) == 0:
        return
    cx, cy = xs.mean(), ys.mean()
    ext = max(np.ptp(xs), np.ptp(ys), 1)
    ramp = ((xx - cx) * shading_dir[0] + (yy - cy) * shading_dir[1]) / ext
    shade = np.clip(0.85 + 0.5 * ramp, 0.3, 1.3)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.0) * 0.03
    layer = np.clip(colour[None, None, :] * (shade + noise)[:, :, None], 0, 1)
    a = mask_f[:, :, None]
    img[:] = img * (1 - a) + layer * a


def hand_mask(rng: np.random.Generator, size: int, centre: np.ndarray, scale: float) -> np.ndarray:
    """Soft mask of a rough hand (palm + fingers) at ``centre`` with palm width ``scale`` pixels."""
    m = np.zeros((size, size), np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    palm = np.array([[-0.5, -0.45], [0.5, -0.45], [0.55, 0.45], [-0.5, 0.5]]) * scale
    pts = [(centre + (rot @ p)) for p in palm]
    cv2.fillPoly(m, [np.round(np.array(pts) * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    curl = rng.uniform(0.4, 1.0)
    for i, fx in enumerate(np.linspace(-0.38, 0.38, 4)):
        length = scale * (0.75 + 0.15 * (i in (1, 2))) * curl
        spread = np.radians((fx) * 25)
        d = np.array([np.sin(spread), -np.cos(spread)])
        a = centre + rot @ (np.array([fx * scale, -0.4 * scale]))
        b = a + rot @ d * length
        cv2.line(
            m,
            tuple(np.round(a * 4).astype(int)),
            tuple(np.round(b * 4).astype(int)),
            1.0,
            max(1, int(scale * 0.2)),
            cv2.LINE_AA,
            shift=2,
        )
    if rng.random() < 0.8:  # thumb
        a = centre + rot @ np.array([-0.5 * scale, 0.1 * scale])
        b = a + rot @ np.array([-0.45, -0.45]) * scale
        cv2.line(
            m,
            tuple(np.round(a * 4).astype(int)),
            tuple(np.round(b * 4).astype(int)),
            1.0,
            max(1, int(scale * 0.24)),
            cv2.LINE_AA,
            shift=2,
        )
    # forearm leaving the image
    a = centre + rot @ np.array([0.0, 0.3 * scale])
    b = a + rot @ np.array([0.0, 4.0]) * scale
    cv2.line(
        m,
        tuple(np.round(a * 4).astype(int)),
        tuple(np.round(b * 4).astype(int)),
        1.0,
        max(1, int(scale * 0.8)),
        cv2.LINE_AA,
        shift=2,
    )
    return m


def object_mask(rng: np.random.Generator, size: int, centre: np.ndarray, scale: float) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    kind = rng.integers(4)
    c = tuple(int(v) for v in np.round(centre * 4))
    if kind == 0:  # ellipse (cup, ball, microphone head)
        ax = (int(scale * rng.uniform(0.3, 0.8) * 4), int(scale * rng.uniform(0.3, 0.8) * 4))
        cv2.ellipse(m, c, ax, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA, shift=2)
    elif kind == 1:  # rotated rectangle (phone, paper, card)
        w, h = scale * rng.uniform(0.3, 1.2), scale * rng.uniform(0.3, 1.2)
        box = cv2.boxPoints(((centre[0], centre[1]), (w, h), rng.uniform(0, 180)))
        cv2.fillPoly(m, [np.round(box * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    elif kind == 2:  # random polygon
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = scale * rng.uniform(0.3, 0.8, k)
        pts = centre + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
        cv2.fillPoly(m, [np.round(pts * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    else:  # a bar (microphone stand, pencil, strap) crossing the face
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * size
        a, b = centre - d, centre + d
        cv2.line(
            m,
            tuple(np.round(a * 4).astype(int)),
            tuple(np.round(b * 4).astype(int)),
            1.0,
            max(1, int(scale * rng.uniform(0.08, 0.3))),
            cv2.LINE_AA,
            shift=2,
        )
    return m


def add_occluders(
    rng: np.random.Generator,
    img: np.ndarray,
    seg: np.ndarray,
    ldmks: np.ndarray,
    skin_srgb: np.ndarray,
    cfg,
    occluder_class: int,
) -> list[str]:
    """Draw hands / objects over the face (in place); returns the kinds drawn."""
    size = img.shape[0]
    lo, hi = ldmks[:68].min(0), ldmks[:68].max(0)
    box = max(hi - lo)
    kinds = []
    for kind, p in (("hand", cfg.p_hand), ("object", cfg.p_object)):
        if rng.random() >= p:
            continue
        target = ldmks[int(rng.integers(68))] + rng.normal(0, 0.15 * box, 2)
        if kind == "hand":
            scale = box * rng.uniform(0.35, 0.55)
            centre = target + rng.normal(0, 0.2 * box, 2)
            m = hand_mask(rng, size, centre, scale)
            col = np.clip(skin_srgb * np.exp(rng.normal(0, 0.08, 3)), 0, 1)
        else:
            scale = box * rng.uniform(0.2, 0.6)
            m = object_mask(rng, size, target, scale)
            col = rng.uniform(0, 1, 3)
        if m.max() <= 0:
            continue
        _shaded_fill(img, m, col.astype(np.float32), rng, rng.normal(0, 1, 2))
        seg[m > 0.5] = occluder_class
        kinds.append(kind)
    return kinds


# ------------------------------------------------------------------------------------------- camera effects


def degrade(rng: np.random.Generator, img: np.ndarray, cfg) -> tuple[np.ndarray, dict]:
    """Colour shifts, blur, sensor noise, down-sampling and JPEG artefacts; returns uint8 RGB and a record."""
    rec: dict = {}
    s = img.shape[0]
    if rng.random() < cfg.p_colour_shift:
        gain = np.exp(rng.normal(0, 0.06, 3)).astype(np.float32)
        img = img * gain
        c = rng.uniform(0.75, 1.25)
        m = img.mean()
        img = (img - m) * c + m + rng.normal(0, 0.04)
        sat = rng.uniform(0.5, 1.3)
        grey = img.mean(2, keepdims=True)
        img = grey + (img - grey) * sat
        rec["colour"] = True
    if rng.random() < cfg.p_grayscale:
        img = np.repeat(img.mean(2, keepdims=True), 3, 2)
        rec["grayscale"] = True
    img = np.clip(img, 0, 1).astype(np.float32)
    if rng.random() < cfg.p_blur:
        if rng.random() < 0.75:
            sigma = rng.uniform(0.3, 1.6) * s / 256
            img = cv2.GaussianBlur(img, (0, 0), sigma)
            rec["blur"] = float(sigma)
        else:  # symmetric motion blur (does not move the landmarks)
            k = int(rng.integers(2, 5)) * 2 + 1
            ker = np.zeros((k, k), np.float32)
            ang = rng.uniform(0, np.pi)
            c = (k - 1) / 2
            for t in np.linspace(-c, c, 3 * k):
                ker[int(round(c + t * np.sin(ang))), int(round(c + t * np.cos(ang)))] = 1
            img = cv2.filter2D(img, -1, ker / ker.sum())
            rec["motion_blur"] = k
    if rng.random() < cfg.p_downsample:
        f = rng.uniform(0.3, 0.7)
        small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)
        rec["downsample"] = float(f)
    if rng.random() < cfg.p_noise:
        sigma = rng.uniform(0.005, 0.04)
        img = img + rng.normal(0, sigma, img.shape).astype(np.float32) * (0.5 + img)
        rec["noise"] = float(sigma)
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        q = int(rng.integers(20, 96))
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
            rec["jpeg"] = q
    return out, rec
