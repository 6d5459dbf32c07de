"""Re-pose real-looking pictures in 3D ("face profiling", as 300W-LP was made from 300-W; Zhu et al., "Face
Alignment Across Large Poses: A 3D Solution", CVPR 2016).

A picture with 68 landmarks is fitted by the ICT Face Model (:mod:`.fit`); the head is then turned about a pivot
near the neck to a new yaw (pitch and roll kept), optionally with a changed expression, and drawn again:

- the face (the ``face`` part of the mesh with its eyeballs and mouth inside) is rendered at the new pose with the
  picture's own pixels: each rendered surface point is looked up where the same point of the fitted mesh lies in
  the picture when it is visible there (z-buffer, facing the camera), else where its mirror image lies (the ICT
  mesh is left/right symmetric), else a smooth fill of its surroundings (the mouth's inside: a dark prior);
- the rest of the picture (hair, ears, neck, background) follows as a 2.5D image mesh: a Delaunay triangulation
  of anchors in the picture - the visible vertices of the fitted head, three rings around the head and the image
  border - whose 3D points move with the head (the neck and the rings by a fraction of the turn, the border not
  at all), rendered with a z-buffer at the new pose;
- the face is composited over that warp, blended over ``ReposeConfig.feather`` cm where the face part of the mesh
  meets the scalp and neck (its silhouette stays sharp).

The labels are the projections of the model's landmark vertices at the new pose (exact by construction; the pupils
move with the surface points under the picture's pupils): ``ibug68`` (3D jaw), ``ibug68_2d`` (the visible outline,
landmark marching, :func:`.landmark_sets.ibug68_2d_labels`). No shading is removed: the picture keeps its own
look, and the side that was hidden shows the other side's light.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from ..errors import ConfigError, DatasetError
from .face_model import PARTS, FaceModel
from .fit import FaceFit, FitConfig, fit_landmarks
from .landmark_sets import ibug68_2d_labels
from .raster import rasterize, vertex_normals
from .scene import MODEL_TO_CAMERA, Camera, head_angles, rotation_matrix
from .unwrap import bilinear, mirror_vertices, pull_push

JAW_CHOICES = ("auto", "3d", "2d")
RENDER_PARTS = (
    "face",
    "eye_socket_left",
    "eye_socket_right",
    "eyeball_left",
    "eyeball_right",
    "mouth_socket",
    "gums_tongue",
    "teeth",
)
"""Mesh parts rendered with the picture's pixels (the face, the eyes, the mouth's inside; not the scalp and neck of
the ``head`` part, nor the eyelashes and eye-blend layers)."""
KIND_SKIN, KIND_MOUTH, KIND_TEETH = 0, 1, 2
# sRGB colours (x the face's level) of the mouth's inside where the picture never saw it (a mouth opened by the
# expression change): the cavity and gums, the teeth
MOUTH_PRIOR = np.array([0.28, 0.12, 0.11], np.float32)
TEETH_PRIOR = np.array([0.85, 0.82, 0.74], np.float32)
EAR_MARGIN = 1.5  # cm: the face part's border with the scalp this close to an ear is no cut (the ear stays opaque)
DEPTH_TOLERANCE = 0.3  # cm: a surface point within this of the picture's z-buffer is seen there (as .unwrap)
DEPTH_JUMP = 1.0  # cm: neighbouring pixels of the picture's z-buffer this far apart are an occluding edge
EDGE_MARGIN = 0.03  # x the landmark box side: pixels this close to an occluding edge of the fit are trusted less
RINGS = ((1.08, 1.0), (1.4, 0.5), (1.9, 0.0))  # (radius / head outline, fraction of the turn) of the outer anchors
RING_POINTS = 36  # anchors per ring
ANCHOR_GRID = 64  # at most one mesh anchor per 1/ANCHOR_GRID of the image side (each way)
BORDER_POINTS = 8  # anchors per image side


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
    feather: float = field(
        default=1.5, metadata={"help": "cm over which the face blends into the warped scalp and neck"}
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
        if self.feather <= 0.0:
            raise ConfigError(f"feather: expected > 0 cm, got {self.feather}")


# ============================================================================================== per model


@dataclass
class ReposeMesh:
    """What re-posing needs of a face model (cached per model): V vertices, T rendered triangles.

    ``tris`` (T,3) int32 and ``kind`` (T,) uint8 (:data:`KIND_SKIN`, ``KIND_MOUTH``, ``KIND_TEETH``) of the
    :data:`RENDER_PARTS`; ``occluders`` (O,3) int32 every triangle that hides something in the picture (the render
    parts and the ``head`` part); ``skin`` (S,) vertex ids of the face and head parts (the warp's mesh anchors);
    ``cut`` (V,) float64 distance (cm, neutral mesh) of each vertex from the face part's border with the head
    part; ``mirror`` (V,) the mirror vertex of each vertex; ``head_weight`` (V,) and ``pivot`` (3,) the neck
    skinning of :class:`~lightmark.synth.assets.ModelAssets`; ``neck_y`` the model-space heights (lo, hi) over
    which that weight rises from 0 to 1.
    """

    tris: np.ndarray
    kind: np.ndarray
    occluders: np.ndarray
    skin: np.ndarray
    cut: np.ndarray
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
    from scipy.spatial import cKDTree

    from .assets import get_assets

    assets = get_assets(model, 64)  # raises on another topology; the neck skinning and pivot come from here
    T = model.triangles
    render = _part_mask(T, RENDER_PARTS)
    head = _part_mask(T, ("head",))
    face = _part_mask(T, ("face",))
    kind = np.full(len(T), KIND_SKIN, np.uint8)
    kind[_part_mask(T, ("mouth_socket", "gums_tongue"))] = KIND_MOUTH
    kind[_part_mask(T, ("teeth",))] = KIND_TEETH
    V = model.neutral.astype(np.float64)
    seam = np.intersect1d(np.unique(T[face]), np.unique(T[head]))
    ears = np.flatnonzero(assets.ear_vertex != 0)
    if len(ears):  # the ears stay opaque: their border with the scalp is no cut of the face
        seam = seam[cKDTree(V[ears]).query(V[seam])[0] > EAR_MARGIN]
    cut = cKDTree(V[seam]).query(V)[0] if len(seam) else np.full(len(V), np.inf)
    hw = assets.head_weight
    skin_v = assets.skin_vertex
    zero, one = skin_v & (hw <= 0.0), skin_v & (hw >= 1.0) & (V[:, 1] < V[model.landmarks68, 1].min())
    neck_y = (float(V[zero, 1].max()), float(V[one, 1].min()) if one.any() else float(V[zero, 1].max()) + 1.0)
    mesh = ReposeMesh(
        tris=np.ascontiguousarray(T[render]),
        kind=kind[render],
        occluders=np.ascontiguousarray(T[render | head]),
        skin=np.flatnonzero(skin_v),
        cut=cut,
        mirror=mirror_vertices(V),
        head_weight=hw,
        pivot=assets.pivot.astype(np.float64),
        neck_y=neck_y,
    )
    if len(_MESHES) > 4:
        _MESHES.clear()
    _MESHES[id(model)] = (model, mesh)
    return mesh


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


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
    ``anchors`` (N,3) camera-space points of the warp's anchors, ``anchor_vertex`` (N,) the mesh vertex of each
    (-1: a ring or border anchor), ``anchor_turn`` (N,) the fraction of the head's turn each follows and
    ``anchor_tris`` (M,3) their triangulation in the picture; ``pupils`` (2,3) int64 vertex ids and (2,3)
    barycentric weights of the surface points under the picture's pupils (None without pupils);
    ``edge_trust`` (H,H) float32 in [0,1]: how far each pixel is from an occluding edge of the fitted head (the
    fit's silhouettes are a few pixels off the face's, so what lies along them may be background);
    ``residual`` the mean fit residual (px) over the fitted points; ``level`` the face's median sRGB level.
    """

    image: np.ndarray
    fit: FaceFit
    model: FaceModel
    mesh: ReposeMesh
    X: np.ndarray
    normals: np.ndarray
    zbuf: np.ndarray
    anchors: np.ndarray
    anchor_vertex: np.ndarray
    anchor_turn: np.ndarray
    anchor_tris: np.ndarray
    pupils: tuple[np.ndarray, np.ndarray] | None
    edge_trust: np.ndarray
    residual: float
    level: float

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def pose(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) degrees of the fitted head."""
        return head_angles(MODEL_TO_CAMERA.T @ self.fit.camera.R)


def prepare_source(
    model: FaceModel,
    image: np.ndarray,
    landmarks: np.ndarray,
    jaw: Literal["3d", "2d"] = "3d",
    pupils: np.ndarray | None = None,
    fit_cfg: FitConfig | None = None,
) -> ReposeSource:
    """Fit ``model`` to the picture ``image`` (H,H,3) uint8 RGB through its ``landmarks`` (68,2) (iBUG order,
    pixel-centre convention; with ``jaw="2d"`` the jaw points 0-16 mark the visible outline and are not fitted)
    and build what :func:`repose` needs. ``pupils`` (2,2): optional pupil points (subject's right, left) carried
    to the new poses.

    Raises:
        ConfigError: a non-square picture, landmarks not (68,2) finite, an unknown ``jaw``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1] or image.dtype != np.uint8:
        raise ConfigError(f"image: re-posing needs a square (H,H,3) uint8 RGB picture, got {image.dtype} {image.shape}")
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ConfigError(f"landmarks: expected 68 finite (x, y) points, got shape {lm.shape}")
    if jaw not in ("3d", "2d"):
        raise ConfigError(f"jaw: expected '3d' or '2d', got {jaw!r}")
    mesh = repose_mesh(model)
    cfg = fit_cfg or FitConfig()
    if jaw == "2d":
        cfg = FitConfig(**{**cfg.__dict__, "jaw_weight": 0.0})
    fit = fit_landmarks(model, lm, image.shape[0], cfg)
    X = fit.camera.to_camera(model.vertices(fit.identity, fit.expression))
    size = image.shape[0]
    front, vn = front_facing(X, mesh.occluders)
    view = rasterize_view(fit.camera.K, X, mesh.occluders, front, size)
    anchors, vertex, turn, tris = _anchors(mesh, fit.camera, X, vn, view.zbuf, size)
    fitted = slice(17, 68) if jaw == "2d" else slice(0, 68)
    face = view.tid >= 0
    level = float(np.median(image[face].mean(1))) / 255.0 if face.any() else 0.5
    return ReposeSource(
        image=np.ascontiguousarray(image),
        fit=fit,
        model=model,
        mesh=mesh,
        X=X,
        normals=vn,
        zbuf=view.zbuf,
        anchors=anchors,
        anchor_vertex=vertex,
        anchor_turn=turn,
        anchor_tris=tris,
        pupils=None if pupils is None else _surface_points(view, mesh.occluders, np.asarray(pupils, np.float64)),
        edge_trust=_edge_trust(
            view.zbuf,
            EDGE_MARGIN
            * float(
                np.ptp(
                    fit.camera.project(model.vertices(fit.identity, fit.expression)[model.landmarks68]), axis=0
                ).max()
            ),
        ),
        residual=float(fit.residuals[fitted].mean()),
        level=level,
    )


def _edge_trust(zbuf: np.ndarray, margin: float) -> np.ndarray:
    """(H,W) float32 in [0,1]: 0 on the occluding edges of the depth map ``zbuf`` (H,W) (jumps over
    :data:`DEPTH_JUMP`, and its outline), rising to 1 at ``margin`` px from them."""
    z = np.where(np.isfinite(zbuf), zbuf, 1e6).astype(np.float64)
    edge = np.zeros(z.shape, bool)
    for axis in (0, 1):
        jump = np.abs(np.diff(z, axis=axis)) > DEPTH_JUMP
        lo = [slice(None), slice(None)]
        hi = [slice(None), slice(None)]
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        edge[tuple(lo)] |= jump
        edge[tuple(hi)] |= jump
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
    return _smoothstep(dist / max(margin, 1.0)).astype(np.float32)


def _surface_points(view: Raster, tris: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertex ids (N,3) and barycentric weights (N,3) of the surface under the image points ``pts`` (N,2) (the
    nearest covered pixel); None when the view covers nothing."""
    covered = np.argwhere(view.tid >= 0)  # (C,2) rows, cols
    if not len(covered):
        return None
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


def repose(
    src: ReposeSource, yaw: float, expression: np.ndarray | None = None, feather: float | None = None
) -> Reposed:
    """The picture of ``src`` with the head turned to ``yaw`` degrees (relative to frontal; pitch and roll kept)
    and the expression weights ``expression`` (E,) (None: the fitted ones); ``feather`` cm (None: the
    :class:`ReposeConfig` default) blends the face into the warped scalp and neck.

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
    feather = ReposeConfig.feather if feather is None else float(feather)
    V = model.vertices(fit.identity, expr).astype(np.float64)
    cam = turned_camera(fit.camera, mesh.pivot, yaw)
    body = MODEL_TO_CAMERA.T @ fit.camera.R  # the shoulders stay where the picture has them
    X = _skin_neck(V, mesh.head_weight, cam, body, mesh.pivot)
    back = _warp_surround(src, X, cam, body)
    face, alpha = _render_face(src, X, feather)
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
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    hit = view.tid >= 0
    P = np.einsum("nk,nkd->nd", view.weights(hit), src.anchors[tris[view.tid[hit]]])
    uv = project(K, P).astype(np.float32)
    xs[hit], ys[hit] = uv[:, 0], uv[:, 1]
    return cv2.remap(src.image.astype(np.float32), xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _areas(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(M,) signed areas of the triangles ``tris`` (M,3) of the image points ``p`` (N,2)."""
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _look_up(src: ReposeSource, ids: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (N,3) float32 and trust (N,) in [0,1] of the fitted surface points ``w`` (N,3) of the vertices
    ``ids`` (N,3) in the picture: seen where not hidden (z-buffer), inside the picture and facing the camera
    (fading towards grazing angles)."""
    K, size = src.fit.camera.K, src.size
    P = np.einsum("nk,nkd->nd", w, src.X[ids])
    n = np.einsum("nk,nkd->nd", w, src.normals[ids])
    uv = project(K, P)
    inside = (uv > -0.5).all(1) & (uv < size - 0.5).all(1)
    ix = np.clip(np.round(uv).astype(np.int64), 0, size - 1)
    seen = inside & (P[:, 2] <= src.zbuf[ix[:, 1], ix[:, 0]] + DEPTH_TOLERANCE)
    cosv = -np.einsum("nd,nd->n", n, P) / np.maximum(np.linalg.norm(n, axis=1) * np.linalg.norm(P, axis=1), 1e-12)
    trust = seen * _smoothstep((cosv - 0.1) / 0.4) * src.edge_trust[ix[:, 1], ix[:, 0]]
    return bilinear(src.image, uv[:, 0], uv[:, 1]).astype(np.float32), trust


def _render_face(src: ReposeSource, X: np.ndarray, feather: float) -> tuple[np.ndarray, np.ndarray]:
    """The face parts at the new pose ``X`` (V,3) with the picture's pixels (see :func:`_look_up`; the mirror
    image where unseen, then a smooth fill, dark priors in the mouth): premultiplied colour (H,H,3) float32 and
    alpha (H,H) float32 (anti-aliased; fading over ``feather`` cm towards the face part's cut edge)."""
    mesh, size = src.mesh, src.size
    front, _ = front_facing(X, mesh.tris)
    view = rasterize_view(src.fit.camera.K, X, mesh.tris, front, size)
    hit = view.tid >= 0
    t = view.tid[hit]
    ids, w = mesh.tris[t].astype(np.int64), view.weights(hit)
    c_own, t_own = _look_up(src, ids, w)
    c_mir, t_mir = _look_up(src, mesh.mirror[ids], w)
    trust = t_own + (1.0 - t_own) * t_mir
    mixed = (t_own[:, None] * c_own + ((1.0 - t_own) * t_mir)[:, None] * c_mir) / np.maximum(trust, 1e-6)[:, None]
    vals = np.zeros((size, size, 3), np.float32)
    wt = np.zeros((size, size), np.float32)
    vals[hit], wt[hit] = mixed, trust
    seen = trust > 0.5
    mean = mixed[seen].mean(0) if seen.any() else np.full(3, 128.0)
    filled = pull_push(vals, wt, mean)[hit]
    kind = mesh.kind[t]
    for k, prior in ((KIND_MOUTH, MOUTH_PRIOR), (KIND_TEETH, TEETH_PRIOR)):
        sel = kind == k
        p = prior * 255.0 * min(src.level / 0.5, 1.5)
        filled[sel] = trust[sel, None] * mixed[sel] + (1.0 - trust[sel, None]) * p
    edge = _smoothstep(mesh.cut / feather)
    alpha = np.zeros((size, size), np.float32)
    alpha[hit] = np.einsum("nk,nk->n", w, (edge * mesh.head_weight)[ids])  # the neck: the warp's
    face = np.zeros((size, size, 3), np.float32)
    face[hit] = filled * alpha[hit, None]
    return cv2.GaussianBlur(face, (0, 0), 0.6), cv2.GaussianBlur(alpha, (0, 0), 0.6)
