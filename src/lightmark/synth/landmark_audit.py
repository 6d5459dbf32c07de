"""Audit of the renderer's 68-point landmark definition against FaceSynthetics' labels.

Three kinds of evidence (``docs/synth.md``, "Landmark definitions"):

- **Fits.** Each FaceSynthetics sample's 68 labels are fitted by the ICT model (:mod:`.fit`); the residual between a
  label and the projection of its ICT vertex is measured in the image (px, rotated upright, and divided by the face's
  inter-ocular distance) and on the fitted mesh (the offset along the surface, in the head's own frame: right, up;
  cm). Averaged over the samples, a residual that is large against its spread is a difference of *definition*, not
  noise. The fit moves the face to match the labels and so absorbs most of such a difference; every region is also
  measured on a *leave-one-region-out* fit (the face fitted to the other regions), and how much of a known change an
  audit recovers is measured on synthetic faces (:func:`transfer`, :func:`debias`).
- **Segmentation edges.** Where a point's definition names the edge of a face part (the brow, a lid, the nose, a lip),
  how deep inside that part's segmentation class FaceSynthetics puts it is compared with where our renderer puts it
  (:func:`seg_depths`): independent of any fit and of the two face models' shapes.
- **Synthetic checks.** Labels drawn with a known definition on the renderer's own faces.

The corrected definition (:func:`derive_definition`) places each point with a systematic offset at the surface point
of the neutral ICT mesh where FaceSynthetics puts it (barycentric, as in :mod:`.landmark_sets`); the renderer writes it
as ``NNNNNN_ldmks_ibug68_fs.txt`` when ``SynthConfig.fs_labels`` is set
(:func:`lightmark.synth.landmark_sets.ibug68_fs_labels`, :data:`~lightmark.synth.landmark_sets.IBUG68_FS_SURFACE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..constants import FLIP_PERM, OUTER_EYE_CORNERS
from ..schemes import get_scheme
from .face_model import PARTS, FaceModel
from .fit import FaceFit, FitConfig, _initial_pose, _Problem, solve

REGIONS: dict[str, tuple[int, ...]] = dict(get_scheme("ibug68").regions)
"""The 68 points by region (the ``ibug68`` scheme's: jaw, brows, nose, eyes, mouth)."""

MIDLINE: tuple[int, ...] = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)
"""Points on the face's midline (their definition has no left/right component)."""

MIN_FACING = 0.3
"""A mesh offset is measured only where the surface faces the camera at least this much (cosine of the angle between
its normal and the view ray): at grazing angles the image offset says little about the offset along the surface."""

_FACE_END = PARTS["face"][1]


# =================================================================================================== fitting


def fit_weighted(
    model: FaceModel,
    target: np.ndarray,
    size: int,
    weights: np.ndarray | None = None,
    x0: np.ndarray | None = None,
    cfg: FitConfig | None = None,
    definition: tuple[np.ndarray, np.ndarray] | None = None,
    freeze_expression: bool = False,
) -> tuple[FaceFit, np.ndarray]:
    """:func:`lightmark.synth.fit.fit_landmarks` with a weight per point and an optional warm start.

    Args:
        target: (68,2) labels (pixel-centre convention) of a ``size`` x ``size`` image.
        weights: (68,) multiplies the fit's own weights (jaw 0.7); 0 leaves a point out of the fit.
        x0: parameter vector of an earlier fit (its second return value) to start from.
        definition: the 68 points as surface points, vertex ids (68,3) and weights (68,3) (default: the model's
            ``landmarks68`` vertices).

    Returns:
        the fit (``residuals`` (68,) px of every point, also the left-out ones) and its parameter vector.
    """

    cfg = cfg or FitConfig()
    p = _Problem(model, target, size, cfg)
    if weights is not None:
        p.w = p.w * np.asarray(weights, np.float64)
    if definition is not None:
        ids, w = (np.asarray(a) for a in definition)
        p.base = surface_points(model.neutral, ids, w)
        modes = np.concatenate([model.identity[: p.n], model.expression])  # (n+E,V,3)
        p.modes = np.einsum("pk,mpkd->mpd", w, modes[:, ids].astype(np.float64)).reshape(len(modes), -1)
    lo = np.concatenate([np.full(7, -np.inf), np.full(p.n, -4.0), np.zeros(p.E)])
    hi = np.concatenate([np.full(7, np.inf), np.full(p.n, 4.0), np.ones(p.E)])
    if x0 is None:
        x = np.zeros(7 + p.n + p.E)
        x[:6] = _initial_pose(p)
        x[7 + p.n :] = 0.01
    else:
        x = np.clip(np.asarray(x0, np.float64).copy(), lo, hi)
        if freeze_expression:  # the expression stays that of x0 (bounds a hair apart: scipy needs lo < hi)
            lo[7 + p.n :], hi[7 + p.n :] = x[7 + p.n :] - 1e-9, x[7 + p.n :] + 1e-9
            p.prior[p.n :] = 0.0
    return solve(p, x, lo, hi, cfg, model, size)


