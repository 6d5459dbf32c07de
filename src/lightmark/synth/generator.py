"""Synthetic labelled faces: one sample (:func:`render_sample`) and whole datasets (:func:`render_dataset`)
in the FaceSynthetics layout (``NNNNNN.png``, ``NNNNNN_ldmks.txt``, ``NNNNNN_seg.png``), with the other label
sets of :mod:`.landmark_sets` beside (``NNNNNN_ldmks_wflw98.txt``, ``NNNNNN_ldmks_ibug68_2d.txt``)."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.formats import format_ldmks, write_ldmks
from ..errors import DatasetError, OutputError
from ..utils import atomic_save_bytes, atomic_write, ensure_dir, opencv_threads
from . import labels as L
from .appearance import Appearance, lin, linear_to_srgb, sample_appearance
from .assets import SIDES, ModelAssets, fit_sphere, get_assets
from .compose import BackgroundSource, add_occluders, degrade, procedural_background
from .expressions import sample_expression
from .face_model import SCLERA, FaceModel, default_face_model_path, load_face_model
from .landmark_sets import ibug68_2d_labels, ibug68_fs_labels, wflw98_2d_labels, wflw98_labels
from .props import Mesh, concat, glasses, hair_curtain, torso
from .raster import label_pixels, rasterize, shade, shadow_map, srgb_lut, vertex_normals
from .scene import MODEL_TO_CAMERA, Camera, direction_from_angles, frame_camera, kelvin_to_rgb, rotation_matrix
from .textures import TextureSource, dress, prepare_textures
from .unwrap import LUMA

NUM_POINTS = 70  # 68 landmarks + 2 pupils (subject's right, then left)
# the other label sets: file suffix (``NNNNNN_ldmks_<scheme>.txt``) -> key of render_sample's params
EXTRA_LABELS: dict[str, str] = {
    "wflw98": "ldmks_wflw98",
    "ibug68_2d": "ldmks_ibug68_2d",
    "wflw98_2d": "ldmks_wflw98_2d",
}
# label sets written only when asked for (``SynthConfig.fs_labels``), and the registered scheme whose file layout
# each is written in (their own scheme may not be registered: lightmark.schemes)
OPTIONAL_LABELS: dict[str, str] = {"ibug68_fs": "ldmks_ibug68_fs"}
LABEL_FORMAT: dict[str, str] = {"ibug68_fs": "ibug68"}
_SRGB_LUT = srgb_lut()
META_NAME = "synth_config.json"


@dataclass
class SynthConfig:
    """All randomisation ranges of the synthetic engine (angles in degrees, lengths in cm)."""

    size: int = 256
    supersample: int = 2  # render at size*supersample and box-filter down (anti-aliasing)
    tex_size: int = 0  # UV texture atlas tile size; 0 = 256 up to size 256, else 512
    # shape
    identity_scale: float = 1.0  # std of the identity PCA coefficients
    identity_clip: float = 3.0
    expression_scale: float = 1.0
    p_asymmetric: float = 0.35
    p_wink: float = 0.04
    gaze_yaw_max: float = 30.0
    gaze_pitch_range: tuple[float, float] = (-25.0, 15.0)
    # head pose and camera
    yaw_max: float = 90.0  # |yaw| ~ U(0, yaw_max): large yaws as frequent as small ones
    pitch_sigma: float = 15.0
    pitch_max: float = 40.0
    roll_sigma: float = 10.0
    roll_max: float = 30.0
    body_follow: tuple[float, float] = (0.3, 0.8)  # fraction of the head yaw the shoulders follow
    distance_range: tuple[float, float] = (35.0, 250.0)  # camera to head, log-uniform
    box_fraction_range: tuple[float, float] = (0.30, 0.45)  # landmark box side / image side
    centre_jitter: float = 0.06  # box centre offset, fraction of the image side (std, clipped at 2x)
    # appearance
    skin_tone_range: tuple[float, float] = (0.0, 1.0)  # 0 = lightest, 1 = darkest
    hair_style_p: tuple[float, ...] = (0.06, 0.16, 0.3, 0.18, 0.3)  # bald, buzz, short, volume, long
    p_beard: float = 0.3
    p_freckles: float = 0.2
    p_lipstick: float = 0.12
    p_makeup: float = 0.15
    p_glasses: float = 0.2
    p_sunglasses: float = 0.2  # fraction of the glasses with dark lenses
    p_torso: float = 1.0
    p_hand: float = 0.1
    p_object: float = 0.12
    texture_share: float = 0.5  # with textures= (FaceSynthetics): fraction of the faces wearing one of them
    fs_labels: bool = False  # also write NNNNNN_ldmks_ibug68_fs.txt (the 68 points in FaceSynthetics' definition)
    # lighting
    ambient_range: tuple[float, float] = (0.12, 0.55)
    key_light_range: tuple[float, float] = (0.5, 1.3)
    p_fill_light: float = 0.5
    p_shadows: float = 0.85  # key light casts shadows (shadow map)
    shadow_map_size: int = 384
    kelvin_range: tuple[float, float] = (2700.0, 8000.0)
    exposure_range: tuple[float, float] = (0.75, 1.3)
    auto_exposure: float = 0.25  # exposure *= (0.25 / face albedo luminance) ** this (0 = off)
    # camera effects
    p_colour_shift: float = 0.6
    p_grayscale: float = 0.04
    p_blur: float = 0.35
    p_downsample: float = 0.12
    p_noise: float = 0.6
    p_jpeg: float = 0.5
    png_compression: int = 1
    extra: dict = field(default_factory=dict)  # "pose": (yaw, pitch, roll) fixes the head pose (figures, tests)

    def texture_size(self) -> int:
        return self.tex_size or (256 if self.size <= 256 else 512)


_DEFAULT: dict = {}


def _default_model() -> FaceModel:
    """The default face model, loaded once per process (and per resolved path)."""
    path = default_face_model_path()
    key = str(path)
    if key not in _DEFAULT:
        _DEFAULT.clear()
        _DEFAULT[key] = load_face_model(path)
    return _DEFAULT[key]


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(int(seed)))


def _side_stream(rng: np.random.Generator) -> np.random.Generator:
    """A generator independent of ``rng``'s stream, determined by its current state, that leaves ``rng`` as is."""
    bg = rng.bit_generator
    if hasattr(bg, "jumped"):
        return np.random.Generator(bg.jumped())
    import copy

    return np.random.default_rng([*copy.deepcopy(rng).integers(0, 2**32, 4).tolist(), 0x7E57])


