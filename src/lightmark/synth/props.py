"""Extra 3D meshes built per sample in model space: glasses (tube frames, optional dark lenses) and a torso
(clothing) continuing the neck's bottom rim."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import LEFT_EYE, RIGHT_EYE
from .assets import MAT_CLOTH, MAT_GLASSES, MAT_HAIR, MAT_LENS, ModelAssets
from .labels import CLOTHING, GLASSES, HAIR


@dataclass
class Mesh:
    verts: np.ndarray  # (N,3) float64 model space
    normals: np.ndarray  # (N,3) unit
    tris: np.ndarray  # (M,3) int32
    mat: np.ndarray  # (M,) uint8
    cls: np.ndarray  # (M,) uint8 segmentation class
    colour: np.ndarray  # (N,3) float32 linear albedo
    uv: np.ndarray | None = None  # (N,2) float32 atlas coordinates (textured materials only)
    attr: np.ndarray | None = None  # (N,4) float32 shader attributes (see raster.shade ``vattr``)

    def __post_init__(self) -> None:
        n = len(self.verts)
        if self.uv is None:
            self.uv = np.zeros((n, 2), np.float32)
        if self.attr is None:
            self.attr = np.zeros((n, 4), np.float32)
            self.attr[:, 3] = -1.0

    @staticmethod
    def empty() -> Mesh:
        return Mesh(
            np.zeros((0, 3)),
            np.zeros((0, 3)),
            np.zeros((0, 3), np.int32),
            np.zeros(0, np.uint8),
            np.zeros(0, np.uint8),
            np.zeros((0, 3), np.float32),
        )


def concat(meshes: list[Mesh]) -> Mesh:
    meshes = [m for m in meshes if len(m.tris)]
    if not meshes:
        return Mesh.empty()
    off = np.cumsum([0] + [len(m.verts) for m in meshes[:-1]])
    return Mesh(
        np.concatenate([m.verts for m in meshes]),
        np.concatenate([m.normals for m in meshes]),
        np.concatenate([m.tris + o for m, o in zip(meshes, off, strict=True)]).astype(np.int32),
        np.concatenate([m.mat for m in meshes]),
        np.concatenate([m.cls for m in meshes]),
        np.concatenate([m.colour for m in meshes]),
        np.concatenate([m.uv for m in meshes]).astype(np.float32),
        np.concatenate([m.attr for m in meshes]).astype(np.float32),
    )


def hair_curtain(
    rng: np.random.Generator, V: np.ndarray, assets: ModelAssets, hair_lin: np.ndarray, spec: dict
) -> Mesh:
    """Long hair: a curtain hanging from the head's sides and back (model space, follows the head).

    At each height the curtain encloses the widest cross-section of the head/neck above it (hair hangs, it
    does not follow the neck inwards), from azimuth ``spec["front"]`` (degrees from the face's front) round the
    back to the other side, ``spec["length"]`` cm long below ``spec["top"]`` (a height above the ears).
    """
    skin = V[assets.skin_vertex & (V[:, 1] > V[assets.model.landmarks68[8], 1] - 12.0)]
    zc = float(assets.head_centre[2])
    na, dy = 72, 1.0
    az_s = np.degrees(np.arctan2(skin[:, 0], skin[:, 2] - zc)) % 360.0
    rad = np.hypot(skin[:, 0], skin[:, 2] - zc)
    top = spec["top"]
    length = spec["length"]
    ny = int(np.ceil((length + 2.0) / dy)) + 1
    bins_y = np.clip(((top + 1.0 - skin[:, 1]) / dy).astype(int), -1, ny)
    bins_a = (az_s / 360.0 * na).astype(int) % na
    r = np.zeros((ny + 2, na))
    ok = (bins_y >= 0) & (bins_y < ny)
    np.maximum.at(r, (bins_y[ok], bins_a[ok]), rad[ok])
    # hair hangs: at each height the curtain clears everything above it
    r = np.maximum.accumulate(r[:ny], axis=0)
    r = np.maximum(r, np.roll(r, 1, 1))
    r = np.maximum(r, np.roll(r, -1, 1))
    front = spec["front"]
    cols = 64
    a = np.linspace(front, 360.0 - front, cols)
    ai = (a / 360.0 * na).astype(int) % na
    rows = 14
    jitter = 1.0 + 0.12 * rng.standard_normal(cols)
    verts, uvs = [], []
    for k in range(rows):
        f = k / (rows - 1)
        yk = top - f * length * np.clip(jitter, 0.7, 1.3)
        yi = np.clip(((top + 1.0 - yk) / dy).astype(int), 0, ny - 1)
        rr = r[yi, ai] + spec["thickness"] * (1.0 + 0.6 * f) + 0.3
        ar = np.radians(a)
        verts.append(np.stack([rr * np.sin(ar), yk, zc + rr * np.cos(ar)], 1))
        uvs.append(np.stack([1.0 + 0.02 + 0.96 * (a - front) / (360.0 - 2 * front), np.full(cols, 1.0 - 0.98 * f)], 1))
    verts = np.concatenate(verts)
    uv = np.concatenate(uvs).astype(np.float32)
    tris = []
    for k in range(rows - 1):
        for j in range(cols - 1):
            p, q = k * cols + j, k * cols + j + 1
            tris += [(p, q, q + cols), (p, q + cols, p + cols)]
    tris = np.asarray(tris, np.int32)
    ar = np.radians(np.tile(a, rows))
    nrm = np.stack([np.sin(ar), np.zeros_like(ar), np.cos(ar)], 1)
    col = np.tile(np.asarray(hair_lin, np.float32), (len(verts), 1))
    attr = np.zeros((len(verts), 4), np.float32)
    attr[:, 0] = 1.0
    attr[:, 3] = -1.0
    m = len(tris)
    return Mesh(verts, nrm, tris, np.full(m, MAT_HAIR, np.uint8), np.full(m, HAIR, np.uint8), col, uv, attr)


def tube(points: np.ndarray, radius: float | np.ndarray, closed: bool, sides: int = 6) -> tuple:
    """Vertices, normals and triangles of a tube of ``radius`` along ``points`` (N,3)."""
    p = np.asarray(points, np.float64)
    n = len(p)
    if closed:
        tang = np.roll(p, -1, 0) - np.roll(p, 1, 0)
    else:
        tang = np.gradient(p, axis=0)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-9)
    ref = np.where(np.abs(tang[:, 2:3]) > 0.9, np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 1.0]]))
    n1 = np.cross(tang, ref)
    n1 /= np.maximum(np.linalg.norm(n1, axis=1, keepdims=True), 1e-9)
    n2 = np.cross(tang, n1)
    phi = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    dirs = np.cos(phi)[None, :, None] * n1[:, None, :] + np.sin(phi)[None, :, None] * n2[:, None, :]
    r = np.broadcast_to(np.asarray(radius, np.float64), (n,))
    verts = (p[:, None, :] + r[:, None, None] * dirs).reshape(-1, 3)
    normals = dirs.reshape(-1, 3)
    tris = []
    segs = n if closed else n - 1
    for i in range(segs):
        j = (i + 1) % n
        for k in range(sides):
            k2 = (k + 1) % sides
            a, b, c, d = i * sides + k, i * sides + k2, j * sides + k2, j * sides + k
            tris.append((a, b, c))
            tris.append((a, c, d))
    return verts, normals, np.asarray(tris, np.int32)


def glasses(rng: np.random.Generator, V: np.ndarray, assets: ModelAssets, colour_lin: np.ndarray, sun: bool) -> Mesh:
    """Glasses fitted to the deformed head ``V`` (model space)."""
    lm = assets.model.landmarks68
    P = V[lm].astype(np.float64)
    eyes = [P[RIGHT_EYE].mean(0), P[LEFT_EYE].mean(0)]
    z_front = max(P[27, 2], P[[37, 38, 43, 44], 2].max() + 1.6, P[[19, 24], 2].max() + 0.3) + rng.uniform(0.2, 0.7)
    a = rng.uniform(2.2, 3.0)
    b = a * rng.uniform(0.55, 0.85)
    ex = rng.uniform(2.0, 5.0)
    wrap = rng.uniform(0.01, 0.035)
    dy = rng.uniform(-0.4, 0.2)
    thick = rng.uniform(0.06, 0.3)
    n = 40
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    cx_off = rng.uniform(0.0, 0.3)
    parts = []
    rims = []
    for side, e in zip((-1, 1), eyes, strict=True):
        cx = e[0] + side * cx_off
        cy = e[1] + dy
        x = cx + a * np.sign(np.cos(th)) * np.abs(np.cos(th)) ** (2 / ex)
        y = cy + b * np.sign(np.sin(th)) * np.abs(np.sin(th)) ** (2 / ex)
        y = np.where(y < cy, cy + (y - cy) * rng.uniform(0.85, 1.0), y)
        z = z_front - wrap * np.maximum(np.abs(x) - 1.0, 0) ** 2
        rim = np.stack([x, y, z], 1)
        rims.append(rim)
        parts.append(tube(rim, thick, True))
        if sun:
            c = rim.mean(0) + np.array([0, 0, 0.15])
            verts = np.concatenate([[c], rim])
            tris = np.array([(0, 1 + i, 1 + (i + 1) % n) for i in range(n)], np.int32)
            nrm = np.tile([0.0, 0.0, 1.0], (n + 1, 1))
            parts.append((verts, nrm, tris, "lens"))
    # bridge between the inner rim points, over the nose
    r_in = rims[0][np.argmax(rims[0][:, 0])]
    l_in = rims[1][np.argmin(rims[1][:, 0])]
    mid = (r_in + l_in) / 2 + np.array([0, rng.uniform(0.1, 0.5), 0.15])
    t = np.linspace(0, 1, 8)[:, None]
    bridge = (1 - t) ** 2 * r_in + 2 * t * (1 - t) * mid + t**2 * l_in
    parts.append(tube(bridge, thick * 0.8, False))
    # temples: from the outer rim points back above the ears
    ears = assets.ear_vertex
    for side, rim in zip((-1, 1), rims, strict=True):
        outer = rim[np.argmax(rim[:, 0] * side)]
        ev = V[ears == side]
        top = ev[np.argmax(ev[:, 1])] if len(ev) else outer + np.array([side * 1.0, 0, -9.0])
        end = np.array([top[0] + side * 0.3, top[1] - 0.3, top[2] - 0.5])
        mid = np.array([end[0] + side * 0.2, (outer[1] + end[1]) / 2 + 0.2, (outer[2] + end[2]) / 2])
        tt = np.linspace(0, 1, 10)[:, None]
        path = (1 - tt) ** 2 * outer + 2 * tt * (1 - tt) * mid + tt**2 * end
        parts.append(tube(path, thick * 0.7, False))
    meshes = []
    for part in parts:
        verts, nrm, tris = part[:3]
        is_lens = len(part) == 4
        m = len(tris)
        col = np.tile(np.asarray(colour_lin if not is_lens else [0.01, 0.01, 0.012], np.float32), (len(verts), 1))
        meshes.append(
            Mesh(
                verts,
                nrm,
                tris,
                np.full(m, MAT_LENS if is_lens else MAT_GLASSES, np.uint8),
                np.full(m, GLASSES, np.uint8),
                col,
            )
        )
    return concat(meshes)


def rim_loop(assets: ModelAssets) -> np.ndarray:
    """The neck's bottom boundary vertices ordered around the neck (cached on the assets)."""
    loop = getattr(assets, "_rim_loop", None)
    if loop is not None:
        return loop
    rim = set(int(v) for v in assets.rim)
    tris = assets.tris[assets.tri_mat == 0]
    e = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), 1)
    u, cnt = np.unique(e, axis=0, return_counts=True)
    edges = [tuple(x) for x in u[cnt == 1] if x[0] in rim and x[1] in rim]
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    V = assets.model.neutral
    # order by angle around the neck axis (robust to small defects of the boundary walk)
    verts = np.array(sorted(adj))
    c = V[verts].mean(0)
    ang = np.arctan2(V[verts, 2] - c[2], V[verts, 0] - c[0])
    loop = verts[np.argsort(ang)]
    assets._rim_loop = loop
    return loop


