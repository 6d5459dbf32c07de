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
        i0 = tris[t, 0]
        i1 = tris[t, 1]
        i2 = tris[t, 2]
        x0 = xs[i0]
        y0 = ys[i0]
        z0 = zs[i0]
        x1 = xs[i1]
        y1 = ys[i1]
        z1 = zs[i1]
        x2 = xs[i2]
        y2 = ys[i2]
        z2 = zs[i2]
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
        xmin = min(x0, min(x1, x2))
        xmax = max(x0, max(x1, x2))
        ymin = min(y0, min(y1, y2))
        ymax = max(y0, max(y1, y2))
        c0 = max(int(np.ceil(xmin - 1e-7)), 0)
        c1 = min(int(np.floor(xmax + 1e-7)), w - 1)
        r0 = max(int(np.ceil(ymin - 1e-7)), 0)
        r1 = min(int(np.floor(ymax + 1e-7)), h - 1)
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
    x = np.linspace(0.0, 1.0, SRGB_LUT_SIZE)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


@njit(cache=True, nogil=True, fastmath=True)
def shade(
    tri_id,
    bary,
    tris,
    uv_tris,
    uv,
    tri_mat,
    vpos,
    vnorm,
    vcol,
    vattr,
    tex,
    mat_params,
    eye_params,
    ambient,
    light_dirs,
    light_cols,
    exposure,
    lut,
    shadow_map,
    shadow_tf,
    out,
):  # pragma: no cover - numba
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
    th = tex.shape[0]
    tw = tex.shape[1]
    nl = light_dirs.shape[0]
    nlut = lut.shape[0] - 1
    for r in range(h):
        for c in range(w):
            t = tri_id[r, c]
            if t < 0:
                continue
            b1 = bary[r, c, 0]
            b2 = bary[r, c, 1]
            b0 = 1.0 - b1 - b2
            i0 = tris[t, 0]
            i1 = tris[t, 1]
            i2 = tris[t, 2]
            m = tri_mat[t]
            nx = b0 * vnorm[i0, 0] + b1 * vnorm[i1, 0] + b2 * vnorm[i2, 0]
            ny = b0 * vnorm[i0, 1] + b1 * vnorm[i1, 1] + b2 * vnorm[i2, 1]
            nz = b0 * vnorm[i0, 2] + b1 * vnorm[i1, 2] + b2 * vnorm[i2, 2]
            nn = 1.0 / (np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-12)
            nx *= nn
            ny *= nn
            nz *= nn
            px = b0 * vpos[i0, 0] + b1 * vpos[i1, 0] + b2 * vpos[i2, 0]
            py = b0 * vpos[i0, 1] + b1 * vpos[i1, 1] + b2 * vpos[i2, 1]
            pz = b0 * vpos[i0, 2] + b1 * vpos[i1, 2] + b2 * vpos[i2, 2]
            pn = 1.0 / (np.sqrt(px * px + py * py + pz * pz) + 1e-12)
            vx = -px * pn
            vy = -py * pn
            vz = -pz * pn
            # normals facing away from the viewer (silhouettes, interpolation) are bent back
            ndv = nx * vx + ny * vy + nz * vz
            if ndv < 0.0:
                nx -= ndv * vx
                ny -= ndv * vy
                nz -= ndv * vz
                nn = 1.0 / (np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-12)
                nx *= nn
                ny *= nn
                nz *= nn
            ar = b0 * vcol[i0, 0] + b1 * vcol[i1, 0] + b2 * vcol[i2, 0]
            ag = b0 * vcol[i0, 1] + b1 * vcol[i1, 1] + b2 * vcol[i2, 1]
            ab = b0 * vcol[i0, 2] + b1 * vcol[i1, 2] + b2 * vcol[i2, 2]
            spec_k = mat_params[m, 1]
            shin = mat_params[m, 2]
            wrap = mat_params[m, 3]
            if mat_params[m, 0] > 0.5:
                j0 = uv_tris[t, 0]
                j1 = uv_tris[t, 1]
                j2 = uv_tris[t, 2]
                tu = b0 * uv[j0, 0] + b1 * uv[j1, 0] + b2 * uv[j2, 0]
                tv = b0 * uv[j0, 1] + b1 * uv[j1, 1] + b2 * uv[j2, 1]
                fu = min(max(tu * th - 0.5, 0.0), tw - 1.0)
                fv = min(max((1.0 - tv) * th - 0.5, 0.0), th - 1.0)
                u0 = int(fu)
                v0 = int(fv)
                u1 = min(u0 + 1, tw - 1)
                v1 = min(v0 + 1, th - 1)
                du = fu - u0
                dv = fv - v0
                w00 = (1.0 - du) * (1.0 - dv)
                w01 = du * (1.0 - dv)
                w10 = (1.0 - du) * dv
                w11 = du * dv
                ar *= w00 * tex[v0, u0, 0] + w01 * tex[v0, u1, 0] + w10 * tex[v1, u0, 0] + w11 * tex[v1, u1, 0]
                ag *= w00 * tex[v0, u0, 1] + w01 * tex[v0, u1, 1] + w10 * tex[v1, u0, 1] + w11 * tex[v1, u1, 1]
                ab *= w00 * tex[v0, u0, 2] + w01 * tex[v0, u1, 2] + w10 * tex[v1, u0, 2] + w11 * tex[v1, u1, 2]
                spec_k *= w00 * tex[v0, u0, 3] + w01 * tex[v0, u1, 3] + w10 * tex[v1, u0, 3] + w11 * tex[v1, u1, 3]
                cloth = b0 * vattr[i0, 3] + b1 * vattr[i1, 3] + b2 * vattr[i2, 3]
                if cloth > 0.0:
                    g = 0.9 + 0.2 * (
                        w00 * tex[v0, u0, 4] + w01 * tex[v0, u1, 4] + w10 * tex[v1, u0, 4] + w11 * tex[v1, u1, 4]
                    )
                    ar = eye_params[11] * g
                    ag = eye_params[12] * g
                    ab = eye_params[13] * g
                    spec_k = 0.02
                    shin = 8.0
                elif mat_params[m, 4] > 0.5:
                    hcov = max(
                        b0 * vattr[i0, 0] + b1 * vattr[i1, 0] + b2 * vattr[i2, 0],
                        b0 * vattr[i0, 1] + b1 * vattr[i1, 1] + b2 * vattr[i2, 1],
                    )
                    if hcov > 0.0:
                        strand = (
                            w00 * tex[v0, u0, 4] + w01 * tex[v0, u1, 4] + w10 * tex[v1, u0, 4] + w11 * tex[v1, u1, 4]
                        )
                        a = _hair_alpha(hcov, strand)
                        if a > 0.0:
                            hv = 0.55 + 0.9 * strand
                            ar = ar * (1.0 - a) + eye_params[8] * hv * a
                            ag = ag * (1.0 - a) + eye_params[9] * hv * a
                            ab = ab * (1.0 - a) + eye_params[10] * hv * a
                            spec_k = spec_k * (1.0 - a) + 0.06 * a
                            shin = shin * (1.0 - a) + 20.0 * a
            if mat_params[m, 5] > 0.5:
                ec = b0 * vattr[i0, 2] + b1 * vattr[i1, 2] + b2 * vattr[i2, 2]
                cl = eye_params[0]
                cp = eye_params[1]
                if ec > cl:
                    # iris: darker ring at the limbus, then the pupil
                    tt = min((ec - cl) / max(cp - cl, 1e-6), 1.0)
                    k = 0.55 + 0.6 * min(tt * 3.0, 1.0)
                    ar = eye_params[2] * k
                    ag = eye_params[3] * k
                    ab = eye_params[4] * k
                    if ec > cp - 0.004:
                        q = min((ec - cp + 0.004) / 0.008, 1.0)
                        ar = ar * (1.0 - q) + 0.01 * q
                        ag = ag * (1.0 - q) + 0.01 * q
                        ab = ab * (1.0 - q) + 0.012 * q
                    if ec < cl + 0.006:
                        q = (cl + 0.006 - ec) / 0.006
                        ar = ar * (1.0 - q) + eye_params[5] * 0.7 * q
                        ag = ag * (1.0 - q) + eye_params[6] * 0.7 * q
                        ab = ab * (1.0 - q) + eye_params[7] * 0.7 * q
                else:
                    k = 0.75 + 0.25 * min(max((ec - cl + 0.5) * 2.0, 0.0), 1.0)
                    ar = eye_params[5] * k
                    ag = eye_params[6] * k * 0.97
                    ab = eye_params[7] * k * 0.97
            # lighting: ambient + wrapped Lambert + Blinn-Phong
            lr = ambient[0]
            lg = ambient[1]
            lb = ambient[2]
            sr = 0.0
            sg = 0.0
            sb = 0.0
            # key-light shadow: 2x2 percentage-closer lookup in the light's depth map
            lit0 = 1.0
            if shadow_map.shape[0] > 1:
                # normal-offset lookup (no self-shadowing acne on surfaces facing the light at grazing angles)
                qx = px + nx * SHADOW_NORMAL_OFFSET
                qy = py + ny * SHADOW_NORMAL_OFFSET
                qz = pz + nz * SHADOW_NORMAL_OFFSET
                sxp = (qx * shadow_tf[0] + qy * shadow_tf[1] + qz * shadow_tf[2] - shadow_tf[9]) * shadow_tf[12]
                syp = (qx * shadow_tf[3] + qy * shadow_tf[4] + qz * shadow_tf[5] - shadow_tf[10]) * shadow_tf[12]
                sd = qx * shadow_tf[6] + qy * shadow_tf[7] + qz * shadow_tf[8] - shadow_tf[11] - shadow_tf[13]
                hs = shadow_map.shape[0]
                ws = shadow_map.shape[1]
                if sxp >= 0.0 and syp >= 0.0 and sxp < ws - 1 and syp < hs - 1:
                    x0 = int(sxp)
                    y0 = int(syp)
                    fx = sxp - x0
                    fy = syp - y0
                    occ = 0.0
                    if sd > shadow_map[y0, x0]:
                        occ += (1.0 - fx) * (1.0 - fy)
                    if sd > shadow_map[y0, x0 + 1]:
                        occ += fx * (1.0 - fy)
                    if sd > shadow_map[y0 + 1, x0]:
                        occ += (1.0 - fx) * fy
                    if sd > shadow_map[y0 + 1, x0 + 1]:
                        occ += fx * fy
                    lit0 = 1.0 - occ * shadow_tf[14]
            for k in range(nl):
                lx = light_dirs[k, 0]
                ly = light_dirs[k, 1]
                lz = light_dirs[k, 2]
                ndl = nx * lx + ny * ly + nz * lz
                d = (ndl + wrap) / (1.0 + wrap)
                lit = lit0 if k == 0 else 1.0
                if d > 0.0:
                    lr += d * lit * light_cols[k, 0]
                    lg += d * lit * light_cols[k, 1]
                    lb += d * lit * light_cols[k, 2]
                if ndl > 0.0 and spec_k > 0.0 and lit > 0.0:
                    hx = lx + vx
                    hy = ly + vy
                    hz = lz + vz
                    ndh = (nx * hx + ny * hy + nz * hz) / (np.sqrt(hx * hx + hy * hy + hz * hz) + 1e-12)
                    if ndh > 0.0:
                        s = spec_k * lit * np.exp(shin * np.log(ndh))
                        sr += s * light_cols[k, 0]
                        sg += s * light_cols[k, 1]
                        sb += s * light_cols[k, 2]
            x = (ar * lr + sr) * exposure
            out[r, c, 0] = lut[min(max(int(x * nlut + 0.5), 0), nlut)]
            x = (ag * lg + sg) * exposure
            out[r, c, 1] = lut[min(max(int(x * nlut + 0.5), 0), nlut)]
            x = (ab * lb + sb) * exposure
            out[r, c, 2] = lut[min(max(int(x * nlut + 0.5), 0), nlut)]


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