def sample_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed of sample ``index`` of a dataset rendered with ``seed`` (independent of the worker count)."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)])


def _vertex_normals(verts: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vertex normals (area-weighted) and unnormalised face normals."""
    verts = np.ascontiguousarray(verts, np.float64)
    vn = np.empty_like(verts)
    fn = vertex_normals(verts, tris, vn)
    return vn, fn


def _rotvec(R: np.ndarray) -> np.ndarray:
    """Axis * angle (radians) of a rotation matrix."""
    c = np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)
    ang = math.acos(c)
    if ang < 1e-9:
        return np.zeros(3)
    v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    n = np.linalg.norm(v)
    if n < 1e-9:  # angle ~ pi
        w, vec = np.linalg.eigh((R + R.T) / 2)
        return vec[:, -1] * ang
    return v / n * ang


def _rodrigues(rv: np.ndarray) -> np.ndarray:
    """Rotation matrices (N,3,3) of rotation vectors (N,3)."""
    ang = np.linalg.norm(rv, axis=1)
    k = rv / np.maximum(ang, 1e-12)[:, None]
    K = np.zeros((len(rv), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K[:, 1, 0], K[:, 2, 0], K[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    s, c = np.sin(ang)[:, None, None], np.cos(ang)[:, None, None]
    return np.eye(3)[None] + s * K + (1 - c) * (K @ K)


def _skin_neck(V: np.ndarray, weight: np.ndarray, cam, R_body: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """Camera-space vertices: weight 1 follows the head (``cam``), 0 the body; in between the head's rotation
    relative to the body is applied by the fraction ``weight`` of its angle (no volume loss when twisting)."""
    X = V @ cam.R.T + cam.t
    mid = np.nonzero(weight < 1.0)[0]
    if len(mid):
        R_head = MODEL_TO_CAMERA.T @ cam.R
        rel = _rotvec(R_body.T @ R_head)
        Rw = _rodrigues(weight[mid, None] * rel[None, :])
        c_p = cam.R @ pivot + cam.t
        local = np.einsum("nij,nj->ni", Rw, V[mid] - pivot)
        X[mid] = local @ (MODEL_TO_CAMERA @ R_body).T + c_p
    return X


def _sample_pose(rng: np.random.Generator, cfg: SynthConfig) -> tuple[float, float, float]:
    yaw = rng.uniform(0.0, cfg.yaw_max) * (1 if rng.random() < 0.5 else -1)
    pitch = float(np.clip(rng.normal(0, cfg.pitch_sigma), -cfg.pitch_max, cfg.pitch_max))
    roll = float(np.clip(rng.normal(0, cfg.roll_sigma), -cfg.roll_max, cfg.roll_max))
    if cfg.extra.get("pose") is not None:  # drawn anyway: the rest of the sample stays the same
        return tuple(float(a) for a in cfg.extra["pose"])
    return float(yaw), pitch, roll


def _lights(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    amb_k = rng.uniform(*cfg.kelvin_range)
    ambient = kelvin_to_rgb(amb_k) * rng.uniform(*cfg.ambient_range)
    dirs, cols = [], []
    key_az = rng.uniform(-100, 100)
    key_el = rng.uniform(-15, 70)
    dirs.append(direction_from_angles(key_az, key_el))
    cols.append(kelvin_to_rgb(rng.uniform(*cfg.kelvin_range)) * rng.uniform(*cfg.key_light_range))
    if rng.random() < cfg.p_fill_light:
        dirs.append(direction_from_angles(-key_az * rng.uniform(0.3, 1.2) + rng.normal(0, 20), rng.uniform(-20, 50)))
        cols.append(kelvin_to_rgb(rng.uniform(*cfg.kelvin_range)) * rng.uniform(0.1, 0.6))
    rec = {"key_azimuth": float(key_az), "key_elevation": float(key_el), "lights": len(dirs)}
    return (
        ambient.astype(np.float32),
        np.asarray(dirs, np.float32),
        np.asarray(cols, np.float32),
        rec,
    )


def _gaze(rng: np.random.Generator, V: np.ndarray, assets, cfg: SynthConfig, gaze: tuple[float, float]) -> np.ndarray:
    """Rotate the eyeballs (in place) to look at a point in direction ``gaze`` (yaw, pitch); returns the
    pupils (2,3) in model space (subject's right eye first)."""
    centres = {}
    for side in SIDES:
        lo, hi = SCLERA[side]
        centres[side] = fit_sphere(V[lo:hi])[0]
    mid = (centres["right"] + centres["left"]) / 2
    gy, gp = np.radians(gaze)
    dist = rng.uniform(40.0, 300.0)
    target = mid + dist * np.array([np.sin(gy) * np.cos(gp), np.sin(gp), np.cos(gy) * np.cos(gp)])
    pupils = []
    for side in SIDES:
        c = centres[side]
        d = target - c
        ye = math.degrees(math.atan2(d[0], d[2]))
        pe = math.degrees(math.atan2(d[1], math.hypot(d[0], d[2])))
        R = rotation_matrix(ye, pe, 0.0)
        lo, hi = assets.eye_ranges[side]
        V[lo:hi] = (V[lo:hi] - c) @ R.T + c
        pupils.append(V[assets.pupil_ring[side]].mean(0))
    return np.asarray(pupils)


@dataclass
class _Shape:
    """The sample's face in model space, before the hair volume is added."""

    V: np.ndarray  # (V,3) float64 vertices, eyeballs turned towards the gaze target
    landmarks: np.ndarray  # (68,3) float64 landmark vertices (before the eyeballs turn: they are not on them)
    pupils: np.ndarray  # (2,3) float64 pupil centres, subject's right eye first


@dataclass
class _Rig:
    """The head camera and the body's placement (the neck blends between them)."""

    cam: Camera  # model space -> image of the head (includes the head pose)
    R_body: np.ndarray  # (3,3) body rotation in model space
    body_R: np.ndarray  # (3,3) model -> camera rotation of the body props (torso)
    body_t: np.ndarray  # (3,) model -> camera translation of the body props


@dataclass
class _Geometry:
    """Camera-space triangles of the face, the head props then the body props: what the rasteriser, the shader
    and the labeller read (N vertices, T triangles, U uv points)."""

    X: np.ndarray  # (N,3) float64 camera-space vertices
    normals: np.ndarray  # (N,3) float32 unit vertex normals
    tris: np.ndarray  # (T,3) int32 vertex ids
    uv: np.ndarray  # (U,2) float32 atlas coordinates
    uv_tris: np.ndarray  # (T,3) int32 uv ids
    mat: np.ndarray  # (T,) uint8 material (rows of the shader's material table)
    cls: np.ndarray  # (T,) uint8 fixed label class (255: from the label texture)
    drawn: np.ndarray  # (T,) bool: front-facing face triangles and every prop triangle
    colour: np.ndarray  # (N,3) float32 linear albedo
    attr: np.ndarray  # (N,k) float32 shader attributes (see raster.shade ``vattr``)


@dataclass
class _Lighting:
    """Lights in camera space (linear RGB) and the exposure."""

    ambient: np.ndarray  # (3,) float32
    dirs: np.ndarray  # (L,3) float32 unit directions towards the lights, key light first
    colours: np.ndarray  # (L,3) float32
    exposure: float
    record: dict  # reported as params["lighting"]


def render_sample(
    seed=0,
    cfg: SynthConfig | None = None,
    model: FaceModel | None = None,
    backgrounds: BackgroundSource | None = None,
    textures: TextureSource | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Render one random labelled face.

    Args:
        seed: an int, a ``numpy.random.SeedSequence`` or a ``Generator`` (everything random comes from it).
        cfg: randomisation ranges (defaults: :class:`SynthConfig`).
        model: the face model (default: :func:`load_face_model` with its default path).
        backgrounds: optional background images.
        textures: optional skin textures (:mod:`.textures`): a fraction ``cfg.texture_share`` of the faces wears
            one; their choice comes from a stream of their own, so the rest of the sample (geometry, landmarks,
            hair, lights...) is the same as without textures.

    Returns:
        image (size,size,3) uint8 RGB; landmarks (70,2) float32 (68 iBUG points then the pupils of the subject's
        right and left eyes, pixel-centre convention); seg (size,size) uint8 classes (:mod:`.labels`);
        params: ``P`` (3,4) projection of model-space points, ``identity`` and ``expression`` coefficients
        (``model.vertices(identity, expression)[model.landmarks68]`` projected by ``P`` gives the 68 points),
        ``pupils_model`` (2,3), pose angles and the other random choices; the other label sets
        (:mod:`.landmark_sets`, same pixel convention): ``ldmks_wflw98`` (98,2) float32 (WFLW, 3D points
        projected), ``ldmks_ibug68_2d`` (68,2) float32 (the 68 points with the jaw on the visible contour) and
        ``ldmks_wflw98_2d`` (98,2) float32 (WFLW with the jaw on the visible contour), ``ldmks_ibug68_fs`` (68,2)
        float32 (the 68 points in FaceSynthetics' definition, :func:`.landmark_sets.ibug68_fs_labels`).
    """
    # every step draws from ``rng`` in this order: reordering the steps changes every sample
    cfg = cfg or SynthConfig()
    model = model if model is not None else _default_model()
    rng = _rng(seed)
    tex_rng = _side_stream(rng) if textures is not None else None
    size, ss = int(cfg.size), max(1, int(cfg.supersample))
    assets = get_assets(model, cfg.texture_size())

    shape, params = _sample_shape(rng, cfg, model, assets)
    app = sample_appearance(rng, assets, cfg, shape.V)
    if textures is not None:
        dress(tex_rng, cfg.texture_share, assets, app, textures)
    params.update(app.params)
    V, head_props, body_props, prop_params = _dress(rng, cfg, assets, shape.V, app)
    params.update(prop_params)
    rig, pose_params = _place_camera(rng, cfg, shape.landmarks, assets.pivot, size)
    params.update(pose_params)
    geo = _assemble(V, assets, rig, app, head_props, body_props)
    light = _light(rng, cfg, app, model.landmarks68)
    params["lighting"] = light.record

    tid, bary = _rasterize(geo, rig.cam.scaled(ss), size * ss)
    rgb, cover = _downsample(_shade(rng, cfg, geo, app, light, tid, bary), tid, size)
    seg = _label_map(geo, app, rig.cam, size, (tid, bary) if ss == 1 else None)

    ldmks = np.concatenate([rig.cam.project(shape.landmarks), rig.cam.project(shape.pupils)]).astype(np.float32)
    params["ldmks_wflw98"] = wflw98_labels(ldmks, model, shape.V, rig.cam.P, params.get("brow_shape"))
    params["ldmks_ibug68_2d"] = ibug68_2d_labels(ldmks, model, shape.V, rig.cam.P)
    params["ldmks_wflw98_2d"] = wflw98_2d_labels(
        params["ldmks_wflw98"], params["ldmks_ibug68_2d"], model, shape.V, rig.cam.P
    )
    params["ldmks_ibug68_fs"] = ibug68_fs_labels(ldmks, shape.V, rig.cam.P)
    skin_srgb = linear_to_srgb(app.vcol[model.landmarks68[30]] * light.exposure * 0.8).astype(np.float32)
    image, occluders, degradations = _composite(rng, cfg, rgb, cover, seg, ldmks, skin_srgb, backgrounds)
    params["occluders"] = occluders
    params["degradations"] = degradations
    return image, ldmks, seg, params


def _sample_shape(
    rng: np.random.Generator, cfg: SynthConfig, model: FaceModel, assets: ModelAssets
) -> tuple[_Shape, dict]:
    """Identity, expression and gaze: the deformed face and its params (coefficients, archetypes, gaze)."""
    idc = np.clip(rng.standard_normal(model.num_identity) * cfg.identity_scale, -cfg.identity_clip, cfg.identity_clip)
    expr, arche = sample_expression(rng, model.expression_names, cfg)
    gaze = (float(rng.uniform(-cfg.gaze_yaw_max, cfg.gaze_yaw_max)), float(rng.uniform(*cfg.gaze_pitch_range)))
    _lids_follow_gaze(expr, model.expression_names, gaze)
    params = dict(identity=idc.astype(np.float32), expression=expr.astype(np.float32), archetypes=arche, gaze=gaze)
    V = model.vertices(idc, expr).astype(np.float64)
    landmarks = V[model.landmarks68].copy()
    pupils = _gaze(rng, V, assets, cfg, gaze)
    params["pupils_model"] = pupils
    return _Shape(V, landmarks, pupils), params


def _lids_follow_gaze(expr: np.ndarray, names: tuple[str, ...], gaze: tuple[float, float]) -> None:
    """Set the eye-look blend shapes (in place in ``expr``) from the gaze pitch: lids follow the eyes."""
    for side in ("_L", "_R"):
        if "eyeLookDown" + side in names:
            expr[names.index("eyeLookDown" + side)] = np.clip(-gaze[1] / 25.0, 0, 1) * 0.8
        if "eyeLookUp" + side in names:
            expr[names.index("eyeLookUp" + side)] = np.clip(gaze[1] / 25.0, 0, 1) * 0.6


def _dress(
    rng: np.random.Generator, cfg: SynthConfig, assets: ModelAssets, V: np.ndarray, app: Appearance
) -> tuple[np.ndarray, Mesh, Mesh, dict]:
    """Add the hair volume to ``V`` (V,3) and draw the props: returns the new vertices, the head props (long
    hair, glasses) and the body props (torso) in model space, and the params (``glasses``)."""
    if app.hair_thickness.max() > 0:
        vn, _ = _vertex_normals(V, assets.tris)
        V = V + vn * app.hair_thickness[:, None]
    head: list[Mesh] = []
    body: list[Mesh] = []
    params: dict = {}
    if app.long_hair is not None:
        head.append(hair_curtain(rng, V, assets, app.hair_rgb, app.long_hair))
    if rng.random() < cfg.p_glasses:
        sun = rng.random() < cfg.p_sunglasses
        head.append(glasses(rng, V, assets, _frame_colour(rng), sun))
        params["glasses"] = "sun" if sun else "clear"
    if app.cloth_rgb is not None:
        body.append(torso(rng, V, assets, app.cloth_rgb))
    return V, concat(head), concat(body), params


def _frame_colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) linear colour of a glasses frame: black, brown, gold, silver or a random colour."""
    fc = [(20, 20, 22), (60, 40, 30), (200, 170, 90), (170, 170, 175), tuple(rng.uniform(0, 255, 3))]
    return lin(np.asarray(fc[rng.choice(5, p=[0.35, 0.2, 0.15, 0.15, 0.15])]))


def _place_camera(
    rng: np.random.Generator, cfg: SynthConfig, landmarks: np.ndarray, pivot: np.ndarray, size: int
) -> tuple[_Rig, dict]:
    """Head pose, body pose, distance and framing of the landmarks (68,3): the rig and the pose params."""
    yaw, pitch, roll = _sample_pose(rng, cfg)
    R_head = rotation_matrix(yaw, pitch, roll)
    follow = rng.uniform(*cfg.body_follow)
    R_body = rotation_matrix(yaw * follow + rng.normal(0, 5), rng.normal(0, 5), roll * rng.uniform(0, 0.5))
    d0, d1 = cfg.distance_range
    distance = float(math.exp(rng.uniform(math.log(d0), math.log(d1))))
    box = float(rng.uniform(*cfg.box_fraction_range))
    off = np.clip(rng.normal(0, cfg.centre_jitter, 2), -2 * cfg.centre_jitter, 2 * cfg.centre_jitter)
    cam = frame_camera(landmarks, R_head, pivot, size, distance, box, (float(off[0]), float(off[1])))
    body_R = MODEL_TO_CAMERA @ R_body
    body_t = cam.t + (cam.R - body_R) @ pivot
    params = dict(
        yaw=yaw, pitch=pitch, roll=roll, distance=distance, box_fraction=box, P=cam.P, K=cam.K, R=cam.R, t=cam.t
    )
    params["focal"] = float(cam.K[0, 0])
    return _Rig(cam, R_body, body_R, body_t), params


def _assemble(V: np.ndarray, assets: ModelAssets, rig: _Rig, app: Appearance, head: Mesh, body: Mesh) -> _Geometry:
    """Camera-space geometry of the face (neck skinned between head and body) and of the props."""
    cam = rig.cam
    X = _skin_neck(V, assets.head_weight, cam, rig.R_body, assets.pivot)
    vn_cam, fn = _vertex_normals(X, assets.tris)
    front = np.einsum("ij,ij->i", fn, X[assets.tris[:, 0]]) < 0
    nv, nu, ne = len(X), len(assets.uv), len(head.verts)
    all_X = np.concatenate([X, head.verts @ cam.R.T + cam.t, body.verts @ rig.body_R.T + rig.body_t])
    all_N = np.concatenate([vn_cam, head.normals @ cam.R.T, body.normals @ rig.body_R.T])
    return _Geometry(
        X=np.ascontiguousarray(all_X),
        normals=np.ascontiguousarray(all_N.astype(np.float32)),
        tris=np.concatenate([assets.tris, head.tris + nv, body.tris + nv + ne]).astype(np.int32),
        uv=np.concatenate([assets.uv, head.uv, body.uv]).astype(np.float32),
        uv_tris=np.concatenate([assets.uv_tris, head.tris + nu, body.tris + nu + ne]).astype(np.int32),
        mat=np.concatenate([assets.tri_mat, head.mat, body.mat]),
        cls=np.concatenate([assets.tri_class, head.cls, body.cls]),
        drawn=np.concatenate([front, np.ones(len(head.tris) + len(body.tris), bool)]),
        colour=np.concatenate([app.vcol, head.colour, body.colour]).astype(np.float32),
        attr=np.concatenate([app.vattr, head.attr, body.attr]).astype(np.float32),
    )


def _light(rng: np.random.Generator, cfg: SynthConfig, app: Appearance, lm: np.ndarray) -> _Lighting:
    """Random lights, and an exposure partly adapted to the face (cameras expose dark and light faces
    differently); ``lm`` (68,) are the landmark vertex ids."""
    ambient, dirs, colours, record = _lights(rng, cfg)
    skin_lum = float(app.vcol[lm[[1, 15, 29]]].mean(0) @ LUMA)
    auto = float(np.clip((0.25 / max(skin_lum, 1e-3)) ** cfg.auto_exposure, 0.7, 1.8))
    exposure = float(rng.uniform(*cfg.exposure_range)) * auto
    return _Lighting(ambient, dirs, colours, exposure, record)


def _rasterize(geo: _Geometry, cam: Camera, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer the drawn triangles into a size x size image: triangle ids (size,size) int32 (-1: none) and
    barycentric coordinates (size,size,2) float32."""
    xs = cam.K[0, 0] * geo.X[:, 0] / geo.X[:, 2] + cam.K[0, 2]
    ys = cam.K[1, 1] * geo.X[:, 1] / geo.X[:, 2] + cam.K[1, 2]
    zs = geo.X[:, 2].copy()
    tid = np.full((size, size), -1, np.int32)
    bary = np.zeros((size, size, 2), np.float32)
    zbuf = np.full((size, size), np.inf, np.float32)
    rasterize(xs, ys, zs, geo.tris, geo.drawn, tid, bary, zbuf)
    return tid, bary


def _shade(
    rng: np.random.Generator,
    cfg: SynthConfig,
    geo: _Geometry,
    app: Appearance,
    light: _Lighting,
    tid: np.ndarray,
    bary: np.ndarray,
) -> np.ndarray:
    """(H,H,3) float32 linear colour of the rasterised pixels (``tid``/``bary`` at H x H), with or without the
    key light's shadows."""
    if rng.random() < cfg.p_shadows:
        every = np.ones(len(geo.tris), bool)
        smap, stf = shadow_map(geo.X, geo.tris, every, light.dirs[0], cfg.shadow_map_size, 0.25, rng.uniform(0.6, 1.0))
    else:
        smap, stf = np.zeros((1, 1), np.float32), np.zeros(15, np.float32)
    H = tid.shape[0]
    rgb = np.zeros((H, H, 3), np.float32)
    shade(
        tid, bary, geo.tris, geo.uv_tris, geo.uv, geo.mat, geo.X.astype(np.float32), geo.normals, geo.colour,
        geo.attr, app.tex, app.mat_params, app.eye_params, light.ambient, light.dirs, light.colours, light.exposure,
        _SRGB_LUT, smap, stf, rgb,
    )  # fmt: skip
    return rgb


def _downsample(rgb: np.ndarray, tid: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-filter the supersampled colour (H,H,3) and coverage (from ``tid`` (H,H)) down to size x size."""
    cover = (tid >= 0).astype(np.float32)
    if tid.shape[0] != size:
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(cover, (size, size), interpolation=cv2.INTER_AREA)
    return rgb, cover


def _label_map(
    geo: _Geometry, app: Appearance, cam: Camera, size: int, raster: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """(size,size) uint8 classes at the exact pixel centres; ``raster``: the (tid, bary) of a pass at ``size``
    already made, else one more (cheap) raster pass at the output size."""
    tid, bary = raster if raster is not None else _rasterize(geo, cam, size)
    seg = np.zeros((size, size), np.uint8)
    label_pixels(
        tid, bary, geo.tris, geo.uv_tris, geo.uv, geo.cls, app.label_tex, app.tex, geo.attr,
        np.array([L.HAIR, L.BEARD], np.uint8), L.CLOTHING, seg,
    )  # fmt: skip
    return seg


def _composite(
    rng: np.random.Generator,
    cfg: SynthConfig,
    rgb: np.ndarray,
    cover: np.ndarray,
    seg: np.ndarray,
    ldmks: np.ndarray,
    skin_srgb: np.ndarray,
    backgrounds: BackgroundSource | None,
) -> tuple[np.ndarray, list[str], dict]:
    """Background behind the face, occluders (painted into ``seg`` too) and camera degradations: the final
    image (size,size,3) uint8 RGB, the occluder and the degradation records."""
    size = len(seg)
    bg = backgrounds.sample(rng, size) if backgrounds is not None else procedural_background(rng, size)
    img = rgb + (1.0 - cover[:, :, None]) * bg
    occluders = add_occluders(rng, img, seg, ldmks, skin_srgb, cfg, L.OCCLUDER)
    image, degradations = degrade(rng, img, cfg)
    return image, occluders, degradations


# ================================================================================================ datasets


@dataclass(frozen=True)
class _Job:
    """What every worker needs to render and write the samples of a dataset (pickled once per worker)."""

    model: FaceModel
    cfg: SynthConfig
    backgrounds: str | None  # folder of background images (None: procedural backgrounds)
    textures: tuple[str, ...] | None  # cached skin textures (None: procedural skin)
    out_dir: Path
    seed: int
    width: int  # digits of the file names


_W: dict = {}  # the worker's job and background source (set by _init_worker)


def _init_worker(job: _Job) -> None:
    """A pool worker's set-up: one OpenCV thread (the pool runs one worker per core) and the job in :data:`_W`."""
    cv2.setNumThreads(1)
    _load_job(job)


def _load_job(job: _Job) -> None:
    _W.update(job=job, backgrounds=BackgroundSource(job.backgrounds) if job.backgrounds else None)
    _W["textures"] = TextureSource(list(job.textures)) if job.textures else None


def _names(out_dir: Path, index: int, width: int) -> tuple[Path, Path, Path]:
    stem = f"{index:0{width}d}"
    return out_dir / f"{stem}.png", out_dir / f"{stem}_ldmks.txt", out_dir / f"{stem}_seg.png"


def _label_sets(cfg: SynthConfig) -> dict[str, str]:
    """The other label sets a dataset of ``cfg`` writes: scheme -> key of render_sample's params."""
    return {**EXTRA_LABELS, **(OPTIONAL_LABELS if cfg.fs_labels else {})}


def _extra_names(out_dir: Path, index: int, width: int, sets: dict[str, str] = EXTRA_LABELS) -> dict[str, Path]:
    """The other label files of sample ``index``: params key -> ``NNNNNN_ldmks_<scheme>.txt``."""
    return {key: out_dir / f"{index:0{width}d}_ldmks_{name}.txt" for name, key in sets.items()}


def _all_names(out_dir: Path, index: int, width: int, sets: dict[str, str] = EXTRA_LABELS) -> list[Path]:
    return [*_names(out_dir, index, width), *_extra_names(out_dir, index, width, sets).values()]


def format_landmarks(ldmks: np.ndarray) -> str:
    """Text of a sample's ``_ldmks.txt`` for its (70,2) landmarks (68 points then the pupils), as written by
    :func:`render_dataset`: :func:`lightmark.data.formats.format_ldmks` (3 decimals)."""
    return format_ldmks(ldmks)


def _write_sample(
    out: tuple[Path, Path, Path],
    image: np.ndarray,
    ldmks: np.ndarray,
    seg: np.ndarray,
    comp: int,
    extra: dict[str, tuple[Path, np.ndarray]] | None = None,
) -> None:
    """Write a sample's image, 70 labels and segmentation (``out``), and the other label sets ``extra``
    (scheme -> (path, (K,2) points), written by the dataset writer like ``_ldmks.txt``)."""
    ok1, png = cv2.imencode(".png", image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, comp])
    ok2, spng = cv2.imencode(".png", seg, [cv2.IMWRITE_PNG_COMPRESSION, comp])
    if not (ok1 and ok2):
        raise OutputError(f"{out[0]}: PNG encoding failed")
    atomic_save_bytes(out[0], png.tobytes())
    atomic_save_bytes(out[2], spng.tobytes())
    write_ldmks(out[1], ldmks[:68], ldmks[68:])
    for scheme, (path, pts) in (extra or {}).items():
        write_ldmks(path, pts, None, LABEL_FORMAT.get(scheme, scheme))


def _render_index(index: int) -> tuple[int, float]:
    """Render and write sample ``index`` of the worker's job; returns it and the CPU seconds it took."""
    job: _Job = _W["job"]
    t0 = time.process_time()
    seed = sample_seed(job.seed, index)
    image, ldmks, seg, params = render_sample(seed, job.cfg, job.model, _W["backgrounds"], _W["textures"])
    sets = _label_sets(job.cfg)
    names = _extra_names(job.out_dir, index, job.width, sets)
    extra = {scheme: (names[key], params[key]) for scheme, key in sets.items()}
    _write_sample(_names(job.out_dir, index, job.width), image, ldmks, seg, job.cfg.png_compression, extra)
    return index, time.process_time() - t0


def render_dataset(
    out_dir: str | os.PathLike,
    count: int,
    size: int = 256,
    seed: int = 0,
    workers: int = 2,
    face_model: str | os.PathLike | FaceModel | None = None,
    textures: str | os.PathLike | None = None,
    backgrounds: str | os.PathLike | None = None,
    progress: bool = True,
    config: SynthConfig | None = None,
) -> dict:
    """Render ``count`` samples into ``out_dir`` (FaceSynthetics layout); resumable and deterministic.

    Sample ``i`` is drawn from :func:`sample_seed` ``(seed, i)``, so the output does not depend on ``workers``.
    Indices whose files (image, segmentation, the 68-point, WFLW and 2D-jaw labels, and with
    ``config.fs_labels`` the FaceSynthetics-definition labels) already exist are skipped. Every file is written
    atomically.

    Args:
        textures: a FaceSynthetics folder (``NNNNNN.png``, ``_ldmks.txt``, ``_seg.png``): each sample is fitted and
            unwrapped once into ``$LIGHTMARK_CACHE/synth_textures`` (:mod:`.textures`, using ``workers``
            processes), then ``config.texture_share`` of the faces wear a random one. None: procedural skin.

    Returns:
        stats: ``written``, ``skipped``, ``seconds`` (wall clock, including the workers' start),
        ``images_per_second``, ``cpu_seconds_per_image`` (rendering + encoding + writing, summed over the
        workers: ``workers / cpu_seconds_per_image`` is the rate on otherwise idle cores), ``out_dir``.

    Raises:
        DatasetError: bad face model / background folder; ValueError: bad arguments.
    """
    _check_dataset_args(count, size)
    job = _prepare_job(out_dir, count, size, seed, face_model, backgrounds, config, textures, workers, progress)
    sets = _label_sets(job.cfg)
    todo = [i for i in range(count) if not all(p.is_file() for p in _all_names(job.out_dir, i, job.width, sets))]
    _write_meta(job, count)
    t0 = time.perf_counter()
    cpu = _render_all(job, todo, count, workers, progress)
    dt = time.perf_counter() - t0
    return {
        "written": len(todo),
        "skipped": count - len(todo),
        "seconds": dt,
        "images_per_second": len(todo) / dt if dt > 0 and todo else 0.0,
        "cpu_seconds_per_image": cpu / len(todo) if todo else 0.0,
        "out_dir": str(job.out_dir),
    }


def _check_dataset_args(count: int, size: int) -> None:
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")


def _prepare_job(
    out_dir: str | os.PathLike,
    count: int,
    size: int,
    seed: int,
    face_model: str | os.PathLike | FaceModel | None,
    backgrounds: str | os.PathLike | None,
    config: SynthConfig | None,
    textures: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = False,
) -> _Job:
    """Load and check the inputs (failing early, before any worker starts), unwrap the textures (cached) and
    create the output folder."""
    cfg = config or SynthConfig()
    cfg = SynthConfig(**{**asdict(cfg), "size": int(size)})
    model = face_model if isinstance(face_model, FaceModel) else load_face_model(face_model)
    get_assets(model, cfg.texture_size())  # fail early on a non-ICT mesh
    bg_dir = str(backgrounds) if backgrounds is not None else None
    if bg_dir is not None:
        BackgroundSource(bg_dir)  # fail early
    tex = None
    if textures is not None:
        tex = tuple(str(p) for p in prepare_textures(textures, model, workers=max(1, int(workers)), progress=progress))
    out = ensure_dir(out_dir)
    return _Job(model, cfg, bg_dir, tex, out, int(seed), width=max(6, len(str(max(count - 1, 0)))))


def _write_meta(job: _Job, count: int) -> None:
    """Write ``synth_config.json`` (the largest count rendered so far is kept).

    Raises:
        DatasetError: the folder holds samples of another seed or configuration.
    """
    meta = {
        "generator": "lightmark.synth",
        "seed": job.seed,
        "count": int(count),
        "face_model": job.model.source,
        "backgrounds": job.backgrounds,
        "textures": len(job.textures) if job.textures else 0,
        "config": json.loads(json.dumps(asdict(job.cfg), default=str)),
    }
    meta_path = job.out_dir / META_NAME
    if meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # its samples' settings are unknown: not resumed, not overwritten
            raise DatasetError(f"{meta_path}: unreadable ({e}); use a new folder") from None
        if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
            raise DatasetError(f"{meta_path}: not a lightmark.synth record; use a new folder")
        old["config"] = {**json.loads(json.dumps(asdict(SynthConfig()), default=str)), **old["config"]}  # new: defaults
        if (old.get("seed"), old["config"]) != (meta["seed"], meta["config"]):
            raise DatasetError(
                f"{job.out_dir}: holds samples rendered with another seed or configuration ({META_NAME}); "
                "use a new folder to keep the dataset consistent"
            )
        meta["count"] = max(int(count), int(old.get("count", 0)))
    with atomic_write(meta_path, "w") as f:
        json.dump(meta, f, indent=1, default=str)


def _render_all(job: _Job, todo: list[int], count: int, workers: int, progress: bool) -> float:
    """Render the indices ``todo`` (in this process, or in ``workers`` spawned ones) with an optional progress
    bar; returns the CPU seconds summed over the samples."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count, initial=count - len(todo), unit="img", desc="synth", smoothing=0.05)
    workers = max(1, int(workers))
    cpu = 0.0
    try:
        run = _render_here(job, todo) if workers == 1 or len(todo) <= 1 else _render_in_pool(job, todo, workers)
        for seconds in run:
            cpu += seconds
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
    return cpu


def _render_here(job: _Job, todo: list[int]) -> Iterator[float]:
    """Render in this process, OpenCV on one thread as in a worker (the caller's count restored after, and the
    job dropped); yields the CPU seconds of each sample."""
    _load_job(job)
    try:
        with opencv_threads(1):
            for index in todo:
                yield _render_index(index)[1]
    finally:
        _W.clear()


def _render_in_pool(job: _Job, todo: list[int], workers: int) -> Iterator[float]:
    """Render in ``workers`` spawned single-threaded processes; yields the CPU seconds of each sample."""
    with _single_threaded_children():
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(job,))
    with pool:
        for _, seconds in pool.imap_unordered(_render_index, todo, chunksize=4):
            yield seconds


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Processes started inside this block get one thread per numeric library (the environment is restored)."""
    env_keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in env_keys}
    os.environ.update({k: "1" for k in env_keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_sample(out_dir: str | os.PathLike, index: int, width: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read back one written sample: image (RGB uint8), landmarks (70,2) float32, seg (uint8)."""
    img_p, l_p, s_p = _names(Path(out_dir), index, width)
    img = cv2.imread(str(img_p), cv2.IMREAD_COLOR)
    seg = cv2.imread(str(s_p), cv2.IMREAD_UNCHANGED)
    if img is None or seg is None or not l_p.is_file():
        raise DatasetError(f"{img_p}: sample missing or unreadable")
    ldmks = np.loadtxt(l_p, dtype=np.float32).reshape(-1, 2)
    return img[:, :, ::-1].copy(), ldmks, seg
