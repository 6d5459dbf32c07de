"""Label sets of the synthetic faces beside the 68 iBUG points: WFLW's 98 points, and both layouts with a
visible-contour ("2D") jaw.

All are computed per rendered sample from the mesh and camera of the 68-point labels and written beside them
(``NNNNNN_ldmks_wflw98.txt``, ``NNNNNN_ldmks_ibug68_2d.txt``, ``NNNNNN_ldmks_wflw98_2d.txt``; see
``docs/synth.md``, "Landmark sets").

**WFLW 98** (Wu et al., "Look at Boundary", CVPR 2018), 3D points projected like the 68 labels. The definition
is the data below: the points WFLW shares with the 68-point layout (:data:`WFLW98_TO_IBUG68`) are the same
vertices as the 68 labels; the 16 extra jaw points and the 4 lid-middle points are fixed barycentric points of
the ICT mesh (:data:`WFLW98_SURFACE`); the 8 lower-brow points lie on the lower edge of the sample's painted
eyebrow (:data:`WFLW98_BROW_LOWER`: the band of :func:`lightmark.synth.appearance._brow_mask`, located in the
face's UV map); 96-97 are the renderer's pupils.

**iBUG 68, 2D jaw**: landmark marching (Zhu et al., "Face Alignment Across Large Poses: A 3D Solution", CVPR
2016). Each jaw point (but the chin) owns a *parallel*: the points where the horizontal plane through it (on the
neutral mesh) cuts the cheek's skin between it and the face's midline, in front of it (:func:`jaw_parallels`,
computed once per model). When the jaw point faces away from the camera, the label moves to the candidate of its
parallel that lies outermost in the image (perpendicular to the head's projected vertical axis), i.e. onto the
silhouette of the cheek; visible jaw points keep their 3D position (:func:`march_jaw`).

**WFLW 98, 2D jaw**: the WFLW labels with jaw point 2i = the 2D jaw's point i, and the odd jaw points (surface
points) marched the same way through parallels of their own; points 33-97 are the WFLW labels.

**iBUG 68, FaceSynthetics definition** (``ibug68_fs``): the 68 points where FaceSynthetics puts them on the face,
as measured by :mod:`lightmark.synth.landmark_audit`: the points of :data:`IBUG68_FS_SURFACE` are fixed barycentric
points of the ICT mesh, the others are the ``landmarks68`` vertices (3D points projected, like the 68 labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schemes import get_scheme
from .face_model import PARTS, FaceModel
from .scene import project_points

_WFLW98 = get_scheme("wflw98")  # the layout's one definition: lightmark.schemes
NUM_WFLW98 = _WFLW98.num_points

WFLW98_TO_IBUG68: tuple[int, ...] = _WFLW98.to_ibug68
"""The WFLW index of each iBUG 68 point, in 68-point order (the common 98 -> 68 map)."""

WFLW98_FLIP: tuple[int, ...] = _WFLW98.flip_perm
"""Mirror permutation: after flipping an image, point i of the flipped face is point ``WFLW98_FLIP[i]``."""

# Fixed points of the ICT mesh: WFLW index -> (vertex ids, barycentric weights). Odd jaw points 2k+1: halfway
# along the surface between the 68-point jaw vertices k and k+1 (the point of the mesh nearest to the chord's
# middle); 62/66 (70/74): the arc-length middle of the lid margin between 68-point 37-38 and 40-41 (43-44,
# 46-47). The subject's left side is the mirror image of the right. Made by :func:`derive_wflw98_surface`.
WFLW98_SURFACE: dict[int, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    1: ((1886, 1885, 1224), (0.0545, 0.6431, 0.3025)),
    3: ((1890, 1891, 1221), (0.4259, 0.0366, 0.5375)),
    5: ((366, 379, 380), (0.1044, 0.3774, 0.5182)),
    7: ((1457, 229, 237), (0.0142, 0.9601, 0.0258)),
    9: ((759, 228, 770), (0.0981, 0.3316, 0.5703)),
    11: ((1673, 242, 437), (0.4275, 0.388, 0.1845)),
    13: ((801, 809, 330), (0.6027, 0.1725, 0.2247)),
    15: ((800, 879, 796), (0.9119, 0.0176, 0.0704)),
    17: ((3041, 3120, 3037), (0.9119, 0.0176, 0.0704)),
    19: ((3042, 3050, 2571), (0.6027, 0.1725, 0.2247)),
    21: ((3880, 2483, 2678), (0.4275, 0.388, 0.1845)),
    23: ((3000, 2469, 3011), (0.0981, 0.3316, 0.5703)),
    25: ((3671, 2470, 2478), (0.0142, 0.9601, 0.0258)),
    27: ((2607, 2620, 2621), (0.1044, 0.3774, 0.5182)),
    29: ((4090, 4091, 3439), (0.4259, 0.0366, 0.5375)),
    31: ((4086, 4085, 3442), (0.0545, 0.6431, 0.3025)),
    62: ((1962, 1990, 1990), (0.8515, 0.1485, 0.0)),
    66: ((1515, 1514, 1514), (0.34, 0.66, 0.0)),
    70: ((4162, 4190, 4190), (0.8515, 0.1485, 0.0)),
    74: ((3729, 3728, 3728), (0.34, 0.66, 0.0)),
}

# Lower brow contour: WFLW index -> (68-point brow landmark above it, its position j along the brow from the outer
# end, 0..4). The painted brow's lower edge lies ``lift + thickness * (taper + (1 - taper) * j / 4)`` (face-tile
# UV units) below that landmark in the UV map (:func:`lightmark.synth.appearance._brow_mask`).
WFLW98_BROW_LOWER: dict[int, tuple[int, int]] = {
    38: (21, 4), 39: (20, 3), 40: (19, 2), 41: (18, 1),  # subject's right: inner -> outer
    47: (25, 1), 48: (24, 2), 49: (23, 3), 50: (22, 4),  # subject's left: outer -> inner
}  # fmt: skip

MEAN_BROW: dict[str, float] = {"thickness": 0.0335, "taper": 0.55, "lift": 0.025 * 0.0335}
"""The mean of the random brow band (face-tile UV units): used when a sample's brow shape is not given."""