def torso(rng: np.random.Generator, V: np.ndarray, assets: ModelAssets, colour_lin: np.ndarray) -> Mesh:
    """Clothed shoulders and chest continuing the neck's bottom rim downwards (model space)."""
    loop = rim_loop(assets)
    rim = V[loop].astype(np.float64)
    c = rim.mean(0)
    out = rim - c
    out[:, 1] = 0
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    shoulder = rng.uniform(5.0, 9.0)
    drop = rng.uniform(2.0, 4.0)
    rings = [rim]
    for down, outward_x, outward_z in (
        (0.8, 0.8, 0.5),
        (drop, shoulder * 0.55, 1.2),
        (drop + 3.0, shoulder * 0.9, 2.0),
        (drop + 7.0, shoulder + 1.0, 2.8),
        (drop + 14.0, shoulder + 1.5, 3.2),
        (drop + 80.0, shoulder + 1.5, 3.2),
    ):
        r = rim.copy()
        r[:, 0] += out[:, 0] * outward_x
        r[:, 2] += out[:, 2] * outward_z
        r[:, 1] = np.minimum(r[:, 1], c[1] + 1.0) - down
        rings.append(r)
    n = len(loop)
    verts = np.concatenate(rings)
    tris = []
    for k in range(len(rings) - 1):
        for i in range(n):
            j = (i + 1) % n
            a, b, cc, d = k * n + i, k * n + j, (k + 1) * n + j, (k + 1) * n + i
            tris += [(a, b, cc), (a, cc, d)]
    tris = np.asarray(tris, np.int32)
    nrm = np.tile(np.concatenate([out[:, :1], np.zeros((n, 1)), out[:, 2:]], 1), (len(rings), 1))
    nrm[:n, 1] = 0.3
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    col = np.tile(np.asarray(colour_lin, np.float32), (len(verts), 1))
    col *= np.float32(1.0) + np.float32(0.1) * rng.standard_normal((len(verts), 1)).astype(np.float32)
    m = len(tris)
    return Mesh(verts, nrm, tris, np.full(m, MAT_CLOTH, np.uint8), np.full(m, CLOTHING, np.uint8), col)
