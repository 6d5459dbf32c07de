"""WFLW's release format: ``list_98pt_rect_attr_train.txt`` / ``list_98pt_rect_attr_test.txt``.

One face per line, space-separated: 196 coordinates ``x0 y0 ... x97 y97`` (the ``wflw98`` scheme), the face box
``x_min y_min x_max y_max``, six 0/1 attribute flags (pose, expression, illumination, make-up, occlusion, blur; the
test subsets of the WFLW paper) and the image path relative to the ``WFLW_images`` folder. An image with several faces
has one line per face. Coordinates are taken as stored (0-based pixels, as HRNet, PIPNet and mmpose read them).

>>> records = read_wflw("WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt")
>>> large_pose = subset(records, "pose")
>>> dataset = load_wflw(list_file)            # a FaceDataset: `lightmark evaluate --data list_...txt` reads it
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import overload

import numpy as np

from ..choices import DatasetFormat
from ..errors import AnnotationError, DatasetError
from ..schemes import LandmarkScheme, get_scheme
from ..utils import atomic_write
from .formats import FaceDataset, Sample, _check_bounds

__all__ = [
    "WFLW_ATTRIBUTES",
    "WFLW_DECIMALS",
    "WflwRecord",
    "read_wflw",
    "write_wflw",
    "format_wflw_line",
    "looks_like_wflw",
    "find_images_root",
    "load_wflw",
    "subset",
    "subset_masks",
]

WFLW_ATTRIBUTES: tuple[str, ...] = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")
"""The six attribute flags of a line, in file order (WFLW's test subsets)."""

WFLW_DECIMALS = 6
"""Decimals of the coordinates :func:`write_wflw` writes (the released files have 6)."""

_POINTS = 98
_NUMBERS = 2 * _POINTS + 4 + len(WFLW_ATTRIBUTES)  # 206 numbers, then the image path
_IMAGES_FOLDER = "WFLW_images"


@dataclass(eq=False)
class WflwRecord:
    """One line of a WFLW list: one face."""

    landmarks: np.ndarray
    """``(98, 2)`` float64 ``(x, y)`` pixel coordinates (``wflw98`` scheme)."""
    box: tuple[float, float, float, float]
    """``(x_min, y_min, x_max, y_max)`` face box in pixels."""
    attributes: tuple[bool, ...]
    """Six flags in :data:`WFLW_ATTRIBUTES` order."""
    image: str
    """Image path relative to the images folder, POSIX separators (``"51--Dresses/51_Dresses_....jpg"``)."""
    image_path: Path | None = None
    """The image file, when :func:`read_wflw` was given the images folder."""

    def __post_init__(self) -> None:
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64)
        if self.landmarks.shape != (_POINTS, 2):
            raise AnnotationError(f"{self.image}: expected {_POINTS} (x, y) points, got {self.landmarks.shape}")
        self.box = tuple(float(v) for v in self.box)
        self.attributes = tuple(bool(v) for v in self.attributes)
        if len(self.box) != 4 or len(self.attributes) != len(WFLW_ATTRIBUTES):
            raise AnnotationError(f"{self.image}: a record needs 4 box values and {len(WFLW_ATTRIBUTES)} flags")

    def has(self, attribute: str) -> bool:
        """Whether the face carries ``attribute`` (a name of :data:`WFLW_ATTRIBUTES`)."""
        return self.attributes[_attribute_index(attribute)]


def _attribute_index(attribute: str) -> int:
    try:
        return WFLW_ATTRIBUTES.index(attribute)
    except ValueError:
        raise DatasetError(f"unknown WFLW attribute {attribute!r}; known: {', '.join(WFLW_ATTRIBUTES)}") from None


