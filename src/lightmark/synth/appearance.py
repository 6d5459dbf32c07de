"""Procedural appearance: skin, lips, brows, eyes, hair and beards, makeup; the per-sample UV texture atlas."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .assets import (
    MAT_CLOTH,
    MAT_EYE,
    MAT_EYE_SOCKET,
    MAT_GLASSES,
    MAT_GUMS,
    MAT_HAIR,
    MAT_LASH,
    MAT_LENS,
    MAT_MOUTH,
    MAT_SKIN,
    MAT_TEETH,
    NUM_MATERIALS,
    ModelAssets,
    _smoothstep,
    wrap_filter,
)
from .face_model import PARTS

# sRGB skin tones from very light to very dark (interpolated)
SKIN_TONES = np.array(
    [
        (250, 224, 205),
        (240, 205, 180),
        (230, 188, 158),
        (214, 165, 132),
        (194, 140, 106),
        (168, 114, 82),
        (136, 89, 63),
        (104, 66, 46),
        (76, 49, 36),
        (58, 38, 29),
    ],
    np.float64,
)
HAIR_COLOURS = np.array(
    [
        (18, 15, 14),  # black
        (38, 28, 22),  # very dark brown
        (66, 46, 34),  # dark brown
        (100, 72, 50),  # brown
        (140, 104, 72),  # light brown
        (190, 156, 110),  # dark blond
        (222, 196, 150),  # blond
        (130, 62, 35),  # auburn
        (170, 85, 45),  # ginger
        (120, 118, 115),  # grey
        (205, 205, 200),  # white
    ],
    np.float64,
)
HAIR_P = np.array([0.22, 0.16, 0.16, 0.12, 0.08, 0.06, 0.04, 0.04, 0.03, 0.05, 0.04])
IRIS_COLOURS = np.array(
    [
        (60, 35, 20),  # dark brown
        (95, 60, 35),  # brown
        (120, 95, 55),  # hazel
        (85, 110, 70),  # green
        (90, 120, 150),  # blue-grey
        (60, 95, 150),  # blue
        (110, 110, 105),  # grey
    ],
    np.float64,
)
IRIS_P = np.array([0.35, 0.2, 0.12, 0.08, 0.1, 0.1, 0.05])


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, None)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def lin(rgb255) -> np.ndarray:
    return srgb_to_linear(np.asarray(rgb255, np.float64) / 255.0)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean, unit-ish amplitude smooth noise of ``shape`` with about ``cells`` features across."""
    g = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(
        g, (shape[1] + 3 * shape[1] // cells, shape[0] + 3 * shape[0] // cells), interpolation=cv2.INTER_CUBIC
    )
    oy = int(rng.integers(0, max(1, big.shape[0] - shape[0])))
    ox = int(rng.integers(0, max(1, big.shape[1] - shape[1])))
    return big[oy : oy + shape[0], ox : ox + shape[1]]


@dataclass
class Appearance:
    vcol: np.ndarray  # (V,3) float32 linear albedo
    vattr: np.ndarray  # (V,4) float32 hair coverage, beard coverage, eye cos, depth below the neckline (cm)
    tex: np.ndarray  # (S,2S,5) float32 albedo multiplier (3), specular multiplier, hair-strand pattern
    label_tex: np.ndarray  # (S,2S) uint8
    mat_params: np.ndarray  # (M,6) float32
    eye_params: np.ndarray  # (14,) float32 (see raster.shade)
    hair_thickness: np.ndarray  # (V,) float32 cm of outward displacement
    params: dict
    cloth_rgb: np.ndarray | None = None  # linear albedo of the clothing (None: no torso)
    long_hair: dict | None = None  # spec of the long-hair curtain (see props.hair_curtain)
    hair_rgb: np.ndarray | None = None  # linear hair albedo
    skin: np.ndarray | None = None  # (3,) linear skin tone the albedo is built around


@dataclass
class _Hair:
    """Scalp hair and beard of one sample."""

    vattr: np.ndarray  # (V,4) float32 hair coverage, beard coverage, eye cosine, depth below the neckline (cm)
    thickness: np.ndarray  # (V,) cm of outward displacement
    style: str  # scalp hair style (see _scalp_hair)
    long_spec: dict | None  # long-hair curtain spec (see props.hair_curtain)
    beard_uv: np.ndarray | None  # (S,S) float32 beard density in the face tile (None: no beard)
    beard_style: str


@dataclass
class _Canvas:
    """The UV texture atlas being painted and what the painting steps share."""

    tex: np.ndarray  # (S,2S,5) float32 albedo multiplier (3), specular multiplier, hair-strand pattern
    skin: np.ndarray  # (3,) linear skin albedo: colours are painted as ratios to it
    strand: np.ndarray  # (S,2S) float32 the strand pattern (channel 4)
    bank: dict  # the assets' noise bank
    S: int  # side of the face tile (texels)
    P: np.ndarray  # (68,2) landmarks in the face tile (texels, x right, y down)

    def paint(self, mask: np.ndarray, box, rgb: np.ndarray) -> None:
        """Blend the albedo inside ``box`` towards the linear colour ``rgb`` (3,) by ``mask`` (box-sized)."""
        _tint(self.tex, mask, box, (rgb / np.maximum(self.skin, 1e-4)).astype(np.float32))


def sample_appearance(rng: np.random.Generator, assets: ModelAssets, cfg, V: np.ndarray) -> Appearance:
    """Draw a random appearance for deformed vertices ``V`` (V,3) (used for 3D noise only).

    The steps below draw from ``rng`` in a fixed order: reordering them changes every sample of a seed.
    """
    params: dict = {}
    skin_t, skin = _skin_tone(rng, cfg)
    params["skin_tone"] = skin_t
    vcol = _skin_albedo(rng, assets, V, skin)
    _mouth_and_eye_colours(rng, assets, vcol, skin)
    hair_i, hair_lin = _hair_colour(rng)
    params["hair_colour"] = hair_i
    hair = _hair(rng, assets, cfg, V.shape[0])
    params["hair_style"] = hair.style
    params["beard_style"] = hair.beard_style
    cloth_rgb = None
    if rng.random() < cfg.p_torso:
        cloth_rgb, params["neckline"] = _clothing(rng, assets, hair.vattr)

    canvas = _base_atlas(rng, assets, skin)
    if rng.random() < cfg.p_freckles:
        _freckles(rng, canvas)
    if _lips(rng, assets, cfg, canvas):
        params["lipstick"] = True
    brow_mask, brow_box, params["brow_shape"] = _brows(rng, assets, canvas, hair_lin)
    age = rng.random()
    params["age"] = float(age)
    if age > 0.55:
        hair_lin = _ageing(rng, canvas, hair_lin, (age - 0.55) / 0.45)
    _lash_lines(rng, canvas)
    if rng.random() < cfg.p_makeup:
        _eye_makeup(rng, canvas)
        params["makeup"] = True
    if hair.beard_uv is not None:
        _stubble(rng, canvas, hair.beard_uv, hair_lin)
    label_tex = _label_atlas(assets, brow_mask, brow_box)

    mat_params = _material_params(rng)
    eye_params, params["iris_colour"] = _eye_params(rng, hair_lin, cloth_rgb)
    return Appearance(
        vcol=vcol,
        vattr=hair.vattr,
        tex=canvas.tex,
        label_tex=label_tex,
        mat_params=mat_params,
        eye_params=eye_params,
        hair_thickness=hair.thickness.astype(np.float32),
        params=params,
        cloth_rgb=cloth_rgb,
        long_hair=hair.long_spec,
        hair_rgb=np.asarray(hair_lin, np.float32),
        skin=np.asarray(skin, np.float32),
    )


def _skin_tone(rng: np.random.Generator, cfg) -> tuple[float, np.ndarray]:
    """A position ``t`` in [0,1] along :data:`SKIN_TONES` and the (jittered) linear skin albedo (3,) there."""
    t = rng.uniform(*cfg.skin_tone_range)
    x = t * (len(SKIN_TONES) - 1)
    i = min(int(x), len(SKIN_TONES) - 2)
    tone = SKIN_TONES[i] * (1 - (x - i)) + SKIN_TONES[i + 1] * (x - i)
    tone = tone * np.exp(rng.normal(0, 0.035, 3))
    return float(t), lin(np.clip(tone, 0, 255))


def _skin_albedo(rng: np.random.Generator, assets: ModelAssets, V: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Per-vertex albedo (V,3) float32: ``skin`` with smooth variation, redness, occlusion and darker eye areas."""
    vcol = np.empty((V.shape[0], 3), np.float32)
    vcol[:] = skin
    # seamless variation: random 3D sinusoids over the vertex positions
    var = np.zeros(V.shape[0], np.float32)
    for _ in range(6):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        freq = rng.uniform(0.15, 0.6)
        var += np.sin(V @ d * freq + rng.uniform(0, 2 * np.pi)).astype(np.float32) / 6.0
    vcol *= (1.0 + rng.uniform(0.05, 0.18) * var)[:, None]
    redness = rng.uniform(0.0, 0.35)
    red = (
        assets.w_cheeks * rng.uniform(0.3, 1.0)
        + assets.w_nose * rng.uniform(0.3, 1.0)
        + assets.w_ears * rng.uniform(0.3, 1.0)
    ) * redness
    vcol[:, 0] *= 1.0 + 0.25 * red
    vcol[:, 1] *= 1.0 - 0.25 * red
    vcol[:, 2] *= 1.0 - 0.15 * red
    ao = assets.ambient_occlusion()
    sk = assets.skin_vertex.copy()
    for part in ("eye_socket_left", "eye_socket_right"):
        sk[PARTS[part][0] : PARTS[part][1]] = True
    vcol[sk] *= (1.0 - rng.uniform(0.5, 0.85) * (1.0 - ao[sk]))[:, None]
    vcol *= (1.0 - rng.uniform(0.0, 0.35) * assets.w_under_eyes)[:, None]
    vcol *= (1.0 - rng.uniform(0.0, 0.2) * assets.w_lids)[:, None]
    return vcol


def _mouth_and_eye_colours(rng: np.random.Generator, assets: ModelAssets, vcol: np.ndarray, skin: np.ndarray) -> None:
    """Colour the mouth socket, gums, teeth (occluded), eye sockets and eyelashes of ``vcol`` (V,3) in place."""
    ao = assets.mouth_ao
    for part, col, k in (
        ("mouth_socket", (110, 40, 40), 1.0),
        ("gums_tongue", (190, 95, 95), 1.0),
        ("teeth", (235, 225, 200), 1.0),
    ):
        lo, hi = PARTS[part]
        c = lin(np.clip(np.asarray(col) * np.exp(rng.normal(0, 0.06, 3)), 0, 255))
        shade = 0.08 + 0.92 * ao[lo:hi] ** 1.5
        vcol[lo:hi] = (c * k)[None, :] * shade[:, None]
    for part in ("eye_socket_left", "eye_socket_right"):
        lo, hi = PARTS[part]
        vcol[lo:hi] = skin * lin((205, 140, 140)) / lin((220, 175, 150))
    lash = lin(rng.uniform(8, 30, 3))
    for part in ("eyelashes_left", "eyelashes_right"):
        lo, hi = PARTS[part]
        vcol[lo:hi] = lash


def _hair_colour(rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """Index into :data:`HAIR_COLOURS` and the (jittered) linear hair albedo (3,)."""
    i = rng.choice(len(HAIR_COLOURS), p=HAIR_P)
    rgb = HAIR_COLOURS[i] * np.exp(rng.normal(0, 0.08, 3))
    return int(i), lin(np.clip(rgb, 0, 255))


def _hair(rng: np.random.Generator, assets: ModelAssets, cfg, nv: int) -> _Hair:
    """Scalp hair and beard of ``nv`` vertices: coverage in the vertex attributes, outward thickness, the beard's
    UV mask."""
    vattr = np.zeros((nv, 4), np.float32)
    vattr[:, :3] = assets.vattr_static
    hair_cov, thickness, style, long_spec = _scalp_hair(rng, assets, cfg)
    vattr[:, 0] = hair_cov
    beard_uv, beard_style = _beard_mask(rng, assets, cfg)
    if beard_uv is not None:
        S = assets.tex_size
        uvp = assets.vertex_uv
        face = np.arange(nv) < PARTS["face"][1]
        px = np.clip((uvp[:, 0] * S).astype(int), 0, S - 1)
        py = np.clip(((1 - uvp[:, 1]) * S).astype(int), 0, S - 1)
        bc = np.where(face & (uvp[:, 0] < 1.0), beard_uv[py, px], 0.0)
        if beard_style != "stubble":  # stubble is only a texture (no hair layer, no beard label)
            vattr[:, 1] = bc
        if beard_style == "full":
            thickness = np.maximum(thickness, bc * rng.uniform(0.1, 0.6))
    return _Hair(vattr, thickness, style, long_spec, beard_uv, beard_style)


def _clothing(rng: np.random.Generator, assets: ModelAssets, vattr: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Clothing colour (linear (3,)) and neckline; writes the signed depth (cm) below the neckline to
    ``vattr[:, 3]`` (skin vertices; -1 elsewhere). Returns the colour and ``(base, dip)`` of the neckline."""
    if rng.random() < 0.5:
        cloth_rgb = lin(rng.uniform(10, 240, 3))
    else:
        g = rng.uniform(10, 230)
        cloth_rgb = lin(np.clip(g * np.exp(rng.normal(0, 0.15, 3)), 0, 255))
    V0 = assets.model.neutral
    az = np.arctan2(V0[:, 0], V0[:, 2] - assets.neck_centre_z)
    base = rng.uniform(-12.5, -9.5)
    dip = rng.uniform(0.0, 5.0) if rng.random() < 0.7 else rng.uniform(4.0, 7.0)
    width = rng.uniform(1.0, 4.0)
    line = base - dip * np.clip(np.cos(az), 0, 1) ** width
    vattr[:, 3] = np.where(assets.skin_vertex, line - V0[:, 1], -1.0)
    return cloth_rgb, (float(base), float(dip))


def _base_atlas(rng: np.random.Generator, assets: ModelAssets, skin: np.ndarray) -> _Canvas:
    """The atlas before painting: pores and blotches in the albedo, specular variation, a strand pattern."""
    S = assets.tex_size
    tex = np.empty((S, 2 * S, 5), np.float32)
    bank = assets.noise_bank()
    pores = _shifted(rng, bank["pores"])
    lum = 1.0 + smooth_noise(rng, (S, 2 * S), 12) * rng.uniform(0.02, 0.07) + pores * rng.uniform(0.01, 0.05)
    tex[:, :, :3] = lum[:, :, None]
    tex[:, :, 3] = 1.0 + smooth_noise(rng, (S, 2 * S), 8) * 0.25
    strand = _shifted(rng, bank["strands"][int(rng.integers(len(bank["strands"])))])
    tex[:, :, 4] = strand
    return _Canvas(tex, skin, strand, bank, S, assets.lm_uv_px)


def _freckles(rng: np.random.Generator, canvas: _Canvas) -> None:
    """Freckles / moles around the nose and cheeks."""
    S, P = canvas.S, canvas.P
    box = _box(P[30], 0.32 * S, S)
    n = int(rng.integers(40, 400))
    c = (P[30] + rng.normal(0, 0.14 * S, (n, 2)) - [box[2], box[0]]).astype(np.float32)
    m = np.zeros((box[1] - box[0], box[3] - box[2]), np.float32)
    for (cx, cy), rad, a in zip(c, rng.uniform(0.4, 1.3, n), rng.uniform(0.3, 1.0, n), strict=True):
        cv2.circle(m, (int(cx * 4), int(cy * 4)), int(rad * 4 * S / 256), float(a), -1, cv2.LINE_AA, shift=2)
    m = cv2.GaussianBlur(m, (0, 0), 0.7) * rng.uniform(0.15, 0.45)
    _tint(canvas.tex, m, box, np.array([0.4, 0.2, 0.05], np.float32) + 0.0, darken=True)


def _lips(rng: np.random.Generator, assets: ModelAssets, cfg, canvas: _Canvas) -> bool:
    """Lip colour (natural or lipstick) and glossier lips; returns whether lipstick was drawn."""
    lb = assets.lip_box
    lipstick = rng.random() < cfg.p_lipstick
    if lipstick:
        lip_col = lin(
            np.array([(170, 30, 45), (200, 60, 90), (120, 30, 40), (150, 70, 70), (90, 25, 40)])[rng.integers(5)]
            * np.exp(rng.normal(0, 0.1, 3))
        )
    else:
        lip_col = canvas.skin * lin((200, 120, 115)) / lin((224, 172, 140)) * np.exp(rng.normal(0, 0.08, 3))
    canvas.paint(assets.lip_soft, lb, lip_col)
    canvas.tex[lb[0] : lb[1], lb[2] : lb[3], 3] *= 1.0 + assets.lip_soft * rng.uniform(0.5, 2.0)
    return lipstick


def _brows(
    rng: np.random.Generator, assets: ModelAssets, canvas: _Canvas, hair_lin: np.ndarray
) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, float]]:
    """Eyebrows (strand-textured, less specular); returns their soft mask, its box and the band's shape (see
    :func:`_brow_mask`)."""
    brow_mask, bb, shape = _brow_mask(rng, assets)
    brow_col = hair_lin * rng.uniform(0.6, 1.1) if rng.random() < 0.85 else hair_lin * 0.4 + canvas.skin * 0.3
    sub = canvas.strand[bb[0] : bb[1], bb[2] : bb[3]]
    brow_a = np.clip(brow_mask * (0.55 + 0.6 * sub), 0, 1) * rng.uniform(0.55, 0.95)
    canvas.paint(brow_a, bb, brow_col)
    canvas.tex[bb[0] : bb[1], bb[2] : bb[3], 3] *= 1.0 - 0.6 * brow_a
    return brow_mask, bb, shape


