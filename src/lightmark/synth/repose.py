"""Re-pose real-looking pictures in 3D ("face profiling", as 300W-LP was made from 300-W: Zhu et al., "Face
Alignment Across Large Poses: A 3D Solution", CVPR 2016).

A picture with 68 landmarks is fitted by the ICT Face Model (:mod:`.fit`); the head is then turned about a pivot
near the neck to a new yaw (the fit's pitch and roll kept), optionally with a changed expression, and drawn again
(:func:`prepare_source` once per picture, then :func:`repose` per pose; :func:`repose_dataset` for folders):

- the head (face, scalp, neck, eyes and the mouth's inside) is rendered at the new pose with the picture's own
  pixels: each rendered surface point is looked up where the same point of the fitted mesh lies in the picture
  when it is seen there (z-buffer, on the person, facing the camera, away from the fit's outline), else where its
  mirror image lies (the ICT mesh is left/right symmetric), else in a harmonic fill of the colours around it over
  the mesh (from the face for the face, from the hair for the scalp; the mouth's inside: dark priors). The scalp
  and neck are transparent where the picture shows background there (the fitted skull is often larger than the
  person's head): a person mask tells, from a FaceSynthetics segmentation or else GrabCut seeded by the fit;
- the rest of the picture (hair, shoulders, background) follows as a 2.5D image mesh: a Delaunay triangulation of
  anchors in the picture - the visible vertices of the fitted head, three rings around the head and the image
  border - whose 3D points move with the head (the neck and the rings by a fraction of the turn, the border not at
  all), z-buffered at the new pose; the rendered head is composited over it (fading into it down the neck).

The labels are the projections of the model's landmark vertices at the new pose, exact by construction (the
pupils move with the surface points under the picture's pupils): ``ibug68`` (3D jaw) and ``ibug68_2d`` (the
visible outline, by landmark marching: :func:`.landmark_sets.ibug68_2d_labels`). No shading is removed, so the
picture keeps its own look; a side the picture did not show shows the other side's light.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numba import njit

from ..choices import DatasetFormat
from ..constants import INNER, NUM_LANDMARKS
from ..data.formats import load_dataset, read_name_lists, without
from ..errors import ConfigError, DatasetError, OutputError
from .face_model import PARTS, FaceModel
from .fit import FaceFit, FitConfig, fit_landmarks
from .landmark_sets import ibug68_2d_labels
from .raster import rasterize, vertex_normals
from .scene import MODEL_TO_CAMERA, Camera, head_angles, rotation_matrix
from .unwrap import _smoothstep, mirror_vertices

JAW_CHOICES = ("auto", "3d", "2d")
RENDER_PARTS = (
    "face",
    "head",
    "eye_socket_left",
    "eye_socket_right",
    "eyeball_left",
    "eyeball_right",
    "mouth_socket",
    "gums_tongue",
    "teeth",
)
"""Mesh parts rendered with the picture's pixels: the skin (face, scalp, neck), the eyes and the mouth's inside (not
the eyelashes nor the eye-blend layers)."""
KIND_SKIN, KIND_MOUTH, KIND_TEETH = 0, 1, 2
HAIRLINE = (10.0, 25.0)  # degrees of elevation above the brows (about the head's centre, as the hair's) over which
# the face gives way to the scalp (what the picture may show as hair or background)
# sRGB colours (x the face's level) of the mouth's inside where the picture never saw it (a mouth opened by the
# expression change): the cavity and gums, the teeth
MOUTH_PRIOR = np.array([0.28, 0.12, 0.11], np.float32)
TEETH_PRIOR = np.array([0.85, 0.82, 0.74], np.float32)
DEPTH_TOLERANCE = 0.3  # cm: a surface point within this of the picture's z-buffer is seen there (as .unwrap)
VIEW_TOLERANCE = 2.0  # cm: a point further behind the picture's z-buffer is hidden (the back of the head...)
EDGE_MARGIN = 0.08  # x the landmark box side: pixels this close to the fitted head's outline are trusted less
PERSON_REACH = 0.3  # x the landmark box side: how far around the fitted head GrabCut may find the person
RINGS = ((1.08, 1.0), (1.4, 0.5), (1.9, 0.0))  # (radius / head outline, fraction of the turn) of the outer anchors
RING_POINTS = 36  # anchors per ring
ANCHOR_GRID = 64  # at most one mesh anchor per 1/ANCHOR_GRID of the image side (each way)
BORDER_POINTS = 8  # anchors per image side
LABEL_SETS = ("ibug68", "ibug68_2d")  # the label files written beside each picture (their schemes)


@dataclass
class ReposeConfig:
    """What :func:`repose_dataset` draws for each re-posed picture (angles in degrees, relative to frontal)."""

    poses: int = field(default=4, metadata={"help": "re-posed pictures written per source picture (random yaws)"})
    yaw_max: float = field(default=90.0, metadata={"help": "random target yaws are uniform in [-YAW_MAX, YAW_MAX]"})
    yaws: list[float] | None = field(
        default=None, metadata={"help": "fixed target yaws instead of random ones (each picture at each yaw)"}
    )
    expression: float = field(
        default=0.3,
        metadata={"help": "expression change: blend weight of a random expression into the fitted one (0: none)"},
    )
    size: int = field(default=0, metadata={"help": "side of the written pictures in pixels (0: the source's)"})
    jaw: Literal["auto", "3d", "2d"] = field(
        default="auto",
        metadata={
            "help": "what the source's jaw points mark: 3d = the projected 3D jaw (FaceSynthetics: all 68 points "
            "fitted), 2d = the visible outline (300-W: fitted through points 17-67 only); auto = 2d for .pts "
            "and WFLW folders, else 3d"
        },
    )
    exclude: list[str] | None = field(
        default=None,
        metadata={
            "help": "files listing source picture names (one per line, # comments) to leave out, e.g. "
            "splits/helen_holdout_170.txt"
        },
    )

    def check(self) -> None:
        """Raises :class:`~lightmark.errors.ConfigError` for an impossible value."""
        if self.poses < 1:
            raise ConfigError(f"poses: expected 1 or more, got {self.poses}")
        if not 0.0 <= self.yaw_max <= 90.0:
            raise ConfigError(f"yaw_max: expected 0-90 degrees, got {self.yaw_max}")
        if self.yaws is not None and (not self.yaws or any(not -90.0 <= y <= 90.0 for y in self.yaws)):
            raise ConfigError(f"yaws: expected one or more yaws in [-90, 90] degrees, got {self.yaws}")
        if not 0.0 <= self.expression <= 1.0:
            raise ConfigError(f"expression: expected 0-1, got {self.expression}")
        if self.size != 0 and self.size < 32:
            raise ConfigError(f"size: expected 0 (the source's) or 32 or more, got {self.size}")
        if self.jaw not in JAW_CHOICES:
            raise ConfigError(f"jaw: expected one of {', '.join(JAW_CHOICES)}, got {self.jaw!r}")
        read_name_lists(self.exclude or [])  # ConfigError for a list that cannot be read


# ============================================================================================== per model


@dataclass
class ReposeMesh:
    """What re-posing needs of a face model (cached per model): V vertices, T rendered triangles.

    ``tris`` (T,3) int32 and ``kind`` (T,) uint8 (:data:`KIND_SKIN`, ``KIND_MOUTH``, ``KIND_TEETH``) of the
    :data:`RENDER_PARTS`; ``outer`` (V,) float64 in [0,1]: how much each vertex belongs to the outer head (the
    scalp, the back of the head and the neck: 1; the face, ears, eyes and mouth: 0; :data:`HAIRLINE`); ``skin``
    (S,) vertex ids of the face and head parts (the warp's mesh anchors);
    ``mirror`` (V,) the mirror vertex of each vertex; ``head_weight`` (V,) and ``pivot`` (3,) the neck
    skinning of :class:`~lightmark.synth.assets.ModelAssets`; ``neck_y`` the model-space heights (lo, hi) over
    which that weight rises from 0 to 1.
    """

    tris: np.ndarray
    kind: np.ndarray
    outer: np.ndarray
    skin: np.ndarray
    mirror: np.ndarray
    head_weight: np.ndarray
    pivot: np.ndarray
    neck_y: tuple[float, float]


_MESHES: dict[int, tuple[FaceModel, ReposeMesh]] = {}


def _part_mask(T: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(T,) bool: triangles whose first vertex lies in one of the parts ``names`` (as the assets classify them)."""
    t0 = T[:, 0]
    out = np.zeros(len(T), bool)
    for name in names:
        lo, hi = PARTS[name]
        out |= (t0 >= lo) & (t0 < hi)
    return out


def repose_mesh(model: FaceModel) -> ReposeMesh:
    """The (per process cached) :class:`ReposeMesh` of ``model`` (ICT topology).

    Raises:
        DatasetError: the model does not have the ICT topology.
    """
    hit = _MESHES.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]

    from .assets import get_assets

    assets = get_assets(model, 64)  # raises on another topology; the neck skinning and pivot come from here
    T = model.triangles
    render = _part_mask(T, RENDER_PARTS)
    kind = np.full(len(T), KIND_SKIN, np.uint8)
    kind[_part_mask(T, ("mouth_socket", "gums_tongue"))] = KIND_MOUTH
    kind[_part_mask(T, ("teeth",))] = KIND_TEETH
    lo, hi = assets.brow_el + HAIRLINE[0], assets.brow_el + HAIRLINE[1]
    outer = np.where(assets.ear_vertex != 0, 0.0, _smoothstep((assets.hair_el - lo) / (hi - lo)))
    outer[np.unique(T[_part_mask(T, ("head",))])] = 1.0
    outer[np.unique(T[~_part_mask(T, ("face", "head"))])] = 0.0  # eyes, mouth
    V = model.neutral.astype(np.float64)
    hw = assets.head_weight
    skin_v = assets.skin_vertex
    zero, one = skin_v & (hw <= 0.0), skin_v & (hw >= 1.0) & (V[:, 1] < V[model.landmarks68, 1].min())
    neck_y = (float(V[zero, 1].max()), float(V[one, 1].min()) if one.any() else float(V[zero, 1].max()) + 1.0)
    mesh = ReposeMesh(
        tris=np.ascontiguousarray(T[render]),
        kind=kind[render],
        outer=outer,
        skin=np.flatnonzero(skin_v),
        mirror=mirror_vertices(V),
        head_weight=hw,
        pivot=assets.pivot.astype(np.float64),
        neck_y=neck_y,
    )
    if len(_MESHES) > 4:
        _MESHES.clear()
    _MESHES[id(model)] = (model, mesh)
    return mesh


