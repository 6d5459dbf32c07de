"""A small z-buffer triangle rasteriser and a per-pixel shader, compiled with numba (one thread).

Conventions (shared with the landmark projection in :mod:`lightmark.synth.scene`):

- screen coordinates are in pixels, ``x`` to the right and ``y`` down, and the centre of pixel ``(row, col)``
  is at ``(x, y) = (col, row)``: a vertex projected to ``(3.0, 5.0)`` lies on the centre of row 5, column 3;
- ``z`` is the positive camera depth; the nearest surface wins;
- triangles are sampled at pixel centres with edge functions computed relative to the first vertex in
  float64, with a tiny tolerance, so that neighbouring triangles leave no pinholes;
- barycentrics are perspective-correct (interpolated as ``b_i / z_i`` then renormalised).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

EDGE_EPS = 1e-9
SHADOW_NORMAL_OFFSET = 0.5  # cm


@njit(cache=True, nogil=True)
def rasterize(xs, ys, zs, tris, tri_ok, tri_id, bary, zbuf):  # pragma: no cover - numba
    """Z-buffer the triangles ``tris`` (T,3) whose ``tri_ok`` flag is set into ``tri_id``/``bary``/``zbuf``.

    ``xs``/``ys``/``zs`` (V,) float64 are the projected vertices. ``tri_id`` (H,W) int32 receives the
    winning triangle (untouched where nothing is drawn, so callers initialise it to -1), ``bary`` (H,W,2)
    float32 the perspective-correct barycentric weights of its vertices 1 and 2 and ``zbuf`` (H,W) float32
    the depth (initialise to +inf). Several calls may share the buffers (later meshes are z-tested against
    earlier ones).
    """
    h, w = zbuf.shape
    for t in range(tris.shape[0]):
        if not tri_ok[t]:
            continue
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        x0, y0, z0 = xs[i0], ys[i0], zs[i0]
        x1, y1, z1 = xs[i1], ys[i1], zs[i1]
        x2, y2, z2 = xs[i2], ys[i2], zs[i2]
        if z0 <= 0.0 or z1 <= 0.0 or z2 <= 0.0:
            continue
        ex1 = x1 - x0
        ey1 = y1 - y0
        ex2 = x2 - x0
        ey2 = y2 - y0
        area = ex1 * ey2 - ex2 * ey1
        if area == 0.0:
            continue
        inv_area = 1.0 / area
        c0, c1 = _pixel_span(min(x0, min(x1, x2)), max(x0, max(x1, x2)), w)
        r0, r1 = _pixel_span(min(y0, min(y1, y2)), max(y0, max(y1, y2)), h)
        if c0 > c1 or r0 > r1:
            continue
        iz0 = 1.0 / z0
        iz1 = 1.0 / z1
        iz2 = 1.0 / z2
        for r in range(r0, r1 + 1):
            dy = r - y0
            for c in range(c0, c1 + 1):
                dx = c - x0
                w1 = (dx * ey2 - dy * ex2) * inv_area
                if w1 < -EDGE_EPS:
                    continue
                w2 = (ex1 * dy - ey1 * dx) * inv_area
                if w2 < -EDGE_EPS:
                    continue
                w0 = 1.0 - w1 - w2
                if w0 < -EDGE_EPS:
                    continue
                p0 = w0 * iz0
                p1 = w1 * iz1
                p2 = w2 * iz2
                iz = p0 + p1 + p2
                z = 1.0 / iz
                if z < zbuf[r, c]:
                    zbuf[r, c] = z
                    tri_id[r, c] = t
                    bary[r, c, 0] = p1 / iz
                    bary[r, c, 1] = p2 / iz


@njit(cache=True, nogil=True, inline="always")
def _pixel_span(lo: float, hi: float, n: int) -> tuple[int, int]:  # pragma: no cover - numba
    """First and last of the ``n`` pixel centres within [lo, hi] (first > last where none is)."""
    return max(int(np.ceil(lo - 1e-7)), 0), min(int(np.floor(hi + 1e-7)), n - 1)


@njit(cache=True, nogil=True)
def _sample_bilinear(tex, u, v, ch):  # pragma: no cover - numba
    """Bilinear sample of channel ``ch`` of ``tex`` (H,W,C) at texel coordinates (u, v) (clamped)."""
    th, tw = tex.shape[0], tex.shape[1]
    u = min(max(u, 0.0), tw - 1.0)
    v = min(max(v, 0.0), th - 1.0)
    u0 = int(u)
    v0 = int(v)
    u1 = min(u0 + 1, tw - 1)
    v1 = min(v0 + 1, th - 1)
    fu = u - u0
    fv = v - v0
    a = tex[v0, u0, ch] * (1.0 - fu) + tex[v0, u1, ch] * fu
    b = tex[v1, u0, ch] * (1.0 - fu) + tex[v1, u1, ch] * fu
    return a * (1.0 - fv) + b * fv


@njit(cache=True, nogil=True)
def _hair_alpha(coverage, strand):  # pragma: no cover - numba
    """Opacity of hair of per-vertex ``coverage`` (0-1) over skin, thresholded by the strand pattern."""
    a = (coverage * 1.6 - 0.6) + (strand - 0.5) * 0.9
    return min(max(a * 2.5, 0.0), 1.0)


@njit(cache=True, nogil=True)
def vertex_normals(verts, tris, out):  # pragma: no cover - numba
    """Area-weighted unit vertex normals of ``verts`` (V,3) into ``out`` (V,3) (zeroed here); returns the
    (unnormalised) face normals (T,3) (their direction follows the triangle winding)."""
    nt = tris.shape[0]
    fn = np.empty((nt, 3), np.float64)
    out[:] = 0.0
    for t in range(nt):
        a = tris[t, 0]
        b = tris[t, 1]
        c = tris[t, 2]
        ux = verts[b, 0] - verts[a, 0]
        uy = verts[b, 1] - verts[a, 1]
        uz = verts[b, 2] - verts[a, 2]
        vx = verts[c, 0] - verts[a, 0]
        vy = verts[c, 1] - verts[a, 1]
        vz = verts[c, 2] - verts[a, 2]
        nx = uy * vz - uz * vy
        ny = uz * vx - ux * vz
        nz = ux * vy - uy * vx
        fn[t, 0] = nx
        fn[t, 1] = ny
        fn[t, 2] = nz
        for k in range(3):
            v = tris[t, k]
            out[v, 0] += nx
            out[v, 1] += ny
            out[v, 2] += nz
    for v in range(out.shape[0]):
        n = np.sqrt(out[v, 0] ** 2 + out[v, 1] ** 2 + out[v, 2] ** 2)
        if n > 0.0:
            out[v, 0] /= n
            out[v, 1] /= n
            out[v, 2] /= n
    return fn


def shadow_map(verts, tris, tri_ok, light_dir, res, bias, strength):
    """Orthographic depth map of ``verts`` (camera space) seen from ``light_dir`` (unit, towards the light).

    Returns the map (res,res) float32 and the (15,) transform used by :func:`shade`.
    """
    d = -np.asarray(light_dir, np.float64)  # direction the light travels
    e1 = np.cross(d, [0.0, 1.0, 0.0] if abs(d[1]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    lx, ly, lz = verts @ e1, verts @ e2, verts @ d
    o = np.array([lx.min(), ly.min(), lz.min() - 100.0])  # large depth offset: ~linear 1/z interpolation
    scale = (res - 2) / max(lx.max() - o[0], ly.max() - o[1], 1e-6)
    xs = (lx - o[0]) * scale
    ys = (ly - o[1]) * scale
    zs = lz - o[2]
    tid = np.full((res, res), -1, np.int32)
    bary = np.zeros((res, res, 2), np.float32)
    zb = np.full((res, res), np.inf, np.float32)
    rasterize(xs, ys, zs, tris, tri_ok, tid, bary, zb)
    tf = np.array([*e1, *e2, *d, *o, scale, bias, strength], np.float32)
    return zb, tf


SRGB_LUT_SIZE = 4096


def srgb_lut() -> np.ndarray:
    """Linear [0,1] -> sRGB [0,1] table (``SRGB_LUT_SIZE`` entries) used by :func:`shade`."""
    from .appearance import linear_to_srgb

    return linear_to_srgb(np.linspace(0.0, 1.0, SRGB_LUT_SIZE)).astype(np.float32)


# Per-pixel steps of :func:`shade`, inlined into it by numba. An array handed to an inlined helper that reads it
# in a loop or only in some branches costs two reference-count updates per pixel (about 6% of the shading time
# for the light arrays), so helpers read their arrays up front and the loop over the lights stays in shade.
_inline = njit(cache=True, nogil=True, fastmath=True, inline="always")


class _Hit(NamedTuple):
    """The triangle under one pixel: its index, its vertex indices and the pixel's barycentric weights."""

    t: int
    i0: int
    i1: int
    i2: int
    b0: float  # float64 (1 - b1 - b2)
    b1: float  # float32, as stored by the rasteriser
    b2: float  # float32