def _ageing(rng: np.random.Generator, canvas: _Canvas, hair_lin: np.ndarray, k: float) -> np.ndarray:
    """Wrinkles (forehead lines, nasolabial folds, crow's feet) of strength ``k`` in (0,1], and maybe grey hair:
    returns the hair colour."""
    S, P = canvas.S, canvas.P
    wb = _box(P[27], 0.42 * S, S)
    wr = np.zeros((wb[1] - wb[0], wb[3] - wb[2]), np.float32)
    off = np.array([wb[2], wb[0]], np.float64)
    lw = max(1, int(round(S / 256)))

    def curve(a, b, bulge):
        t = np.linspace(0, 1, 12)[:, None]
        mid = (a + b) / 2 + bulge
        pts = (1 - t) ** 2 * a + 2 * t * (1 - t) * mid + t**2 * b
        cv2.polylines(wr, [np.round((pts - off) * 16).astype(np.int32)], False, 1.0, lw, cv2.LINE_AA, shift=4)

    for j in range(int(rng.integers(1, 5))):
        y = (P[19, 1] + P[24, 1]) / 2 - S * (0.035 + 0.02 * j + rng.uniform(0, 0.008))
        curve(np.array([P[18, 0], y + 0.01 * S]), np.array([P[25, 0], y + 0.01 * S]), np.array([0, -0.012 * S]))
    for side, (n_, m_) in ((-1, (31, 48)), (1, (35, 54))):
        a = P[n_] + np.array([side * 0.012 * S, -0.004 * S])
        b = P[m_] + np.array([side * 0.014 * S, 0.012 * S])
        curve(a, b, np.array([side * 0.012 * S, 0.0]))
        c = P[36 if side < 0 else 45]
        for ang in rng.uniform(-35, 35, int(rng.integers(1, 4))):
            d = np.array([side * np.cos(np.radians(ang)), np.sin(np.radians(ang))]) * 0.03 * S
            curve(c + d * 0.4, c + d * 1.4, np.zeros(2))
    wr = cv2.GaussianBlur(wr, (0, 0), 0.6 * S / 256) * rng.uniform(0.3, 0.6) * k
    _tint(canvas.tex, wr, wb, np.array([0.55, 0.5, 0.5], np.float32), darken=True)
    if rng.random() < k:
        g = rng.uniform(0.3, 0.9) * k
        hair_lin = hair_lin * (1 - g) + lin((175, 175, 170)) * g
    return hair_lin