IBUG68_JAW_MARCHING: tuple[int, ...] = (*range(0, 8), *range(9, 17))
"""The 68-point jaw points that landmark marching may move in ``ibug68_2d`` (all but the chin)."""

WFLW98_JAW_MARCHING: tuple[int, ...] = tuple(range(1, 32, 2))
"""The WFLW jaw points that ``wflw98_2d`` marches itself (the odd ones; the even ones are ``ibug68_2d``'s jaw)."""

CHIN_HALF_WIDTH = 1.0
"""cm: a marching point closer to the midline may have an empty parallel (the horizontal plane through it cuts only
the chin's downward-facing underside: WFLW 15 and 17, beside the chin); it then keeps its 3D position, as the chin."""

_FACE_END = PARTS["face"][1]
_CACHE: dict[int, tuple[FaceModel, dict]] = {}


def _model_cache(model: FaceModel) -> dict:
    """A per-model (per-process) dict for the derived data below."""
    hit = _CACHE.get(id(model))
    if hit is None or hit[0] is not model:
        if len(_CACHE) > 4:
            _CACHE.clear()
        hit = _CACHE[id(model)] = (model, {})
    return hit[1]


# ============================================================================================== WFLW 98


def _surface_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:data:`WFLW98_SURFACE` as arrays: WFLW indices (N,), vertex ids (N,3), weights (N,3)."""
    idx = np.array(sorted(WFLW98_SURFACE), np.int64)
    ids = np.array([WFLW98_SURFACE[i][0] for i in idx], np.int64).reshape(-1, 3)
    w = np.array([WFLW98_SURFACE[i][1] for i in idx], np.float64).reshape(-1, 3)
    return idx, ids, w


def _vertex_uv(model: FaceModel) -> np.ndarray:
    """(V,2) one UV coordinate per vertex (the last one a triangle gives it)."""
    v2uv = np.zeros(model.num_vertices, np.int64)
    v2uv[model.triangles.ravel()] = model.uv_triangles.ravel()
    return model.uv[v2uv].astype(np.float64)


def _brow_columns(model: FaceModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each lower brow point (in :data:`WFLW98_BROW_LOWER` order): the face-tile triangles crossed by the UV
    column below its brow landmark, as UV corners (8,K,3,2) and vertex ids (8,K,3) (padded by repetition), and
    the landmark's UV (8,2) (cached per model)."""
    cache = _model_cache(model)
    if "brow_columns" not in cache:
        T, uv = model.triangles, model.uv[model.uv_triangles].astype(np.float64)  # (T,3,2)
        top = _vertex_uv(model)[model.landmarks68[[WFLW98_BROW_LOWER[i][0] for i in sorted(WFLW98_BROW_LOWER)]]]
        face = (T < _FACE_END).all(1) & (uv[:, :, 0] < 1.0).all(1)
        lo, hi = uv.min(1), uv.max(1)  # (T,2)
        cols = []
        for u, v in top:  # the lower edge lies at most lift + thickness = 0.057 below the landmark
            cols.append(
                np.flatnonzero(face & (lo[:, 0] <= u) & (hi[:, 0] >= u) & (hi[:, 1] >= v - 0.1) & (lo[:, 1] <= v))
            )
        k = max(len(c) for c in cols)
        sel = np.stack([np.resize(c, k) for c in cols])  # (8,K)
        cache["brow_columns"] = (uv[sel], T[sel].astype(np.int64), top)
    return cache["brow_columns"]