def neck_ramp(mesh: ReposeMesh, y: np.ndarray) -> np.ndarray:
    """(N,) fraction of the head's turn that points at model-space heights ``y`` (N,) follow (0 at the shoulders,
    1 from the lowest landmarks up), as the neck skinning does."""
    lo, hi = mesh.neck_y
    return _smoothstep((np.asarray(y, np.float64) - lo) / max(hi - lo, 1e-6))


# ============================================================================================ rasterising


@dataclass
class Raster:
    """A z-buffered view: ``tid`` (H,W) int32 triangle (-1: none), ``bary`` (H,W,2) float32 weights of its
    vertices 1 and 2, ``zbuf`` (H,W) float32 depth (inf: none)."""

    tid: np.ndarray
    bary: np.ndarray
    zbuf: np.ndarray

    def weights(self, hit: np.ndarray) -> np.ndarray:
        """(N,3) float64 barycentric weights of the pixels ``hit`` (H,W) bool."""
        b = self.bary[hit].astype(np.float64)
        return np.concatenate([1.0 - b.sum(1, keepdims=True), b], 1)


def project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    """(N,2) image points of camera-space points ``X`` (N,3) (pixel-centre convention)."""
    X = np.asarray(X, np.float64)
    return X[:, :2] / X[:, 2:3] * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]


def rasterize_view(K: np.ndarray, X: np.ndarray, tris: np.ndarray, drawn: np.ndarray, size: int) -> Raster:
    """Z-buffer the triangles ``tris`` (T,3) flagged ``drawn`` (T,) of the camera-space vertices ``X`` (V,3) into a
    ``size`` x ``size`` image."""
    uv = project(K, X)
    r = Raster(
        np.full((size, size), -1, np.int32),
        np.zeros((size, size, 2), np.float32),
        np.full((size, size), np.inf, np.float32),
    )
    rasterize(uv[:, 0].copy(), uv[:, 1].copy(), X[:, 2].copy(), tris, drawn, r.tid, r.bary, r.zbuf)
    return r


def front_facing(X: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) bool triangles of ``tris`` facing the camera, and the unit vertex normals (V,3) of camera-space ``X``."""
    X = np.ascontiguousarray(X, np.float64)
    vn = np.empty_like(X)
    fn = vertex_normals(X, tris, vn)
    return np.einsum("ij,ij->i", fn, X[tris[:, 0]]) < 0, vn


# ============================================================================================== the source


@dataclass
class ReposeSource:
    """A fitted picture, ready to be re-posed at any number of poses (:func:`repose`).

    ``image`` (H,H,3) uint8 RGB; ``fit`` the face model fit; ``X`` (V,3) camera-space vertices of the fit;
    ``normals`` (V,3) their unit normals; ``zbuf`` (H,H) float32 depth of the fitted head in the picture;
    ``person`` (H,H) float32 in [0,1]: where the picture shows the person rather than the background;
    ``edge_trust`` (H,H) float32 in [0,1]: how far each pixel is from the fitted head's outline (the fit's
    silhouettes are a few pixels off the face's, so what lies along them may be background);
    ``anchors`` (N,3) camera-space points of the warp's anchors, ``anchor_vertex`` (N,) the mesh vertex of each
    (-1: a ring or border anchor), ``anchor_turn`` (N,) the fraction of the head's turn each follows and
    ``anchor_tris`` (M,3) their triangulation in the picture; ``pupils`` (2,3) int64 vertex ids and (2,3)
    barycentric weights of the surface points under the picture's pupils (None without pupils);
    ``residual`` the mean fit residual (px) over the fitted points; ``fill`` (2,V,4) float32 the colour and
    solidity of each vertex (seen, or at its mirror image, else interpolated over the mesh: :func:`vertex_fill`);
    ``level`` the face's median sRGB level.
    """

    image: np.ndarray
    fit: FaceFit
    model: FaceModel
    mesh: ReposeMesh
    X: np.ndarray
    normals: np.ndarray
    zbuf: np.ndarray
    person: np.ndarray
    edge_trust: np.ndarray
    anchors: np.ndarray
    anchor_vertex: np.ndarray
    anchor_turn: np.ndarray
    anchor_tris: np.ndarray
    pupils: tuple[np.ndarray, np.ndarray] | None
    residual: float
    fill: np.ndarray
    level: float

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def pose(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) degrees of the fitted head."""
        return head_angles(MODEL_TO_CAMERA.T @ self.fit.camera.R)