def _lash_lines(rng: np.random.Generator, canvas: _Canvas) -> None:
    """Dark lash lines along the lid margins (the model's lash cards are not drawn)."""
    S, P = canvas.S, canvas.P
    eb = _box((P[36] + P[45]) / 2, 0.25 * S, S)
    lash = np.zeros((eb[1] - eb[0], eb[3] - eb[2]), np.float32)
    off = np.array([eb[2], eb[0]])
    lw = max(1, int(round(S / 256 * rng.uniform(1.0, 2.0))))
    for ids, a in (
        ((36, 37, 38, 39), 1.0),
        ((42, 43, 44, 45), 1.0),
        ((39, 40, 41, 36), 0.45),
        ((45, 46, 47, 42), 0.45),
    ):
        pts = np.round((P[list(ids)] - off) * 16).astype(np.int32)
        cv2.polylines(lash, [pts], False, a, lw, cv2.LINE_AA, shift=4)
    lash = cv2.GaussianBlur(lash, (0, 0), 0.5 * S / 256) * rng.uniform(0.5, 0.85)
    canvas.paint(lash, eb, lin((30, 22, 20)))


def _eye_makeup(rng: np.random.Generator, canvas: _Canvas) -> None:
    """Eye shadow above both eyes in a random colour."""
    S, P = canvas.S, canvas.P
    eb = _box((P[36] + P[45]) / 2, 0.25 * S, S)
    shadow = np.zeros((eb[1] - eb[0], eb[3] - eb[2]), np.float32)
    for a, b in ((36, 39), (42, 45)):
        c = (P[a] + P[b]) / 2 + np.array([-eb[2], -0.012 * S - eb[0]])
        ax = (float(np.linalg.norm(P[b] - P[a]) * 0.62), float(0.03 * S * rng.uniform(0.7, 1.4)))
        cv2.ellipse(shadow, (c * 16).astype(int), (np.array(ax) * 16).astype(int), 0, 180, 360, 1.0, -1, cv2.LINE_AA, 4)
    shadow = cv2.GaussianBlur(shadow, (0, 0), S / 256 * 2.5) * rng.uniform(0.3, 0.8)
    canvas.paint(shadow, eb, lin(rng.uniform(20, 200, 3)))


