"""Dataset readers: challenge ``annot.pkl``, FaceSynthetics, 300-W ``.pts``, AFLW2000-3D ``.mat``, WFLW lists, images.

Coordinate convention (every reader): landmarks are ``(K, 2)`` float32 ``(x, y)`` pixel coordinates, 0-based,
pixel-centre convention: the centre of the top-left pixel is ``(0, 0)``, its outer corner ``(-0.5, -0.5)``.
K is the point count of the landmark scheme the reader is given (:mod:`lightmark.schemes`; default ``ibug68``, 68
points): a file with another count is an error. FaceSynthetics-layout folders hold one label file per scheme:
``NNNNNN_ldmks.txt`` (``ibug68``: 68 points + 2 pupils) and ``NNNNNN_ldmks_<scheme>.txt`` for the others.

* ``.pts`` (300-W / iBUG, menpo): the files are 1-based (Matlab), so :data:`PTS_OFFSET` = 1 is subtracted on
  reading and added back by :func:`write_pts` (as menpo and most face-alignment code do).
* challenge ``annot.pkl``, AFLW2000-3D ``pt3d_68`` and FaceSynthetics ``_ldmks.txt``: taken as stored (the
  challenge labels equal the official AFLW2000-3D points, and the challenge scores against them unchanged).

Loading a dataset lists files and reads annotation files and image *headers* only (no pixel decoding).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, overload

import numpy as np

from ..choices import DatasetFormat
from ..constants import IMAGE_EXTENSIONS, NUM_LANDMARKS
from ..errors import AnnotationError, ConfigError, DatasetError
from ..schemes import DEFAULT_SCHEME, LandmarkScheme, get_scheme
from ..utils import atomic_write
from .images import image_size
from .safe_pickle import safe_load_pickle

__all__ = [
    "DatasetFormat",
    "PTS_OFFSET",
    "Sample",
    "FaceDataset",
    "detect_format",
    "load_dataset",
    "load_images",
    "read_pts",
    "write_pts",
    "read_ldmks",
    "write_ldmks",
    "format_ldmks",
    "ldmks_suffix",
    "LDMKS_DECIMALS",
    "read_aflw_mat",
    "read_yaw_csv",
]

PTS_OFFSET: float = 1.0
""".pts files are 1-based: reading subtracts this, writing adds it."""

ANNOT_NAME = "annot.pkl"
_LDMKS_SUFFIX = "_ldmks.txt"
_LDMKS_SCHEME_RE = re.compile(r"_ldmks_\w+\.txt$")  # NNNNNN_ldmks_<scheme>.txt (lower-cased names)
_SEG_SUFFIX = "_seg"
_BOUND_FACTOR = 2.0  # landmarks beyond [-1x, 2x] the image side are refused as absurd


@dataclass
class Sample:
    """One face of a dataset: its image and (optional) landmarks of the dataset's scheme."""

    name: str
    """Path relative to the dataset root (POSIX separators), e.g. ``"image00013.jpg"``."""
    image_path: Path
    landmarks: np.ndarray | None = None
    """``(K, 2)`` float32 pixel coordinates (pixel-centre convention), or None when unlabelled."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Optional extras: ``"yaw"`` (absolute degrees), ``"pupils"`` ((2, 2) float32), ``"seg_path"``, WFLW's
    ``"box"`` and ``"attributes"``..."""


