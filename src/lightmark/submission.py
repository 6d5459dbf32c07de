"""The challenge's submission format: ``solution.txt`` with one row per image, ``name x1 y1 ... x68 y68``."""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .constants import IMAGE_EXTENSIONS, NUM_LANDMARKS
from .errors import SubmissionError
from .utils import atomic_save_bytes, atomic_write

FIELDS_PER_ROW = 1 + 2 * NUM_LANDMARKS  # 137


def format_row(name: str, points: np.ndarray) -> str:
    """``name x1 y1 ... x68 y68`` with three decimals and single spaces."""
    if any(c.isspace() for c in name):
        raise SubmissionError(f"image name {name!r} contains white space and cannot be written as one field")
    return " ".join([name, *(f"{v:.3f}" for v in np.asarray(points, np.float64).reshape(-1))])


def write_submission(
    path: str | os.PathLike,
    names: Sequence[str],
    landmarks: np.ndarray,
    zip_path: str | os.PathLike | None = None,
) -> None:
    """Write ``solution.txt`` (and optionally a zip holding it at its top level), each atomically."""
    landmarks = np.asarray(landmarks)
    if landmarks.shape != (len(names), NUM_LANDMARKS, 2):
        raise SubmissionError(f"expected landmarks of shape ({len(names)}, {NUM_LANDMARKS}, 2), got {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise SubmissionError("refusing to write non-finite landmark coordinates")
    text = "".join(format_row(n, p) + "\n" for n, p in zip(names, landmarks, strict=True))
    with atomic_write(path) as f:
        f.write(text)
    if zip_path is not None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("solution.txt", text)
        atomic_save_bytes(zip_path, buf.getvalue())


@dataclass
class SubmissionReport:
    rows: int
    images: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def read_submission(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Parse ``solution.txt`` (or a zip holding it) into names and (N, 68, 2) landmarks; raise on any bad row."""
    report, names, pts = _parse(Path(path))
    if report:
        raise SubmissionError(
            f"{path}: {report[0]}" + (f" (+{len(report) - 1} more problems)" if len(report) > 1 else "")
        )
    return names, pts


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                if "solution.txt" not in z.namelist():
                    raise SubmissionError(f"{path}: the zip has no solution.txt at its top level")
                data = z.read("solution.txt")
        else:
            data = path.read_bytes()
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise SubmissionError(f"{path}: corrupt zip file ({e})") from None  # RuntimeError: encrypted member
    except OSError as e:
        raise SubmissionError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionError(f"{path}: not UTF-8 text") from None


def _parse(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    problems: list[str] = []
    names: list[str] = []
    rows: list[list[float]] = []
    for i, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            problems.append(f"line {i}: empty line")
            continue
        parts = line.split(" ")
        if len(parts) != FIELDS_PER_ROW:
            problems.append(f"line {i}: {len(parts)} fields, expected {FIELDS_PER_ROW} separated by single spaces")
            continue
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            problems.append(f"line {i}: a coordinate is not a number")
            continue
        if not all(math.isfinite(v) for v in vals):
            problems.append(f"line {i}: non-finite coordinate")
            continue
        names.append(parts[0])
        rows.append(vals)
    pts = np.asarray(rows, np.float64).reshape(-1, NUM_LANDMARKS, 2)
    return problems, names, pts


def _far_outside(image: Path, points: np.ndarray) -> bool | None:
    """Points beyond [-W, 2W] x [-H, 2H] of the image (read from its header only); None: the header is unreadable."""
    from .data.images import image_size
    from .errors import ImageError

    try:
        w, h = image_size(image)
    except ImageError:
        return None
    x, y = points[:, 0], points[:, 1]
    return bool((x < -w).any() or (x > 2 * w).any() or (y < -h).any() or (y > 2 * h).any())


def check_submission(path: str | os.PathLike, images: str | os.PathLike | None = None) -> SubmissionReport:
    """Validate a submission: 137 fields per row, finite numbers, unique names, and - given the image folder -
    exactly one row per image, names matching, points within one image size of the image (headers only)."""
    path = Path(path)
    problems, names, pts = _parse(path)
    seen: set[str] = set()
    for n in names:
        if n in seen:
            problems.append(f"duplicate row for {n}")
        seen.add(n)
    n_images = 0
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise SubmissionError(f"{folder}: image folder not found")
        files = {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
        n_images = len(files)
        missing = sorted(files - seen)
        extra = sorted(seen - files)
        if missing:
            problems.append(f"{len(missing)} images have no row (first: {missing[0]})")
        if extra:
            problems.append(f"{len(extra)} rows name no image in {folder} (first: {extra[0]})")
        far = {n: _far_outside(folder / n, p) for n, p in zip(names, pts, strict=True) if n in files}
        outside = [n for n, v in far.items() if v]
        if outside:
            problems.append(
                f"{len(outside)} rows have points more than one image size outside their image (first: {outside[0]})"
            )
        unreadable = [n for n, v in far.items() if v is None]
        if unreadable:
            problems.append(f"{len(unreadable)} images are unreadable, their points unchecked (first: {unreadable[0]})")
    return SubmissionReport(rows=len(names), images=n_images, problems=problems)