def _stubble(rng: np.random.Generator, canvas: _Canvas, beard_uv: np.ndarray, hair_lin: np.ndarray) -> None:
    """Dotted darkening of the skin under the beard mask ``beard_uv`` (S,S)."""
    ys, xs = np.nonzero(beard_uv > 0.01)
    if not len(ys):
        return
    bx = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    dots = np.clip(_shifted(rng, canvas.bank["white"])[bx[0] : bx[1], bx[2] : bx[3]] * 1.4 - 0.2, 0, 1)
    st = beard_uv[bx[0] : bx[1], bx[2] : bx[3]] * dots * rng.uniform(0.25, 0.6)
    canvas.paint(st, bx, hair_lin * 0.8 + canvas.skin * 0.2)


def _label_atlas(assets: ModelAssets, brow_mask: np.ndarray, bb: tuple[int, int, int, int]) -> np.ndarray:
    """Class labels of the atlas (S,2S) uint8: the static map with the subject's eyebrows drawn on it."""
    from . import labels as L

    S = assets.tex_size
    label_tex = assets.label_base.copy()
    fl = label_tex[:, :S]
    bm = brow_mask > 0.5
    left = np.zeros_like(bm)
    left[:, max(0, S // 2 - bb[2]) :] = True
    fb = fl[bb[0] : bb[1], bb[2] : bb[3]]
    fb[bm & ~left] = L.BROW_SUBJECT_RIGHT
    fb[bm & left] = L.BROW_SUBJECT_LEFT
    return label_tex


def _material_params(rng: np.random.Generator) -> np.ndarray:
    """(M,6) float32 rows [uses_texture, specular, shininess, wrap, hair_layers, is_eye] (see raster.shade)."""
    mp = np.zeros((NUM_MATERIALS, 6), np.float32)
    skin_spec = rng.uniform(0.03, 0.18)
    mp[MAT_SKIN] = (1, skin_spec, rng.uniform(8, 30), rng.uniform(0.1, 0.45), 1, 0)
    mp[MAT_MOUTH] = (0, 0.05, 20, 0.2, 0, 0)
    mp[MAT_GUMS] = (0, 0.35, 40, 0.2, 0, 0)
    mp[MAT_TEETH] = (0, 0.25, 30, 0.15, 0, 0)
    mp[MAT_EYE] = (0, rng.uniform(0.4, 1.0), rng.uniform(60, 200), 0.1, 0, 1)
    mp[MAT_EYE_SOCKET] = (0, 0.3, 40, 0.3, 0, 0)
    mp[MAT_LASH] = (0, 0.02, 10, 0.5, 0, 0)
    mp[MAT_GLASSES] = (0, rng.uniform(0.2, 0.8), rng.uniform(20, 80), 0.0, 0, 0)
    mp[MAT_CLOTH] = (0, rng.uniform(0.0, 0.1), 10, 0.3, 0, 0)
    mp[MAT_LENS] = (0, 0.9, 120, 0.0, 0, 0)
    mp[MAT_HAIR] = (1, 0.06, 20, 0.3, 1, 0)
    return mp


def _eye_params(rng: np.random.Generator, hair_lin: np.ndarray, cloth_rgb: np.ndarray | None) -> tuple[np.ndarray, int]:
    """The shader's (14,) float32 ``eye_params`` (see raster.shade) with a random iris, sclera and pupil size,
    and the iris colour's index into :data:`IRIS_COLOURS`."""
    ic = rng.choice(len(IRIS_COLOURS), p=IRIS_P)
    iris = lin(np.clip(IRIS_COLOURS[ic] * np.exp(rng.normal(0, 0.1, 3)), 0, 255))
    sclera = lin(np.clip(np.array([235, 228, 222]) * rng.uniform(0.85, 1.0) * np.exp(rng.normal(0, 0.02, 3)), 0, 255))
    limbus_deg = rng.uniform(30.0, 36.0)
    pupil_deg = limbus_deg * rng.uniform(0.25, 0.45)
    eye_params = np.array(
        [
            np.cos(np.radians(limbus_deg)),
            np.cos(np.radians(pupil_deg)),
            *iris,
            *sclera,
            *hair_lin,
            *(cloth_rgb if cloth_rgb is not None else np.zeros(3)),
        ],
        np.float32,
    )
    return eye_params, int(ic)


def _box(centre: np.ndarray, half: float, S: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) square box around ``centre`` (x, y) clipped to the face tile."""
    x0 = int(np.clip(centre[0] - half, 0, S - 1))
    x1 = int(np.clip(centre[0] + half, x0 + 1, S))
    y0 = int(np.clip(centre[1] - half, 0, S - 1))
    y1 = int(np.clip(centre[1] + half, y0 + 1, S))
    return y0, y1, x0, x1


def _tint(tex: np.ndarray, mask: np.ndarray, box, ratio: np.ndarray, darken: bool = False) -> None:
    """Blend the albedo multiplier of ``tex`` inside ``box`` towards ``ratio`` (3,) by ``mask`` (box-sized);
    ``darken``: multiply by ``1 - mask * (1 - ratio)`` instead (a mask of 1 scales to ``ratio``)."""
    region = tex[box[0] : box[1], box[2] : box[3], :3]
    m = mask[:, :, None]
    if darken:
        region *= 1.0 - m * (1.0 - np.asarray(ratio, np.float32))
    else:
        region *= 1.0 + m * (np.asarray(ratio, np.float32) - 1.0)


def _shifted(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    """A randomly rolled and flipped copy of the (tileable) noise pattern ``a``."""
    out = np.roll(a, (int(rng.integers(a.shape[0])), int(rng.integers(a.shape[1]))), (0, 1))
    if rng.random() < 0.5:
        out = out[::-1]
    return np.ascontiguousarray(out)


def strand_pattern(rng: np.random.Generator, S: int, angle: float) -> np.ndarray:
    """Hair strand pattern in [0,1] over the atlas: noise smeared along a random direction."""
    n = rng.random((S, 2 * S)).astype(np.float32)
    L_ = max(5, int(9 * S / 256)) | 1
    ang = angle
    k = np.zeros((L_, L_), np.float32)
    c = (L_ - 1) / 2
    dx, dy = np.cos(np.radians(ang)), np.sin(np.radians(ang))
    for s in np.linspace(-c, c, 2 * L_):
        k[int(round(c + s * dy)), int(round(c + s * dx))] = 1.0
    k /= k.sum()
    n = wrap_filter(n, lambda a: cv2.filter2D(a, -1, k), L_)
    n = (n - n.mean()) / (n.std() + 1e-6)
    return np.clip(0.5 + 0.22 * n, 0.0, 1.0)


def _brow_mask(
    rng: np.random.Generator, assets: ModelAssets
) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, float]]:
    """Soft eyebrow mask in the face tile (a band below the brow landmarks with random shape), its box and the
    band's shape in face-tile UV units: its lower edge lies ``lift + thickness * (taper + (1 - taper) * j / 4)``
    below the j-th brow landmark from the outer end (:data:`lightmark.synth.landmark_sets.WFLW98_BROW_LOWER`)."""
    S = assets.tex_size
    P = assets.lm_uv_px
    br = P[17:27]
    margin = 0.06 * S
    box = (
        int(max(br[:, 1].min() - margin, 0)),
        int(min(br[:, 1].max() + 2 * margin, S)),
        int(max(br[:, 0].min() - margin, 0)),
        int(min(br[:, 0].max() + margin, S)),
    )
    P = P - np.array([box[2], box[0]])
    m = np.zeros((box[1] - box[0], box[3] - box[2]), np.float32)
    thick = rng.uniform(0.022, 0.045) * S
    taper = rng.uniform(0.3, 0.8)
    lift = rng.uniform(-0.2, 0.25) * thick
    for ids in ((17, 18, 19, 20, 21), (26, 25, 24, 23, 22)):
        top = P[list(ids)].copy()
        top[:, 1] += lift
        # thickness: full at the inner end (21/22), tapered at the outer end
        w = np.linspace(taper, 1.0, 5)[:, None] * thick
        bottom = top + np.concatenate([np.zeros((5, 1)), w], 1)
        outer_ext = top[0] + (top[0] - top[1]) * rng.uniform(0.0, 0.4)
        poly = np.concatenate([[outer_ext], top, bottom[::-1]])
        cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    shape = {"thickness": thick / S, "taper": float(taper), "lift": lift / S}
    return cv2.GaussianBlur(m, (0, 0), S / 256 * 1.0), box, shape


def _scalp_hair(rng: np.random.Generator, assets: ModelAssets, cfg) -> tuple[np.ndarray, np.ndarray, str, dict | None]:
    """Per-vertex hair coverage (0-1), outward thickness (cm), style name and the long-hair curtain spec."""
    nv = len(assets.hair_el)
    styles = ("bald", "buzz", "short", "volume", "long")
    p = np.asarray(cfg.hair_style_p, np.float64)
    style = styles[rng.choice(len(p), p=p / p.sum())]
    cov = np.zeros(nv, np.float32)
    thick = np.zeros(nv, np.float32)
    if style == "bald":
        if rng.random() < 0.5:
            return cov, thick, style, None
        style = "balding"
    el = assets.hair_el
    az = np.abs(assets.hair_az)
    front = assets.brow_el + rng.uniform(10.0, 24.0)
    recess = rng.uniform(0.0, 12.0)
    if style == "balding":
        front += rng.uniform(15.0, 35.0)
        recess += 10.0
    bangs = style in ("short", "volume", "long") and rng.random() < (0.45 if style == "long" else 0.15)
    if bangs:
        front = assets.brow_el + rng.uniform(1.5, 9.0)
        recess = rng.uniform(-3.0, 4.0)
    temple = front + recess * rng.uniform(0.5, 1.0) - rng.uniform(0.0, 6.0)
    sideburn = rng.uniform(-8.0, 12.0)
    above_ear = rng.uniform(22.0, 30.0) if style != "long" else rng.uniform(2.0, 10.0)
    back = rng.uniform(-35.0, -10.0)
    nape = back - rng.uniform(0.0, 15.0)
    xs = [0.0, 25.0, 45.0, 62.0, 72.0, 85.0, 105.0, 135.0, 180.0]
    ys = [front, front + recess * 0.5, temple, temple - 5.0, sideburn, above_ear, above_ear, back, nape]
    h = np.interp(az, xs, ys)
    soft = rng.uniform(2.0, 5.0)
    if style == "balding":
        # crown/top bald patch: coverage only on the sides and back
        top = _smoothstep((el - rng.uniform(45.0, 65.0)) / 6.0)
        cov = _smoothstep((el - h) / soft + 0.5) * (1.0 - top * (az < 120))
    else:
        cov = _smoothstep((el - h) / soft + 0.5)
    cov[~assets.skin_vertex | assets.hair_forbidden] = 0.0
    cov = cov.astype(np.float32)
    t, thick = _hair_thickness(rng, style, el, h, cov, bangs)
    long_spec = _long_hair_spec(rng, assets, t) if style == "long" else None
    return cov, thick, style + ("+bangs" if bangs else ""), long_spec


def _hair_thickness(
    rng: np.random.Generator, style: str, el: np.ndarray, h: np.ndarray, cov: np.ndarray, bangs: bool
) -> tuple[float, np.ndarray]:
    """Base thickness ``t`` (cm) of ``style`` and the per-vertex thickness (V,) float32: thicker on top, thinner on
    the sides and at the nape, ramping up from the hairline ``h`` (elevations ``el``, degrees)."""
    if style in ("buzz", "balding"):
        t = rng.uniform(0.05, 0.3)
    elif style == "short":
        t = rng.uniform(0.3, 1.3)
    elif style == "long":
        t = rng.uniform(0.6, 2.0)
    else:
        t = rng.uniform(1.2, 2.8)
    prof = 0.35 + 0.65 * np.clip((el + 10.0) / 70.0, 0.0, 1.0)
    ramp = _smoothstep((el - h) / rng.uniform(6.0, 14.0) + (0.5 if bangs else 0.0))
    return t, (t * prof * ramp * (cov > 0)).astype(np.float32)


def _long_hair_spec(rng: np.random.Generator, assets: ModelAssets, t: float) -> dict:
    """Spec of the long-hair curtain (see props.hair_curtain) for scalp hair ``t`` cm thick."""
    ear_top = float(assets.head_centre[1]) + rng.uniform(2.5, 4.0)
    return {
        "front": float(rng.uniform(55.0, 85.0)),
        "length": float(rng.uniform(14.0, 40.0)),
        "top": ear_top,
        "thickness": float(t * 0.6),
    }


def _beard_mask(rng: np.random.Generator, assets: ModelAssets, cfg) -> tuple[np.ndarray | None, str]:
    """Soft UV-space (face tile) mask of a random beard style, or None."""
    if rng.random() >= cfg.p_beard:
        return None, "none"
    S = assets.tex_size
    P = assets.lm_uv_px
    style = ("stubble", "full", "goatee", "moustache", "chin_strap")[rng.choice(5, p=[0.4, 0.3, 0.12, 0.1, 0.08])]
    m = np.zeros((S, S), np.float32)
    down = np.array([0.0, rng.uniform(0.03, 0.12) * S])
    mouth_c = P[48:60].mean(0)

    def fill(poly):
        cv2.fillPoly(m, [np.round(np.asarray(poly) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)

    if style in ("stubble", "full", "chin_strap"):
        cheek_hi = rng.uniform(0.2, 0.6)
        upper = [P[0] * (1 - cheek_hi) + P[36] * cheek_hi]
        upper += [P[2] * 0.5 + P[31] * 0.5 + np.array([0, rng.uniform(-0.02, 0.03) * S])]
        upper += [P[33] + np.array([0, 0.012 * S])]
        upper += [P[14] * 0.5 + P[35] * 0.5 + np.array([0, rng.uniform(-0.02, 0.03) * S])]
        upper += [P[16] * (1 - cheek_hi) + P[45] * cheek_hi]
        lower = [P[k] + down for k in range(16, -1, -1)]
        if style == "chin_strap":
            upper = [P[k] + (mouth_c - P[k]) * 0.25 for k in range(0, 17)]
        fill(np.concatenate([np.asarray(upper), np.asarray(lower)]))
    if style in ("goatee", "moustache") or (style == "full" and rng.random() < 0.9):
        mous = np.array(
            [P[48] + np.array([-0.01 * S, 0.01 * S]), P[31], P[33], P[35], P[54] + np.array([0.01 * S, 0.01 * S])]
        )
        mous = np.concatenate([mous, [P[k] + np.array([0, -0.004 * S]) for k in (53, 52, 51, 50, 49)]])
        fill(mous)
    if style == "goatee":
        fill(
            np.array(
                [
                    P[59],
                    P[58],
                    P[57],
                    P[56],
                    P[55],
                    P[11] * 0.6 + P[54] * 0.4,
                    P[9] + down * 0.5,
                    P[7] + down * 0.5,
                    P[5] * 0.6 + P[48] * 0.4,
                ]
            )
        )
    # no hair on the lips
    lips = cv2.dilate(((assets.upper_lip_mask + assets.lower_lip_mask) > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    m *= 1.0 - lips
    m = cv2.GaussianBlur(m, (0, 0), S / 256 * rng.uniform(1.5, 4.0))
    density = {"stubble": rng.uniform(0.15, 0.35), "full": rng.uniform(0.8, 1.0)}.get(style, rng.uniform(0.7, 1.0))
    return (m * density).astype(np.float32), style