def _locate_uv(tri_uv: np.ndarray, tri_ids: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids (Q,3) and barycentric weights (Q,3) of the UV points ``q`` (Q,2), each in its own candidate
    triangles ``tri_uv`` (Q,K,3,2) with vertex ids ``tri_ids`` (Q,K,3): the containing triangle, else the one
    the point is least outside of."""
    a, e1, e2 = tri_uv[:, :, 0], tri_uv[:, :, 1] - tri_uv[:, :, 0], tri_uv[:, :, 2] - tri_uv[:, :, 0]  # (Q,K,2)
    det = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    det = np.where(np.abs(det) < 1e-14, 1e-14, det)
    d = q[:, None, :] - a
    w1 = (d[..., 0] * e2[..., 1] - d[..., 1] * e2[..., 0]) / det
    w2 = (e1[..., 0] * d[..., 1] - e1[..., 1] * d[..., 0]) / det
    w = np.stack([1.0 - w1 - w2, w1, w2], -1)  # (Q,K,3)
    best = np.argmax(w.min(-1), axis=1)
    rows = np.arange(len(q))
    wq = np.clip(w[rows, best], 0.0, None)
    return tri_ids[rows, best], wq / wq.sum(1, keepdims=True)


def brow_lower_points(model: FaceModel, brow: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lower brow contour of a brow shape (``thickness``, ``taper``, ``lift``; default :data:`MEAN_BROW`).

    Returns:
        WFLW indices (8,), vertex ids (8,3) and barycentric weights (8,3) of the points.
    """
    shape = {**MEAN_BROW, **(brow or {})}
    idx = np.array(sorted(WFLW98_BROW_LOWER), np.int64)
    j = np.array([WFLW98_BROW_LOWER[i][1] for i in idx], np.float64)
    down = shape["lift"] + shape["thickness"] * (shape["taper"] + (1.0 - shape["taper"]) * j / 4.0)
    tri_uv, tri_ids, top = _brow_columns(model)
    q = top - np.stack([np.zeros_like(down), down], 1)  # v is up
    ids, w = _locate_uv(tri_uv, tri_ids, q)
    return idx, ids, w


def _extra_points(model: FaceModel, V: np.ndarray, brow: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """The WFLW points that are not 68-point vertices nor pupils: indices (28,) and model-space points (28,3)."""
    s_idx, s_ids, s_w = _surface_table()
    b_idx, b_ids, b_w = brow_lower_points(model, brow)
    ids, w = np.concatenate([s_ids, b_ids]), np.concatenate([s_w, b_w])
    return np.concatenate([s_idx, b_idx]), np.einsum("nk,nkd->nd", w, np.asarray(V, np.float64)[ids])


def wflw98_points3d(model: FaceModel, V: np.ndarray, pupils: np.ndarray, brow: dict | None = None) -> np.ndarray:
    """(98,3) WFLW points in model space of the deformed vertices ``V`` (V,3) and ``pupils`` (2,3)."""
    out = np.empty((NUM_WFLW98, 3))
    out[list(WFLW98_TO_IBUG68)] = np.asarray(V, np.float64)[model.landmarks68]
    idx, pts = _extra_points(model, V, brow)
    out[idx] = pts
    out[96:] = pupils
    return out


def wflw98_labels(
    ldmks: np.ndarray, model: FaceModel, V: np.ndarray, P: np.ndarray, brow: dict | None = None
) -> np.ndarray:
    """(98,2) float32 WFLW labels of a sample: its 70 labels ``ldmks`` (68 + pupils) copied to the shared
    indices (so the two sets agree exactly there), the other 28 points of ``V`` (V,3) projected by ``P`` (3,4)."""
    out = np.empty((NUM_WFLW98, 2), np.float32)
    out[list(WFLW98_TO_IBUG68)] = ldmks[:68]
    out[96:] = ldmks[68:70]
    idx, pts = _extra_points(model, V, brow)
    out[idx] = project_points(P, pts)
    return out


# ============================================================================================ 2D jaw


@dataclass(frozen=True)
class JawParallels:
    """Landmark-marching candidates of J jaw anchors (barycentric surface points ``w`` (J,3) of the vertices
    ``ids`` (J,3); a vertex is ``(v, v, v)`` with weights ``(1, 0, 0)``): M points, each on a mesh edge
    ``(1 - t) * V[a] + t * V[b]``, sorted by ``group`` (the anchor's row); ``side`` (J,) is -1 on the subject's
    right, +1 on the left; the face triangles ``ring`` (R,3) around each anchor's vertices, with the anchor's row
    ``ring_of`` (R,), give the anchors' normals."""

    ids: np.ndarray  # (J,3) int64
    w: np.ndarray  # (J,3) float64
    side: np.ndarray  # (J,) float
    a: np.ndarray  # (M,) int64
    b: np.ndarray  # (M,) int64
    t: np.ndarray  # (M,) float64
    group: np.ndarray  # (M,) int64
    ring: np.ndarray  # (R,3) int64
    ring_of: np.ndarray  # (R,) int64


def _in_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(N,) bool: points ``p`` (N,2) inside the polygon ``poly`` (K,2) (even-odd rule)."""
    inside = np.zeros(len(p), bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, 0), strict=True):
        cross = (y0 > p[:, 1]) != (y1 > p[:, 1])
        xc = x0 + (p[:, 1] - y0) * (x1 - x0) / np.where(y1 == y0, 1e-12, y1 - y0)
        inside ^= cross & (p[:, 0] < xc)
    return inside


def _cheek_triangles(model: FaceModel) -> np.ndarray:
    """(T,3) face skin triangles the parallels may cross: face tile, not nose, lips, ears or mouth inside."""
    from .assets import _nose_polygon

    T = model.triangles
    uv = _vertex_uv(model)
    P = np.stack([uv[model.landmarks68, 0], 1.0 - uv[model.landmarks68, 1]], 1)  # face tile, y down
    q = np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1)
    lips = P[48:60] + (P[48:60] - P[48:60].mean(0)) * 0.15
    bad = _in_polygon(q, _nose_polygon(P, 1)) | _in_polygon(q, lips)
    V = model.neutral
    ear = (np.abs(V[:, 0]) > 6.5) & (V[:, 2] < 2.5)
    tri_uv = model.uv[model.uv_triangles]
    keep = (T < _FACE_END).all(1) & (tri_uv[:, :, 0] < 1.0).all(1) & ~(bad | ear)[T].any(1)
    return T[keep]


def _vertex_normals_of(V: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(V,3) unit area-weighted vertex normals of the triangles ``T`` (zero where unused)."""
    fn = np.cross(V[T[:, 1]] - V[T[:, 0]], V[T[:, 2]] - V[T[:, 0]])
    n = np.zeros_like(V)
    for k in range(3):
        np.add.at(n, T[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _slice(V: np.ndarray, vn: np.ndarray, edges: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (E,2) crossed by the horizontal plane through the anchor ``c`` (3,) between it and the midline, in
    front of it, on the front/side-facing skin: the crossed edges (M,2) and the crossing parameters (M,)."""
    x0, y0, z0 = c
    s = np.sign(x0)
    ya, yb = V[edges[:, 0], 1], V[edges[:, 1], 1]
    cross = (ya - y0) * (yb - y0) < 0
    e, t = edges[cross], ((y0 - ya) / np.where(yb == ya, 1.0, yb - ya))[cross]
    p = V[e[:, 0]] * (1 - t)[:, None] + V[e[:, 1]] * t[:, None]
    n = vn[e[:, 0]] * (1 - t)[:, None] + vn[e[:, 1]] * t[:, None]
    keep = (p[:, 0] * s >= 0) & (p[:, 0] * s <= abs(x0)) & (p[:, 2] >= z0)
    keep &= (n[:, 2] > -0.2) & (n[:, 0] * s > -0.2) & (n[:, 1] > -0.7)
    return e[keep], t[keep]


def jaw_anchors(model: FaceModel, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids (J,3) and barycentric weights (J,3) of the jaw points landmark marching moves in ``scheme``:
    ``"ibug68_2d"``, the 68-point jaw vertices :data:`IBUG68_JAW_MARCHING`; ``"wflw98_2d"``, the odd WFLW jaw
    points :data:`WFLW98_JAW_MARCHING` (surface points of :data:`WFLW98_SURFACE`)."""
    if scheme == "ibug68_2d":
        v = model.landmarks68[list(IBUG68_JAW_MARCHING)].astype(np.int64)
        return np.repeat(v[:, None], 3, 1), np.tile([1.0, 0.0, 0.0], (len(v), 1))
    if scheme == "wflw98_2d":
        ids = np.array([WFLW98_SURFACE[i][0] for i in WFLW98_JAW_MARCHING], np.int64)
        return ids, np.array([WFLW98_SURFACE[i][1] for i in WFLW98_JAW_MARCHING], np.float64)
    raise ValueError(f"no landmark marching for scheme {scheme!r} (ibug68_2d, wflw98_2d)")


def jaw_parallels(model: FaceModel, scheme: str = "ibug68_2d") -> JawParallels:
    """The landmark-marching candidates of the :func:`jaw_anchors` of ``scheme``, from the neutral mesh of
    ``model`` (cached per model and scheme)."""
    cache = _model_cache(model)
    key = f"parallels_{scheme}"
    if key in cache:
        return cache[key]
    ids, w = jaw_anchors(model, scheme)
    V = model.neutral.astype(np.float64)
    T = _cheek_triangles(model).astype(np.int64)
    vn = _vertex_normals_of(V, T)
    edges = np.unique(np.sort(np.concatenate([T[:, [0, 1]], T[:, [1, 2]], T[:, [2, 0]]]), 1), axis=0)
    anchors = np.einsum("jk,jkd->jd", w, V[ids])  # (J,3)
    slices = [_slice(V, vn, edges, c) for c in anchors]  # (edges (M_j,2), t (M_j,)) per anchor
    sizes = np.array([len(t) for _, t in slices])
    bad = (sizes == 0) & (np.abs(anchors[:, 0]) >= CHIN_HALF_WIDTH)  # beside the chin: its underside, no parallel
    if bad.any():
        points = np.array(IBUG68_JAW_MARCHING if scheme == "ibug68_2d" else WFLW98_JAW_MARCHING)[bad].tolist()
        raise ValueError(f"{model.source or 'face model'}: empty {scheme} jaw parallel(s) of points {points}")
    e = np.concatenate([e for e, _ in slices])
    tri = model.triangles.astype(np.int64)
    hit = (tri[:, :, None, None] == np.where(w > 0, ids, -1)[None, None]).any((1, 3))  # (T,J)
    tri_ix, ring_of = np.nonzero(hit & (tri < _FACE_END).all(1)[:, None])  # triangle-major
    cache[key] = par = JawParallels(
        ids=ids, w=w, side=np.sign(anchors[:, 0]), a=e[:, 0], b=e[:, 1], t=np.concatenate([t for _, t in slices]),
        group=np.repeat(np.arange(len(ids)), sizes), ring=tri[tri_ix], ring_of=ring_of.astype(np.int64),
    )  # fmt: skip
    return par


def _camera_centre(P: np.ndarray) -> np.ndarray:
    """(3,) model-space centre of the camera ``P`` (3,4)."""
    return -np.linalg.solve(P[:, :3], P[:, 3])


def march_jaw(base: np.ndarray, par: JawParallels, V: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(J,2) float32 landmark-marched labels of the anchors of ``par``: ``base`` (J,2), their 3D points projected,
    where an anchor that faces away from the camera takes the outermost projected candidate of its parallel
    (outermost perpendicular to the head's projected vertical axis) when that lies further out than it.

    Args:
        V: (V,3) the sample's model-space vertices; P: (3,4) its projection (the labels' camera).
    """
    V = np.asarray(V, np.float64)
    out = np.array(base, np.float32)
    J = np.einsum("jk,jkd->jd", par.w, V[par.ids])  # (J,3)
    cand = project_points(P, V[par.a] * (1 - par.t)[:, None] + V[par.b] * par.t[:, None])  # (M,2)
    up = project_points(P, J + [0.0, 1.0, 0.0]) - project_points(P, J)
    out_dir = par.side[:, None] * np.stack([-up[:, 1], up[:, 0]], 1)
    out_dir /= np.maximum(np.linalg.norm(out_dir, axis=1, keepdims=True), 1e-12)
    score = np.einsum("md,md->m", cand, out_dir[par.group])
    own = par.group[None, :] == np.arange(len(J))[:, None]  # (J,M)
    best = np.argmax(np.where(own, score[None], -np.inf), 1)
    fn = np.cross(V[par.ring[:, 1]] - V[par.ring[:, 0]], V[par.ring[:, 2]] - V[par.ring[:, 0]])
    normal = np.zeros_like(J)
    np.add.at(normal, par.ring_of, fn)
    away = np.einsum("jd,jd->j", normal, J - _camera_centre(P)) > 0
    j_score = np.einsum("jd,jd->j", out.astype(np.float64), out_dir)
    move = away & own.any(1) & (score[best] > j_score + 1e-6)  # an empty parallel never moves
    out[move] = cand[best[move]]
    return out


def ibug68_2d_labels(ldmks: np.ndarray, model: FaceModel, V: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(68,2) float32 iBUG labels with the visible-contour jaw: the 3D labels ``ldmks`` (68 or 70, 2) with the
    jaw points :data:`IBUG68_JAW_MARCHING` landmark-marched (:func:`march_jaw`); the other points are copied.

    Args:
        V: (V,3) the sample's model-space vertices; P: (3,4) its projection (the 68 labels' camera).
    """
    out = np.array(ldmks[:68], np.float32)
    jaw = list(IBUG68_JAW_MARCHING)
    out[jaw] = march_jaw(out[jaw], jaw_parallels(model, "ibug68_2d"), V, P)
    return out


def wflw98_2d_labels(
    wflw98: np.ndarray, ibug68_2d: np.ndarray, model: FaceModel, V: np.ndarray, P: np.ndarray
) -> np.ndarray:
    """(98,2) float32 WFLW labels with the visible-contour jaw: the sample's :func:`wflw98_labels` ``wflw98``
    (98,2) with the even jaw points 2i set to jaw point i of its :func:`ibug68_2d_labels` ``ibug68_2d`` (68,2)
    (so the two 2D sets agree exactly) and the odd ones :data:`WFLW98_JAW_MARCHING` landmark-marched
    (:func:`march_jaw`); points 33-97 are copied.

    Args:
        V: (V,3) the sample's model-space vertices; P: (3,4) its projection (the labels' camera).
    """
    out = np.array(wflw98, np.float32)
    out[0:33:2] = ibug68_2d[:17]
    odd = list(WFLW98_JAW_MARCHING)
    out[odd] = march_jaw(out[odd], jaw_parallels(model, "wflw98_2d"), V, P)
    return out


# ====================================================================================== derivation


def _mirror_vertices(V: np.ndarray) -> np.ndarray:
    """(F,) the mirror vertex (x -> -x) of each face vertex of the neutral mesh ``V`` (nearest neighbour)."""
    from scipy.spatial import cKDTree

    face = V[:_FACE_END]
    return cKDTree(face).query(face * [-1.0, 1.0, 1.0])[1]


def _nearest_surface_point(V: np.ndarray, T: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids (3,) and barycentric weights (3,) of the point of the triangles ``T`` (N,3) nearest to ``c``
    (3,) among those whose plane projection of ``c`` falls inside them."""
    a, b, d = V[T[:, 0]], V[T[:, 1]], V[T[:, 2]]
    n = np.cross(b - a, d - a)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    dist = np.einsum("nd,nd->n", c - a, n)
    p = c - dist[:, None] * n
    e1, e2, q = b - a, d - a, p - a
    g = np.stack([np.einsum("nd,nd->n", e1, e1), np.einsum("nd,nd->n", e1, e2), np.einsum("nd,nd->n", e2, e2)], 1)
    r1, r2 = np.einsum("nd,nd->n", q, e1), np.einsum("nd,nd->n", q, e2)
    det = g[:, 0] * g[:, 2] - g[:, 1] ** 2
    w1 = (g[:, 2] * r1 - g[:, 1] * r2) / det
    w2 = (g[:, 0] * r2 - g[:, 1] * r1) / det
    w = np.stack([1 - w1 - w2, w1, w2], 1)
    inside = (w >= -1e-9).all(1)
    k = np.flatnonzero(inside)[np.argmin(np.abs(dist[inside]))]
    return T[k], np.clip(w[k], 0, 1) / np.clip(w[k], 0, 1).sum()


def _path_midpoint(V: np.ndarray, T: np.ndarray, src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids (3,) and weights (3,) of the arc-length middle of the shortest edge path ``src`` -> ``dst``."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    e = np.unique(np.sort(np.concatenate([T[:, [0, 1]], T[:, [1, 2]], T[:, [2, 0]]]), 1), axis=0)
    w = np.linalg.norm(V[e[:, 0]] - V[e[:, 1]], axis=1)
    n = len(V)
    G = sp.coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()
    _, pred = dijkstra(G, indices=src, return_predecessors=True)
    path = [dst]
    while path[-1] != src:
        path.append(int(pred[path[-1]]))
    path = path[::-1]
    seg = np.linalg.norm(np.diff(V[path], axis=0), axis=1)
    cum = np.r_[0.0, np.cumsum(seg)]
    i = int(np.searchsorted(cum, cum[-1] / 2, side="right") - 1)
    f = (cum[-1] / 2 - cum[i]) / seg[i]
    return np.array([path[i], path[i + 1], path[i + 1]]), np.array([1 - f, f, 0.0])


def derive_wflw98_surface(model: FaceModel) -> dict[int, tuple[tuple[int, int, int], tuple[float, float, float]]]:
    """Compute :data:`WFLW98_SURFACE` from the neutral mesh of ``model`` (right side, mirrored to the left)."""
    V = model.neutral.astype(np.float64)
    lm = model.landmarks68.astype(np.int64)
    T = model.triangles[(model.triangles < _FACE_END).all(1)].astype(np.int64)
    right: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in range(8):  # jaw: halfway between 68-point k and k + 1 -> WFLW 2k + 1
        c = (V[lm[k]] + V[lm[k + 1]]) / 2
        near = T[np.linalg.norm(V[T].mean(1) - c, axis=1) < 1.5]
        right[2 * k + 1] = _nearest_surface_point(V, near, c)
    right[62] = _path_midpoint(V, T, int(lm[37]), int(lm[38]))  # upper lid middle
    right[66] = _path_midpoint(V, T, int(lm[40]), int(lm[41]))  # lower lid middle
    mirror = _mirror_vertices(V)
    flip = dict(enumerate(WFLW98_FLIP))
    out = {}
    for i, (ids, w) in right.items():
        out[i] = (tuple(int(v) for v in ids), tuple(round(float(x), 4) for x in w))
        out[flip[i]] = (tuple(int(mirror[v]) for v in ids), out[i][1])
    return dict(sorted(out.items()))


# ======================================================================================= FaceSynthetics 68


# The 68 points that FaceSynthetics labels elsewhere than the ICT vertex (68-point index -> (vertex ids, barycentric
# weights) on the neutral mesh; left/right symmetric): the brows on the eyebrow's centre line instead of its upper
# edge (18-25), the inner brow ends further apart, the nasion 27 higher, jaw points 3/13 lower and 5/11 higher, the
# outer upper lip 49-53 inside the lip rather than on its upper edge, 50/52 further apart. Made by
# ``scripts/landmark_audit.py`` (lightmark.synth.landmark_audit.derive_definition on the 100 FaceSynthetics samples;
# see docs/synth.md, "Landmark definitions").
IBUG68_FS_SURFACE: dict[int, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    3: ((365, 367, 368), (0.0997, 0.4871, 0.4132)),
    5: ((1722, 1721, 765), (0.3941, 0.3478, 0.2581)),
    11: ((3927, 3926, 3006), (0.3941, 0.3478, 0.2581)),
    13: ((2606, 2608, 2609), (0.0997, 0.4871, 0.4132)),
    18: ((287, 1010, 1009), (0.2915, 0.5694, 0.1391)),
    19: ((1032, 1915, 1031), (0.7136, 0.2091, 0.0773)),
    20: ((2041, 2039, 2040), (0.1499, 0.0877, 0.7624)),
    21: ((2000, 2001, 2026), (0.0052, 0.062, 0.9328)),
    22: ((4200, 4201, 4223), (0.0052, 0.062, 0.9328)),
    23: ((4237, 4235, 4236), (0.1499, 0.0877, 0.7624)),
    24: ((3252, 4115, 3251), (0.7136, 0.2091, 0.0773)),
    25: ((2528, 3230, 3229), (0.2915, 0.5694, 0.1391)),
    27: ((1358, 977, 3601), (0.8616, 0.0638, 0.0746)),
    49: ((5607, 5631, 5662), (0.2906, 0.5908, 0.1186)),
    50: ((5714, 5763, 5743), (0.4603, 0.2211, 0.3186)),
    51: ((5829, 5524, 5525), (0.0, 1.0, 0.0)),
    52: ((6219, 6268, 6248), (0.4603, 0.2211, 0.3186)),
    53: ((6112, 6136, 6167), (0.2906, 0.5908, 0.1186)),
}


def ibug68_fs_labels(ldmks: np.ndarray, V: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(68,2) float32 iBUG labels in FaceSynthetics' definition: the 3D labels ``ldmks`` (68 or 70, 2) with the points
    of :data:`IBUG68_FS_SURFACE` replaced by the projections of their surface points (the others are copied, so they
    equal the 68 labels exactly).

    Args:
        V: (V,3) the sample's model-space vertices; P: (3,4) its projection (the 68 labels' camera).
    """
    out = np.array(ldmks[:68], np.float32)
    if IBUG68_FS_SURFACE:
        idx = np.array(sorted(IBUG68_FS_SURFACE), np.int64)
        ids = np.array([IBUG68_FS_SURFACE[i][0] for i in idx], np.int64)
        w = np.array([IBUG68_FS_SURFACE[i][1] for i in idx], np.float64)
        out[idx] = project_points(P, np.einsum("nk,nkd->nd", w, np.asarray(V, np.float64)[ids]))
    return out
