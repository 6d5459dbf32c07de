"""Skin textures from a FaceSynthetics folder: fitted, unwrapped and cached once, then worn by random identities.

:func:`prepare_textures` fits the face model to each sample's 68 landmarks (:mod:`.fit`), unwraps its skin into
the UV atlas (:mod:`.unwrap`), balances its colour and writes an ``.npz`` per sample into a cache folder
(``$LIGHTMARK_CACHE/synth_textures``, default ``~/.cache/lightmark/synth_textures``), keyed by the sample's
files, the face model and the unwrapping version. :class:`TextureSource` reads them back (per process, a small
LRU of decoded maps) and :func:`dress` puts one on a sample's :class:`~lightmark.synth.appearance.Appearance`:
the albedo of the skin changes, the geometry (and so every landmark) does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DatasetError
from ..utils import atomic_write, default_cache_dir, ensure_dir
from . import labels as L
from .appearance import SKIN_TONES, Appearance, lin, srgb_to_linear
from .assets import ModelAssets, get_assets
from .face_model import PARTS, FaceModel
from .fit import FitConfig, fit_landmarks
from .landmark_sets import MEAN_BROW, WFLW98_BROW_LOWER
from .unwrap import LUMA, atlas_raster, unwrap

TEXTURE_VERSION = 1  # bump when the fit or the unwrapping changes (cached maps are rebuilt)
UNWRAP_SIZE = 512  # tile side of the cached atlases
TONE_KEEP = 0.5  # how much of its own chromaticity a texture keeps against the sample's skin tone
TONE_RANGE = 2.0  # a texture's luminance moves at most this factor towards the sample's skin tone
# albedo / photographed skin level: FaceSynthetics skin is exposed ~2x darker than our albedos render (the median
# texture then sits at the middle of SKIN_TONES)
EXPOSURE_GAIN = 2.0
CHROMA_KEEP = 0.7  # fraction of the texels' chromaticity deviations kept (see soften_chroma)
_SRGB_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
MIN_SKIN_LEVEL = 0.1  # a sample whose skin's median sRGB luminance is darker is dropped (too little signal)
MAX_RESIDUAL = 0.06  # a fit whose mean landmark residual exceeds this fraction of the landmark box is dropped


@dataclass(frozen=True)
class FSSample:
    """One FaceSynthetics sample: ``NNNNNN.png``, ``NNNNNN_ldmks.txt``, ``NNNNNN_seg.png``."""

    name: str
    image: Path
    ldmks: Path
    seg: Path


def list_samples(folder: str | os.PathLike) -> list[FSSample]:
    """The complete FaceSynthetics samples under ``folder`` (recursive), sorted by path.

    Raises:
        DatasetError: the folder is missing or holds no sample with its image, landmarks and segmentation.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: textures folder not found (a FaceSynthetics folder is expected)")
    out = []
    for lp in sorted(root.rglob("*_ldmks.txt")):
        stem = lp.name[: -len("_ldmks.txt")]
        img, seg = lp.with_name(stem + ".png"), lp.with_name(stem + "_seg.png")
        if img.is_file() and seg.is_file():
            out.append(FSSample(str(lp.relative_to(root).parent / stem), img, lp, seg))
    if not out:
        raise DatasetError(
            f"{root}: no FaceSynthetics samples (NNNNNN.png with NNNNNN_ldmks.txt and NNNNNN_seg.png) for --textures"
        )
    return out


def default_texture_cache() -> Path:
    """``synth_textures`` in :func:`~lightmark.utils.default_cache_dir` (``$LIGHTMARK_CACHE``, else
    ``~/.cache/lightmark``)."""
    return default_cache_dir() / "synth_textures"


def _model_key(model: FaceModel) -> str:
    h = hashlib.sha1()
    for a in (model.neutral, model.landmarks68, model.uv, model.uv_triangles, model.identity[:4]):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def _cache_path(s: FSSample, cache: Path, model_key: str, fit_cfg: FitConfig) -> Path:
    h = hashlib.sha1(json.dumps([TEXTURE_VERSION, UNWRAP_SIZE, model_key, asdict(fit_cfg)]).encode())
    for p in (s.image, s.ldmks, s.seg):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return cache / f"{Path(s.name).name}_{h.hexdigest()[:16]}.npz"