class _Frame(NamedTuple):
    """Camera-space shading frame of one pixel: point p, unit normal n (facing the viewer), unit view direction v."""

    px: float
    py: float
    pz: float
    nx: float
    ny: float
    nz: float
    vx: float
    vy: float
    vz: float


class _Surface(NamedTuple):
    """What the lights see at one pixel: linear albedo, specular weight, Blinn-Phong exponent and Lambert wrap."""

    r: float
    g: float
    b: float
    spec: float
    shin: float
    wrap: float


class _Palette(NamedTuple):
    """``eye_params`` unpacked: cosines at the limbus and the pupil's edge; iris, sclera, hair and cloth RGB."""

    limbus: float
    pupil: float
    iris: tuple[float, float, float]
    sclera: tuple[float, float, float]
    hair: tuple[float, float, float]
    cloth: tuple[float, float, float]


class _Texel(NamedTuple):
    """Bilinear footprint of a point in the atlas: rows v0/v1, columns u0/u1 and the four corner weights."""

    v0: int
    u0: int
    v1: int
    u1: int
    w00: float
    w01: float
    w10: float
    w11: float


class _Light(NamedTuple):
    """Light gathered at one pixel: diffuse irradiance (multiplies the albedo) and specular radiance, RGB each."""

    dr: float
    dg: float
    db: float
    sr: float
    sg: float
    sb: float


