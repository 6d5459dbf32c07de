"""Unwrap the skin of a photographed (or photoreal) face into the face model's UV atlas.

Given a :class:`~lightmark.synth.fit.FaceFit` of the image, every texel of the skin atlas (face tile u in [0,1),
head tile u in [1,2), ``S`` texels per unit, the layout the renderer's textures use) is placed on the fitted mesh,
projected into the image and coloured where the surface is visible there (z-buffer of the fitted mesh, facing the
camera, inside the skin classes of the segmentation). Baked-in shading is divided out (a second-order spherical
harmonics fit of the skin's luminance over its normals), the hidden side is taken from the mirrored texel of the
other side (the ICT layout is left/right symmetric; the mirror map is computed from the mesh), and what is still
missing is filled smoothly (pull-push).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import labels as L
from .appearance import srgb_to_linear
from .assets import MAT_SKIN, ModelAssets
from .face_model import FaceModel
from .fit import FaceFit
from .raster import rasterize, vertex_normals

# classes of the FaceSynthetics segmentation whose pixels show skin (albedo) of the model's skin atlas
SKIN_CLASSES = (
    L.SKIN,
    L.NOSE,
    L.BROW_SUBJECT_LEFT,
    L.BROW_SUBJECT_RIGHT,
    L.EAR_SUBJECT_LEFT,
    L.EAR_SUBJECT_RIGHT,
    L.UPPER_LIP,
    L.LOWER_LIP,
    L.NECK,
)
SHADING_CLASSES = (L.SKIN, L.NOSE)  # where the shading is fitted (plain skin: no lips, brows)
BROW_CLASSES = (L.BROW_SUBJECT_LEFT, L.BROW_SUBJECT_RIGHT)
LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass
class AtlasRaster:
    """The skin texels of an (S,2S) atlas on the mesh, and their mirror images.

    ``index`` (N,) flat texel ids, ``verts`` (N,3) vertex ids and ``bary`` (N,3) barycentric weights of the mesh
    point under each texel; ``mirror`` (S,2S,2) float32 texel coordinates (x, y) of each texel's mirror image
    (the texel itself where it has none), ready for ``cv2.remap``; ``seam_face`` / ``seam_head`` (K,2) texel
    coordinates of the vertices on the seam between the tiles, in the face tile and in the head tile.
    """

    S: int
    index: np.ndarray
    verts: np.ndarray
    bary: np.ndarray
    mirror: np.ndarray
    seam_face: np.ndarray
    seam_head: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(S,2S) bool: texels on the skin."""
        m = np.zeros(self.S * 2 * self.S, bool)
        m[self.index] = True
        return m.reshape(self.S, 2 * self.S)


_RASTERS: dict[tuple[int, int], AtlasRaster] = {}


def atlas_raster(assets: ModelAssets, S: int) -> AtlasRaster:
    """The (per process cached) :class:`AtlasRaster` of ``assets``' skin triangles at tile size ``S``."""
    key = (id(assets), int(S))
    if key not in _RASTERS:
        if len(_RASTERS) > 4:
            _RASTERS.clear()
        _RASTERS[key] = _build_raster(assets, int(S))
    return _RASTERS[key]