# ================================================================================================ unwrapping


def read_sample(s: FSSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (H,W,3) uint8 RGB, 68 landmarks (68,2), seg (H,W) uint8 of a sample.

    Raises:
        DatasetError: a file is unreadable or malformed.
    """
    from ..data.formats import read_ldmks
    from ..errors import LightmarkError

    img = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
    seg = cv2.imread(str(s.seg), cv2.IMREAD_UNCHANGED)
    if img is None or seg is None:
        raise DatasetError(f"{s.image}: image or segmentation unreadable")
    seg = seg if seg.ndim == 2 else seg[:, :, 0]
    if seg.shape != img.shape[:2] or img.shape[0] != img.shape[1]:
        raise DatasetError(f"{s.image}: image and segmentation must be square and of the same size")
    try:
        ldmks, _ = read_ldmks(s.ldmks)
    except LightmarkError as e:
        raise DatasetError(str(e)) from None
    return img[:, :, ::-1].copy(), ldmks.astype(np.float64), seg.astype(np.uint8)


def balance_colour(albedo: np.ndarray, mean: np.ndarray, keep: float = 0.35) -> np.ndarray:
    """Scale the linear ``albedo`` (..,3) whose skin averages ``mean`` (3,) into the range of real skin: the mean
    luminance is clipped to that of :data:`~lightmark.synth.appearance.SKIN_TONES` and the chromaticity pulled
    towards the tone of the same luminance (a fraction ``keep`` of its deviation, in log space, remains), which
    removes most of the colour cast of the scene's light."""
    tones = lin(SKIN_TONES)
    t_lum = tones @ LUMA
    lum = float(np.clip(mean @ LUMA, t_lum.min(), t_lum.max()))
    tone = np.array([np.interp(lum, t_lum[::-1], tones[::-1, c]) for c in range(3)])
    chroma = np.maximum(mean, 1e-6) / max(float(mean @ LUMA), 1e-6)
    t_chroma = tone / (tone @ LUMA)
    target = t_chroma * (chroma / t_chroma) ** keep
    target *= lum / float(target @ LUMA)
    return albedo * (target / np.maximum(mean, 1e-6))


def soften_chroma(albedo: np.ndarray, mean: np.ndarray, keep: float = CHROMA_KEEP) -> np.ndarray:
    """Pull the chromaticity of every texel of ``albedo`` (..,3) towards that of ``mean`` (3,) (a fraction ``keep``
    of the deviation, in log space, remains); the luminance is kept. What is left of coloured light after the
    de-shading (reflections of the scene, subsurface glows at the ears and nostrils) fades more than the skin's
    own colour differences (lips, brows, redness)."""
    y = np.maximum(albedo @ LUMA, 1e-6)[..., None]
    c = np.maximum(albedo, 1e-6) / y
    cm = np.maximum(mean, 1e-6) / max(float(mean @ LUMA), 1e-6)
    c = cm * (c / cm) ** keep
    return c * y / np.maximum(c @ LUMA, 1e-6)[..., None]


def brow_shape(brows: np.ndarray, lm_uv: np.ndarray) -> dict[str, float]:
    """The brow band (``thickness``, ``taper``, ``lift`` in face-tile UV units, see
    :func:`lightmark.synth.appearance._brow_mask`) that best matches the eyebrow mask ``brows`` (S,S) below the
    68-point brow landmarks ``lm_uv`` (68,2) (face-tile texels); :data:`MEAN_BROW` where the mask is unclear."""
    S = brows.shape[0]
    top, down, js = [], [], []
    for lm_i, j in WFLW98_BROW_LOWER.values():
        x, y = lm_uv[lm_i]
        col = brows[:, int(np.clip(round(x), 0, S - 1))]
        y0, y1 = int(max(y - 0.04 * S, 0)), int(min(y + 0.09 * S, S))
        on = np.flatnonzero(col[y0:y1] > 0.5)
        if len(on) < 2:
            return dict(MEAN_BROW)
        top.append((y0 + on[0] - y) / S)
        down.append((y0 + on[-1] + 1 - y) / S)
        js.append(j / 4.0)
    lift = float(np.median(top))
    a, b = np.polyfit(np.asarray(js), np.asarray(down), 1)[::-1]  # down = a + b j/4
    thick = float(np.clip(a - lift + b, 0.015, 0.06))
    taper = float(np.clip((a - lift) / thick, 0.2, 1.0))
    return {"thickness": thick, "taper": taper, "lift": float(np.clip(lift, -0.02, 0.02))}


def unwrap_sample(s: FSSample, model: FaceModel, fit_cfg: FitConfig | None = None) -> dict:
    """Fit, unwrap and colour-balance one sample: the arrays and facts stored in its cache file
    (``albedo`` (S,2S,3) uint8 sRGB, ``brows`` (S,S) uint8, ``seen`` (S,2S) uint8, ``residual`` px, ...), or
    ``{"rejected": reason}`` for a photo whose skin is too dark (:data:`MIN_SKIN_LEVEL`).

    Raises:
        DatasetError: a file of the sample is unreadable or malformed.
    """
    from .appearance import linear_to_srgb

    image, ldmks, seg = read_sample(s)
    plain = (seg == L.SKIN) | (seg == L.NOSE)
    level = float(np.median(image[plain] @ LUMA) / 255.0) if plain.sum() > 100 else 0.0
    if level < MIN_SKIN_LEVEL:
        return {"rejected": f"{s.image}: the skin is too dark or too small to unwrap (median level {level:.2f})"}
    fit = fit_landmarks(model, ldmks, image.shape[0], fit_cfg)
    assets = get_assets(model, UNWRAP_SIZE)
    u = unwrap(image, seg, fit, model, assets, UNWRAP_SIZE)
    ar = atlas_raster(assets, UNWRAP_SIZE)
    face = np.zeros(u.seen.shape, bool)
    face[:, :UNWRAP_SIZE] = ar.mask[:, :UNWRAP_SIZE]
    w = (u.seen * face).ravel()
    mean = (u.albedo.reshape(-1, 3) * w[:, None]).sum(0) / max(float(w.sum()), 1e-9)
    albedo = balance_colour(soften_chroma(u.albedo, mean), mean)
    balanced = (albedo.reshape(-1, 3) * w[:, None]).sum(0) / max(float(w.sum()), 1e-9)
    box = float(np.ptp(ldmks, axis=0).max())
    return {
        "albedo": np.round(np.clip(linear_to_srgb(albedo), 0, 1) * 255).astype(np.uint8),
        "brows": np.round(np.clip(u.brows[:, :UNWRAP_SIZE], 0, 1) * 255).astype(np.uint8),
        "seen": np.round(u.seen * 255).astype(np.uint8),
        "mean": balanced.astype(np.float32),
        "residual": fit.mean_residual,
        "residual_box": fit.mean_residual / max(box, 1.0),
        "identity": fit.identity.astype(np.float32),
        "expression": fit.expression.astype(np.float32),
        "P": fit.camera.P,
        "brow_shape": json.dumps(brow_shape(u.brows[:, :UNWRAP_SIZE], assets.lm_uv_px)),
        "name": s.name,
    }


def _prepare_one(args: tuple[FSSample, Path, FaceModel, FitConfig]) -> tuple[Path, str | None]:
    """Unwrap one sample into its cache file (unless there); returns the path and an error message or None."""
    s, path, model, fit_cfg = args
    if path.is_file():
        return path, None
    try:
        data = unwrap_sample(s, model, fit_cfg)
    except DatasetError as e:
        return path, str(e)
    if "rejected" not in data and data["residual_box"] > MAX_RESIDUAL:
        data = {"rejected": f"{s.image}: the face model fit is off by {data['residual']:.1f} px on average"}
    error = str(data["rejected"]) if "rejected" in data else None  # remembered: the next run does not retry
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **data)
    return path, error