# ============================================================================================== measuring


@dataclass
class Residuals:
    """Residuals of N samples' labels against their fitted faces, for P points (label minus model)."""

    image: np.ndarray  # (N,P,2) px, image axes (x right, y down)
    upright: np.ndarray  # (N,P,2) px along the head's projected (right, up) axes
    iod: np.ndarray  # (N,) px: inter-ocular distance (outer corners 36-45) of the fitted face seen frontally
    mesh: np.ndarray  # (N,P,2) cm: offset along the surface, in the head's frame (right, up)
    valid: np.ndarray  # (N,P) bool: the surface faces the camera (MIN_FACING): ``mesh`` is meaningful
    jac: np.ndarray  # (N,P,2,2) px per cm of ``mesh`` (the projection of the tangent directions)

    @property
    def normalised(self) -> np.ndarray:
        """(N,P,2) ``upright`` divided by the inter-ocular distance."""
        return self.upright / self.iod[:, None, None]

    def take(self, points: Sequence[int]) -> Residuals:
        ix = list(points)
        return Residuals(
            self.image[:, ix], self.upright[:, ix], self.iod, self.mesh[:, ix], self.valid[:, ix], self.jac[:, ix]
        )

    @staticmethod
    def stack(items: Sequence[Residuals]) -> Residuals:
        """Samples of several :class:`Residuals` (same points) as one."""
        return Residuals(*(np.concatenate([getattr(r, k) for r in items]) for k in Residuals.__dataclass_fields__))


