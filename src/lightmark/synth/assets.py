"""Per-model precomputations shared by every sample: which triangles to draw, materials, UV-space region
masks and labels, eyeball geometry, hair coordinates. Built once per process (see :func:`get_assets`)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import DatasetError
from . import labels as L
from .face_model import IRIS, PARTS, SCLERA, FaceModel

# materials (rows of the shader's material table)
MAT_SKIN = 0
MAT_MOUTH = 1
MAT_GUMS = 2
MAT_TEETH = 3
MAT_EYE = 4
MAT_EYE_SOCKET = 5
MAT_LASH = 6
MAT_GLASSES = 7
MAT_CLOTH = 8
MAT_LENS = 9
MAT_HAIR = 10
NUM_MATERIALS = 11

SIDES = ("right", "left")  # subject's right (x < 0, landmarks 36-41) then left: the pupils' order


def _in(a: np.ndarray, part: str) -> np.ndarray:
    lo, hi = PARTS[part]
    return (a >= lo) & (a < hi)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _require_ict_topology(model: FaceModel) -> None:
    if not model.is_ict_topology:
        raise DatasetError(
            f"{model.source or 'face model'}: the synthetic engine needs the ICT Face Model topology "
            f"({model.num_vertices} vertices found)"
        )


def _blob(V: np.ndarray, centre_ids: np.ndarray, radius: float) -> np.ndarray:
    """(V,) float32 Gaussian weight of each vertex around the mean of the vertices ``centre_ids``."""
    c = V[centre_ids].mean(0)
    return np.exp(-np.sum((V - c) ** 2, 1) / (2 * radius**2)).astype(np.float32)


def _nose_polygon(P: np.ndarray, S: int) -> np.ndarray:
    """(10,2) nose outline in face-tile pixels: the bridge between the inner eye corners down to the nostrils,
    from the landmarks ``P`` (68,2) in face-tile pixels."""
    return np.array(
        [
            (P[39] * 0.7 + P[27] * 0.3),
            (P[31] + (P[31] - P[33]) * 0.35 + np.array([0, -0.03 * S])),
            P[31] + (P[31] - P[33]) * 0.3,
            P[32],
            P[33],
            P[34],
            P[35] + (P[35] - P[33]) * 0.3,
            (P[35] + (P[35] - P[33]) * 0.35 + np.array([0, -0.03 * S])),
            (P[42] * 0.7 + P[27] * 0.3),
            P[27] + np.array([0, -0.02 * S]),
        ]
    )


class ModelAssets:
    """Static data derived from a :class:`FaceModel` with the ICT topology, at UV texture size ``tex_size``.

    Shapes: V model vertices, T drawn triangles, U uv points, S = ``tex_size``. Main attributes:
    ``tris``/``uv_tris`` (T,3), ``tri_mat``/``tri_class`` (T,) material and label class of each drawn triangle,
    ``uv`` (U,2), ``vertex_uv`` (V,2), ``lm_uv_px`` (68,2) landmarks in face-tile pixels, ``label_base`` (S,2S)
    static label texture, ``ear_vertex`` (V,) -1/0/+1, eyeball ``eye_ranges``/``pupil_ring``, hair coordinates
    ``hair_el``/``hair_az`` (V,) degrees, skin colour weights ``w_*`` (V,), ``rim`` neck boundary vertices and
    ``head_weight`` (V,) neck skinning weight.
    """

    def __init__(self, model: FaceModel, tex_size: int = 256):
        _require_ict_topology(model)
        self.model = model
        self.tex_size = int(tex_size)
        V = model.neutral.astype(np.float64)  # (V,3) neutral mesh, cm
        lm = model.landmarks68  # (68,) landmark vertex ids
        self._select_triangles()
        self._map_uv()
        self._mark_ears(V)
        self._build_labels(V, lm)
        self._fit_eyeballs(V)
        self._hair_coordinates(V, lm)
        self._skin_regions(V, lm)
        self._neck(V, lm)

    # ------------------------------------------------------------------------------------------------ geometry
    def _select_triangles(self) -> None:
        """The triangles drawn and their materials: skin, mouth, teeth, outer eyeballs, eye sockets.

        The eyelash strips of the model are alpha-textured cards: drawn opaque they look like thick black rims,
        so they are left out (a lash line is painted into the skin texture instead); the iris is left out too.
        """
        T = self.model.triangles
        t0 = T[:, 0]
        iris = np.zeros(len(T), bool)
        for lo, hi in IRIS.values():
            iris |= (t0 >= lo) & (t0 < hi)
        mat = np.full(len(T), 255, np.uint8)
        mat[_in(t0, "face") | _in(t0, "head")] = MAT_SKIN
        mat[_in(t0, "mouth_socket")] = MAT_MOUTH
        mat[_in(t0, "gums_tongue")] = MAT_GUMS
        mat[_in(t0, "teeth")] = MAT_TEETH
        mat[(_in(t0, "eyeball_left") | _in(t0, "eyeball_right")) & ~iris] = MAT_EYE
        mat[_in(t0, "eye_socket_left") | _in(t0, "eye_socket_right")] = MAT_EYE_SOCKET
        keep = mat != 255
        self.tri_index = np.nonzero(keep)[0].astype(np.int32)  # (T,) row in the model's triangles
        self.tris = np.ascontiguousarray(T[keep])
        self.uv_tris = np.ascontiguousarray(self.model.uv_triangles[keep])
        self.tri_mat = np.ascontiguousarray(mat[keep])
        self.uv = self.model.uv.astype(np.float32)

    def _map_uv(self) -> None:
        """Vertex -> uv index ``v2uv`` (V,), ``vertex_uv`` (V,2) and the landmarks in face-tile pixels (68,2)."""
        T, UT = self.model.triangles, self.model.uv_triangles
        S = self.tex_size
        v2uv = np.zeros(len(self.model.neutral), np.int64)
        v2uv[T.ravel()] = UT.ravel()
        self.v2uv = v2uv
        self.vertex_uv = self.uv[v2uv]
        lm = self.model.landmarks68
        self.lm_uv_px = np.stack([self.vertex_uv[lm, 0] * S, (1.0 - self.vertex_uv[lm, 1]) * S], 1)

    def _mark_ears(self, V: np.ndarray) -> None:
        """``ear_vertex`` (V,): +1 subject's left ear, -1 right ear (3D ellipsoids around the ears), else 0."""
        ear_c = np.array([8.3, 1.0, -0.4])
        ear_r = np.array([2.6, 3.6, 2.4])
        face_v = np.arange(len(V)) < PARTS["face"][1]
        self.ear_vertex = np.zeros(len(V), np.int8)
        for sgn in (1, -1):
            d = (V - ear_c * np.array([sgn, 1, 1])) / ear_r
            self.ear_vertex[face_v & (np.sum(d * d, 1) < 1.0) & (V[:, 0] * sgn > 6.5)] = sgn

    # ------------------------------------------------------------------------------------------------ labels
    def _build_labels(self, V: np.ndarray, lm: np.ndarray) -> None:
        """The static label texture ``label_base`` (S,2S) (face tile u in [0,1), head tile u in [1,2)), the lip
        masks of the face tile and the fixed label class of each drawn triangle ``tri_class`` (T,)."""
        S = self.tex_size
        lab = np.full((S, 2 * S), L.SKIN, np.uint8)
        self._paint_ears_and_neck(lab, V, lm)
        face_lab = lab[:, :S]  # a view: painting it paints ``lab``
        self._paint_face_tile(face_lab)
        self.label_base = lab
        self.tri_class = self._triangle_classes(V, lm)

    def _paint_ears_and_neck(self, lab: np.ndarray, V: np.ndarray, lm: np.ndarray) -> None:
        """Paint the UV footprint of the ear triangles and of the head-tile neck triangles into ``lab`` (S,2S)."""
        S = self.tex_size
        centroid = V[self.tris].mean(1)  # (T,3)
        uvc = self.uv[self.uv_tris].mean(1)  # (T,2)
        tile = np.floor(uvc[:, 0]).astype(int)
        y_neck = V[lm[[4, 12]], 1].mean()  # head-tile skin below this is neck
        ear_t = self.ear_vertex[self.tris].sum(1)
        for k in np.nonzero(self.tri_mat == MAT_SKIN)[0]:
            if abs(ear_t[k]) >= 2:
                cls = L.EAR_SUBJECT_LEFT if ear_t[k] > 0 else L.EAR_SUBJECT_RIGHT
            elif tile[k] == 1 and centroid[k, 1] < y_neck and centroid[k, 2] < 4.0:
                cls = L.NECK
            else:
                continue
            p = self.uv[self.uv_tris[k]]
            pts = np.stack([p[:, 0] * S, (1.0 - p[:, 1]) * S], 1)
            cv2.fillPoly(lab, [np.round(pts * 16).astype(np.int32)], int(cls), lineType=cv2.LINE_8, shift=4)

    def _paint_face_tile(self, face_lab: np.ndarray) -> None:
        """Paint the neck (below the jaw line), the nose and the lips into the face tile ``face_lab`` (S,S)."""
        S = self.tex_size
        P = self.lm_uv_px
        # neck: below the jaw line (landmarks 2..14, extended sideways)
        jaw = P[2:15]
        below = np.concatenate([[[0, jaw[0, 1]]], jaw, [[S, jaw[-1, 1]], [S, S], [0, S]]])
        neck_m = np.zeros((S, S), np.uint8)
        cv2.fillPoly(neck_m, [np.round(below * 16).astype(np.int32)], 1, shift=4)
        face_lab[(neck_m > 0) & (face_lab == L.SKIN)] = L.NECK
        cv2.fillPoly(face_lab, [np.round(_nose_polygon(P, S) * 16).astype(np.int32)], L.NOSE, shift=4)
        # lips: outer contour split by the inner-lip line (the UV mouth hole is inside the inner contour)
        self.upper_lip_mask, self.lower_lip_mask = self._lip_masks(P, S)
        self._soft_lips()
        face_lab[self.upper_lip_mask > 0.5] = L.UPPER_LIP
        face_lab[self.lower_lip_mask > 0.5] = L.LOWER_LIP

    def _soft_lips(self) -> None:
        """``lip_box`` (y0, y1, x0, x1): the lips' bounding box plus a margin; ``lip_soft``: the blurred lip mask
        inside that box."""
        S = self.tex_size
        lips = self.upper_lip_mask + self.lower_lip_mask
        ys, xs = np.nonzero(lips > 0)
        m = int(0.03 * S)
        self.lip_box = (max(ys.min() - m, 0), min(ys.max() + m + 1, S), max(xs.min() - m, 0), min(xs.max() + m + 1, S))
        lb = self.lip_box
        self.lip_soft = np.ascontiguousarray(
            cv2.GaussianBlur(lips, (0, 0), S / 256 * 1.2)[lb[0] : lb[1], lb[2] : lb[3]]
        )

    def _triangle_classes(self, V: np.ndarray, lm: np.ndarray) -> np.ndarray:
        """(T,) fixed label class of each drawn triangle; 255 where the label texture decides (skin)."""
        centroid = V[self.tris].mean(1)  # (T,3)
        mat = self.tri_mat
        cls = np.full(len(self.tris), 255, np.uint8)
        inner = self._inner_lip_triangles(centroid)
        upper_y = V[lm[[48, 54, 60, 64]], 1].mean()
        cls[inner] = np.where(centroid[inner, 1] > upper_y - 0.15, L.UPPER_LIP, L.LOWER_LIP)
        cls[mat == MAT_MOUTH] = L.MOUTH_INTERIOR
        cls[mat == MAT_GUMS] = L.MOUTH_INTERIOR
        cls[mat == MAT_TEETH] = L.TEETH
        eye_t = (mat == MAT_EYE) | (mat == MAT_EYE_SOCKET)
        cls[eye_t & (centroid[:, 0] > 0)] = L.EYE_SUBJECT_LEFT
        cls[eye_t & (centroid[:, 0] <= 0)] = L.EYE_SUBJECT_RIGHT
        cls[mat == MAT_LASH] = L.SKIN
        return cls

    def _inner_lip_triangles(self, centroid: np.ndarray) -> np.ndarray:
        """(T,) bool: face skin triangles mapped into the mouth-socket UV island (the inner lip surfaces)."""
        uvc = self.uv[self.uv_tris].mean(1)  # (T,2)
        cx, cy, cz = centroid.T
        return (
            (self.tri_mat == MAT_SKIN)
            & (self.tris[:, 0] < PARTS["face"][1])
            & (np.floor(uvc[:, 0]).astype(int) == 1)
            & (uvc[:, 0] < 1.3)
            & (uvc[:, 1] > 0.69)
            & (np.abs(cx) < 4.0)
            & (-7.0 < cy)
            & (cy < 0.0)
            & (cz > 6.0)
        )

    # ---------------------------------------------------------------------------------------- eyes, hair, skin, neck
    def _fit_eyeballs(self, V: np.ndarray) -> None:
        """Per eye: the sphere through the sclera, its optical axis (towards the cornea bulge), the cosine of each
        eyeball vertex to that axis (``vattr_static[:, 2]``), the pupil ring and the eyeball's vertex range."""
        self.vattr_static = np.zeros((len(V), 3), np.float32)
        self.eye_ranges: dict[str, tuple[int, int]] = {}
        self.pupil_ring: dict[str, np.ndarray] = {}
        for side in SIDES:
            lo, hi = SCLERA[side]
            pts = V[lo:hi]
            c, r = fit_sphere(pts)
            d = np.linalg.norm(pts - c, axis=1)
            bulge = pts[d > r + 0.6 * (d.max() - r)]
            axis = (bulge - c).mean(0)
            axis /= np.linalg.norm(axis)
            full_lo, full_hi = PARTS[f"eyeball_{side}"]
            allp = V[full_lo:full_hi] - c
            cosang = (allp @ axis) / np.maximum(np.linalg.norm(allp, axis=1), 1e-9)
            self.vattr_static[full_lo:full_hi, 2] = cosang
            sc = cosang[: hi - lo]
            self.pupil_ring[side] = lo + np.nonzero(sc > np.cos(np.radians(6.0)))[0]
            self.eye_ranges[side] = (full_lo, full_hi)

    def _hair_coordinates(self, V: np.ndarray, lm: np.ndarray) -> None:
        """Elevation/azimuth (degrees) of every vertex around a head centre between the ears, the brows'
        elevation and the vertices that never get hair (ears, landmarks)."""
        ears = self.ear_vertex != 0
        centre = np.array([0.0, V[ears, 1].mean(), V[ears, 2].mean()])
        d = V - centre
        self.hair_el = np.degrees(np.arctan2(d[:, 1], np.hypot(d[:, 0], d[:, 2])))
        self.hair_az = np.degrees(np.arctan2(d[:, 0], d[:, 2]))
        self.skin_vertex = np.arange(len(V)) < PARTS["head"][1]
        self.head_centre = centre
        self.brow_el = float(self.hair_el[lm[[19, 24]]].mean())
        # the face below the brows' hairline zone is handled by elevation
        self.hair_forbidden = ears.copy()
        self.hair_forbidden[lm] = True

    def _skin_regions(self, V: np.ndarray, lm: np.ndarray) -> None:
        """Mouth-depth shading ``mouth_ao`` (V,) (0 deep inside .. 1 at the lips), per-vertex weights of the skin
        colour regions ``w_*`` (V,) and the head's rotation ``pivot`` (3,)."""
        zf = V[lm[[51, 57, 62, 66]], 2].mean()
        self.mouth_ao = np.clip((V[:, 2] - (zf - 5.0)) / 5.0, 0.0, 1.0).astype(np.float32)
        self.w_cheeks = np.maximum(_blob(V, lm[[1, 31, 3, 48]], 1.8), _blob(V, lm[[15, 35, 13, 54]], 1.8))
        self.w_nose = _blob(V, lm[[30, 33]], 1.2)
        self.w_ears = (self.ear_vertex != 0).astype(np.float32)
        self.w_under_eyes = np.maximum(_blob(V, lm[[40, 41]], 0.9), _blob(V, lm[[46, 47]], 0.9))
        self.w_lids = np.maximum(_blob(V, lm[[37, 38]], 0.8), _blob(V, lm[[43, 44]], 0.8))
        ears = self.ear_vertex != 0
        self.pivot = np.array([0.0, V[lm[8], 1] + 3.0, V[ears, 2].mean() + 1.0])

    def _neck(self, V: np.ndarray, lm: np.ndarray) -> None:
        """The neck rim (bottom boundary vertices of the skin mesh, for the torso), the neck's centre depth and
        the neck skinning weight ``head_weight`` (V,): 1 moves with the head, 0 with the body."""
        skin_tris = self.tris[self.tri_mat == MAT_SKIN]
        e = np.sort(np.concatenate([skin_tris[:, [0, 1]], skin_tris[:, [1, 2]], skin_tris[:, [2, 0]]]), 1)
        u, cnt = np.unique(e, axis=0, return_counts=True)
        bverts = np.unique(u[cnt == 1].ravel())
        chin_y = V[lm[8], 1]
        self.rim = bverts[V[bverts, 1] < chin_y - 2.0]
        neck = self.skin_vertex & (V[:, 1] < chin_y - 2.0) & (V[:, 1] > chin_y - 5.0)
        self.neck_centre_z = float((V[neck, 2].min() + V[neck, 2].max()) / 2)
        y_lo = V[self.rim, 1].max() + 0.5
        y_hi = V[lm, 1].min() - 1.0
        w = _smoothstep((V[:, 1] - y_lo) / (y_hi - y_lo))
        w[~self.skin_vertex] = 1.0
        w[lm] = 1.0
        self.head_weight = w.astype(np.float64)

    def ambient_occlusion(self, directions: int = 48, res: int = 256) -> np.ndarray:
        """Per-vertex ambient visibility (V,) in [0,1] of the neutral mesh: cosine-weighted fraction of
        ``directions`` (a Fibonacci sphere) from which the vertex is not hidden, by z-buffering the mesh
        orthographically from each direction. Computed once (cached)."""
        ao = getattr(self, "_ao", None)
        if ao is not None:
            return ao
        from .raster import rasterize, vertex_normals

        V = self.model.neutral.astype(np.float64)
        tris = self.tris
        vn = np.empty_like(V)
        vertex_normals(V, tris, vn)
        used = np.zeros(len(V), bool)
        used[tris.ravel()] = True
        c = V[used].mean(0)
        rad = np.linalg.norm(V[used] - c, axis=1).max() * 1.02
        k = np.arange(directions) + 0.5
        phi = np.arccos(1 - 2 * k / directions)
        th = np.pi * (1 + 5**0.5) * k
        dirs = np.stack([np.cos(th) * np.sin(phi), np.cos(phi), np.sin(th) * np.sin(phi)], 1)
        vis = np.zeros(len(V))
        wsum = np.zeros(len(V))
        ok = np.ones(len(tris), bool)
        for d in dirs:
            e1 = np.cross(d, [0.0, 1.0, 0.0] if abs(d[1]) < 0.9 else [1.0, 0.0, 0.0])
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(d, e1)
            P = V - c
            xs = (P @ e1 / rad + 1) * (res - 1) / 2
            ys = (P @ e2 / rad + 1) * (res - 1) / 2
            zs = 2 * rad - P @ d
            tid = np.full((res, res), -1, np.int32)
            bary = np.zeros((res, res, 2), np.float32)
            zb = np.full((res, res), np.inf, np.float32)
            rasterize(xs, ys, zs, tris, ok, tid, bary, zb)
            xi = np.clip(np.round(xs).astype(int), 0, res - 1)
            yi = np.clip(np.round(ys).astype(int), 0, res - 1)
            seen = zs <= zb[yi, xi] + 0.02 * rad
            w = np.maximum(vn @ d, 0.0)
            vis += w * seen
            wsum += w
        ao = np.where(wsum > 0, vis / np.maximum(wsum, 1e-9), 1.0)
        self._ao = ao.astype(np.float32)
        return self._ao

    def noise_bank(self) -> dict:
        """Tileable noise patterns of the atlas size, made once from a fixed seed (samples roll/flip them)."""
        bank = getattr(self, "_bank", None)
        if bank is None:
            from .appearance import strand_pattern

            S = self.tex_size
            rng = np.random.default_rng(1234)
            pores = wrap_filter(
                rng.standard_normal((S, 2 * S)).astype(np.float32), lambda a: cv2.GaussianBlur(a, (0, 0), 0.6), 4
            )
            pores /= pores.std() + 1e-6
            bank = self._bank = {
                "pores": pores,
                "white": rng.random((S, 2 * S)).astype(np.float32),
                "strands": [strand_pattern(rng, S, a) for a in (70.0, 85.0, 95.0, 110.0)],
            }
        return bank

    # ------------------------------------------------------------------------------------------------
    def _lip_masks(self, P: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray]:
        outer = np.zeros((S, S), np.uint8)
        cv2.fillPoly(outer, [np.round(P[48:60] * 16).astype(np.int32)], 1, shift=4)
        # the inner contour and the mouth hole lie between the lips: everything above the inner-lip line is upper
        line = np.concatenate([[P[48] + (P[48] - P[54]) * 0.2], P[60:65], [P[54] + (P[54] - P[48]) * 0.2]])
        mid = 0.5 * (P[60:65, 1].mean() + P[[67, 66, 65], 1].mean())
        line[:, 1] = 0.5 * (line[:, 1] + mid)
        above = np.concatenate([line, [[line[-1, 0], 0], [line[0, 0], 0]]])
        up = np.zeros((S, S), np.uint8)
        cv2.fillPoly(up, [np.round(above * 16).astype(np.int32)], 1, shift=4)
        # grow the outer contour slightly: the landmarks lie on the vermilion border
        outer = cv2.dilate(outer, np.ones((3, 3), np.uint8))
        upper = (outer & up).astype(np.float32)
        lower = (outer & (1 - up)).astype(np.float32)
        return upper, lower


def wrap_filter(a: np.ndarray, fn, pad: int) -> np.ndarray:
    """Apply the image filter ``fn`` to ``a`` with periodic borders (so the result tiles)."""
    p = np.pad(a, pad, mode="wrap")
    return np.ascontiguousarray(fn(p)[pad:-pad, pad:-pad])


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``points`` (N,3): centre (3,), radius."""
    p = np.asarray(points, np.float64)
    A = np.concatenate([2.0 * p, np.ones((len(p), 1))], 1)
    b = np.sum(p * p, 1)
    sol = np.linalg.lstsq(A, b, rcond=None)[0]
    c = sol[:3]
    return c, float(np.sqrt(max(sol[3] + c @ c, 1e-12)))


_CACHE: dict[tuple[int, int], ModelAssets] = {}


def get_assets(model: FaceModel, tex_size: int = 256) -> ModelAssets:
    """The (cached, per process) assets of ``model`` at ``tex_size``."""
    key = (id(model), int(tex_size))
    a = _CACHE.get(key)
    if a is None or a.model is not model:
        if len(_CACHE) > 4:
            _CACHE.clear()
        a = _CACHE[key] = ModelAssets(model, tex_size)
    return a