def prepare_textures(
    folder: str | os.PathLike,
    model: FaceModel,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = False,
    fit_cfg: FitConfig | None = None,
) -> list[Path]:
    """Fit and unwrap every FaceSynthetics sample of ``folder`` once (cached); returns the cache files of the
    usable ones, in the samples' order. Unreadable samples and failed fits are skipped with a warning.

    Raises:
        DatasetError: no sample in ``folder``, or none of them usable.
    """
    samples = list_samples(folder)
    cache = ensure_dir(cache_dir if cache_dir is not None else default_texture_cache())
    fit_cfg = fit_cfg or FitConfig()
    mk = _model_key(model)
    jobs = [(s, _cache_path(s, cache, mk, fit_cfg), model, fit_cfg) for s in samples]
    todo = [j for j in jobs if not _cached(j[1])]
    errors = dict(_run_jobs(todo, workers, progress))
    paths = [p for _, p, _, _ in jobs if errors.get(p) is None and p.is_file() and not _is_rejected(p)]
    if len(paths) < len(samples):
        why = next((e for e in errors.values() if e), "rejected in an earlier run (too dark, or a poor fit)")
        msg = f"{len(samples) - len(paths)} of {len(samples)} texture samples skipped, e.g. {why}"
        warnings.warn(msg, stacklevel=2)
    if not paths:
        raise DatasetError(f"{folder}: none of the {len(samples)} FaceSynthetics samples gave a usable texture")
    return paths