def _uv_pixels(uv: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel coordinates (x, y) of atlas points ``uv`` (U,2) (texel centres at integers, as the shader samples)."""
    return uv[:, 0].astype(np.float64) * S - 0.5, (1.0 - uv[:, 1].astype(np.float64)) * S - 0.5


def _build_raster(assets: ModelAssets, S: int) -> AtlasRaster:
    skin = assets.tri_mat == MAT_SKIN
    xs, ys = _uv_pixels(assets.uv, S)
    tid = np.full((S, 2 * S), -1, np.int32)
    bary = np.zeros((S, 2 * S, 2), np.float32)
    zbuf = np.full((S, 2 * S), np.inf, np.float32)
    rasterize(xs, ys, np.ones(len(xs)), assets.uv_tris, skin, tid, bary, zbuf)
    index = np.flatnonzero(tid >= 0)
    t = tid.ravel()[index]
    b12 = bary.reshape(-1, 2)[index].astype(np.float64)
    b = np.concatenate([1.0 - b12.sum(1, keepdims=True), b12], 1)
    mirror = _mirror_coordinates(assets, S, index, t, b)
    return AtlasRaster(S, index, assets.tris[t], b, mirror, *_seams(assets, S))


def _seams(assets: ModelAssets, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel coordinates (K,2) in the face tile and (K,2) in the head tile of the skin vertices that have a UV
    point in both tiles (the scalp's and the neck's borders with the face, the inner lips)."""
    skin = assets.tri_mat == MAT_SKIN
    pairs = np.unique(np.stack([assets.tris[skin].ravel(), assets.uv_tris[skin].ravel()], 1), axis=0)
    tile = np.floor(assets.uv[pairs[:, 1], 0]).astype(np.int64)
    face, head = pairs[tile == 0], pairs[tile == 1]
    fv, first = np.unique(face[:, 0], return_index=True)
    head = head[np.isin(head[:, 0], fv)]
    f_uv = face[first][np.searchsorted(fv, head[:, 0]), 1]
    xs, ys = _uv_pixels(assets.uv, S)
    return np.stack([xs[f_uv], ys[f_uv]], 1), np.stack([xs[head[:, 1]], ys[head[:, 1]]], 1)


def mirror_vertices(V: np.ndarray) -> np.ndarray:
    """(V,) id of the vertex nearest to each vertex's mirror image (x -> -x) on the mesh ``V`` (V,3)."""
    from scipy.spatial import cKDTree

    return cKDTree(V).query(V * np.array([-1.0, 1.0, 1.0]))[1]


def _mirror_coordinates(assets: ModelAssets, S: int, index: np.ndarray, t: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(S,2S,2) float32 remap coordinates of each texel's mirror image: the same barycentric point of the mirror
    triangle (found by its mirrored vertex ids) in that triangle's UVs."""
    tris = assets.tris.astype(np.int64)
    mv = mirror_vertices(assets.model.neutral.astype(np.float64))
    nv = len(mv)
    key = np.sort(tris, 1) @ np.array([nv * nv, nv, 1], np.int64)
    order = np.argsort(key)
    mkey = np.sort(mv[tris], 1) @ np.array([nv * nv, nv, 1], np.int64)
    pos = np.clip(np.searchsorted(key[order], mkey), 0, len(key) - 1)
    found = key[order][pos] == mkey
    mt = np.where(found, order[pos], np.arange(len(tris)))  # (T,) mirror triangle (itself where none)
    # corner k of triangle t maps to the corner of mt holding mirror(tris[t, k])
    corner = np.argmax(tris[mt][:, None, :] == mv[tris][:, :, None], axis=2)  # (T,3)
    corner = np.where(found[:, None], corner, np.arange(3)[None, :])
    muv = assets.uv_tris[mt[:, None], corner]  # (T,3) uv ids of the mirrored corners
    xs, ys = _uv_pixels(assets.uv, S)
    out = np.stack(np.meshgrid(np.arange(2 * S), np.arange(S)), -1).astype(np.float32)
    flat = out.reshape(-1, 2)
    flat[index, 0] = np.einsum("nk,nk->n", b, xs[muv[t]])
    flat[index, 1] = np.einsum("nk,nk->n", b, ys[muv[t]])
    return out


@dataclass
class Unwrapped:
    """One face's skin in the atlas: ``albedo`` (S,2S,3) float32 linear RGB (filled everywhere), ``seen``
    (S,2S) float32 visibility weight in [0,1] of the texels observed in the image (before the mirror fill),
    ``brows`` (S,2S) float32 eyebrow probability (segmentation classes, mirror-filled), ``shading`` the (9,3)
    spherical-harmonics coefficients (per channel) divided out."""

    albedo: np.ndarray
    seen: np.ndarray
    brows: np.ndarray
    shading: np.ndarray


@dataclass
class _Samples:
    """What the image shows at each skin texel of an :class:`AtlasRaster` (N texels)."""

    colour: np.ndarray  # (N,3) float64 linear RGB
    weight: np.ndarray  # (N,) float64 visibility weight in [0,1]
    cls: np.ndarray  # (N,) uint8 segmentation class under the texel
    normal: np.ndarray  # (N,3) float64 unit camera-space normal


def unwrap(
    image: np.ndarray, seg: np.ndarray, fit: FaceFit, model: FaceModel, assets: ModelAssets, S: int = 512
) -> Unwrapped:
    """Unwrap ``image`` (H,W,3) uint8 sRGB with its segmentation ``seg`` (H,W) (FaceSynthetics classes) through
    the fitted face ``fit`` into an (S,2S) atlas: sample, divide the shading out (:func:`deshade`, then
    :func:`flatten_luminance` in the atlas), mirror-fill (:func:`mirror_fill`) and pull-push the rest."""
    ar = atlas_raster(assets, S)
    smp = _sample_texels(image, seg, fit, model, assets, ar)
    colour, coeffs = deshade(smp)
    w = smp.weight * lit_weight(smp)
    plain = np.isin(smp.cls, SHADING_CLASSES)
    seen = _to_atlas(ar, w[:, None])[:, :, 0]
    plain_w = _to_atlas(ar, (w * plain)[:, None])[:, :, 0]
    albedo, ratio = flatten_luminance(_to_atlas(ar, colour), plain_w, seen, S / 64)
    # plain skin much darker than its surroundings is a shadow's edge (hair, nose): the mirror or the fill replaces it
    seen = np.where(plain_w > 0, seen * _smoothstep((ratio - 0.45) / 0.3), seen)
    brows = _to_atlas(ar, np.isin(smp.cls, BROW_CLASSES).astype(np.float64)[:, None])
    albedo, weight = mirror_fill(albedo * seen[:, :, None], seen, ar)
    brows, _ = mirror_fill(brows * seen[:, :, None], seen, ar)
    mean = _weighted_mean(albedo.reshape(-1, 3), (weight * (seen > 0)).ravel())
    trust = weight**2  # faintly seen texels (grazing, at the segmentation's border: darker) give way to the fill
    albedo = fill_holes(albedo, trust, ar, mean)
    brows = fill_holes(brows, trust, ar, np.zeros(1))[:, :, 0]
    # one more, broader luminance levelling over the whole atlas: the fill meets the seen skin without a step
    even = ar.mask & np.isin(assets.label_base, (L.SKIN, L.NECK)) & (brows < 0.3)
    albedo = flatten_luminance(albedo, even.astype(np.float64), ar.mask.astype(np.float64), S / 16, 1e9)[0]
    return Unwrapped(albedo.astype(np.float32), seen.astype(np.float32), brows.astype(np.float32), coeffs)


def lit_weight(smp: _Samples, lo: float = 0.25, hi: float = 0.6) -> np.ndarray:
    """(N,) weight of each texel by how well it is lit: 0 below ``lo`` times the median luminance of the well-seen
    plain skin, 1 above ``hi`` times (shadowed texels are noisy and coloured by the ambient light: the mirror
    side or the fill replaces them)."""
    Y = smp.colour @ LUMA
    use = (smp.weight > 0.3) & np.isin(smp.cls, SHADING_CLASSES)
    if not use.any():
        return np.ones(len(Y))
    med = float(np.median(Y[use]))
    return _smoothstep((Y / max(med, 1e-6) - lo) / (hi - lo))


def flatten_luminance(
    values: np.ndarray, plain: np.ndarray, seen: np.ndarray, sigma: float, highlight: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Divide the low-frequency luminance out of ``values`` (S,2S,3) linear RGB: a Gaussian (``sigma`` texels)
    average of the luminance over the well-seen plain skin (weights ``plain`` (S,2S)), per atlas tile, is scaled to
    the skin's mean luminance (where plain skin is too sparse, the average over every seen texel, weights ``seen``
    (S,2S), stands in); what is left of the shading after :func:`deshade` (cast shadows, the fitted mesh's missing
    creases) goes, the chromaticity and the fine detail (pores, brows, lips) stay. Texels brighter than
    ``highlight`` times their surroundings (specular highlights) are compressed. Returns the values and the
    ratio (S,2S) of each texel's luminance to its surroundings'."""
    Y = values @ LUMA
    total = float(plain.sum())
    if total <= 1e-6:
        return values, np.ones(Y.shape)
    mean_y = float((Y * plain).sum() / total)
    S = values.shape[0]
    low = np.full(Y.shape, mean_y)
    for k in range(values.shape[1] // S):
        sl = slice(k * S, (k + 1) * S)
        est = np.full((S, S), mean_y)
        for w in (seen[:, sl], plain[:, sl]):  # the denser estimate where it has data
            num = cv2.GaussianBlur((Y[:, sl] * w).astype(np.float32), (0, 0), sigma)
            den = cv2.GaussianBlur(w.astype(np.float32), (0, 0), sigma)
            a = _smoothstep(den / 0.05)
            est = a * num / np.maximum(den, 1e-6) + (1.0 - a) * est
        low[:, sl] = est
    ratio = Y / np.maximum(low, 1e-6)
    squashed = np.where(ratio > highlight, highlight + (ratio - highlight) * 0.25, ratio)
    gain = mean_y / np.maximum(low, 1e-6) * squashed / np.maximum(ratio, 1e-6)
    return values * gain[:, :, None], ratio


def _to_atlas(ar: AtlasRaster, values: np.ndarray) -> np.ndarray:
    """(S,2S,C) atlas of per-texel ``values`` (N,C) (0 off the skin)."""
    out = np.zeros((ar.S * 2 * ar.S, values.shape[1]), np.float64)
    out[ar.index] = values
    return out.reshape(ar.S, 2 * ar.S, -1)


def _weighted_mean(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (values * w[:, None]).sum(0) / max(float(w.sum()), 1e-9)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _sample_texels(
    image: np.ndarray, seg: np.ndarray, fit: FaceFit, model: FaceModel, assets: ModelAssets, ar: AtlasRaster
) -> _Samples:
    """Project every skin texel into the image: colour, visibility weight, class and normal (see
    :class:`_Samples`). A texel counts where the fitted mesh is not hidden there (z-buffer), faces the camera and
    lies inside the skin classes (weights fade over 3 px towards their border and with the viewing angle)."""
    cam = fit.camera
    X = cam.to_camera(model.vertices(fit.identity, fit.expression))
    vn = np.empty_like(X)
    fn = vertex_normals(X, assets.tris, vn)
    front = np.einsum("ij,ij->i", fn, X[assets.tris[:, 0]]) < 0
    H, W = seg.shape
    xs = cam.K[0, 0] * X[:, 0] / X[:, 2] + cam.K[0, 2]
    ys = cam.K[1, 1] * X[:, 1] / X[:, 2] + cam.K[1, 2]
    zbuf = np.full((H, W), np.inf, np.float32)
    tid = np.full((H, W), -1, np.int32)
    rasterize(xs, ys, X[:, 2].copy(), assets.tris, front, tid, np.zeros((H, W, 2), np.float32), zbuf)
    P = np.einsum("nk,nkj->nj", ar.bary, X[ar.verts])
    N = np.einsum("nk,nkj->nj", ar.bary, vn[ar.verts])
    N /= np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
    px = cam.K[0, 0] * P[:, 0] / P[:, 2] + cam.K[0, 2]
    py = cam.K[1, 1] * P[:, 1] / P[:, 2] + cam.K[1, 2]
    ix = np.clip(np.round(px).astype(np.int64), 0, W - 1)
    iy = np.clip(np.round(py).astype(np.int64), 0, H - 1)
    inside = (px > -0.5) & (px < W - 0.5) & (py > -0.5) & (py < H - 0.5)
    visible = inside & (P[:, 2] <= zbuf[iy, ix] + 0.3)
    cosv = -np.einsum("nj,nj->n", N, P) / np.linalg.norm(P, axis=1)
    skin = (np.isin(seg, SKIN_CLASSES) & ~behind_glasses(seg)).astype(np.uint8)
    feather = np.clip(cv2.distanceTransform(skin, cv2.DIST_L2, 3) / 3.0 - 0.34, 0.0, 1.0)
    weight = visible * _smoothstep((cosv - 0.15) / 0.5) * feather[iy, ix]
    lin = srgb_to_linear(image.astype(np.float32) / 255.0).astype(np.float32)
    return _Samples(bilinear(lin, px, py), weight, seg[iy, ix], N)


def behind_glasses(seg: np.ndarray) -> np.ndarray:
    """(H,W) bool: pixels enclosed by the glasses' frames (class :data:`~lightmark.synth.labels.GLASSES`), i.e.
    seen through the lenses (refracted, tinted, with reflections)."""
    frames = (seg == L.GLASSES).astype(np.uint8)
    if not frames.any():
        return np.zeros(seg.shape, bool)
    frames = cv2.morphologyEx(frames, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, comp = cv2.connectedComponents(1 - frames, connectivity=4)
    border = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
    return ~np.isin(comp, border) & (frames == 0)


def bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,C) float64 bilinear samples of ``img`` (H,W,C) at pixel-centre coordinates ``x``, ``y`` (N,) (clamped)."""
    H, W = img.shape[:2]
    x = np.clip(x, 0.0, W - 1.0)
    y = np.clip(y, 0.0, H - 1.0)
    x0 = np.minimum(x.astype(np.int64), W - 2)
    y0 = np.minimum(y.astype(np.int64), H - 2)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float64)


def sh_basis(n: np.ndarray) -> np.ndarray:
    """(N,9) real spherical harmonics up to order 2 (unnormalised) of unit normals ``n`` (N,3)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], 1)


def deshade(smp: _Samples, floor: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Divide the low-frequency shading out of the texel colours: each channel of the well-seen plain skin
    texels is fitted (robust least squares) by second-order spherical harmonics of their normals (coloured light
    from different directions, e.g. sky and sun, is removed too); every colour is divided by that shading
    normalised to mean 1 over the fitted texels (clamped below at ``floor``), so the albedo keeps the skin's
    mean colour. Returns the colours (N,3) and the (9,3) coefficients."""
    use = (smp.weight > 0.3) & np.isin(smp.cls, SHADING_CLASSES)
    if use.sum() < 200:
        return smp.colour, np.zeros((9, 3))
    B = sh_basis(smp.normal)
    C = smp.colour[use]
    w = smp.weight[use]
    c = np.zeros((9, 3))
    for _ in range(3):  # reweighted: outliers (specular highlights, cast shadows, beard) count less
        sw = np.sqrt(w)[:, None]
        A = np.concatenate([B[use] * sw, 0.05 * np.eye(9)])
        c = np.linalg.lstsq(A, np.concatenate([C * sw, np.zeros((9, 3))]), rcond=None)[0]
        r = np.abs(B[use] @ c - C) @ LUMA
        w = smp.weight[use] * np.minimum(1.0, 2.0 * np.median(r) / np.maximum(r, 1e-9))
    shade = B @ c  # (N,3)
    mean = (shade[use] * smp.weight[use, None]).sum(0) / smp.weight[use].sum()
    if (mean <= 1e-6).any():
        return smp.colour, np.zeros((9, 3))
    out = smp.colour / np.maximum(shade / mean, floor)
    keep = _weighted_mean(C, smp.weight[use]) / np.maximum(_weighted_mean(out[use], smp.weight[use]), 1e-9)
    return out * keep, c / mean


def mirror_fill(values: np.ndarray, seen: np.ndarray, ar: AtlasRaster) -> tuple[np.ndarray, np.ndarray]:
    """Blend each texel of ``values`` (S,2S,C), weighted by ``seen`` (S,2S) (values premultiplied by it), with its
    mirror image: a texel keeps its own colour as far as it was seen, the mirror side fills the rest. Returns the
    (unpremultiplied) values and the combined weight (S,2S)."""
    mx, my = ar.mirror[:, :, 0], ar.mirror[:, :, 1]
    m_vals = cv2.remap(values.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m_seen = cv2.remap(seen.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m_vals = m_vals.reshape(values.shape)
    own = values / np.maximum(seen, 1e-6)[:, :, None]
    mirrored = m_vals / np.maximum(m_seen, 1e-6)[:, :, None]
    alpha = (seen / np.maximum(seen + (1.0 - seen) * m_seen, 1e-6))[:, :, None]
    weight = seen + (1.0 - seen) * m_seen
    out = np.where(weight[:, :, None] > 1e-6, alpha * own + (1.0 - alpha) * mirrored, 0.0)
    return out, weight


def pull_push(values: np.ndarray, weight: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Fill ``values`` (H,W,C) where ``weight`` (H,W) in [0,1] is low from coarser weighted averages (a pull-push
    pyramid with Gaussian pulls, so data spreads sideways at every level); the coarsest level is the weighted
    average of the data (``mean`` (C,) where there is none)."""
    H, W, C = values.shape
    w = np.clip(weight, 0.0, 1.0).astype(np.float32)
    if min(H, W) <= 4:
        tot = float(w.sum())
        avg = (values * w[:, :, None]).sum((0, 1)) / tot if tot > 1e-6 else np.asarray(mean, np.float64)
        return np.broadcast_to(avg, values.shape).copy()
    sw = cv2.pyrDown(w)
    sv = cv2.pyrDown((values * w[:, :, None]).astype(np.float32)).reshape(sw.shape[0], sw.shape[1], C)
    coarse_v = np.where(sw[:, :, None] > 1e-6, sv / np.maximum(sw, 1e-6)[:, :, None], 0.0)
    coarse = pull_push(coarse_v, np.minimum(sw * 4.0, 1.0), mean)
    up = cv2.pyrUp(coarse.astype(np.float32), dstsize=(W, H)).reshape(H, W, C)
    return w[:, :, None] * values + (1.0 - w[:, :, None]) * up


def fill_holes(values: np.ndarray, weight: np.ndarray, ar: AtlasRaster, mean: np.ndarray) -> np.ndarray:
    """Pull-push fill of ``values`` (S,2S,C) (weights ``weight`` (S,2S)) per atlas tile (the tiles are not
    neighbours in the atlas): the face tile first (coarsest level: ``mean`` (C,), the face's mean skin colour),
    then the head tile from what it saw plus the face tile's colours at the seam vertices (so the scalp and the
    back of the neck continue the face's border without a seam)."""
    S = ar.S
    mean = np.asarray(mean, np.float64)
    face = pull_push(values[:, :S], weight[:, :S], mean)
    seeds = bilinear(face, ar.seam_face[:, 0], ar.seam_face[:, 1])  # (K,C)
    acc_v = np.zeros((S, S, values.shape[2]))
    acc_w = np.zeros((S, S))
    hx = np.round(ar.seam_head[:, 0] - S).astype(np.int64)
    hy = np.round(ar.seam_head[:, 1]).astype(np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            x, y = np.clip(hx + dx, 0, S - 1), np.clip(hy + dy, 0, S - 1)
            np.add.at(acc_v, (y, x), seeds)
            np.add.at(acc_w, (y, x), 1.0)
    head_v, head_w = values[:, S:].copy(), weight[:, S:].copy()
    seam = (acc_w > 0) & (head_w < 0.5)
    head_v[seam] = acc_v[seam] / acc_w[seam][:, None]
    head_w[seam] = 1.0
    head_mean = seeds.mean(0) if len(seeds) else mean
    return np.concatenate([face, pull_push(head_v, head_w, head_mean)], 1)