@njit(cache=True, nogil=True, fastmath=True)
def shade(
    tri_id, bary, tris, uv_tris, uv, tri_mat, vpos, vnorm, vcol, vattr, tex, mat_params, eye_params,
    ambient, light_dirs, light_cols, exposure, lut, shadow_map, shadow_tf, out,
):  # pragma: no cover - numba  # fmt: skip
    """Shade every pixel covered by a triangle into ``out`` (H,W,3) float32 (sRGB in [0,1] after ``exposure``).

    Args (all float32 unless said):
        tri_id (H,W) int32, bary (H,W,2): rasteriser output.
        tris (T,3), uv_tris (T,3) int32; uv (U,2): texture coordinates (atlas units, see below).
        tri_mat (T,) uint8: material of each triangle, indexing ``mat_params`` rows.
        vpos (V,3): camera-space positions; vnorm (V,3): camera-space unit normals; vcol (V,3): albedo.
        vattr (V,4): per-vertex coverage of the two hair layers (0: scalp hair, 1: beard), in [0, 1], (2) the
            cosine of the angle to the eyeball's optical axis (eyeball vertices only) and (3) the signed depth
            (cm) below the clothing's neckline (clothing where > 0, textured materials only).
        tex (S, 2S, 5): UV-space texture atlas of the skin (u in [0,2) over the width, v up): channels 0-2 a
            multiplicative albedo detail, 3 a specular multiplier, 4 a hair-strand pattern in [0,1].
        mat_params (M,6): per material [uses_texture, specular, shininess, wrap, hair_layers, is_eye].
        eye_params (14,): cosines at the limbus and the pupil's edge, iris RGB, sclera RGB, hair RGB, cloth RGB.
        ambient (3,); light_dirs (L,3) unit vectors towards the lights (camera space); light_cols (L,3).
        exposure: scale of the linear radiance; lut: :func:`srgb_lut`.
        shadow_map (Hs,Ws): depth map seen from the first light (a (1,1) array disables shadows);
        shadow_tf (15,): light-space axes e1, e2, d (camera space, 3 each), their origins (3), the texel scale,
            the depth bias and the shadow strength (see :func:`shadow_map`).
    """
    h, w = tri_id.shape
    pal = _palette(eye_params)
    for r in range(h):
        for c in range(w):
            t = tri_id[r, c]
            if t < 0:
                continue
            b1 = bary[r, c, 0]
            b2 = bary[r, c, 1]
            hit = _Hit(t, tris[t, 0], tris[t, 1], tris[t, 2], 1.0 - b1 - b2, b1, b2)
            f = _frame(hit, vpos, vnorm)
            m = tri_mat[t]
            s = _vertex_surface(hit, vcol, mat_params, m)
            if mat_params[m, 0] > 0.5:
                s = _textured(s, hit, mat_params[m, 4] > 0.5, vattr, uv_tris, uv, tex, pal)
            if mat_params[m, 5] > 0.5:
                s = _eyeball(s, _interp(vattr, hit, 2), pal)
            lit0 = _key_light_visibility(f, shadow_map, shadow_tf)
            li = _Light(np.float64(ambient[0]), np.float64(ambient[1]), np.float64(ambient[2]), 0.0, 0.0, 0.0)
            # the loop over the lights stays here (see the note above :class:`_Hit`)
            for k in range(light_dirs.shape[0]):
                ldir = (light_dirs[k, 0], light_dirs[k, 1], light_dirs[k, 2])
                lcol = (light_cols[k, 0], light_cols[k, 1], light_cols[k, 2])
                li = _add_light(li, f, s, ldir, lcol, lit0 if k == 0 else 1.0)
            out[r, c, 0] = _encode((s.r * li.dr + li.sr) * exposure, lut)
            out[r, c, 1] = _encode((s.g * li.dg + li.sg) * exposure, lut)
            out[r, c, 2] = _encode((s.b * li.db + li.sb) * exposure, lut)