def _cached(path: Path) -> bool:
    """``path`` holds a readable cache file; an unreadable one (a torn write by an older version, a full disk) is
    removed, so that it is redone rather than taken for a rejected sample."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as d:
            d.files  # noqa: B018 - reads the archive's directory
        return True
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        path.unlink(missing_ok=True)
        return False


def _is_rejected(path: Path) -> bool:
    with np.load(path, allow_pickle=False) as d:
        return "rejected" in d.files


def _run_jobs(todo: list, workers: int, progress: bool) -> list[tuple[Path, str | None]]:
    """Run :func:`_prepare_one` over ``todo`` here or in ``workers`` spawned single-threaded processes."""
    if not todo:
        return []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="face", desc="textures")
    out = []
    pool = None
    try:
        if workers <= 1 or len(todo) == 1:
            it = map(_prepare_one, todo)
        else:
            import multiprocessing as mp

            from .generator import _single_threaded_children

            with _single_threaded_children():
                pool = mp.get_context("spawn").Pool(min(workers, len(todo)))
            it = pool.imap_unordered(_prepare_one, todo)
        for r in it:
            out.append(r)
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
        if pool is not None:
            pool.terminate()
    return out


# ================================================================================================ wearing them


@dataclass
class FaceTexture:
    """A cached texture at one atlas size S: ``albedo`` (S,2S,3) uint8 sRGB (:meth:`linear` decodes it),
    ``brows`` (S,S) uint8 eyebrow probability x 255, ``mean`` (3,) the linear albedo's mean over the face tile's
    seen skin, ``brow_shape`` (see :func:`brow_shape`)."""

    name: str
    albedo: np.ndarray
    brows: np.ndarray
    mean: np.ndarray
    brow_shape: dict

    def linear(self) -> np.ndarray:
        """(S,2S,3) float32 linear albedo."""
        return _SRGB_TO_LINEAR[self.albedo]


class TextureSource:
    """The cached textures of :func:`prepare_textures`, decoded on demand (an LRU of ``keep`` maps per size)."""

    def __init__(self, paths: list[str | os.PathLike], keep: int = 256):
        if not paths:
            raise DatasetError("no textures")
        self.paths = [Path(p) for p in paths]
        self.keep = int(keep)
        self._lru: OrderedDict[tuple[int, int], FaceTexture] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, k: int, S: int) -> FaceTexture:
        """Texture ``k`` at atlas tile size ``S``."""
        key = (int(k), int(S))
        tex = self._lru.get(key)
        if tex is None:
            tex = self._lru[key] = _load_texture(self.paths[k], int(S))
            while len(self._lru) > self.keep:
                self._lru.popitem(last=False)
        self._lru.move_to_end(key)
        return tex


def _load_texture(path: Path, S: int) -> FaceTexture:
    """Read a cache file and resample it to tile size ``S``.

    Raises:
        DatasetError: the file is unreadable.
    """
    try:
        with np.load(path, allow_pickle=False) as d:
            albedo, brows, mean = d["albedo"], d["brows"], d["mean"].astype(np.float32)
            name, shape = str(d["name"]), json.loads(str(d["brow_shape"]))
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DatasetError(f"{path}: unreadable texture cache ({e}); delete it to rebuild") from None
    if albedo.shape[0] != S:
        albedo = cv2.resize(albedo, (2 * S, S), interpolation=cv2.INTER_AREA)
        brows = cv2.resize(brows, (S, S), interpolation=cv2.INTER_AREA)
    return FaceTexture(name, np.ascontiguousarray(albedo), np.ascontiguousarray(brows), mean, shape)


def dress(rng: np.random.Generator, share: float, assets: ModelAssets, app: Appearance, source: TextureSource) -> None:
    """With probability ``share``, put a random texture of ``source`` (mirrored half of the time) on ``app`` (in
    place; see :func:`apply_texture`). Draws from ``rng`` only."""
    if not rng.random() < share:
        return
    k = int(rng.integers(len(source)))
    flip = bool(rng.random() < 0.5)
    apply_texture(app, assets, source.get(k, assets.tex_size), flip)


def apply_texture(app: Appearance, assets: ModelAssets, tex: FaceTexture, flip: bool = False) -> None:
    """Dress ``app`` (in place) with ``tex``: the skin's vertex colour becomes the sample's skin tone (see
    :func:`skin_tone`, with a little ambient occlusion), the atlas' albedo channels the texture relative to its
    mean, the eyebrow labels follow the
    texture's brows; ``params`` get ``texture``, ``texture_flip`` and the texture's ``brow_shape``. Hair, beard,
    clothing, eyes and the mouth stay as drawn."""
    S = assets.tex_size
    albedo, brows = tex.linear(), tex.brows.astype(np.float32) / 255.0
    if flip:
        mirror = atlas_raster(assets, S).mirror
        albedo = cv2.remap(albedo, mirror[:, :, 0], mirror[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        face = mirror[:, :S]
        brows = cv2.remap(brows, face[:, :, 0], face[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mean = np.maximum(tex.mean, 1e-4)
    tone = skin_tone(mean, app.skin) if app.skin is not None else mean
    ao = assets.ambient_occlusion()
    skin = assets.skin_vertex
    app.vcol[skin] = tone[None, :] * (1.0 - 0.3 * (1.0 - ao[skin]))[:, None]
    for part in ("eye_socket_left", "eye_socket_right"):
        lo, hi = PARTS[part]
        app.vcol[lo:hi] = tone * lin((205, 140, 140)) / lin((220, 175, 150))
    app.tex[:, :, :3] = albedo / mean
    _brow_labels(app.label_tex, assets, brows)
    app.params.update(texture=tex.name, texture_flip=flip, brow_shape=dict(tex.brow_shape))


def skin_tone(mean: np.ndarray, skin: np.ndarray, keep: float = TONE_KEEP) -> np.ndarray:
    """(3,) linear mean albedo a texture of mean ``mean`` (3,) is worn with: the luminance of the sample's own
    random skin tone ``skin`` (3,), kept within a factor :data:`TONE_RANGE` of the texture's times
    :data:`EXPOSURE_GAIN` (the photo's exposure says only roughly how light the skin is), and the tone's
    chromaticity moved towards the texture's by the fraction ``keep`` (in log space)."""
    c_tex = mean / max(float(mean @ LUMA), 1e-6)
    c_skin = skin / max(float(skin @ LUMA), 1e-6)
    c = c_skin * (c_tex / c_skin) ** keep
    ref = float(mean @ LUMA) * EXPOSURE_GAIN
    lum = float(np.clip(skin @ LUMA, ref / TONE_RANGE, ref * TONE_RANGE))
    return (c * lum / float(c @ LUMA)).astype(np.float32)


def _brow_labels(label_tex: np.ndarray, assets: ModelAssets, brows: np.ndarray) -> None:
    """Replace the eyebrow classes of the face tile of ``label_tex`` (S,2S) by the texture's ``brows`` (S,S)."""
    S = assets.tex_size
    face = label_tex[:, :S]
    base = assets.label_base[:, :S]
    was = (face == L.BROW_SUBJECT_LEFT) | (face == L.BROW_SUBJECT_RIGHT)
    face[was] = base[was]
    on = (brows > 0.5) & (base == L.SKIN)
    left = np.zeros_like(on)
    left[:, S // 2 :] = True
    face[on & left] = L.BROW_SUBJECT_LEFT
    face[on & ~left] = L.BROW_SUBJECT_RIGHT