@dataclass
class FaceDataset:
    """A list of samples from one folder, in a deterministic order, labelled in one landmark scheme."""

    root: Path
    format: DatasetFormat
    samples: list[Sample]
    scheme: str = DEFAULT_SCHEME
    """Name of the landmark scheme of every sample's landmarks (:mod:`lightmark.schemes`)."""

    def __post_init__(self) -> None:
        self.format = DatasetFormat.parse(self.format, "dataset format")  # its value is accepted too

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> FaceDataset: ...
    def __getitem__(self, index: int | slice) -> Sample | FaceDataset:
        """A sample, or a sub-dataset for a slice."""
        if isinstance(index, slice):
            return FaceDataset(self.root, self.format, self.samples[index], self.scheme)
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    @property
    def has_landmarks(self) -> bool:
        """True when every sample is labelled (and there is at least one sample)."""
        return bool(self.samples) and all(s.landmarks is not None for s in self.samples)

    def landmarks_array(self) -> np.ndarray:
        """``(N, K, 2)`` float32 array of all landmarks (K = the scheme's point count).

        Raises:
            DatasetError: some samples are unlabelled.
        """
        missing = [s.name for s in self.samples if s.landmarks is None]
        if missing:
            raise DatasetError(f"{self.root}: {len(missing)} sample(s) have no landmarks (first: {missing[0]})")
        if not self.samples:
            return np.zeros((0, get_scheme(self.scheme).num_points, 2), np.float32)
        return np.stack([s.landmarks for s in self.samples]).astype(np.float32, copy=False)

    def yaws(self) -> np.ndarray:
        """``(N,)`` float64 absolute yaw in degrees, NaN where unknown."""
        return np.array([float(s.meta.get("yaw", math.nan)) for s in self.samples], dtype=np.float64)


# --------------------------------------------------------------------------------------------------- helpers


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS


def _list_files(root: Path, recursive: bool) -> list[Path]:
    """Regular files under ``root`` (hidden names skipped), sorted by relative POSIX path."""
    try:
        if recursive:
            files = [
                Path(d) / f
                for d, dirs, names in os.walk(root)
                for f in names
                if not f.startswith(".") and not any(part.startswith(".") for part in Path(d).relative_to(root).parts)
            ]
        else:
            files = [p for p in root.iterdir() if not p.name.startswith(".") and p.is_file()]
    except OSError as e:
        raise DatasetError(f"{root}: cannot list folder ({e.strerror or e})") from None
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def _stem_key(root: Path, p: Path, suffix: str | None = None) -> str:
    """Relative path without the extension (or without ``suffix``): pairs images with annotations."""
    rel = _rel(root, p)
    if suffix is not None:
        return rel[: -len(suffix)]
    return rel[: -len(p.suffix)] if p.suffix else rel


def _check_points(pts: np.ndarray, where: str, expected: int = NUM_LANDMARKS) -> np.ndarray:
    if pts.ndim != 2 or pts.shape != (expected, 2):
        raise AnnotationError(f"{where}: expected {expected} (x, y) points, got shape {tuple(pts.shape)}")
    if not np.all(np.isfinite(pts)):
        raise AnnotationError(f"{where}: landmarks contain NaN or inf")
    return pts.astype(np.float32)