def _check_picture(
    image: np.ndarray, landmarks: np.ndarray, jaw: str, pupils: np.ndarray | None, mask: np.ndarray | None
) -> np.ndarray:
    """``landmarks`` as (68,2) float64, after checking the arguments of :func:`prepare_source`."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1] or image.dtype != np.uint8:
        raise ConfigError(f"image: re-posing needs a square (H,H,3) uint8 RGB picture, got {image.dtype} {image.shape}")
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (NUM_LANDMARKS, 2) or not np.isfinite(lm).all():
        raise ConfigError(f"landmarks: expected {NUM_LANDMARKS} finite (x, y) points, got shape {lm.shape}")
    if jaw not in ("3d", "2d"):
        raise ConfigError(f"jaw: expected '3d' or '2d', got {jaw!r}")
    if pupils is not None and (np.shape(pupils) != (2, 2) or not np.isfinite(pupils).all()):
        raise ConfigError(f"pupils: expected 2 finite (x, y) points, got shape {np.shape(pupils)}")
    if mask is not None and np.shape(mask) != image.shape[:2]:
        raise ConfigError(f"mask: expected the picture's shape {image.shape[:2]}, got {np.shape(mask)}")
    return lm


def prepare_source(
    model: FaceModel,
    image: np.ndarray,
    landmarks: np.ndarray,
    jaw: Literal["3d", "2d"] = "3d",
    pupils: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    fit_cfg: FitConfig | None = None,
) -> ReposeSource:
    """Fit ``model`` to the picture ``image`` (H,H,3) uint8 RGB through its ``landmarks`` (68,2) (iBUG order,
    pixel-centre convention; with ``jaw="2d"`` the jaw points 0-16 mark the visible outline and are not fitted)
    and build what :func:`repose` needs. ``pupils`` (2,2): optional pupil points (subject's right, left) carried
    to the new poses; ``mask`` (H,H): optional person mask (non-zero: the person, e.g. a FaceSynthetics
    segmentation's non-background classes), else estimated (:func:`person_mask`).

    Raises:
        ConfigError: a non-square picture, landmarks not (68,2) finite, an unknown ``jaw``, pupils not (2,2), a
            mask of another size.
    """
    lm = _check_picture(image, landmarks, jaw, pupils, mask)
    mesh = repose_mesh(model)
    cfg = fit_cfg or FitConfig()
    if jaw == "2d":
        cfg = FitConfig(**{**cfg.__dict__, "jaw_weight": 0.0})
    size = image.shape[0]
    fit = fit_landmarks(model, lm, size, cfg)
    V = model.vertices(fit.identity, fit.expression)
    X = fit.camera.to_camera(V)
    front, vn = front_facing(X, mesh.tris)
    view = rasterize_view(fit.camera.K, X, mesh.tris, front, size)
    proj = fit.camera.project(V[model.landmarks68])  # (68,2)
    person = person_mask(image, view.zbuf, proj) if mask is None else (np.asarray(mask) > 0).astype(np.float32)
    anchors, vertex, turn, tris = _anchors(mesh, fit.camera, X, vn, view.zbuf, size)
    face = view.tid >= 0
    src = ReposeSource(
        image=np.ascontiguousarray(image),
        fit=fit,
        model=model,
        mesh=mesh,
        X=X,
        normals=vn,
        zbuf=view.zbuf,
        person=cv2.GaussianBlur(person, (0, 0), 1.0),
        edge_trust=_edge_trust(view.zbuf, EDGE_MARGIN * float(np.ptp(proj, axis=0).max())),
        anchors=anchors,
        anchor_vertex=vertex,
        anchor_turn=turn,
        anchor_tris=tris,
        pupils=None if pupils is None else _surface_points(view, mesh.tris, np.asarray(pupils, np.float64)),
        residual=float(fit.residuals[INNER if jaw == "2d" else slice(None)].mean()),
        level=float(np.median(image[face].mean(1))) / 255.0 if face.any() else 0.5,
        fill=np.zeros((2, len(X), 4), np.float32),
    )
    src.fill = vertex_fill(src)
    return src


def vertex_fill(src: ReposeSource) -> np.ndarray:
    """(2,V,4) float32 colour (3) and solidity (1) of each vertex of ``src``'s rendered mesh, for the points the
    picture does not show, from the face (row 0) and from the outer head (row 1; ``ReposeMesh.outer``): the
    vertices it shows (themselves or their mirror image, as :func:`_mix` mixes them) keep their colour and whether
    they lie on the person (1) or the background (0), the others are interpolated over the mesh from the face's or
    the outer head's (a harmonic fill: each the mean of its neighbours), so the back of the head takes the colours
    of the hair seen around it (not the face's), and ends where the background begins beside it."""
    import scipy.sparse as sp

    mesh, n = src.mesh, len(src.X)
    T = mesh.tris.astype(np.int64)
    v = np.unique(T)
    colour, trust, known, solid = _mix(src, np.repeat(v[:, None], 3, 1), np.tile([1.0, 0.0, 0.0], (len(v), 1)))
    e = np.concatenate([T[:, [0, 1]], T[:, [1, 2]], T[:, [2, 0]]])
    A = sp.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), (n, n)).tocsr()
    A.data[:] = 1.0
    L = sp.diags(np.asarray(A.sum(1)).ravel()) - A  # graph Laplacian
    out = np.zeros((2, n, 4), np.float32)
    outer = mesh.outer[v] > 0.5
    for row, side in enumerate((~outer, outer)):
        default = out[0, v[~outer], :3].mean(0) if row else np.full(3, 128.0)
        out[row, v, :3] = _harmonic(L, v, colour, (trust > 0.5) & side, default)
        out[row, v, 3] = _harmonic(L, v, solid[:, None], known & side, np.ones(1))[:, 0]
    return out


def _harmonic(L, v: np.ndarray, values: np.ndarray, known: np.ndarray, default: np.ndarray) -> np.ndarray:
    """``values`` (N,C) of the vertices ``v`` (N,), those not ``known`` (N,) replaced by the harmonic interpolation
    of the known ones over the graph Laplacian ``L`` (V,V) (slightly pulled towards their mean, so a part that knows
    nothing gets the mean; ``default`` (C,) when nothing is known)."""
    from scipy.sparse import identity
    from scipy.sparse.linalg import splu

    mean = values[known].mean(0) if known.any() else default
    out = np.where(known[:, None], values, mean).astype(np.float64)
    u, k = v[~known], v[known]
    if len(u) and len(k):  # L_uu x_u = -L_uk x_k
        L_uu = (L[u][:, u] + identity(len(u)) * 1e-3).tocsc()
        rhs = -(L[u][:, k] @ values[known]) + 1e-3 * mean
        lu = splu(L_uu, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})  # L_uu is symmetric
        out[~known] = lu.solve(np.asarray(rhs, np.float64).reshape(len(u), -1))
    return out