@_inline
def _palette(e: np.ndarray) -> _Palette:  # pragma: no cover - numba
    """Unpack ``eye_params`` (14,) (see :func:`shade`)."""
    return _Palette(e[0], e[1], (e[2], e[3], e[4]), (e[5], e[6], e[7]), (e[8], e[9], e[10]), (e[11], e[12], e[13]))


@_inline
def _interp(a: np.ndarray, hit: _Hit, k: int) -> float:  # pragma: no cover - numba
    """Column ``k`` of the per-vertex array ``a`` (V,C) interpolated at ``hit``."""
    return hit.b0 * a[hit.i0, k] + hit.b1 * a[hit.i1, k] + hit.b2 * a[hit.i2, k]


@_inline
def _frame(hit: _Hit, vpos: np.ndarray, vnorm: np.ndarray) -> _Frame:  # pragma: no cover - numba
    """Interpolated position and normal at ``hit``; normals facing away from the viewer (silhouettes,
    interpolation) are bent back into the visible half-space."""
    nx = _interp(vnorm, hit, 0)
    ny = _interp(vnorm, hit, 1)
    nz = _interp(vnorm, hit, 2)
    px = _interp(vpos, hit, 0)
    py = _interp(vpos, hit, 1)
    pz = _interp(vpos, hit, 2)
    nn = 1.0 / (np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-12)
    nx *= nn
    ny *= nn
    nz *= nn
    pn = 1.0 / (np.sqrt(px * px + py * py + pz * pz) + 1e-12)
    vx = -px * pn
    vy = -py * pn
    vz = -pz * pn
    ndv = nx * vx + ny * vy + nz * vz
    if ndv < 0.0:
        nx -= ndv * vx
        ny -= ndv * vy
        nz -= ndv * vz
        nn = 1.0 / (np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-12)
        nx *= nn
        ny *= nn
        nz *= nn
    return _Frame(px, py, pz, nx, ny, nz, vx, vy, vz)