def _check_bounds(pts: np.ndarray, image_path: Path, where: str) -> None:
    """Refuse landmarks absurdly far outside the image (reads the image header only)."""
    w, h = image_size(image_path)
    lo = np.array([-(_BOUND_FACTOR - 1) * w, -(_BOUND_FACTOR - 1) * h])
    hi = np.array([_BOUND_FACTOR * w, _BOUND_FACTOR * h])
    bad = np.any((pts < lo) | (pts > hi), axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise AnnotationError(
            f"{where}: point {i} ({pts[i, 0]:.1f}, {pts[i, 1]:.1f}) is far outside the {w}x{h} image {image_path.name}"
        )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such file") from None
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read ({e.strerror or e})") from None


def _parse_xy(line: str, path: Path, lineno: int) -> tuple[float, float]:
    parts = line.replace(",", " ").split()
    if len(parts) != 2:
        raise AnnotationError(f"{path}: line {lineno}: expected 'x y', got {line.strip()[:40]!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise AnnotationError(f"{path}: line {lineno}: not a number in {line.strip()[:40]!r}") from None


def _fmt(v: float) -> str:
    return repr(float(v))  # shortest exact text of the float64 value: lossless round trip


# ------------------------------------------------------------------------------------------------------ .pts


def read_pts(path: str | os.PathLike, scheme: str | LandmarkScheme = DEFAULT_SCHEME) -> np.ndarray:
    """Read a 300-W/iBUG ``.pts`` file as ``(K, 2)`` float32, 0-based (the file's 1-based values minus 1); K is the
    scheme's point count (68 for ``ibug68``).

    Raises:
        AnnotationError: broken header, wrong point count, missing braces, NaN/inf.
    """
    path = Path(path)
    expected = get_scheme(scheme).num_points
    lines = _read_text(path).splitlines()
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].strip() != "{":
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("//"):
            continue
        if ":" not in line:
            raise AnnotationError(f"{path}: broken .pts header line {i}: {line[:40]!r}")
        key, value = line.split(":", 1)
        header[key.strip().lower()] = value.strip()
    if i >= len(lines):
        raise AnnotationError(f"{path}: broken .pts header (no opening '{{')")
    if "n_points" not in header:
        raise AnnotationError(f"{path}: broken .pts header (no n_points)")
    try:
        n_points = int(header["n_points"])
    except ValueError:
        raise AnnotationError(f"{path}: broken .pts header (n_points = {header['n_points'][:20]!r})") from None
    if n_points != expected:
        raise AnnotationError(f"{path}: expected {expected} points, header says n_points: {n_points}")
    pts: list[tuple[float, float]] = []
    closed = False
    for lineno in range(i + 2, len(lines) + 1):
        line = lines[lineno - 1].strip()
        if not line:
            continue
        if line == "}":
            closed = True
            break
        pts.append(_parse_xy(line, path, lineno))
    if not closed:
        raise AnnotationError(f"{path}: broken .pts file (no closing '}}')")
    if len(pts) != n_points:
        raise AnnotationError(f"{path}: expected {n_points} points, found {len(pts)}")
    arr = np.asarray(pts, dtype=np.float64) - PTS_OFFSET
    return _check_points(arr, str(path), expected)


def write_pts(path: str | os.PathLike, landmarks: np.ndarray, scheme: str | LandmarkScheme = DEFAULT_SCHEME) -> None:
    """Write ``(K, 2)`` 0-based landmarks of ``scheme`` as a 1-based ``.pts`` file, atomically (inverse of
    read_pts)."""
    n = get_scheme(scheme).num_points
    pts = _check_points(np.asarray(landmarks, dtype=np.float64), str(path), n).astype(np.float64) + PTS_OFFSET
    body = "\n".join(f"{_fmt(x)} {_fmt(y)}" for x, y in pts)
    with atomic_write(path) as f:
        f.write(f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n")


# -------------------------------------------------------------------------------------------- FaceSynthetics


def ldmks_suffix(scheme: str | LandmarkScheme = DEFAULT_SCHEME) -> str:
    """The FaceSynthetics-layout label file suffix of a scheme: ``_ldmks.txt`` for ``ibug68``, else
    ``_ldmks_<scheme>.txt`` (``NNNNNN_ldmks_wflw98.txt`` beside ``NNNNNN.png``)."""
    name = get_scheme(scheme).name
    return _LDMKS_SUFFIX if name == DEFAULT_SCHEME else f"_ldmks_{name}.txt"


def read_ldmks(
    path: str | os.PathLike, scheme: str | LandmarkScheme = DEFAULT_SCHEME
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a FaceSynthetics-layout label file: one ``x y`` line per point of the scheme (K lines), optionally
    followed by the 2 pupils (K + 2 lines; FaceSynthetics' own ``_ldmks.txt`` has 68 + 2).

    Returns:
        ``(landmarks (K, 2) float32, pupils (2, 2) float32 or None)``.

    Raises:
        AnnotationError: wrong line count, not numbers, NaN/inf.
    """
    path = Path(path)
    s = get_scheme(scheme)
    k = s.num_points
    rows = [_parse_xy(line, path, n) for n, line in enumerate(_read_text(path).splitlines(), 1) if line.strip()]
    if len(rows) not in (k, k + 2):
        raise AnnotationError(
            f"{path}: expected {k} or {k + 2} points ({s.name}, or {k} + 2 pupils), found {len(rows)}"
        )
    arr = np.asarray(rows, dtype=np.float64)
    landmarks = _check_points(arr[:k], str(path), k)
    pupils = _check_points(arr[k:], str(path), 2) if len(rows) > k else None
    return landmarks, pupils


LDMKS_DECIMALS = 3
"""Decimals of every coordinate in a written ``_ldmks.txt`` (1/1000 pixel): the synthetic engine's files."""


def format_ldmks(points: np.ndarray, where: str = "landmarks", scheme: str | LandmarkScheme = DEFAULT_SCHEME) -> str:
    """Text of a FaceSynthetics-layout label file: one ``x y`` line per point, :data:`LDMKS_DECIMALS` decimals.

    Args:
        points: ``(K, 2)`` landmarks of the scheme, or ``(K + 2, 2)``: the K landmarks then the 2 pupils.
        where: the name used in error messages.
        scheme: landmark scheme name or object (K = its point count; 68 for ``ibug68``).

    Raises:
        AnnotationError: another shape, NaN/inf.
    """
    k = get_scheme(scheme).num_points
    pts = np.asarray(points, dtype=np.float64)
    n = k + 2 if pts.shape[:1] == (k + 2,) else k
    pts = _check_points(pts, where, n).astype(np.float64)
    return "".join(f"{x:.{LDMKS_DECIMALS}f} {y:.{LDMKS_DECIMALS}f}\n" for x, y in pts)


def write_ldmks(
    path: str | os.PathLike,
    landmarks: np.ndarray,
    pupils: np.ndarray | None = None,
    scheme: str | LandmarkScheme = DEFAULT_SCHEME,
) -> None:
    """Write a FaceSynthetics-layout label file (K lines, or K + 2 with ``pupils``) atomically, as
    :func:`format_ldmks`; name it with :func:`ldmks_suffix`."""
    k = get_scheme(scheme).num_points
    pts = _check_points(np.asarray(landmarks, dtype=np.float64), str(path), k)
    if pupils is not None:
        pts = np.concatenate([pts, _check_points(np.asarray(pupils, np.float64), str(path), 2)])
    text = format_ldmks(pts, str(path), scheme)
    with atomic_write(path) as f:
        f.write(text)


# ----------------------------------------------------------------------------------------------- AFLW2000-3D


def read_aflw_mat(path: str | os.PathLike) -> tuple[np.ndarray, float | None]:
    """Read an AFLW2000-3D ``.mat``: ``pt3d_68`` rows 0, 1 as x, y; ``|yaw|`` in degrees from ``Pose_Para``.

    Returns:
        ``(landmarks (68, 2) float32, abs yaw in degrees or None when Pose_Para is absent)``.

    Raises:
        AnnotationError: unreadable .mat, no ``pt3d_68``, wrong shape, NaN/inf.
    """
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path), variable_names=["pt3d_68", "Pose_Para"])
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such file") from None
    except Exception as e:  # scipy raises ValueError/TypeError/NotImplementedError (v7.3) on bad files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AnnotationError(f"{path}: cannot read .mat file ({msg})") from None
    if "pt3d_68" not in mat:
        raise AnnotationError(f"{path}: no 'pt3d_68' variable in the .mat file")
    try:
        p = np.asarray(mat["pt3d_68"], dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(f"{path}: 'pt3d_68' is not numeric") from None
    if p.ndim == 2 and p.shape[0] in (2, 3) and p.shape[1] == NUM_LANDMARKS:
        xy = p[:2].T
    elif p.ndim == 2 and p.shape[1] in (2, 3) and p.shape[0] == NUM_LANDMARKS:
        xy = p[:, :2]
    else:
        raise AnnotationError(f"{path}: 'pt3d_68' should be 3x68, got shape {tuple(p.shape)}")
    landmarks = _check_points(np.ascontiguousarray(xy), str(path))
    yaw = None
    if "Pose_Para" in mat:
        try:
            pose = np.asarray(mat["Pose_Para"], dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: 'Pose_Para' is not numeric") from None
        if pose.size < 3 or not np.isfinite(pose[1]):
            raise AnnotationError(f"{path}: 'Pose_Para' should hold pitch, yaw, roll, got {pose.size} values")
        yaw = abs(math.degrees(float(pose[1])))
    return landmarks, yaw


# --------------------------------------------------------------------------------------------------- yaw CSV


def read_yaw_csv(path: str | os.PathLike) -> dict[str, float]:
    """Read a ``image,abs_yaw_deg`` CSV into ``{image name: |yaw| degrees}`` (empty cells are skipped).

    Raises:
        AnnotationError: missing columns or a value that is not a finite number.
    """
    path = Path(path)
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "image" not in fields or "abs_yaw_deg" not in fields:
        raise AnnotationError(f"{path}: expected the columns image,abs_yaw_deg, got {','.join(fields) or 'none'}")
    out: dict[str, float] = {}
    for lineno, row in enumerate(reader, 2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
        name, value = row.get("image", ""), row.get("abs_yaw_deg", "")
        if not name or not value:
            continue
        try:
            yaw = float(value)
        except ValueError:
            raise AnnotationError(f"{path}: line {lineno}: abs_yaw_deg {value[:20]!r} is not a number") from None
        if not math.isfinite(yaw):
            raise AnnotationError(f"{path}: line {lineno}: abs_yaw_deg is not finite")
        out[name] = abs(yaw)
    return out


def _find_yaw_csv(root: Path) -> Path | None:
    for cand in (root.parent / f"{root.name}_yaw.csv", root / "yaw.csv"):
        if cand.is_file():
            return cand
    return None


def _attach_yaw(samples: list[Sample], csv_path: Path) -> None:
    yaws = read_yaw_csv(csv_path)
    for s in samples:
        yaw = yaws.get(s.name, yaws.get(PurePosixPath(s.name).name))
        if yaw is not None:
            s.meta["yaw"] = yaw


# ------------------------------------------------------------------------------------------------- detection


def detect_format(path: str | os.PathLike) -> DatasetFormat:
    """Guess the layout of ``path`` (:class:`~lightmark.choices.DatasetFormat`).

    A folder with ``annot.pkl`` is "challenge"; else any ``*_ldmks.txt`` or ``*_ldmks_<scheme>.txt`` ->
    "facesynthetics", ``*.pts`` -> "pts", ``*.mat`` -> "aflw2000", images only -> "images". A single image file
    is "images", an ``annot.pkl`` file "challenge", a ``.txt`` file of WFLW lines "wflw". Only the folder's top
    level is inspected.

    Raises:
        DatasetError: missing path, empty folder, no images, or unknown file kind.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        if path.name == ANNOT_NAME:
            return DatasetFormat.CHALLENGE
        if _is_image(path):
            return DatasetFormat.IMAGES
        from .wflw import looks_like_wflw

        if looks_like_wflw(path):
            return DatasetFormat.WFLW
        raise DatasetError(f"{path}: not an image nor a dataset folder (unknown file kind {path.suffix!r})")
    if (path / ANNOT_NAME).is_file():
        return DatasetFormat.CHALLENGE
    files = _list_files(path, recursive=False)
    if not files:
        raise DatasetError(f"{path}: empty folder (no images)")
    names = [f.name.lower() for f in files]
    if any(n.endswith(_LDMKS_SUFFIX) or _LDMKS_SCHEME_RE.search(n) for n in names):
        return DatasetFormat.FACESYNTHETICS
    if any(n.endswith(".pts") for n in names):
        return DatasetFormat.PTS
    if any(n.endswith(".mat") for n in names):
        return DatasetFormat.AFLW2000
    if any(_is_image(f) for f in files):
        return DatasetFormat.IMAGES
    raise DatasetError(f"{path}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")


# --------------------------------------------------------------------------------------------------- loaders


_NUMBER = (int, float, np.number)


def _check_nesting(y: Any, where: str, expected: int = NUM_LANDMARKS) -> None:
    """Refuse landmarks that are not ``expected`` points of <= 3 numbers *before* numpy converts them: a pickle can
    share one sub-list many times, so a file of a few hundred bytes can describe a nested list of 10^10 numbers."""
    if isinstance(y, np.ndarray):
        if y.dtype.kind in "biuf":
            return
        raise AnnotationError(f"{where}: landmarks are not an array of numbers (dtype {y.dtype})")
    ok = isinstance(y, (list, tuple)) and len(y) == expected
    if ok:
        for p in y:
            if isinstance(p, np.ndarray):
                ok = p.size <= 3
            else:
                ok = isinstance(p, (list, tuple)) and len(p) <= 3 and all(isinstance(v, _NUMBER) for v in p)
            if not ok:
                break
    if not ok:
        n = len(y) if isinstance(y, (list, tuple)) else type(y).__name__
        raise AnnotationError(f"{where}: expected {expected} (x, y) points of numbers, got {n} entries")


def _load_challenge(root: Path, expected: int = NUM_LANDMARKS) -> list[Sample]:
    annot = root / ANNOT_NAME
    if not annot.is_file():
        raise DatasetError(f"{root}: no {ANNOT_NAME} (not a challenge folder)")
    obj = safe_load_pickle(annot)
    if isinstance(obj, dict) and "X" in obj and "Y" in obj:
        obj = (obj["X"], obj["Y"])
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise AnnotationError(f"{annot}: expected a pair (X names, Y landmarks), got {type(obj).__name__}")
    xs, ys = obj
    if not isinstance(xs, (list, tuple)) or not isinstance(ys, (list, tuple, np.ndarray)):
        raise AnnotationError(f"{annot}: X and Y should be lists, got {type(xs).__name__}, {type(ys).__name__}")
    if len(xs) != len(ys):
        raise AnnotationError(f"{annot}: X and Y have different lengths ({len(xs)} names, {len(ys)} landmark sets)")
    if not xs:
        raise DatasetError(f"{annot}: no samples (X is empty)")
    seen: set[str] = set()
    samples = []
    for i, (name, y) in enumerate(zip(xs, ys, strict=True)):
        if not isinstance(name, str) or not name:
            raise AnnotationError(f"{annot}: X[{i}] is not a file name ({type(name).__name__})")
        rel = PurePosixPath(name.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            raise AnnotationError(f"{annot}: X[{i}] {name!r} points outside the dataset folder")
        name = rel.as_posix()
        if name in seen:
            raise AnnotationError(f"{annot}: duplicate image name {name!r}")
        seen.add(name)
        where = f"{annot}: {name}"
        _check_nesting(y, where, expected)
        try:
            pts = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise AnnotationError(f"{where}: landmarks are not an array of numbers") from None
        pts = _check_points(pts, where, expected)
        image_path = root / name
        if not image_path.is_file():
            raise AnnotationError(f"{annot}: missing image file {name}")
        _check_bounds(pts, image_path, where)
        samples.append(Sample(name, image_path, pts, {}))
    return samples


_LABEL_FILES = {DatasetFormat.PTS: ".pts", DatasetFormat.AFLW2000: ".mat"}
"""The label file beside each image of the paired layouts other than FaceSynthetics'."""


def _load_paired(root: Path, fmt: DatasetFormat, recursive: bool, scheme: LandmarkScheme) -> list[Sample]:
    """Images paired with annotation files by relative stem (pts, facesynthetics, aflw2000)."""
    files = _list_files(root, recursive)
    ldmks = ldmks_suffix(scheme).lower()
    annots: dict[str, Path] = {}
    images: dict[str, list[Path]] = {}
    segs: dict[str, Path] = {}
    for p in files:
        low = p.name.lower()
        if fmt is DatasetFormat.FACESYNTHETICS and low.endswith(ldmks):
            annots[_stem_key(root, p, p.name[-len(ldmks) :])] = p
        elif fmt in _LABEL_FILES and low.endswith(_LABEL_FILES[fmt]):
            annots[_stem_key(root, p)] = p
        elif _is_image(p):
            key = _stem_key(root, p)
            if fmt is DatasetFormat.FACESYNTHETICS and key.endswith(_SEG_SUFFIX):
                segs[key[: -len(_SEG_SUFFIX)]] = p
                continue
            images.setdefault(key, []).append(p)
    if not images and not annots:
        raise DatasetError(f"{root}: no images found")
    order = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    for key, ann in annots.items():
        if key not in images:
            raise AnnotationError(f"{ann}: missing image file ({key}.jpg/.png/... not found beside it)")
    samples = []
    for key in sorted(images):
        # several images with one stem (a.jpg, a.png): the annotation goes to the first in IMAGE_EXTENSIONS
        cands = sorted(images[key], key=lambda p: order.get(p.suffix.lower(), len(order)))
        for j, image_path in enumerate(cands):
            sample = Sample(_rel(root, image_path), image_path, None, {})
            ann = annots.get(key) if j == 0 else None
            if ann is not None:
                if fmt is DatasetFormat.PTS:
                    sample.landmarks = read_pts(ann, scheme)
                elif fmt is DatasetFormat.FACESYNTHETICS:
                    sample.landmarks, pupils = read_ldmks(ann, scheme)
                    if pupils is not None:
                        sample.meta["pupils"] = pupils
                else:
                    sample.landmarks, yaw = read_aflw_mat(ann)
                    if yaw is not None:
                        sample.meta["yaw"] = yaw
                _check_bounds(sample.landmarks, image_path, str(ann))
            if fmt is DatasetFormat.FACESYNTHETICS and key in segs:
                sample.meta["seg_path"] = segs[key]
            samples.append(sample)
    return sorted(samples, key=lambda s: s.name)


def _load_folder_images(root: Path, recursive: bool) -> list[Sample]:
    samples = [Sample(_rel(root, p), p, None, {}) for p in _list_files(root, recursive) if _is_image(p)]
    if not samples:
        raise DatasetError(f"{root}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return samples


def load_images(paths: Iterable[str | os.PathLike]) -> FaceDataset:
    """An unlabelled "images" dataset from explicit image paths, kept in the given order.

    The root is the deepest common folder; names are relative to it.

    Raises:
        DatasetError: empty list, missing file, not an image extension, or a path given twice.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise DatasetError("no image paths given")
    for p in files:
        if not p.is_file():
            raise DatasetError(f"{p}: no such image file")
        if not _is_image(p):
            raise DatasetError(f"{p}: not an image file (extensions {', '.join(IMAGE_EXTENSIONS)})")
    resolved = [p.resolve() for p in files]
    root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    samples, seen = [], set()
    for p in resolved:
        name = _rel(root, p)
        if name in seen:
            raise DatasetError(f"{p}: image path given twice")
        seen.add(name)
        samples.append(Sample(name, p, None, {}))
    return FaceDataset(root, DatasetFormat.IMAGES, samples)


def _load_path(path: Path, format: DatasetFormat | str | None, recursive: bool, scheme: LandmarkScheme) -> FaceDataset:
    """The dataset at ``path`` (a folder or one file) in ``format`` (detected when None); see :func:`load_dataset`."""
    try:
        fmt = DatasetFormat.parse(format, "dataset format") if format is not None else detect_format(path)
    except ConfigError as e:
        raise DatasetError(f"{path}: {e}") from None
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if fmt is DatasetFormat.WFLW:
        from .wflw import load_wflw

        if not path.is_file():
            raise DatasetError(f"{path}: a 'wflw' dataset is a list file (list_98pt_rect_attr_*.txt)")
        return load_wflw(path, scheme=scheme)
    if fmt is DatasetFormat.AFLW2000 and scheme.num_points != NUM_LANDMARKS:
        raise DatasetError(
            f"{path}: AFLW2000-3D labels {NUM_LANDMARKS} points, scheme {scheme.name!r} has {scheme.num_points}"
        )
    root = path.parent if path.is_file() else path
    if path.is_file() and fmt is DatasetFormat.IMAGES:
        if not _is_image(path):
            raise DatasetError(f"{path}: not an image file")
        samples = [Sample(path.name, path, None, {})]
    elif path.is_file() and not (fmt is DatasetFormat.CHALLENGE and path.name == ANNOT_NAME):
        raise DatasetError(f"{path}: a '{fmt}' dataset must be a folder")
    elif fmt is DatasetFormat.CHALLENGE:
        samples = _load_challenge(root, scheme.num_points)
    elif fmt is DatasetFormat.IMAGES:
        samples = _load_folder_images(root, recursive)
    else:
        samples = _load_paired(root, fmt, recursive, scheme)
    samples.sort(key=lambda s: s.name)
    return FaceDataset(root, fmt, samples, scheme.name)


def load_dataset(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    format: DatasetFormat | str | None = None,
    *,
    require_landmarks: bool = False,
    yaw_csv: str | os.PathLike | None = None,
    recursive: bool = False,
    scheme: str | LandmarkScheme = DEFAULT_SCHEME,
) -> FaceDataset:
    """Load a dataset folder (or one image file, or a list of image paths) without decoding images.

    Args:
        path: folder, single image, ``annot.pkl``, a WFLW list file (its images found as
            :func:`lightmark.data.wflw.load_wflw` says), or a list of image paths (see :func:`load_images`).
        format: a :class:`~lightmark.choices.DatasetFormat` (or its value); detected with :func:`detect_format`
            when None.
        require_landmarks: raise unless every sample is labelled.
        yaw_csv: ``image,abs_yaw_deg`` CSV; by default ``<root>_yaw.csv`` beside the folder, then
            ``<root>/yaw.csv``, when present. Its values override yaws read from ``.mat`` files.
        recursive: also list sub-folders (pts, facesynthetics, aflw2000 and images formats).
        scheme: landmark scheme (name or object) of the labels to read: their point count is checked, and a
            FaceSynthetics-layout folder is read from its ``_ldmks_<scheme>.txt`` files (``_ldmks.txt`` for
            ``ibug68``). AFLW2000-3D labels 68 points only; WFLW 98, or 68 through its map.

    Raises:
        DatasetError: unknown/empty layout, or unlabelled samples with ``require_landmarks``.
        AnnotationError: malformed annotations (file named in the message).
        ImageError: an annotated image's header cannot be read.
    """
    s = get_scheme(scheme)
    if isinstance(path, (list, tuple)):
        if format not in (None, DatasetFormat.IMAGES):
            raise DatasetError(f"a list of paths is an 'images' dataset, not {format!r}")
        ds = load_images(path)
        ds.scheme = s.name
    else:
        ds = _load_path(Path(path), format, recursive, s)
    csv_path = Path(yaw_csv) if yaw_csv is not None else _find_yaw_csv(ds.root)
    if csv_path is not None:
        if not csv_path.is_file():
            raise DatasetError(f"{csv_path}: no such yaw CSV file")
        _attach_yaw(ds.samples, csv_path)
    if require_landmarks and not ds.has_landmarks:
        missing = [s.name for s in ds.samples if s.landmarks is None]
        where = f" of scheme {s.name!r}" if s.name != DEFAULT_SCHEME else ""
        paired = ds.format is DatasetFormat.FACESYNTHETICS
        hint = f" (this layout reads them from NNNNNN{ldmks_suffix(s)})" if paired else ""
        raise DatasetError(
            f"{ds.root}: {len(missing)} of {len(ds)} samples have no landmarks{where} (first: {missing[0]}); "
            f"format {ds.format!r}{hint}"
        )
    return ds


def read_name_lists(paths: Sequence[str | os.PathLike]) -> set[str]:
    """Image names listed in text files (one per line; blank lines and ``#`` comments skipped), such as
    ``splits/helen_holdout_170.txt``.

    Raises:
        ConfigError: a file cannot be read.
    """
    names: set[str] = set()
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"exclude list {path}: cannot read ({e.strerror or e})") from None
        names.update(ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))
    return names


def without(data: FaceDataset, names: set[str]) -> FaceDataset:
    """``data`` less the samples named in ``names`` (:func:`read_name_lists`), in the same order."""
    return FaceDataset(data.root, data.format, [s for s in data.samples if s.name not in names], data.scheme)