def surface_points(V: np.ndarray, ids: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(P,3) barycentric points ``w`` (P,3) of the vertices ``ids`` (P,3) of ``V`` (V,3)."""
    return np.einsum("pk,pkd->pd", np.asarray(w, np.float64), np.asarray(V, np.float64)[ids])


def vertex_definition(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """The model's 68 landmark vertices as surface points: ids (68,3) and weights (68,3)."""
    v = model.landmarks68.astype(np.int64)
    return np.repeat(v[:, None], 3, 1), np.tile([1.0, 0.0, 0.0], (68, 1))


def surface_normals(model: FaceModel, V: np.ndarray, ids: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(P,3) unit normals at the surface points (ids (P,3), w (P,3)) of the face mesh ``V``: area-weighted over the
    face triangles touching their vertices of non-zero weight."""
    T = model.triangles[(model.triangles < _FACE_END).all(1)].astype(np.int64)
    key = np.where(w > 0, ids, -1)  # (P,3)
    hit = (T[:, :, None, None] == key[None, None]).any((1, 3))  # (T,P)
    t_ix, p_ix = np.nonzero(hit)
    V = np.asarray(V, np.float64)
    tri = T[t_ix]
    fn = np.cross(V[tri[:, 1]] - V[tri[:, 0]], V[tri[:, 2]] - V[tri[:, 0]])
    n = np.zeros((len(ids), 3))
    np.add.at(n, p_ix, fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def tangent_frames(normals: np.ndarray) -> np.ndarray:
    """(P,3,2) unit tangent directions (right, up) at surface points of unit ``normals`` (P,3): the model's up axis
    (+y) and the right axis (+x, the subject's left) projected onto the tangent plane."""
    up = np.array([0.0, 1.0, 0.0]) - normals[:, 1:2] * normals
    up /= np.maximum(np.linalg.norm(up, axis=1, keepdims=True), 1e-12)
    right = np.cross(up, normals)
    return np.stack([right, up], 2)


def projection_jacobian(camera, X: np.ndarray) -> np.ndarray:
    """(P,2,3) derivative of the image position of model-space points ``X`` (P,3) seen by ``camera``."""
    Xc = np.asarray(X, np.float64) @ camera.R.T + camera.t
    f = camera.K[0, 0]
    iz = 1.0 / Xc[:, 2]
    J = np.zeros((len(X), 2, 3))
    J[:, 0, 0] = J[:, 1, 1] = f * iz
    J[:, :, 2] = -f * Xc[:, :2] * (iz * iz)[:, None]
    return J @ camera.R


def measure(
    model: FaceModel, fit: FaceFit, labels: np.ndarray, ids: np.ndarray | None = None, w: np.ndarray | None = None
) -> Residuals:
    """Residuals (N = 1) of ``labels`` (P,2) against the surface points (ids (P,3), weights (P,3); default the 68
    landmark vertices) of the fitted face."""
    if ids is None or w is None:
        ids, w = vertex_definition(model)
    V = model.vertices(fit.identity, fit.expression).astype(np.float64)
    X = surface_points(V, ids, w)
    cam = fit.camera
    d = np.asarray(labels, np.float64) - cam.project(X)  # (P,2)
    J = projection_jacobian(cam, X)  # (P,2,3)
    # the head's right and up axes seen in the image, at the middle of the face
    lm = V[model.landmarks68]
    Jc = projection_jacobian(cam, lm.mean(0, keepdims=True))[0]
    up_img = Jc[:, 1] / np.linalg.norm(Jc[:, 1])
    axes = np.stack([np.array([-up_img[1], up_img[0]]), up_img])  # (2,2) rows: right, up
    eyes = lm[list(OUTER_EYE_CORNERS)]
    z = float((eyes.mean(0) @ cam.R.T + cam.t)[2])
    iod = cam.K[0, 0] / z * float(np.linalg.norm(eyes[0] - eyes[1]))
    n = surface_normals(model, V, ids, w)
    Tf = tangent_frames(n)  # (P,3,2)
    A = J @ Tf  # (P,2,2)
    mesh = np.linalg.solve(A, d[:, :, None])[:, :, 0]
    centre = -cam.R.T @ cam.t
    ray = centre - X
    facing = np.einsum("pd,pd->p", n, ray) / np.linalg.norm(ray, axis=1)
    return Residuals(
        image=d[None],
        upright=(d @ axes.T)[None],
        iod=np.array([iod]),
        mesh=mesh[None],
        valid=(facing > MIN_FACING)[None],
        jac=A[None],
    )


def fit_from_params(model: FaceModel, x: np.ndarray, size: int, cfg: FitConfig | None = None) -> FaceFit:
    """The :class:`FaceFit` of a parameter vector ``x`` of :func:`fit_weighted` (residuals left at 0)."""
    cfg = cfg or FitConfig()
    n = min(cfg.n_identity, model.num_identity)
    p = _Problem.__new__(_Problem)  # only the camera maths is needed: no landmark arrays
    p.c = (size - 1) / 2.0
    p.f0 = size / 2.0 / np.tan(np.radians(cfg.fov_guess) / 2)
    identity = np.zeros(model.num_identity)
    identity[:n] = x[7 : 7 + n]
    return FaceFit(identity, np.asarray(x[7 + n :], np.float64).copy(), _Problem.camera(p, x, size), np.zeros(68))


# ============================================================================================ statistics


def point_stats(r: Residuals) -> dict[str, np.ndarray]:
    """Per point (P) over the N samples: ``mean_px`` (P,2) and ``sd_px`` (P,) (RMS distance around the mean) of the
    upright residuals, the same as fractions of the inter-ocular distance (``mean_iod``, ``sd_iod``), and over the
    samples whose surface faces the camera: ``mean_mesh`` (P,2) cm, ``sd_mesh`` (P,) and ``n_mesh`` (P,); ``effect``
    (P,): ``|mean_iod| / sd_iod``. Components are (right, up)."""
    out: dict[str, np.ndarray] = {}
    for key, a in (("px", r.upright), ("iod", r.normalised)):
        m = a.mean(0)
        out[f"mean_{key}"] = m
        out[f"sd_{key}"] = np.sqrt(((a - m) ** 2).sum(-1).mean(0))
    w = r.valid.astype(np.float64)[:, :, None]
    n = np.maximum(w.sum(0), 1.0)
    m = (r.mesh * w).sum(0) / n
    out["mean_mesh"] = m
    out["sd_mesh"] = np.sqrt((((r.mesh - m) ** 2).sum(-1, keepdims=True) * w).sum(0) / n)[:, 0]
    out["n_mesh"] = w.sum(0)[:, 0]
    out["effect"] = np.linalg.norm(out["mean_iod"], axis=1) / np.maximum(out["sd_iod"], 1e-12)
    return out


def outward_sign(model: FaceModel, points: Sequence[int] = tuple(range(68))) -> np.ndarray:
    """(P,) +1 where the point's vertex lies on the subject's left (+x), -1 on the right, 0 on the midline: the sign
    that turns a "right" component into an "outward" one."""
    x = model.neutral[model.landmarks68[list(points)], 0].astype(np.float64)
    s = np.sign(x)
    s[np.isin(list(points), MIDLINE)] = 0.0
    return s


def region_stats(stats: dict[str, np.ndarray], sign: np.ndarray) -> dict[str, dict[str, float]]:
    """Per region of :data:`REGIONS`, from the 68 points' :func:`point_stats`: the mean ``up`` and ``out``ward
    (lateral, away from the midline; midline points left out) components of the points' mean offsets, the mean size
    of those offsets (``systematic``) and the mean spread, in px (``_px``) and inter-ocular fractions (``_iod``), and
    the same in cm on the mesh (``_cm``)."""
    out: dict[str, dict[str, float]] = {}
    for name, ix in REGIONS.items():
        ix = np.asarray(ix)
        lat = ix[sign[ix] != 0]
        row: dict[str, float] = {}
        for unit, m_key, s_key in (
            ("px", "mean_px", "sd_px"),
            ("iod", "mean_iod", "sd_iod"),
            ("cm", "mean_mesh", "sd_mesh"),
        ):
            m = stats[m_key]
            row[f"up_{unit}"] = float(m[ix, 1].mean())
            row[f"out_{unit}"] = float((m[lat, 0] * sign[lat]).mean()) if len(lat) else 0.0
            row[f"systematic_{unit}"] = float(np.linalg.norm(m[ix], axis=1).mean())
            row[f"spread_{unit}"] = float(stats[s_key][ix].mean())
        out[name] = row
    return out


# ========================================================================================== surface points


def pooled_offset(
    jac: np.ndarray, d: np.ndarray, iod: np.ndarray, midline: bool = False, rounds: int = 3
) -> np.ndarray:
    """(2,) the one tangent offset (right, up; cm) that best explains the image residuals ``d`` (N,2) of N samples
    through their tangent Jacobians ``jac`` (N,2,2): least squares with every sample's residual divided by its
    inter-ocular distance ``iod`` (N,) (each face counts the same), Huber-reweighted ``rounds`` times; ``midline``
    keeps the right component at 0."""
    A = jac / iod[:, None, None]
    b = d / iod[:, None]
    if midline:
        A = A[:, :, 1:]
    w = np.ones(len(b))
    a = np.zeros(A.shape[2])
    for _ in range(max(1, rounds)):
        M = np.einsum("n,nij,nik->jk", w, A, A)
        a = np.linalg.solve(M + 1e-12 * np.eye(len(a)), np.einsum("n,nij,ni->j", w, A, b))
        r = np.linalg.norm(b - A @ a, axis=1)
        k = 1.345 * 1.4826 * max(float(np.median(r)), 1e-9)
        w = np.minimum(1.0, k / np.maximum(r, 1e-12))
    return np.array([0.0, a[0]]) if midline else a


def _edges_adjacency(T: np.ndarray, n: int):
    import scipy.sparse as sp

    e = np.concatenate([T[:, [0, 1]], T[:, [1, 2]], T[:, [2, 0]]])
    return sp.coo_matrix(
        (np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)
    ).tocsr()


def closest_on_triangles(V: np.ndarray, T: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The point of the triangles ``T`` (K,3) of ``V`` nearest to ``c`` (3,): its triangle's vertex ids (3,), its
    barycentric weights (3,) and its distance."""
    a, b, d = V[T[:, 0]], V[T[:, 1]], V[T[:, 2]]
    # candidates: the projection into each triangle's plane (when inside) and the nearest point of each edge
    e1, e2 = b - a, d - a
    n = np.cross(e1, e2)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    p = c - np.einsum("kd,kd->k", c - a, n)[:, None] * n
    g11, g12, g22 = (e1 * e1).sum(1), (e1 * e2).sum(1), (e2 * e2).sum(1)
    q1, q2 = ((p - a) * e1).sum(1), ((p - a) * e2).sum(1)
    det = np.maximum(g11 * g22 - g12**2, 1e-18)
    u, v = (g22 * q1 - g12 * q2) / det, (g11 * q2 - g12 * q1) / det
    cands = [np.stack([1 - u - v, u, v], 1)]
    ok = [(u >= 0) & (v >= 0) & (u + v <= 1)]
    for i, j in ((0, 1), (1, 2), (2, 0)):
        P0, P1 = V[T[:, i]], V[T[:, j]]
        s = np.clip(((c - P0) * (P1 - P0)).sum(1) / np.maximum(((P1 - P0) ** 2).sum(1), 1e-18), 0.0, 1.0)
        w = np.zeros((len(T), 3))
        w[:, i], w[:, j] = 1 - s, s
        cands.append(w)
        ok.append(np.ones(len(T), bool))
    W = np.stack(cands)  # (4,K,3)
    pts = np.einsum("ckj,kjd->ckd", W, V[T])
    dist = np.where(np.stack(ok), np.linalg.norm(pts - c, axis=2), np.inf)
    ci, k = np.unravel_index(np.argmin(dist), dist.shape)
    return T[k].copy(), W[ci, k].copy(), float(dist[ci, k])


def surface_point_near(
    model: FaceModel, vertex: int, target: np.ndarray, rings: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids (3,) and barycentric weights (3,) of the point of the neutral face mesh nearest to ``target`` (3,),
    among the face triangles within ``rings`` edge rings of ``vertex`` (so that it stays on the same sheet of the
    surface: the upper and lower lips, or a lid and the eyeball, lie close together)."""
    T = model.triangles[(model.triangles < _FACE_END).all(1)].astype(np.int64)
    adj = _edges_adjacency(T, model.num_vertices)
    near = np.zeros(model.num_vertices, bool)
    near[vertex] = True
    for _ in range(rings):
        near |= adj @ near.astype(np.float64) > 0
    tri = T[near[T].all(1)]
    ids, w, _ = closest_on_triangles(model.neutral.astype(np.float64), tri, np.asarray(target, np.float64))
    return ids, w


# ================================================================================================= audit


@dataclass
class Audit:
    """Residuals of N samples' 68 labels against the current definition: on the fit to all points (``full``) and
    with each region measured on the fit to the other regions only (``loro``, leave one region out)."""

    full: Residuals  # (N,68)
    loro: Residuals  # (N,68)
    params: np.ndarray  # (N,D) parameter vectors of the full fits (fit_weighted)
    size: int  # image side of the samples (px)


def audit_sample(
    model: FaceModel, labels: np.ndarray, size: int, regions: Sequence[str] = tuple(REGIONS)
) -> tuple[Residuals, Residuals, np.ndarray]:
    """One sample's residuals (N = 1) on the full fit and on the leave-one-region-out fits of ``regions`` (the other
    regions' points are measured on the full fit), and the full fit's parameter vector."""
    labels = np.asarray(labels, np.float64)[:68]
    fit, x = fit_weighted(model, labels, size)
    full = measure(model, fit, labels)
    parts = {k: getattr(full, k).copy() for k in Residuals.__dataclass_fields__}
    for name in regions:
        ix = list(REGIONS[name])
        w = np.ones(68)
        w[ix] = 0.0
        held, _ = fit_weighted(model, labels, size, w, x0=x)
        r = measure(model, held, labels)
        for k in ("image", "upright", "mesh", "valid", "jac"):
            parts[k][:, ix] = getattr(r, k)[:, ix]
    return full, Residuals(**parts), x


def audit_samples(
    model: FaceModel, labels: Sequence[np.ndarray], size: int, regions: Sequence[str] = tuple(REGIONS), progress=None
) -> Audit:
    """:func:`audit_sample` of every sample's labels (68 or 70, 2) of ``size`` x ``size`` images; ``progress``:
    optional callable(i) after each sample."""
    full, loro, xs = [], [], []
    for i, lab in enumerate(labels):
        f, h, x = audit_sample(model, lab, size, regions)
        full.append(f)
        loro.append(h)
        xs.append(x)
        if progress is not None:
            progress(i)
    return Audit(Residuals.stack(full), Residuals.stack(loro), np.stack(xs), int(size))


def _mirror_pairs(model: FaceModel) -> np.ndarray:
    """(68,) the 68-point index of each point's mirror image (itself on the midline; the iBUG flip permutation)."""
    return np.asarray(FLIP_PERM, np.int64)


def point_offsets(model: FaceModel, r: Residuals) -> np.ndarray:
    """(68,2) per point the pooled tangent offset (right, up; cm) of :func:`pooled_offset`, symmetric: a point and
    its mirror share one offset (right component mirrored), midline points have no right component."""
    flip = _mirror_pairs(model)
    x = model.neutral[model.landmarks68, 0]
    out = np.zeros((68, 2))
    M = np.diag([-1.0, 1.0])
    for i in range(68):
        j = int(flip[i])
        if i in MIDLINE:
            out[i] = pooled_offset(r.jac[:, i], r.image[:, i], r.iod, midline=True)
        elif x[i] < 0:  # subject's right: pool with the mirror point, its right component flipped
            jac = np.concatenate([r.jac[:, i], r.jac[:, j] @ M])
            d = np.concatenate([r.image[:, i], r.image[:, j]])
            out[i] = pooled_offset(jac, d, np.concatenate([r.iod, r.iod]))
            out[j] = M @ out[i]
    return out


# ===================================================================================== segmentation edges


def image_up(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """(2,) unit image direction of the head's up axis (+y of model space) at the model-space point ``X`` (3,) seen
    through the projection ``P`` (3,4)."""
    h = P @ np.append(np.asarray(X, np.float64), 1.0)
    d = (P[:2, 1] * h[2] - h[:2] * P[2, 1]) / h[2] ** 2
    return d / max(float(np.linalg.norm(d)), 1e-12)


def class_run(
    seg: np.ndarray, points: np.ndarray, up: np.ndarray, classes: Sequence[int], reach: float = 40.0, step: float = 0.5
) -> np.ndarray:
    """(P,2) where the run of ``classes`` pixels nearest to each point (P,2) along the line through it in direction
    ``up`` (2,) begins and ends: (top, bottom) in px along ``up`` from the point (top > bottom; the point lies inside
    the run when top > 0 > bottom), NaN where no such pixel lies within ``reach`` px."""
    t = np.arange(-reach, reach + step / 2, step)  # (K,) increasing = upwards
    xy = np.rint(points[:, None, :] + t[None, :, None] * up).astype(np.int64)  # (P,K,2)
    H, W = seg.shape
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < W) & (xy[..., 1] >= 0) & (xy[..., 1] < H)
    cls = seg[np.clip(xy[..., 1], 0, H - 1), np.clip(xy[..., 0], 0, W - 1)]
    m = inside & np.isin(cls, list(classes))  # (P,K)
    k = np.arange(len(t))
    c = np.argmin(np.where(m, np.abs(t), np.inf), axis=1)  # (P,) the in-class sample nearest to the point
    gap = ~m
    above = np.where(gap & (k[None] > c[:, None]), k[None], len(t)).min(1)  # first gap above the run
    below = np.where(gap & (k[None] < c[:, None]), k[None], -1).max(1)  # first gap below it
    top = t[np.clip(above - 1, 0, len(t) - 1)] + step / 2
    bottom = t[np.clip(below + 1, 0, len(t) - 1)] - step / 2
    out = np.stack([top, bottom], 1)
    out[~m.any(1)] = np.nan
    return out


SEG_EDGES: dict[int, tuple[tuple[int, ...], str]] = {
    **{i: ((5, 6), "top") for i in range(17, 27)},  # brows: the upper edge of the eyebrow classes
    **{i: ((3, 4), "top") for i in (37, 38, 43, 44)},  # upper lids: the upper edge of the eye classes
    **{i: ((3, 4), "bottom") for i in (40, 41, 46, 47)},  # lower lids: their lower edge
    **{i: ((2,), "bottom") for i in (31, 32, 33, 34, 35)},  # nose base: the lower edge of the nose class
    **{i: ((10,), "top") for i in (49, 50, 51, 52, 53)},  # upper lip, outer: upper edge of the upper lip
    **{i: ((11,), "bottom") for i in (55, 56, 57, 58, 59)},  # lower lip, outer: lower edge of the lower lip
    **{i: ((10,), "bottom") for i in (61, 62, 63)},  # upper lip, inner: its lower edge
    **{i: ((11,), "top") for i in (65, 66, 67)},  # lower lip, inner: its upper edge
}
"""Points whose definition names an edge of a segmentation class (FaceSynthetics' classes, which the renderer
shares): point -> (classes, which edge along the head's up axis)."""


def seg_depths(seg: np.ndarray, labels: np.ndarray, up: np.ndarray, reach: float = 30.0) -> np.ndarray:
    """(len(SEG_EDGES),) px: how far inside its class run each point of :data:`SEG_EDGES` lies from the named edge
    (positive: inside the class, e.g. below the brow's upper edge; negative: outside), along the head's up axis
    ``up`` (2,); NaN where the class is not found within ``reach`` px. ``labels``: (68,2) of the image ``seg``."""
    out = np.full(len(SEG_EDGES), np.nan)
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, (cls, _) in enumerate(SEG_EDGES.values()):
        groups.setdefault(cls, []).append(k)
    keys = list(SEG_EDGES)
    for cls, ks in groups.items():
        run = class_run(seg, np.asarray(labels, np.float64)[[keys[k] for k in ks]], up, cls, reach)
        top = np.array([SEG_EDGES[keys[k]][1] == "top" for k in ks])
        out[ks] = np.where(top, run[:, 0], -run[:, 1])
    return out


@dataclass
class SegView:
    """One of our renders, kept to measure any definition against its segmentation (:func:`view_depths`)."""

    seg: np.ndarray  # (H,W) uint8 classes
    V: np.ndarray  # (V,3) model-space vertices (identity + expression)
    P: np.ndarray  # (3,4) projection
    up: np.ndarray  # (2,) image direction of the head's up axis
    iod: float  # px, inter-ocular distance of the face seen frontally


def seg_views(model: FaceModel, count: int, seed: int = 7, size: int = 384, yaw_max: float = 40.0) -> list:
    """``count`` renders without occluders, glasses or beards (|yaw| < ``yaw_max``) as :class:`SegView`, and their
    images, 68 labels, ``ibug68_fs`` labels and segmentations (for figures)."""
    from .generator import SynthConfig, render_sample, sample_seed

    cfg = SynthConfig(size=size, p_hand=0.0, p_object=0.0, p_glasses=0.0, p_beard=0.0, yaw_max=yaw_max)
    views, shown = [], []
    for i in range(count):
        img, ldmks, seg, p = render_sample(sample_seed(seed, i), cfg, model)
        V = model.vertices(p["identity"], p["expression"]).astype(np.float64)
        X = V[model.landmarks68]
        corners = X[list(OUTER_EYE_CORNERS)]
        z = float((corners @ p["R"].T + p["t"])[:, 2].mean())
        iod = p["K"][0, 0] / z * float(np.linalg.norm(corners[0] - corners[1]))
        views.append(SegView(seg, V, p["P"], image_up(p["P"], X.mean(0)), iod))
        shown.append((img, ldmks[:68], p["ldmks_ibug68_fs"], seg))
    return views, shown


def view_depths(views: Sequence[SegView], definition: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(M,K) :func:`seg_depths` of the points of ``definition`` (ids (68,3), weights (68,3)) on our renders, as
    fractions of the inter-ocular distance."""
    out = []
    for v in views:
        h = surface_points(v.V, *definition) @ v.P[:, :3].T + v.P[:, 3]
        out.append(seg_depths(v.seg, h[:, :2] / h[:, 2:], v.up) / v.iod)
    return np.stack(out)


def seg_offsets(
    model: FaceModel, fs_depth: np.ndarray, our_depth: np.ndarray, min_diff: float, min_up: float = 0.7
) -> np.ndarray:
    """(68,2) cm: the vertical tangent offsets that move the points of :data:`SEG_EDGES` as deep into their class as
    FaceSynthetics puts them, from the per-sample depths (fractions of the inter-ocular distance) of
    FaceSynthetics ``fs_depth`` (N,K) and of our renders ``our_depth`` (M,K) (:func:`seg_depths`); medians,
    mirror pairs averaged; 0 where the difference is under ``min_diff`` or where the surface does not face the
    front (the image "up" of its tangent up axis below ``min_up``: lids, inner lips, whose image edge is a fold)."""
    keys = list(SEG_EDGES)
    diff = np.nanmedian(fs_depth, 0) - np.nanmedian(our_depth, 0)  # (K,) deeper in FaceSynthetics when > 0
    flip = _mirror_pairs(model)
    pos = {p: k for k, p in enumerate(keys)}
    diff = np.array([(diff[k] + diff[pos.get(int(flip[p]), k)]) / 2 for k, p in enumerate(keys)])
    ids, w = vertex_definition(model)
    V0 = model.neutral.astype(np.float64)
    up_y = tangent_frames(surface_normals(model, V0, ids, w))[:, 1, 1]  # (68,) frontal foreshortening of "up"
    iod3d = float(np.linalg.norm(V0[model.landmarks68[36]] - V0[model.landmarks68[45]]))
    out = np.zeros((68, 2))
    for k, p in enumerate(keys):
        if abs(diff[k]) >= min_diff and up_y[p] >= min_up:
            sign = -1.0 if SEG_EDGES[p][1] == "top" else 1.0  # deeper below an upper edge = further down
            out[p, 1] = sign * diff[k] * iod3d / float(up_y[p])
    return out


# ================================================================================== the corrected definition


def fit_offsets(model: FaceModel, r: Residuals, min_effect: float, min_cm: float) -> tuple[np.ndarray, np.ndarray]:
    """The pooled tangent offsets (68,2) cm of :func:`point_offsets` and a mask (68,) of the points whose offset is
    systematic: ``|mean| / spread`` of the normalised image residuals at least ``min_effect`` (either side of a
    mirror pair) and the offset at least ``min_cm`` long."""
    off = point_offsets(model, r)
    eff = point_stats(r)["effect"]
    flip = _mirror_pairs(model)
    eff = np.maximum(eff, eff[flip])
    keep = (eff >= min_effect) & (np.linalg.norm(off, axis=1) >= min_cm)
    return off, keep


def synthetic_views(model: FaceModel, count: int, seed: int = 11) -> list[tuple[np.ndarray, object]]:
    """``count`` random faces of the renderer (identity, expression, head pose and camera of :func:`render_sample`,
    rendered at 64 px for speed): their vertices (V,3) and cameras scaled to 512 px."""
    from .generator import SynthConfig, render_sample, sample_seed
    from .scene import Camera

    cfg = SynthConfig(size=64, supersample=1)
    out = []
    for i in range(count):
        _, _, _, p = render_sample(sample_seed(seed, i), cfg, model)
        out.append(
            (
                model.vertices(p["identity"], p["expression"]).astype(np.float64),
                Camera(p["K"], p["R"], p["t"], 64).scaled(8),
            )
        )
    return out


def transfer(model: FaceModel, definition: tuple[np.ndarray, np.ndarray], views: Sequence) -> Residuals:
    """Residuals of labels drawn with ``definition`` (ids (68,3), weights (68,3)) on the synthetic ``views``
    (:func:`synthetic_views`) against full fits with the current definition: what an audit sees of a known change."""
    ids, w = definition
    res = []
    for V, cam in views:
        lab = cam.project(surface_points(V, ids, w))
        f, _ = fit_weighted(model, lab, cam.size)
        res.append(measure(model, f, lab))
    return Residuals.stack(res)


def shifted_definition(model: FaceModel, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 68 points moved along the neutral surface by ``offsets`` (68,2) (right, up; cm, in each vertex's tangent
    frame), as surface points: ids (68,3), weights (68,3); a zero offset keeps the vertex itself."""
    ids, w = vertex_definition(model)
    V0 = model.neutral.astype(np.float64)
    Tf = tangent_frames(surface_normals(model, V0, ids, w))  # (68,3,2)
    for i in np.flatnonzero(np.abs(offsets).sum(1) > 0):
        v = int(model.landmarks68[i])
        ids[i], w[i] = surface_point_near(model, v, V0[v] + Tf[i] @ offsets[i])
    return ids, w


def mirrored_definition(model: FaceModel, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`shifted_definition` of symmetric ``offsets`` (68,2), made exactly left/right symmetric: the subject's
    right side and the midline are placed on the neutral surface, the left side is their mirror image (mirror
    vertices, same weights; :func:`lightmark.synth.landmark_sets._mirror_vertices`)."""
    from .landmark_sets import _mirror_vertices

    ids, w = vertex_definition(model)
    V0 = model.neutral.astype(np.float64)
    Tf = tangent_frames(surface_normals(model, V0, ids, w))
    mirror = _mirror_vertices(V0)
    flip = _mirror_pairs(model)
    x = V0[model.landmarks68, 0]
    for i in np.flatnonzero(np.abs(offsets).sum(1) > 0):
        if i not in MIDLINE and x[i] > 0:
            continue  # the left side: the mirror of its partner, below
        v = int(model.landmarks68[i])
        ids[i], w[i] = surface_point_near(model, v, V0[v] + Tf[i] @ offsets[i])
        j = int(flip[i])
        if j != i:
            ids[j], w[j] = mirror[ids[i]], w[i]
    return ids, w


def debias(
    model: FaceModel, offsets: np.ndarray, views: Sequence, max_gain: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Undo the part of fit-measured ``offsets`` (68,2) cm that the fit absorbs: the same pattern is drawn on
    synthetic ``views`` and audited (:func:`transfer`); each point's offset is divided by the fraction ``kappa`` of
    it the audit recovers (at most ``max_gain`` times). Returns the corrected offsets (68,2) and ``kappa`` (68,)
    (1 where the offset is 0)."""
    moved = np.abs(offsets).sum(1) > 0
    if not moved.any():
        return offsets.copy(), np.ones(68)
    rec = point_offsets(model, transfer(model, mirrored_definition(model, offsets), views))
    n2 = np.maximum((offsets**2).sum(1), 1e-12)
    kappa = np.where(moved, (rec * offsets).sum(1) / n2, 1.0)
    gain = 1.0 / np.clip(kappa, 1.0 / max_gain, 1.0)
    return offsets * gain[:, None], kappa


def definition_table(model: FaceModel, definition: tuple[np.ndarray, np.ndarray]) -> dict[int, tuple[tuple, tuple]]:
    """The points of ``definition`` that differ from the model's vertices: point -> (vertex ids, weights), rounded
    as :data:`lightmark.synth.landmark_sets.IBUG68_FS_SURFACE` stores them."""
    ids, w = definition
    base_ids, _ = vertex_definition(model)
    out = {}
    for i in range(68):
        if not (w[i, 0] == 1.0 and ids[i, 0] == base_ids[i, 0]):
            r = np.round(w[i], 4)
            r[np.argmax(r)] += 1.0 - r.sum()  # the rounded weights still sum to 1
            out[i] = (tuple(int(v) for v in ids[i]), tuple(round(float(a), 4) for a in r))
    return out


@dataclass
class Derivation:
    """How :func:`derive_definition` arrived at the corrected definition (all (68,...) arrays, cm)."""

    fit: np.ndarray  # (68,2) pooled full-fit offsets
    fit_used: np.ndarray  # (68,) bool: systematic, and measurable by a fit (kappa >= min_kappa)
    kappa: np.ndarray  # (68,) fraction of the fit offset an audit of synthetic faces recovers
    seg: np.ndarray  # (68,2) segmentation-evidence offsets (vertical)
    offsets: np.ndarray  # (68,2) the applied offsets: de-biased fit offsets + segmentation offsets
    definition: tuple[np.ndarray, np.ndarray]  # ids (68,3), weights (68,3) on the neutral mesh


def derive_definition(
    model: FaceModel,
    full: Residuals,
    fs_depth: np.ndarray,
    renders: Sequence[SegView],
    views: Sequence,
    min_effect: float = 1.0,
    min_cm: float = 0.1,
    min_diff: float = 0.02,
    min_kappa: float = 0.3,
    refine: int = 2,
) -> Derivation:
    """The FaceSynthetics-matched definition: systematic full-fit offsets (:func:`fit_offsets`) de-biased for what
    the fit absorbs (:func:`debias`, measured on synthetic ``views``; points whose offset the fit hides almost
    entirely, ``kappa < min_kappa``, are left out), plus the vertical offsets of the segmentation evidence
    (:func:`seg_offsets`: FaceSynthetics' depths ``fs_depth`` against our ``renders``), which replace the fit's
    vertical component where they apply and are refined ``refine`` times by measuring the new definition on the
    renders; placed on the neutral mesh symmetrically (:func:`mirrored_definition`)."""
    off, keep = fit_offsets(model, full, min_effect, min_cm)
    seg = seg_offsets(model, fs_depth, view_depths(renders, vertex_definition(model)), min_diff)
    on_seg = np.abs(seg[:, 1]) > 0
    fitc = off * keep[:, None]
    fitc[on_seg, 1] = 0.0
    deb, kappa = debias(model, fitc, views)
    used = (np.abs(fitc).sum(1) > 0) & (kappa >= min_kappa)
    if (used != (np.abs(fitc).sum(1) > 0)).any():  # again without the unmeasurable points (they leak into others)
        fitc[~used] = 0.0
        deb, kappa2 = debias(model, fitc, views)
        kappa = np.where(used, kappa2, kappa)
    fit_part = deb * used[:, None]
    for _ in range(refine):  # the conversion to the mesh is first-order: measure the result and correct it
        now = view_depths(renders, mirrored_definition(model, fit_part + seg))
        seg[on_seg] += seg_offsets(model, fs_depth, now, 0.0)[on_seg]
    offsets = fit_part + seg
    kappa = np.where(used, kappa, np.nan)
    return Derivation(off, used, kappa, seg, offsets, mirrored_definition(model, offsets))