def _parse_line(line: str, where: str) -> WflwRecord:
    """One list line -> :class:`WflwRecord` (``where``: file and line number for errors)."""
    parts = line.strip().split(maxsplit=_NUMBERS)
    if len(parts) != _NUMBERS + 1:
        raise AnnotationError(f"{where}: expected {_NUMBERS} numbers and an image path, got {len(parts)} fields")
    try:
        values = np.array([float(v) for v in parts[:_NUMBERS]], dtype=np.float64)
    except ValueError:
        raise AnnotationError(f"{where}: a coordinate, box value or flag is not a number") from None
    if not np.all(np.isfinite(values)):
        raise AnnotationError(f"{where}: landmarks or box contain NaN or inf")
    flags = values[2 * _POINTS + 4 :]
    if not np.all((flags == 0) | (flags == 1)):
        raise AnnotationError(f"{where}: attribute flags must be 0 or 1, got {flags.astype(int).tolist()}")
    image = parts[_NUMBERS].strip().replace("\\", "/")
    rel = PurePosixPath(image)
    if rel.is_absolute() or ".." in rel.parts:
        raise AnnotationError(f"{where}: image path {image!r} points outside the images folder")
    box = values[2 * _POINTS : 2 * _POINTS + 4]
    return WflwRecord(values[: 2 * _POINTS].reshape(_POINTS, 2), tuple(box), tuple(flags == 1), rel.as_posix())