@_inline
def _vertex_surface(
    hit: _Hit, vcol: np.ndarray, mat_params: np.ndarray, m: int
) -> _Surface:  # pragma: no cover - numba
    """Vertex albedo at ``hit`` and the specular weight, exponent and wrap of material ``m``."""
    spec, shin, wrap = np.float64(mat_params[m, 1]), np.float64(mat_params[m, 2]), np.float64(mat_params[m, 3])
    return _Surface(_interp(vcol, hit, 0), _interp(vcol, hit, 1), _interp(vcol, hit, 2), spec, shin, wrap)


@_inline
def _texel(hit: _Hit, uv_tris, uv, th: int, tw: int) -> _Texel:  # pragma: no cover - numba
    """Bilinear footprint in the (th, tw) atlas of the UV point at ``hit`` (v up, texel centres at +0.5)."""
    j0 = uv_tris[hit.t, 0]
    j1 = uv_tris[hit.t, 1]
    j2 = uv_tris[hit.t, 2]
    tu = hit.b0 * uv[j0, 0] + hit.b1 * uv[j1, 0] + hit.b2 * uv[j2, 0]
    tv = hit.b0 * uv[j0, 1] + hit.b1 * uv[j1, 1] + hit.b2 * uv[j2, 1]
    fu = min(max(tu * th - 0.5, 0.0), tw - 1.0)
    fv = min(max((1.0 - tv) * th - 0.5, 0.0), th - 1.0)
    u0 = int(fu)
    v0 = int(fv)
    u1 = min(u0 + 1, tw - 1)
    v1 = min(v0 + 1, th - 1)
    du = fu - u0
    dv = fv - v0
    return _Texel(v0, u0, v1, u1, (1.0 - du) * (1.0 - dv), du * (1.0 - dv), (1.0 - du) * dv, du * dv)


@_inline
def _fetch(tex: np.ndarray, tx: _Texel, ch: int) -> float:  # pragma: no cover - numba
    """Channel ``ch`` of ``tex`` (H,W,C) filtered over the footprint ``tx``."""
    return (
        tx.w00 * tex[tx.v0, tx.u0, ch]
        + tx.w01 * tex[tx.v0, tx.u1, ch]
        + tx.w10 * tex[tx.v1, tx.u0, ch]
        + tx.w11 * tex[tx.v1, tx.u1, ch]
    )


@_inline
def _textured(
    s: _Surface, hit: _Hit, hair: bool, vattr, uv_tris, uv, tex, pal: _Palette
) -> _Surface:  # pragma: no cover - numba
    """Atlas detail (albedo and specular multipliers), then clothing below the neckline or hair over the skin.

    The strand pattern and the hair coverage are read even where unused (see the note above :class:`_Hit`)."""
    tx = _texel(hit, uv_tris, uv, tex.shape[0], tex.shape[1])
    r = s.r * _fetch(tex, tx, 0)
    g = s.g * _fetch(tex, tx, 1)
    b = s.b * _fetch(tex, tx, 2)
    spec = s.spec * _fetch(tex, tx, 3)
    strand = _fetch(tex, tx, 4)
    cloth = _interp(vattr, hit, 3)
    hcov = max(_interp(vattr, hit, 0), _interp(vattr, hit, 1))
    s = _Surface(r, g, b, spec, s.shin, s.wrap)
    if cloth > 0.0:
        k = 0.9 + 0.2 * strand
        return _Surface(pal.cloth[0] * k, pal.cloth[1] * k, pal.cloth[2] * k, 0.02, 8.0, s.wrap)
    if hair and hcov > 0.0:
        return _hair_over(s, hcov, strand, pal)
    return s


