"""Fit the ICT Face Model (identity, expression, head pose, pinhole camera) to 68 image landmarks.

Used to unwrap the appearance of FaceSynthetics samples (:mod:`.textures`). The model is fitted through the
projections of its ``landmarks68`` vertices: robust (Huber-reweighted) non-linear least squares over a rotation
vector, a translation, the log focal length, the first ``n_identity`` identity coefficients and the 53 expression
weights (bounded to [0, 1]), with Gaussian priors on the coefficients and on the focal length, and the jaw
(points 0-16, whose definition differs most between face models) weighted down.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .face_model import FaceModel
from .scene import MODEL_TO_CAMERA, Camera


@dataclass
class FitConfig:
    """Weights and priors of :func:`fit_landmarks` (residuals in pixels of the landmark image)."""

    n_identity: int = 100  # identity modes fitted (the rest stay 0)
    identity_prior: float = 0.5  # px of residual per unit (std) of an identity coefficient
    expression_prior: float = 0.5  # px of residual per unit expression weight
    jaw_weight: float = 0.7  # weight of the jaw points 0-16 (the inner points weigh 1)
    focal_prior: float = 0.3  # std of log(focal / focal_guess)
    fov_guess: float = 30.0  # degrees across the image: the focal length the prior is centred on
    huber: float = 3.0  # px: points further off are reweighted (robust fit)
    rounds: int = 3  # reweighting rounds


@dataclass
class FaceFit:
    """A fitted face: ``model.vertices(identity, expression)`` seen by ``camera`` gives the image."""

    identity: np.ndarray  # (K,) float64 identity coefficients (all modes, unfitted ones 0)
    expression: np.ndarray  # (E,) float64 expression weights in [0, 1]
    camera: Camera  # model space -> image (pixel-centre convention)
    residuals: np.ndarray  # (68,) float64 distance of each projected landmark to its target, px

    @property
    def mean_residual(self) -> float:
        return float(self.residuals.mean())


def _rodrigues(rv: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(rv, np.float64).reshape(3, 1))[0]


class _Problem:
    """The landmark fit as a residual function of the parameter vector
    ``[rotation (3), translation (3), log focal (1), identity (n), expression (E)]``."""

    def __init__(self, model: FaceModel, target: np.ndarray, size: int, cfg: FitConfig):
        lm = model.landmarks68
        self.n = min(cfg.n_identity, model.num_identity)
        self.E = model.num_expression
        self.base = model.neutral[lm].astype(np.float64)  # (68,3)
        # (n+E, 204) landmark deltas of every mode
        self.modes = np.concatenate(
            [model.identity[: self.n, lm].reshape(self.n, -1), model.expression[:, lm].reshape(self.E, -1)]
        ).astype(np.float64)
        self.target = np.asarray(target, np.float64)  # (68,2)
        self.c = (size - 1) / 2.0
        self.f0 = size / 2.0 / np.tan(np.radians(cfg.fov_guess) / 2)
        self.cfg = cfg
        self.w = np.ones(68)
        self.w[:17] = cfg.jaw_weight
        self.robust = np.ones(68)
        prior = np.concatenate([np.full(self.n, cfg.identity_prior), np.full(self.E, cfg.expression_prior)])
        self.prior = prior

    def points(self, x: np.ndarray) -> np.ndarray:
        """(68,3) model-space landmarks of the coefficients in ``x``."""
        return self.base + (x[7:] @ self.modes).reshape(68, 3)

    def project(self, x: np.ndarray) -> np.ndarray:
        X = self.points(x) @ _rodrigues(x[:3]).T + x[3:6]
        f = self.f0 * np.exp(x[6])
        return f * X[:, :2] / X[:, 2:3] + self.c

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """(136 + 1 + n + E, 7 + n + E) derivative of :meth:`residuals`."""
        R, dR = cv2.Rodrigues(np.asarray(x[:3], np.float64).reshape(3, 1))
        P = self.points(x)
        X = P @ R.T + x[3:6]
        f = self.f0 * np.exp(x[6])
        iz = 1.0 / X[:, 2]
        a = X[:, :2] * iz[:, None]  # (68,2) normalised image coordinates
        # d(image)/d(camera point): (68,2,3)
        Jx = np.zeros((68, 2, 3))
        Jx[:, 0, 0] = Jx[:, 1, 1] = f * iz
        Jx[:, :, 2] = -f * a * iz[:, None]
        J = np.zeros((68, 2, len(x)))
        dRk = dR.reshape(3, 3, 3)  # d R / d rv_k, row-major 3x3 per k
        for k in range(3):
            J[:, :, k] = np.einsum("nij,nj->ni", Jx, P @ dRk[k].T)
        J[:, :, 3:6] = Jx
        J[:, :, 6] = f * a
        modes = self.modes.reshape(-1, 68, 3) @ R.T  # (M,68,3) in camera space
        J[:, :, 7:] = np.einsum("nij,mnj->nim", Jx, modes)
        J *= (self.w * self.robust)[:, None, None]
        prior = np.zeros((1 + len(self.prior), len(x)))
        prior[0, 6] = 3.0 / self.cfg.focal_prior
        prior[np.arange(1, len(self.prior) + 1), np.arange(7, len(x))] = self.prior
        return np.concatenate([J.reshape(136, -1), prior])

    def residuals(self, x: np.ndarray) -> np.ndarray:
        d = (self.project(x) - self.target) * (self.w * self.robust)[:, None]
        return np.concatenate([d.ravel(), [x[6] / self.cfg.focal_prior * 3.0], self.prior * x[7:]])

    def camera(self, x: np.ndarray, size: int) -> Camera:
        f = self.f0 * np.exp(x[6])
        K = np.array([[f, 0.0, self.c], [0.0, f, self.c], [0.0, 0.0, 1.0]])
        return Camera(K=K, R=_rodrigues(x[:3]), t=np.asarray(x[3:6], np.float64).copy(), size=size)


def _initial_pose(p: _Problem) -> np.ndarray:
    """Rotation vector and translation of the neutral landmarks by PnP (focal length ``f0``)."""
    K = np.array([[p.f0, 0, p.c], [0, p.f0, p.c], [0, 0, 1.0]])
    rv0 = cv2.Rodrigues(MODEL_TO_CAMERA)[0]
    t0 = np.array([0.0, 0.0, p.f0 * 15.0 / max(np.ptp(p.target[:, 0]), 1.0)])
    ok, rv, tv = cv2.solvePnP(p.base, p.target, K, None, rv0, t0, True, cv2.SOLVEPNP_ITERATIVE)
    if not ok or tv[2, 0] <= 0:
        rv, tv = rv0, t0[:, None]
    return np.concatenate([rv.ravel(), tv.ravel()])


def fit_landmarks(model: FaceModel, landmarks: np.ndarray, size: int, cfg: FitConfig | None = None) -> FaceFit:
    """Fit identity, expression, pose and focal length to ``landmarks`` (68,2) (iBUG order, pixel-centre
    convention) of a ``size`` x ``size`` image."""

    cfg = cfg or FitConfig()
    p = _Problem(model, landmarks, size, cfg)
    x = np.zeros(7 + p.n + p.E)
    x[:6] = _initial_pose(p)
    lo = np.concatenate([np.full(7, -np.inf), np.full(p.n, -4.0), np.zeros(p.E)])
    hi = np.concatenate([np.full(7, np.inf), np.full(p.n, 4.0), np.ones(p.E)])
    x[7 + p.n :] = 0.01
    return solve(p, x, lo, hi, cfg, model, size)[0]


def solve(p, x, lo, hi, cfg, model: FaceModel, size) -> tuple[FaceFit, np.ndarray]:
    """Robust (Huber-reweighted) bounded least squares of problem ``p`` from ``x``, ``cfg.rounds`` rounds: the fit
    and its parameter vector."""
    from scipy.optimize import least_squares

    for _ in range(max(1, cfg.rounds)):
        x = least_squares(p.residuals, x, jac=p.jacobian, bounds=(lo, hi), x_scale="jac", method="trf", max_nfev=200).x
        r = np.linalg.norm(p.project(x) - p.target, axis=1)
        p.robust = np.sqrt(np.minimum(1.0, cfg.huber / np.maximum(r, 1e-9)))
    identity = np.zeros(model.num_identity)
    identity[: p.n] = x[7 : 7 + p.n]
    return FaceFit(identity, x[7 + p.n :].copy(), p.camera(x, size), r), x