def read_wflw(list_file: str | os.PathLike, images_root: str | os.PathLike | None = None) -> list[WflwRecord]:
    """Read a WFLW list file (blank lines skipped).

    Args:
        list_file: ``list_98pt_rect_attr_{train,test}.txt`` (or any file of such lines).
        images_root: the images folder; when given, every record's ``image_path`` is set (not checked here).

    Returns:
        One :class:`WflwRecord` per line, in file order.

    Raises:
        AnnotationError: unreadable file or a malformed line (file and line number in the message).
    """
    path = Path(list_file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    records = [_parse_line(line, f"{path}: line {n}") for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if images_root is not None:
        root = Path(images_root)
        for r in records:
            r.image_path = root / r.image
    return records


def _number(v: float) -> str:
    """A box value: integers as integers (as released), others with :data:`WFLW_DECIMALS` decimals."""
    return str(int(v)) if float(v).is_integer() else f"{v:.{WFLW_DECIMALS}f}"


def format_wflw_line(record: WflwRecord) -> str:
    """One list line (no newline): coordinates with :data:`WFLW_DECIMALS` decimals, box, flags, image path."""
    pts = record.landmarks
    if not np.all(np.isfinite(pts)) or not all(np.isfinite(record.box)):
        raise AnnotationError(f"{record.image}: landmarks or box contain NaN or inf")
    if not record.image or "\n" in record.image:
        raise AnnotationError(f"bad WFLW image path {record.image!r}")
    coords = " ".join(f"{v:.{WFLW_DECIMALS}f}" for v in pts.reshape(-1))
    box = " ".join(_number(v) for v in record.box)
    flags = " ".join("1" if f else "0" for f in record.attributes)
    return f"{coords} {box} {flags} {record.image}"


def write_wflw(records: Iterable[WflwRecord], list_file: str | os.PathLike) -> None:
    """Write records as a WFLW list file, one line each, atomically (inverse of :func:`read_wflw` up to the
    written precision, :data:`WFLW_DECIMALS` decimals)."""
    text = "".join(format_wflw_line(r) + "\n" for r in records)
    with atomic_write(list_file) as f:
        f.write(text)


def looks_like_wflw(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``.txt`` file whose first non-blank line parses as a WFLW line."""
    path = Path(path)
    if path.suffix.lower() != ".txt" or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            line = next((ln for ln in f if ln.strip()), "")
        _parse_line(line, str(path))
    except (OSError, AnnotationError):
        return False
    return True


def find_images_root(list_file: str | os.PathLike, image: str) -> Path:
    """The folder that holds the list's images: the first of the list's folder and its three parents, each
    itself or its ``WFLW_images`` sub-folder, in which ``image`` (a relative path of the list) exists.

    Raises:
        DatasetError: no such folder.
    """
    start = Path(list_file).resolve().parent
    for folder in [start, *list(start.parents)[:3]]:
        for cand in (folder, folder / _IMAGES_FOLDER):
            if (cand / image).is_file():
                return cand
    raise DatasetError(
        f"{list_file}: cannot find the images (looked for {image} beside the list, in its parents and their "
        f"{_IMAGES_FOLDER} folders); pass images_root"
    )


def load_wflw(
    list_file: str | os.PathLike,
    images_root: str | os.PathLike | None = None,
    scheme: str | LandmarkScheme = "wflw98_2d",
) -> FaceDataset:
    """A WFLW list as a :class:`~lightmark.data.formats.FaceDataset` (format ``"wflw"``), one sample per face.

    Args:
        list_file: the list file.
        images_root: the images folder (default: found by :func:`find_images_root`); the dataset's root.
        scheme: ``wflw98_2d`` (the 98 points as WFLW labels them: jaw on the visible outline; ``wflw98``, the same
            layout with a 3D jaw, reads them too), or any 68-point scheme: the points mapped by ``to_ibug68`` (the
            2D convention of ``ibug68_2d``).

    Sample names are the image paths; the faces of an image that holds several are named ``stem#k.ext``
    (k = 0, 1... in file order). ``meta`` holds ``"box"`` ((4,) float32) and ``"attributes"`` (name -> bool).

    Raises:
        AnnotationError: a malformed line, a missing image, points far outside their image.
        DatasetError: no faces, images not found, a scheme that is neither 98 nor 68 points.
    """
    s, wflw = get_scheme(scheme), get_scheme("wflw98")
    if s.num_points not in (wflw.num_points, 68):
        raise DatasetError(f"{list_file}: WFLW labels 98 points (or 68 through its map), not {s.name}'s")
    records = read_wflw(list_file)
    if not records:
        raise DatasetError(f"{list_file}: no faces")
    root = Path(images_root) if images_root is not None else find_images_root(list_file, records[0].image)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.image] = counts.get(r.image, 0) + 1
    seen: dict[str, int] = {}
    samples = []
    for n, r in enumerate(records, 1):
        image_path = root / r.image
        if not image_path.is_file():
            raise AnnotationError(f"{list_file}: line {n}: missing image file {r.image}")
        pts = r.landmarks if s.num_points == wflw.num_points else wflw.as_ibug68(r.landmarks)
        pts = pts.astype(np.float32)
        _check_bounds(pts, image_path, f"{list_file}: line {n}")
        name = r.image
        if counts[r.image] > 1:
            k = seen[r.image] = seen.get(r.image, -1) + 1
            p = PurePosixPath(r.image)
            name = str(p.with_name(f"{p.stem}#{k}{p.suffix}"))
        meta = {
            "box": np.asarray(r.box, np.float32),
            "attributes": dict(zip(WFLW_ATTRIBUTES, r.attributes, strict=True)),
        }
        samples.append(Sample(name, image_path, pts, meta))
    return FaceDataset(root, DatasetFormat.WFLW, samples, s.name)


@overload
def subset(records: Sequence[WflwRecord], attribute: str) -> list[WflwRecord]: ...
@overload
def subset(records: FaceDataset, attribute: str) -> FaceDataset: ...
def subset(records: Sequence[WflwRecord] | FaceDataset, attribute: str) -> list[WflwRecord] | FaceDataset:
    """The faces that carry ``attribute`` (``"pose"``, ``"expression"``, ``"illumination"``, ``"make_up"``,
    ``"occlusion"``, ``"blur"``): a list of records, or a ``FaceDataset`` for one from :func:`load_wflw`.

    Raises:
        DatasetError: unknown attribute, or a dataset whose samples carry no WFLW attributes.
    """
    mask = subset_masks(records)[WFLW_ATTRIBUTES[_attribute_index(attribute)]]
    if isinstance(records, FaceDataset):
        kept = [s for s, keep in zip(records, mask, strict=True) if keep]
        return FaceDataset(records.root, records.format, kept, records.scheme)
    return [r for r, keep in zip(records, mask, strict=True) if keep]


def subset_masks(records: Sequence[WflwRecord] | FaceDataset) -> dict[str, np.ndarray]:
    """``{attribute: (N,) bool}`` for every name of :data:`WFLW_ATTRIBUTES`, from records or a WFLW
    ``FaceDataset`` (e.g. for per-subset NME: ``nmes[masks["pose"]].mean()``).

    Raises:
        DatasetError: a sample without WFLW attributes.
    """
    rows = []
    for r in records:
        if isinstance(r, WflwRecord):
            rows.append(r.attributes)
        elif isinstance(getattr(r, "meta", None), dict) and "attributes" in r.meta:
            rows.append(tuple(bool(r.meta["attributes"].get(a, False)) for a in WFLW_ATTRIBUTES))
        else:
            raise DatasetError(f"{getattr(r, 'name', r)!r} carries no WFLW attributes")
    flags = np.asarray(rows, dtype=bool).reshape(-1, len(WFLW_ATTRIBUTES))
    return {a: flags[:, i] for i, a in enumerate(WFLW_ATTRIBUTES)}