@_inline
def _hair_over(s: _Surface, hcov: float, strand: float, pal: _Palette) -> _Surface:  # pragma: no cover - numba
    """Hair of coverage ``hcov`` over the skin ``s``, thresholded by the ``strand`` pattern."""
    a = _hair_alpha(hcov, strand)
    if not a > 0.0:
        return s
    hv = 0.55 + 0.9 * strand
    return _Surface(
        s.r * (1.0 - a) + pal.hair[0] * hv * a,
        s.g * (1.0 - a) + pal.hair[1] * hv * a,
        s.b * (1.0 - a) + pal.hair[2] * hv * a,
        s.spec * (1.0 - a) + 0.06 * a,
        s.shin * (1.0 - a) + 20.0 * a,
        s.wrap,
    )


@_inline
def _eyeball(s: _Surface, ec: float, pal: _Palette) -> _Surface:  # pragma: no cover - numba
    """The eyeball at cosine ``ec`` to its optical axis: pupil, iris with a darker limbus ring, a soft edge, sclera."""
    cl = pal.limbus
    cp = pal.pupil
    if not ec > cl:  # sclera
        k = 0.75 + 0.25 * min(max((ec - cl + 0.5) * 2.0, 0.0), 1.0)
        return _Surface(pal.sclera[0] * k, pal.sclera[1] * k * 0.97, pal.sclera[2] * k * 0.97, s.spec, s.shin, s.wrap)
    tt = min((ec - cl) / max(cp - cl, 1e-6), 1.0)
    k = 0.55 + 0.6 * min(tt * 3.0, 1.0)
    ar = pal.iris[0] * k
    ag = pal.iris[1] * k
    ab = pal.iris[2] * k
    if ec > cp - 0.004:  # the pupil
        q = min((ec - cp + 0.004) / 0.008, 1.0)
        ar = ar * (1.0 - q) + 0.01 * q
        ag = ag * (1.0 - q) + 0.01 * q
        ab = ab * (1.0 - q) + 0.012 * q
    if ec < cl + 0.006:  # soft edge with the sclera
        q = (cl + 0.006 - ec) / 0.006
        ar = ar * (1.0 - q) + pal.sclera[0] * 0.7 * q
        ag = ag * (1.0 - q) + pal.sclera[1] * 0.7 * q
        ab = ab * (1.0 - q) + pal.sclera[2] * 0.7 * q
    return _Surface(ar, ag, ab, s.spec, s.shin, s.wrap)


@_inline
def _key_light_visibility(f: _Frame, depth: np.ndarray, tf: np.ndarray) -> float:  # pragma: no cover - numba
    """Unshadowed fraction of the key light: a 2x2 percentage-closer lookup in its depth map ``depth`` (Hs,Ws)
    (transform ``tf``, see :func:`shade`), offset along the normal (no acne at grazing angles)."""
    if depth.shape[0] <= 1:
        return 1.0
    qx = f.px + f.nx * SHADOW_NORMAL_OFFSET
    qy = f.py + f.ny * SHADOW_NORMAL_OFFSET
    qz = f.pz + f.nz * SHADOW_NORMAL_OFFSET
    sxp = (qx * tf[0] + qy * tf[1] + qz * tf[2] - tf[9]) * tf[12]
    syp = (qx * tf[3] + qy * tf[4] + qz * tf[5] - tf[10]) * tf[12]
    sd = qx * tf[6] + qy * tf[7] + qz * tf[8] - tf[11] - tf[13]
    if not (sxp >= 0.0 and syp >= 0.0 and sxp < depth.shape[1] - 1 and syp < depth.shape[0] - 1):
        return 1.0
    x0 = int(sxp)
    y0 = int(syp)
    fx = sxp - x0
    fy = syp - y0
    occ = 0.0
    if sd > depth[y0, x0]:
        occ += (1.0 - fx) * (1.0 - fy)
    if sd > depth[y0, x0 + 1]:
        occ += fx * (1.0 - fy)
    if sd > depth[y0 + 1, x0]:
        occ += (1.0 - fx) * fy
    if sd > depth[y0 + 1, x0 + 1]:
        occ += fx * fy
    return 1.0 - occ * tf[14]