def person_mask(image: np.ndarray, zbuf: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(H,W) float32 0/1: where ``image`` (H,W,3) uint8 RGB shows the person, by GrabCut seeded with the fit: the
    inner face (the hull of ``landmarks`` (68,2) but the jaw) is the person, the fitted head (``zbuf`` (H,W) finite)
    probably is, its surroundings (within :data:`PERSON_REACH` x the landmark box) probably are not, the rest is
    background."""
    H, W = zbuf.shape
    head = np.isfinite(zbuf)
    k = int(PERSON_REACH * float(np.ptp(landmarks, axis=0).max())) | 1
    near = cv2.dilate(head.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    mask = np.full((H, W), cv2.GC_BGD, np.uint8)
    mask[near] = cv2.GC_PR_BGD
    mask[head] = cv2.GC_PR_FGD
    inner = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(inner, cv2.convexHull(landmarks[INNER].astype(np.float32)).astype(np.int32), 1)
    mask[inner > 0] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(np.ascontiguousarray(image[:, :, ::-1]), mask, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)


def _edge_trust(zbuf: np.ndarray, margin: float) -> np.ndarray:
    """(H,W) float32 in [0,1]: 0 on the outline of the fitted head (where the depth map ``zbuf`` (H,W) ends),
    rising to 1 at ``margin`` px inside it."""
    dist = cv2.distanceTransform(np.isfinite(zbuf).astype(np.uint8), cv2.DIST_L2, 3)
    return _smoothstep(dist / max(margin, 1.0)).astype(np.float32)


def _surface_points(view: Raster, tris: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids (N,3) and barycentric weights (N,3) of the surface under the image points ``pts`` (N,2) (the
    nearest covered pixel).

    Raises:
        DatasetError: the view covers nothing (the fitted head lies outside the picture).
    """
    covered = np.argwhere(view.tid >= 0)  # (C,2) rows, cols
    if not len(covered):
        raise DatasetError("the fitted head lies outside the picture")
    ids, ws = [], []
    for x, y in pts:
        r, c = covered[np.argmin((covered[:, 0] - y) ** 2 + (covered[:, 1] - x) ** 2)]
        b = view.bary[r, c].astype(np.float64)
        ids.append(tris[view.tid[r, c]])
        ws.append([1.0 - b.sum(), b[0], b[1]])
    return np.asarray(ids, np.int64), np.asarray(ws, np.float64)


def _anchors(
    mesh: ReposeMesh, cam: Camera, X: np.ndarray, vn: np.ndarray, zbuf: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The warp's anchors: the head's skin vertices visible in the picture (one per grid cell), rings around
    them and the image border. Returns camera-space points (N,3), mesh vertex (N,) (-1: none), fraction of the
    turn (N,) and the Delaunay triangles (M,3) of their image points."""
    from scipy.spatial import Delaunay

    K = cam.K
    v = mesh.skin
    uv = project(K, X[v])
    inside = (uv > -0.5).all(1) & (uv < size - 0.5).all(1)
    ix = np.clip(np.round(uv).astype(np.int64), 0, size - 1)
    seen = inside & (X[v, 2] <= zbuf[ix[:, 1], ix[:, 0]] + DEPTH_TOLERANCE)
    seen &= np.einsum("ij,ij->i", vn[v], X[v]) < 0
    cell = (ix[:, 1] * ANCHOR_GRID // size) * ANCHOR_GRID + ix[:, 0] * ANCHOR_GRID // size
    _, first = np.unique(np.where(seen, cell, -1), return_index=True)
    keep = v[first[seen[first]]]
    # rings around the head's outline (at the depth of its centre), then the image border (unmoved)
    centre = X[mesh.skin].mean(0)
    c2 = project(K, centre[None])[0]
    d = project(K, X[mesh.skin]) - c2
    ang = np.arctan2(d[:, 1], d[:, 0])
    theta = np.linspace(-np.pi, np.pi, RING_POINTS, endpoint=False)
    bins = np.floor((ang + np.pi) / (2 * np.pi) * RING_POINTS).astype(np.int64) % RING_POINTS
    radius = np.zeros(RING_POINTS)
    np.maximum.at(radius, bins, np.linalg.norm(d, axis=1))
    radius = np.maximum(radius, np.percentile(radius, 10))
    rings, turns = [], []
    for f, turn in RINGS:
        q = c2 + f * radius[:, None] * np.stack(
            [np.cos(theta + np.pi / RING_POINTS), np.sin(theta + np.pi / RING_POINTS)], 1
        )
        rings.append(q)
        turns.append(np.full(RING_POINTS, turn))
    t = np.linspace(-1.0, size, BORDER_POINTS + 1)
    border = np.concatenate([np.stack([t, np.full_like(t, e)], 1) for e in (-1.0, size)])
    border = np.concatenate([border, np.concatenate([np.stack([np.full_like(t, e), t], 1) for e in (-1.0, size)])])
    border = np.unique(border, axis=0)
    flat = np.concatenate([*rings, border])
    P = np.concatenate([(flat - K[:2, 2]) / np.array([K[0, 0], K[1, 1]]), np.ones((len(flat), 1))], 1) * centre[2]
    Vm = (P - cam.t) @ cam.R  # model space: the neck's ramp applies by height
    turn = np.concatenate([*turns, np.zeros(len(border))]) * neck_ramp(mesh, Vm[:, 1])
    points = np.concatenate([X[keep], P])
    vertex = np.concatenate([keep, np.full(len(P), -1)])
    turn = np.concatenate([mesh.head_weight[keep], turn])
    tris = Delaunay(project(K, points)).simplices.astype(np.int32)
    return points, vertex.astype(np.int64), turn, tris


# ============================================================================================== re-posing


@dataclass
class Reposed:
    """A re-posed picture: ``image`` (H,H,3) uint8 RGB, ``landmarks`` scheme -> (68,2) float32 (``ibug68``: the
    landmark vertices projected, ``ibug68_2d``: with the jaw on the visible outline), ``pupils`` (2,2) float32 or
    None, the ``camera`` of the new pose (model space -> image), the ``expression`` weights (E,) and the ``yaw``."""

    image: np.ndarray
    landmarks: dict[str, np.ndarray]
    pupils: np.ndarray | None
    camera: Camera
    expression: np.ndarray
    yaw: float


def turned_camera(cam: Camera, pivot: np.ndarray, yaw: float) -> Camera:
    """``cam`` with the head turned about the model-space ``pivot`` (3,) (fixed in the image) to ``yaw`` degrees,
    its pitch and roll kept."""
    _, pitch, roll = head_angles(MODEL_TO_CAMERA.T @ cam.R)
    R = MODEL_TO_CAMERA @ rotation_matrix(yaw, pitch, roll)
    return Camera(K=cam.K.copy(), R=R, t=cam.R @ pivot + cam.t - R @ pivot, size=cam.size)


def repose(src: ReposeSource, yaw: float, expression: np.ndarray | None = None) -> Reposed:
    """The picture of ``src`` with the head turned to ``yaw`` degrees (relative to frontal; pitch and roll kept)
    and the expression weights ``expression`` (E,) (None: the fitted ones). The yaw of the fit itself gives back
    the picture (but for the fit's outline and what the person mask calls background on the scalp) and the fit's
    projected landmarks.

    Raises:
        ConfigError: a yaw outside [-90, 90] or expression weights of another length.
    """
    from .generator import _skin_neck

    if not -90.0 <= float(yaw) <= 90.0:
        raise ConfigError(f"yaw: expected -90 to 90 degrees, got {yaw}")
    model, mesh, fit = src.model, src.mesh, src.fit
    expr = fit.expression if expression is None else np.asarray(expression, np.float64)
    if expr.shape != fit.expression.shape:
        raise ConfigError(f"expression: expected {fit.expression.shape[0]} weights, got shape {expr.shape}")
    V = model.vertices(fit.identity, expr).astype(np.float64)
    cam = turned_camera(fit.camera, mesh.pivot, yaw)
    body = MODEL_TO_CAMERA.T @ fit.camera.R  # the shoulders stay where the picture has them
    X = _skin_neck(V, mesh.head_weight, cam, body, mesh.pivot)
    back = _warp_surround(src, X, cam, body)
    face, alpha = _render_face(src, X)
    image = np.clip(face + (1.0 - alpha[:, :, None]) * back + 0.5, 0, 255).astype(np.uint8)
    ldmks = cam.project(V[model.landmarks68]).astype(np.float32)
    labels = {"ibug68": ldmks, "ibug68_2d": ibug68_2d_labels(ldmks, model, V, cam.P)}
    pupils = None
    if src.pupils is not None:
        ids, w = src.pupils
        pupils = project(cam.K, np.einsum("nk,nkd->nd", w, X[ids])).astype(np.float32)
    return Reposed(image, labels, pupils, cam, expr, float(yaw))


def _warp_surround(src: ReposeSource, X: np.ndarray, cam: Camera, body: np.ndarray) -> np.ndarray:
    """(H,H,3) float32: the picture warped by its anchors (see :class:`ReposeSource`) moved to the new pose (the
    head's vertices to ``X`` (V,3), the rings by their fraction of the turn): their triangles z-buffered at the
    new pose (those turned away are dropped), each pixel looked up where its point was in the picture."""
    from .generator import _skin_neck

    size, K = src.size, cam.K
    own = src.anchor_vertex >= 0
    dst = np.empty_like(src.anchors)
    dst[own] = X[src.anchor_vertex[own]]
    Vm = (src.anchors[~own] - src.fit.camera.t) @ src.fit.camera.R
    dst[~own] = _skin_neck(Vm, src.anchor_turn[~own], cam, body, src.mesh.pivot)
    tris = src.anchor_tris
    a0, a1 = project(K, src.anchors), project(K, dst)
    keep = np.sign(_areas(a0, tris)) == np.sign(_areas(a1, tris))
    view = rasterize_view(K, dst, tris, keep, size)
    xs, ys = np.empty((size, size), np.float32), np.empty((size, size), np.float32)
    k = np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], np.float64)
    _warp_maps(k, view.tid, view.bary, tris, np.ascontiguousarray(src.anchors, np.float64), xs, ys)
    return cv2.remap(src.image.astype(np.float32), xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


@njit(cache=True, nogil=True)
def _warp_maps(k, tid, bary, tris, anchors, xs, ys):  # pragma: no cover - numba
    """The maps ``xs``, ``ys`` (H,W) float32 of :func:`_warp_surround`: each pixel the rasterised triangle ``tid``
    (H,W) (barycentrics ``bary`` (H,W,2)) of ``tris`` covers at the picture point of its point on the
    ``anchors`` (N,3) (``k``: focal lengths and centre), else itself."""
    for r in range(tid.shape[0]):
        for c in range(tid.shape[1]):
            t = tid[r, c]
            if t < 0:
                xs[r, c], ys[r, c] = c, r
                continue
            b1, b2 = np.float64(bary[r, c, 0]), np.float64(bary[r, c, 1])
            w0 = 1.0 - (b1 + b2)
            i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
            p0 = w0 * anchors[i0, 0] + b1 * anchors[i1, 0] + b2 * anchors[i2, 0]
            p1 = w0 * anchors[i0, 1] + b1 * anchors[i1, 1] + b2 * anchors[i2, 1]
            p2 = w0 * anchors[i0, 2] + b1 * anchors[i1, 2] + b2 * anchors[i2, 2]
            xs[r, c], ys[r, c] = p0 / p2 * k[0] + k[2], p1 / p2 * k[1] + k[3]


@njit(cache=True, nogil=True, inline="always")
def _fill_at(fill, i0, i1, i2, w0, w1, w2, o, ch):  # pragma: no cover - numba
    """Channel ``ch`` of :func:`vertex_fill`'s ``fill`` (2,V,4) at the point ``w0-2`` of the vertices ``i0-2``, of
    the face (``o`` 0) or the outer head (1)."""
    f0 = w0 * fill[0, i0, ch] + w1 * fill[0, i1, ch] + w2 * fill[0, i2, ch]
    f1 = w0 * fill[1, i0, ch] + w1 * fill[1, i1, ch] + w2 * fill[1, i2, ch]
    return (1.0 - o) * f0 + o * f1


def _areas(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(M,) signed areas of the triangles ``tris`` (M,3) of the image points ``p`` (N,2)."""
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _look_up(
    src: ReposeSource, ids: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where the picture shows the fitted surface points ``w`` (N,3) of the vertices ``ids`` (N,3): colour (N,3)
    float32, trust (N,) in [0,1], in view (N,) bool and background (N,) in [0,1]. A point is seen where not hidden
    (z-buffer) and inside the picture; it is trusted as far as it is seen on the person, facing the camera (fading
    towards grazing angles) and away from the fitted head's outline. In view: not clearly hidden
    (:data:`VIEW_TOLERANCE`); background: in view, but not on the person (:func:`_look_up_points`)."""
    K, n = src.fit.camera.K, len(ids)
    out = (np.empty((n, 3), np.float32), np.empty(n), np.empty(n, np.bool_), np.empty(n, np.float32))
    _look_up_points(
        np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], np.float64),
        np.ascontiguousarray(src.X, np.float64),
        np.ascontiguousarray(src.normals, np.float64),
        src.zbuf,
        src.person,
        src.edge_trust,
        src.image,
        np.ascontiguousarray(ids, np.int64),
        np.ascontiguousarray(w, np.float64),
        *out,
    )
    return out


@njit(cache=True, nogil=True)
def _look_up_points(k, X, normals, zbuf, person, edge, image, ids, w, colour, trust, near, bg):  # pragma: no cover
    """The per-point work of :func:`_look_up` (numba, :func:`_look_one`): fills ``colour`` (N,3), ``trust`` (N,),
    ``near`` (N,) and ``bg`` (N,)."""
    for i in range(ids.shape[0]):
        c0, c1, c2, trust[i], near[i], bg[i] = _look_one(
            k, X, normals, zbuf, person, edge, image, ids[i, 0], ids[i, 1], ids[i, 2], w[i, 0], w[i, 1], w[i, 2]
        )
        colour[i, 0], colour[i, 1], colour[i, 2] = c0, c1, c2


@njit(cache=True, nogil=True, inline="always")
def _look_one(k, X, normals, zbuf, person, edge, image, i0, i1, i2, w0, w1, w2):  # pragma: no cover - numba
    """:func:`_look_up` of one surface point (weights ``w0-2`` of the vertices ``i0-2``; ``k`` the focal lengths
    and centre), in float64 as its numpy form (the depth tests in float32, as the z-buffer's): colour (3 float32),
    trust, in view, background (float32)."""
    size = zbuf.shape[0]
    H, W = image.shape[0], image.shape[1]
    p0 = w0 * X[i0, 0] + w1 * X[i1, 0] + w2 * X[i2, 0]
    p1 = w0 * X[i0, 1] + w1 * X[i1, 1] + w2 * X[i2, 1]
    p2 = w0 * X[i0, 2] + w1 * X[i1, 2] + w2 * X[i2, 2]
    n0 = w0 * normals[i0, 0] + w1 * normals[i1, 0] + w2 * normals[i2, 0]
    n1 = w0 * normals[i0, 1] + w1 * normals[i1, 1] + w2 * normals[i2, 1]
    n2 = w0 * normals[i0, 2] + w1 * normals[i1, 2] + w2 * normals[i2, 2]
    u = p0 / p2 * k[0] + k[2]
    y = p1 / p2 * k[1] + k[3]
    inside = u > -0.5 and y > -0.5 and u < size - 0.5 and y < size - 0.5
    c = _pixel_index(u, size)
    r = _pixel_index(y, size)
    z = zbuf[r, c]
    seen = inside and p2 <= z + np.float32(DEPTH_TOLERANCE)
    near = inside and p2 <= z + np.float32(VIEW_TOLERANCE)
    cosv = -(n0 * p0 + n1 * p1 + n2 * p2) / max(
        np.sqrt(n0 * n0 + n1 * n1 + n2 * n2) * np.sqrt(p0 * p0 + p1 * p1 + p2 * p2), 1e-12
    )
    s = min(max((cosv - 0.1) / 0.4, 0.0), 1.0)
    on = person[r, c]
    trust = (np.float32(seen) * on) * (s * s * (3.0 - 2.0 * s)) * np.float64(edge[r, c])
    bg = np.float32(near) * (np.float32(1.0) - on)
    x = min(max(u, 0.0), W - 1.0)
    y = min(max(y, 0.0), H - 1.0)
    x0, y0 = min(int(x), W - 2), min(int(y), H - 2)
    fx, fy = x - x0, y - y0
    c0 = _bilinear_at(image, x0, y0, fx, fy, 0)
    c1 = _bilinear_at(image, x0, y0, fx, fy, 1)
    return c0, c1, _bilinear_at(image, x0, y0, fx, fy, 2), trust, near, bg


@njit(cache=True, nogil=True, inline="always")
def _bilinear_at(image, x0, y0, fx, fy, ch):  # pragma: no cover - numba
    """Channel ``ch`` of ``image`` between pixels ``x0``, ``y0`` and the next ones (fractions ``fx``, ``fy``), as
    :func:`~lightmark.synth.unwrap.bilinear` (float32)."""
    top = image[y0, x0, ch] * (1 - fx) + image[y0, x0 + 1, ch] * fx
    bottom = image[y0 + 1, x0, ch] * (1 - fx) + image[y0 + 1, x0 + 1, ch] * fx
    return np.float32(top * (1 - fy) + bottom * fy)


@njit(cache=True, nogil=True, inline="always")
def _pixel_index(x: float, size: int) -> int:  # pragma: no cover - numba
    """The pixel (0..size-1) nearest the coordinate ``x`` (halves to even, as ``np.round``; NaN: 0)."""
    if not x == x:
        return 0
    return int(min(max(np.rint(x), 0.0), size - 1.0))


def _mix(src: ReposeSource, ids: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The picture's colour (N,3) float32 of the fitted surface points ``w`` (N,3) of the vertices ``ids`` (N,3):
    their own (:func:`_look_up`) where trusted, else their mirror image's; its trust (N,); whether the picture
    shows the points at all (N,) (themselves, else their mirror image) and their solidity (N,): 0 where it shows
    background there, 1 where the person (all in [0,1])."""
    c_own, t_own, near, bg_own = _look_up(src, ids, w)
    c_mir, t_mir, near_mir, bg_mir = _look_up(src, src.mesh.mirror[ids], w)
    t_own = t_own**2  # a point seen poorly gives way to a mirror image seen well
    trust = t_own + (1.0 - t_own) * t_mir
    mixed = (t_own[:, None] * c_own + ((1.0 - t_own) * t_mir)[:, None] * c_mir) / np.maximum(trust, 1e-6)[:, None]
    return mixed, trust, near | near_mir, 1.0 - (bg_own + ~near * bg_mir)


def _render_face(src: ReposeSource, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head at the new pose ``X`` (V,3) with the picture's pixels (:func:`_look_up`; the mirror image where
    the point itself is not trusted, then a smooth fill, dark priors in the mouth): premultiplied colour (H,H,3)
    float32 and alpha (H,H) float32 (anti-aliased; fading out down the neck, where the warp takes over; the
    scalp and neck transparent where the picture shows background there, or at their mirror image)."""
    mesh, size, K = src.mesh, src.size, src.fit.camera.K
    front, _ = front_facing(X, mesh.tris)
    view = rasterize_view(K, X, mesh.tris, front, size)
    priors = np.stack([np.zeros(3, np.float32), MOUTH_PRIOR, TEETH_PRIOR]) * 255.0 * min(src.level / 0.5, 1.5)
    filled = np.zeros((size, size, 3))
    alpha = np.zeros((size, size), np.float32)
    outer = np.zeros((size, size), bool)
    _shade_face(
        np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], np.float64),
        (np.ascontiguousarray(src.X, np.float64), np.ascontiguousarray(src.normals, np.float64)),
        (src.zbuf, src.person, src.edge_trust, src.image),
        (view.tid, view.bary, mesh.tris, mesh.mirror.astype(np.int64), mesh.kind),
        (mesh.outer, mesh.head_weight.astype(np.float64), src.fill, priors.astype(np.float64)),
        filled,
        alpha,
        outer,
    )
    opened = cv2.morphologyEx(alpha, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    alpha = np.where(outer, np.minimum(alpha, opened), alpha)  # no slivers of scalp along the outline
    face = (filled * alpha[:, :, None]).astype(np.float32)
    return cv2.GaussianBlur(face, (0, 0), 0.6), cv2.GaussianBlur(alpha, (0, 0), 0.6)


@njit(cache=True, nogil=True)
def _shade_face(k, verts, picture, view, per_vertex, filled, alpha, outer):  # pragma: no cover - numba
    """The per-pixel work of :func:`_render_face` (numba; as :func:`_mix` and :func:`vertex_fill`'s fill): the
    unpremultiplied colour ``filled`` (H,W,3) float64, ``alpha`` (H,W) float32 before the outline's opening and
    ``outer`` (H,W) bool (on the outer head) of each pixel the rasterised ``view`` covers. ``verts``: camera-space
    vertices and normals of the fit; ``picture``: its z-buffer, person mask, edge trust and image; ``view``:
    triangle ids, barycentrics, the triangles, mirror vertices, triangle kinds; ``per_vertex``: the outer-head
    weights, head weights, (2,V,4) fill and the (3,3) colours of the kinds (skin: unused)."""
    X, normals = verts
    zbuf, person, edge, image = picture
    tid, bary, tris, mirror, kind = view
    outer_w, head_w, fill, priors = per_vertex
    for r in range(tid.shape[0]):
        for c in range(tid.shape[1]):
            t = tid[r, c]
            if t < 0:
                continue
            b1, b2 = np.float64(bary[r, c, 0]), np.float64(bary[r, c, 1])
            w0 = 1.0 - (b1 + b2)
            i0, i1, i2 = np.int64(tris[t, 0]), np.int64(tris[t, 1]), np.int64(tris[t, 2])
            a0, a1, a2, t_own, near, bg_own = _look_one(
                k, X, normals, zbuf, person, edge, image, i0, i1, i2, w0, b1, b2
            )
            m0, m1, m2, t_mir, near_mir, bg_mir = _look_one(
                k, X, normals, zbuf, person, edge, image, mirror[i0], mirror[i1], mirror[i2], w0, b1, b2
            )
            t_own = t_own**2  # a point seen poorly gives way to a mirror image seen well
            trust = t_own + (1.0 - t_own) * t_mir
            t_m = (1.0 - t_own) * t_mir
            d = max(trust, 1e-6)
            mixed = ((t_own * a0 + t_m * m0) / d, (t_own * a1 + t_m * m1) / d, (t_own * a2 + t_m * m2) / d)
            o = w0 * outer_w[i0] + b1 * outer_w[i1] + b2 * outer_w[i2]  # 0 face .. 1 outer head
            kd = kind[t]
            for ch in range(3):
                other = _fill_at(fill, i0, i1, i2, w0, b1, b2, o, ch) if kd == KIND_SKIN else priors[kd, ch]
                filled[r, c, ch] = trust * mixed[ch] + (1.0 - trust) * other
            if near or near_mir:
                solid = np.float64(np.float32(1.0) - (bg_own + np.float32(not near) * bg_mir))
            else:
                s = min(max((_fill_at(fill, i0, i1, i2, w0, b1, b2, o, 3) - 0.05) / 0.3, 0.0), 1.0)
                solid = s * s * (3.0 - 2.0 * s)
            opacity = 1.0 - o * (1.0 - solid)
            alpha[r, c] = (w0 * head_w[i0] + b1 * head_w[i1] + b2 * head_w[i2]) * opacity  # the neck: the warp's
            outer[r, c] = o > 0.0


# ============================================================================================== datasets


def resolve_jaw(jaw: str, fmt: DatasetFormat) -> Literal["3d", "2d"]:
    """The jaw convention of a source dataset of format ``fmt`` (:class:`lightmark.choices.DatasetFormat`) for the
    :class:`ReposeConfig` ``jaw`` setting: ``"auto"`` is ``"2d"`` for 300-W ``.pts`` and WFLW, else ``"3d"``."""
    if jaw != "auto":
        return jaw  # type: ignore[return-value]
    return "2d" if fmt in (DatasetFormat.PTS, DatasetFormat.WFLW) else "3d"


def draw_pose(
    rng: np.random.Generator, cfg: ReposeConfig, k: int, model: FaceModel, fit_expression: np.ndarray
) -> tuple[float, np.ndarray]:
    """Target yaw and expression weights (E,) of output ``k`` of a source picture: ``cfg.yaws[k]``, else uniform
    in [-``yaw_max``, ``yaw_max``]; the fitted expression blended by ``cfg.expression`` with a random one
    (:func:`~lightmark.synth.expressions.sample_expression`)."""
    from .expressions import sample_expression
    from .generator import SynthConfig

    yaw = float(cfg.yaws[k]) if cfg.yaws else float(rng.uniform(-cfg.yaw_max, cfg.yaw_max))
    expr = np.asarray(fit_expression, np.float64)
    if cfg.expression > 0.0:
        new, _ = sample_expression(rng, model.expression_names, SynthConfig())
        expr = (1.0 - cfg.expression) * expr + cfg.expression * new
    return yaw, expr


def resized(result: Reposed, size: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """The picture (size,size,3) and labels of ``result`` scaled to ``size`` px (pixel-centre convention; 0 or the
    same size: unchanged)."""
    src = result.image.shape[0]
    if size in (0, src):
        return result.image, result.landmarks, result.pupils
    s = size / src
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    image = cv2.resize(result.image, (size, size), interpolation=interp)

    def scale(p: np.ndarray) -> np.ndarray:
        return ((np.asarray(p, np.float64) + 0.5) * s - 0.5).astype(np.float32)

    pupils = None if result.pupils is None else scale(result.pupils)
    return image, {k: scale(v) for k, v in result.landmarks.items()}, pupils


@dataclass(frozen=True)
class _Job:
    """What every worker needs to re-pose the pictures of a dataset (pickled once per worker)."""

    model: FaceModel
    cfg: ReposeConfig
    jaw: str
    out_dir: str
    seed: int
    width: int  # digits of the file names
    poses: int  # outputs per source picture


_W: dict = {}


def _init_worker(job: _Job) -> None:
    """A pool worker's set-up: one OpenCV thread (the pool runs one worker per core) and the job in :data:`_W`."""
    cv2.setNumThreads(1)
    _W["job"] = job


def output_names(out_dir: str | os.PathLike, index: int, width: int) -> dict[str, Path]:
    """The files of output ``index``: ``image`` ``NNNNNN.png``, ``ibug68`` ``NNNNNN_ldmks.txt`` (68 points, + the 2
    pupils when the source has them), ``ibug68_2d`` ``NNNNNN_ldmks_ibug68_2d.txt`` (the renderer's layout)."""
    from ..data.formats import ldmks_suffix

    stem = f"{index:0{width}d}"
    out = {"image": Path(out_dir) / f"{stem}.png"}
    return out | {scheme: Path(out_dir) / (stem + ldmks_suffix(scheme)) for scheme in LABEL_SETS}


def _source_picture(sample) -> tuple[np.ndarray, np.ndarray | None]:
    """A source sample's picture (H,H,3) uint8 RGB and its person mask (H,H) (a FaceSynthetics segmentation's
    non-background classes) or None.

    Raises:
        DatasetError: the picture is not square, or its segmentation unreadable or of another size.
    """
    from ..data.images import read_image
    from .labels import BACKGROUND

    image = read_image(sample.image_path)
    if image.shape[0] != image.shape[1]:
        raise DatasetError(
            f"{sample.image_path}: re-posing needs square pictures, got {image.shape[1]}x{image.shape[0]}"
        )
    seg_path = sample.meta.get("seg_path")
    if seg_path is None:
        return image, None
    seg = cv2.imread(str(seg_path), cv2.IMREAD_UNCHANGED)
    if seg is None or seg.shape[:2] != image.shape[:2]:
        raise DatasetError(f"{seg_path}: segmentation unreadable or not the picture's size")
    return image, (seg if seg.ndim == 2 else seg[:, :, 0]) != BACKGROUND


def _repose_source(args: tuple[int, object]) -> tuple[list[dict], str | None, float]:
    """Fit source picture ``i`` and write its re-posed outputs (those not yet written); returns a record per output
    written, a reason when the picture was skipped, and the CPU seconds it took."""
    from ..data.formats import write_ldmks
    from ..errors import LightmarkError
    from ..utils import atomic_save_bytes
    from .generator import sample_seed
    from .textures import MAX_RESIDUAL

    i, sample = args
    job: _Job = _W["job"]
    t0 = time.process_time()
    todo = [k for k in range(job.poses) if not _written(job, i * job.poses + k)]
    if not todo:
        return [], None, time.process_time() - t0
    try:
        image, mask = _source_picture(sample)
        src = prepare_source(job.model, image, sample.landmarks, job.jaw, sample.meta.get("pupils"), mask)
    except LightmarkError as e:
        return [], str(e), time.process_time() - t0
    box = float(np.ptp(np.asarray(sample.landmarks)[INNER], axis=0).max())
    if src.residual > MAX_RESIDUAL * box:
        return [], f"{sample.image_path}: the face model fit is off by {src.residual:.1f} px on average", 0.0
    records = []
    for k in todo:
        index = i * job.poses + k
        rng = np.random.default_rng(sample_seed(job.seed, index))
        yaw, expr = draw_pose(rng, job.cfg, k, job.model, src.fit.expression)
        image, labels, pupils = resized(repose(src, yaw, expr), job.cfg.size)
        names = output_names(job.out_dir, index, job.width)
        ok, png = cv2.imencode(".png", image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OutputError(f"{names['image']}: PNG encoding failed")
        write_ldmks(names["ibug68_2d"], labels["ibug68_2d"], None, "ibug68_2d")
        write_ldmks(names["ibug68"], labels["ibug68"], pupils)
        atomic_save_bytes(names["image"], png.tobytes())  # last: an image means its labels are there
        records.append({"name": names["image"].name, "source": sample.name, "yaw": round(yaw, 2)})
    return records, None, time.process_time() - t0


def _written(job: _Job, index: int) -> bool:
    return all(p.is_file() for p in output_names(job.out_dir, index, job.width).values())


META_NAME = "repose_config.json"
INDEX_NAME = "repose_index.csv"  # name, source picture, yaw of every output


def repose_dataset(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: ReposeConfig | None = None,
    seed: int = 0,
    workers: int = 1,
    face_model: str | os.PathLike | FaceModel | None = None,
    progress: bool = True,
) -> dict:
    """Re-pose every labelled picture of the dataset ``source`` (any layout :func:`~lightmark.data.formats.
    load_dataset` reads, 68 points, square pictures) ``config.poses`` times (or at each of ``config.yaws``) into
    ``out_dir`` in the synthetic engine's FaceSynthetics layout: ``NNNNNN.png`` with ``NNNNNN_ldmks.txt`` (68 points,
    3D jaw; + 2 pupils when the source has them) and ``NNNNNN_ldmks_ibug68_2d.txt`` (jaw on the visible outline);
    output ``i * poses + k`` is pose ``k`` of picture ``i``, drawn from :func:`~lightmark.synth.generator.
    sample_seed` ``(seed, i * poses + k)`` (independent of ``workers``). Resumable: outputs already written are
    skipped. A FaceSynthetics segmentation beside a picture gives its person mask (else GrabCut estimates it);
    pictures whose fit is off (:data:`~lightmark.synth.textures.MAX_RESIDUAL`) are skipped with a warning.
    ``repose_config.json`` records the settings, ``repose_index.csv`` the source picture and yaw of each output.

    Returns:
        stats: ``written``, ``skipped`` (outputs already there), ``rejected`` (source pictures), ``seconds``,
        ``images_per_second``, ``cpu_seconds_per_image`` (fitting, rendering and writing summed over the workers),
        ``out_dir``.

    Raises:
        ConfigError: bad settings; DatasetError: no labelled pictures, another seed or configuration in
        ``out_dir``, a bad face model; OutputError: ``out_dir`` cannot be written.
    """
    from ..utils import ensure_dir
    from .face_model import load_face_model

    cfg = config or ReposeConfig()
    cfg.check()
    if int(workers) < 1:
        raise ConfigError(f"workers: expected 1 or more, got {workers}")
    model = face_model if isinstance(face_model, FaceModel) else load_face_model(face_model)
    repose_mesh(model)  # fails early on another topology
    full = load_dataset(source, require_landmarks=True)
    ds = without(full, read_name_lists(cfg.exclude or []))
    if not ds.samples:
        raise DatasetError(f"{source}: every picture is excluded ({', '.join(cfg.exclude or [])})")
    if cfg.exclude and len(ds) == len(full):
        warnings.warn(f"{source}: no picture is named in {', '.join(cfg.exclude)}: none excluded", stacklevel=2)
    poses = len(cfg.yaws) if cfg.yaws else int(cfg.poses)
    out = ensure_dir(out_dir)
    job = _Job(
        model, cfg, resolve_jaw(cfg.jaw, ds.format), str(out), int(seed), max(6, len(str(len(ds) * poses - 1))), poses
    )
    _write_meta(job, source)
    todo = list(enumerate(ds.samples))
    t0 = time.perf_counter()
    records, rejected, cpu = _run(job, todo, int(workers), progress)
    dt = time.perf_counter() - t0
    _write_index(out, records)
    if rejected:
        warnings.warn(f"{len(rejected)} of {len(ds)} pictures skipped, e.g. {rejected[0]}", stacklevel=2)
    return {
        "written": len(records),
        "skipped": len(ds) * poses - len(records) - len(rejected) * poses,
        "rejected": len(rejected),
        "seconds": dt,
        "images_per_second": len(records) / dt if dt > 0 and records else 0.0,
        "cpu_seconds_per_image": cpu / len(records) if records else 0.0,
        "out_dir": str(out),
    }


def _write_meta(job: _Job, source: str | os.PathLike) -> None:
    """Write ``repose_config.json``.

    Raises:
        DatasetError: the folder holds pictures re-posed with another seed, source or configuration.
    """
    import json

    from ..utils import atomic_write

    meta = {
        "generator": "lightmark.synth.repose",
        "source": str(Path(source).resolve()),
        "seed": job.seed,
        "jaw": job.jaw,
        "face_model": job.model.source,
        "config": asdict(job.cfg),
    }
    path = Path(job.out_dir) / META_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and isinstance(old.get("config"), dict):  # fields added since: their defaults
            old["config"] = {**asdict(ReposeConfig()), **old["config"]}
        keys = ("source", "seed", "jaw", "config")
        if not isinstance(old, dict) or any(old.get(k) != meta[k] for k in keys):
            raise DatasetError(
                f"{job.out_dir}: holds pictures re-posed from another source or with another seed or configuration "
                f"({META_NAME}); use a new folder"
            )
    with atomic_write(path, "w") as f:
        json.dump(meta, f, indent=1)


def _write_index(out: Path, records: list[dict]) -> None:
    """Add ``records`` (name, source, yaw) to ``repose_index.csv`` (one row per output, sorted by name)."""
    import csv

    from ..utils import atomic_write

    path = out / INDEX_NAME
    rows: dict[str, dict] = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            rows = {r["name"]: r for r in csv.DictReader(f)}
    rows.update({r["name"]: r for r in records})
    with atomic_write(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["name", "source", "yaw"])
        w.writeheader()
        w.writerows(rows[k] for k in sorted(rows))


def _run(job: _Job, todo: list, workers: int, progress: bool) -> tuple[list[dict], list[str], float]:
    """Re-pose the source pictures ``todo`` ((index, sample) pairs) here or in ``workers`` spawned single-threaded
    processes, with a progress bar on a terminal; returns the output records, the reasons of the skipped pictures
    and the CPU seconds."""
    import multiprocessing as mp

    from ..utils import opencv_threads, progress_bar
    from .generator import _single_threaded_children

    records, rejected, cpu = [], [], 0.0
    bar = progress_bar(total=len(todo), enabled=progress, unit="picture", desc="repose")
    pool, here = None, contextlib.ExitStack()
    try:
        if workers == 1 or len(todo) <= 1:  # in this process: one OpenCV thread as in a worker, restored after
            here.enter_context(opencv_threads(1))
            here.callback(_W.clear)
            _W["job"] = job
            results = map(_repose_source, todo)
        else:
            with _single_threaded_children():
                pool = mp.get_context("spawn").Pool(min(workers, len(todo)), _init_worker, (job,))
            results = pool.imap_unordered(_repose_source, todo)
        for recs, why, seconds in results:
            records += recs
            cpu += seconds
            if why:
                rejected.append(why)
            bar.update(1)
    finally:
        bar.close()
        here.close()
        if pool is not None:
            pool.terminate()
    return records, rejected, cpu