@_inline
def _add_light(li: _Light, f: _Frame, s: _Surface, ldir, lcol, lit: float) -> _Light:  # pragma: no cover - numba
    """``li`` plus a light of colour ``lcol`` (3-tuple) from the unit direction ``ldir`` (3-tuple), scaled by ``lit``:
    wrapped Lambert and Blinn-Phong."""
    lx, ly, lz = ldir
    ndl = f.nx * lx + f.ny * ly + f.nz * lz
    d = (ndl + s.wrap) / (1.0 + s.wrap)
    dr, dg, db = li.dr, li.dg, li.db
    if d > 0.0:
        dr += d * lit * lcol[0]
        dg += d * lit * lcol[1]
        db += d * lit * lcol[2]
    sr, sg, sb = li.sr, li.sg, li.sb
    if ndl > 0.0 and s.spec > 0.0 and lit > 0.0:
        hx = lx + f.vx
        hy = ly + f.vy
        hz = lz + f.vz
        ndh = (f.nx * hx + f.ny * hy + f.nz * hz) / (np.sqrt(hx * hx + hy * hy + hz * hz) + 1e-12)
        if ndh > 0.0:
            sp = s.spec * lit * np.exp(s.shin * np.log(ndh))
            sr += sp * lcol[0]
            sg += sp * lcol[1]
            sb += sp * lcol[2]
    return _Light(dr, dg, db, sr, sg, sb)


@_inline
def _encode(x: float, lut: np.ndarray) -> float:  # pragma: no cover - numba
    """sRGB value of the linear ``x`` (nearest entry of the :func:`srgb_lut` table ``lut``)."""
    nlut = lut.shape[0] - 1
    return lut[min(max(int(x * nlut + 0.5), 0), nlut)]


@njit(cache=True, nogil=True)
def label_pixels(tri_id, bary, tris, uv_tris, uv, tri_class, label_tex, tex, vattr, hair_classes, cloth_class, out):
    """Per-pixel class labels (``out`` (H,W) uint8, pre-filled with the background class).

    A triangle's class is ``tri_class[t]``; where that is 255 the class comes from ``label_tex`` (S,2S) uint8
    sampled (nearest) at the pixel's UV. Pixels whose hair coverage (layer ``k`` of ``vattr``) exceeds 0.5 get
    ``hair_classes[k]`` where the shader draws hair (``tex`` channel 4 is the strand pattern); pixels below the
    neckline (``vattr[:, 3] > 0``) get ``cloth_class``.
    """  # pragma: no cover - numba
    h, w = tri_id.shape
    th = label_tex.shape[0]
    tw = label_tex.shape[1]
    for r in range(h):
        for c in range(w):
            t = tri_id[r, c]
            if t < 0:
                continue
            b1 = bary[r, c, 0]
            b2 = bary[r, c, 1]
            b0 = 1.0 - b1 - b2
            cls = tri_class[t]
            if cls == 255:
                j0 = uv_tris[t, 0]
                j1 = uv_tris[t, 1]
                j2 = uv_tris[t, 2]
                tu = b0 * uv[j0, 0] + b1 * uv[j1, 0] + b2 * uv[j2, 0]
                tv = b0 * uv[j0, 1] + b1 * uv[j1, 1] + b2 * uv[j2, 1]
                iu = min(max(int(tu * th), 0), tw - 1)
                iv = min(max(int((1.0 - tv) * th), 0), th - 1)
                cls = label_tex[iv, iu]
                i0 = tris[t, 0]
                i1 = tris[t, 1]
                i2 = tris[t, 2]
                if b0 * vattr[i0, 3] + b1 * vattr[i1, 3] + b2 * vattr[i2, 3] > 0.0:
                    out[r, c] = cloth_class
                    continue
                best = 0.5
                for k in range(2):
                    hc = b0 * vattr[i0, k] + b1 * vattr[i1, k] + b2 * vattr[i2, k]
                    if hc > 0.0:
                        a = _hair_alpha(hc, _sample_bilinear(tex, tu * th - 0.5, (1.0 - tv) * th - 0.5, 4))
                        if a > best:
                            best = a
                            cls = hair_classes[k]
            out[r, c] = cls
