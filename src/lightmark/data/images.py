"""Robust image reading and atomic writing.

:func:`read_image` always returns an ``HxWx3`` ``uint8`` **RGB** array or raises :class:`ImageError` with a
one-line message naming the file. The pixel count is checked from the header before anything is decoded.
Ordinary 8/16-bit JPEG and PNG files are decoded by OpenCV (fast); everything else (alpha, palette with
transparency, CMYK, EXIF-rotated photos, TIFF, WebP...) goes through Pillow.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import numpy as np

from ..constants import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS
from ..errors import ImageError, OutputError
from ..utils import atomic_write

__all__ = ["read_image", "image_size", "write_image"]

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # orientations that swap width and height
_CV2_PNG_MODES = ("RGB", "L", "P", "1", "I;16", "I;16B", "I;16L", "I")
_CV2_JPEG_MODES = ("RGB", "L")
_PIL_LIMIT_LOCK = threading.Lock()


def _open_header(path: Path, source, max_pixels: int | None):
    """Open ``source`` lazily with Pillow (header only) and check its pixel count against ``max_pixels``."""
    from PIL import Image, UnidentifiedImageError

    try:
        try:
            im = Image.open(source)  # Pillow warns (DecompressionBombWarning) above its own limit: no filter is set
        except Image.DecompressionBombError:
            # Pillow refuses even to parse the header above twice its limit: reopen with the limit lifted for this
            # header read only (pixels are never decoded here; the lock keeps lightmark's own readers from
            # restoring it out of order), then apply ``max_pixels`` below, which names the size
            source.seek(0)
            with _PIL_LIMIT_LOCK:
                saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
                try:
                    im = Image.open(source)
                finally:
                    Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (unrecognised format)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: cannot read image header ({e})") from None
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{path}: image has an empty size {w}x{h}")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(f"{path}: image too large ({w}x{h} = {w * h} pixels > {max_pixels})")
    return im


def _orientation(im) -> int:
    """EXIF orientation tag (1 = upright) without decoding pixels."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1  # Pillow's PNG getexif() would decode the image to look for an eXIf chunk after the pixels
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block must not make a readable image unreadable
        return 1


def _check_path(path: Path) -> None:
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(width, height)`` read from the header only, after EXIF orientation (as :func:`read_image`).

    Raises:
        ImageError: missing, empty or unrecognised file.
    """
    path = Path(path)
    _check_path(path)
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ImageError(f"{path}: cannot open ({e.strerror or e})") from None
    with f:
        im = _open_header(path, f, None)
        w, h = im.size
        if _orientation(im) in _TRANSPOSED_ORIENTATIONS:
            w, h = h, w
        return int(w), int(h)


def _jpeg_complete(buf: bytes) -> bool:
    """True when the JPEG's last start-of-scan marker is followed by an end-of-image marker.

    Entropy-coded data never contains ``FFD9``/``FFDA`` (0xFF is stuffed as ``FF00``), so a truncated file has
    no EOI after its last SOS (an EXIF thumbnail's EOI comes before the main image's scans).
    """
    return buf.rfind(b"\xff\xd9") > buf.rfind(b"\xff\xda") >= 0


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale 16-bit (or 32-bit int / float) pixel values to 8 bit."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float64))
        scale = 255.0 if a.size and a.max() <= 1.0 else 1.0
        return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    a = np.clip(a.astype(np.int64), 0, 65535)
    return ((a * 255 + 32767) // 65535).astype(np.uint8)  # 16-bit -> 8-bit with rounding (x / 257)


def _gray_to_rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[:, :, None], 3, axis=2)


def _decode_cv2(path: Path, data: np.ndarray, fmt: str) -> np.ndarray:
    import cv2

    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    if fmt == "PNG":
        flags |= cv2.IMREAD_ANYDEPTH
    img = cv2.imdecode(data, flags)
    if img is None:
        raise ImageError(f"{path}: truncated or corrupt {fmt} data")
    if img.ndim == 2:
        img = _gray_to_rgb(img)
    return np.ascontiguousarray(_to_uint8(img))


def _decode_pil(path: Path, im) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        im.load()
        if _orientation(im) != 1:
            im = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image too large (decompression-bomb guard of Pillow)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{path}: truncated or corrupt image data ({e})") from None

    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")
    mode = im.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
        rgb = (rgba[:, :, :3] * rgba[:, :, 3:4] + 127) // 255  # composite on black
        return np.ascontiguousarray(rgb.astype(np.uint8))
    if mode in ("L", "1") or mode.startswith("I") or mode == "F":
        return np.ascontiguousarray(_gray_to_rgb(_to_uint8(np.asarray(im))))
    try:  # CMYK, YCbCr, LAB, HSV, RGBX...
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
    except (OSError, ValueError) as e:
        raise ImageError(f"{path}: unsupported image mode {mode!r} ({e})") from None


def read_image(path: str | os.PathLike, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image as an ``HxWx3`` ``uint8`` RGB array.

    Grey, grey+alpha, RGBA (composited on black), palette, CMYK and 16-bit images are converted; the EXIF
    orientation is applied. Images above ``max_pixels`` pixels (None: no limit) are refused before decoding.

    Raises:
        ImageError: missing, empty, not an image, truncated/corrupt, or too large.
    """
    path = Path(path)
    _check_path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # numpy I/O: works with non-ASCII paths on every OS
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")

    buf = data.tobytes()
    im = _open_header(path, io.BytesIO(buf), max_pixels)
    fmt = im.format or "?"
    if fmt == "JPEG" and not _jpeg_complete(buf):
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker after the last scan)")
    fast = (fmt == "JPEG" and im.mode in _CV2_JPEG_MODES) or (
        fmt == "PNG" and im.mode in _CV2_PNG_MODES and "transparency" not in im.info
    )
    if fast and _orientation(im) == 1:
        img = _decode_cv2(path, data, fmt)
        if img.shape[1] != im.size[0] or img.shape[0] != im.size[1]:
            raise ImageError(f"{path}: decoded size {img.shape[1]}x{img.shape[0]} differs from the header")
        return img
    return _decode_pil(path, im)


def write_image(path: str | os.PathLike, rgb: np.ndarray, *, quality: int = 95) -> None:
    """Write an ``HxWx3`` (or ``HxW`` grey) ``uint8`` RGB array atomically, encoded by the file extension.

    Raises:
        ImageError: the array is not an 8-bit grey or RGB image.
        OutputError: unsupported extension, encoding failure, or the path cannot be written.
    """
    import cv2

    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)) or rgb.size == 0:
        raise ImageError(f"{path}: expected a non-empty HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:  # what the readers list is what the writer writes
        raise OutputError(f"{path}: unsupported image extension {ext or '(none)'!r}")
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    bgr = rgb if rgb.ndim == 2 else np.ascontiguousarray(rgb[:, :, ::-1])
    try:
        ok, buf = cv2.imencode(ext, bgr, params)
    except cv2.error as e:
        raise OutputError(f"{path}: cannot encode image ({str(e).strip().splitlines()[-1]})") from None
    if not ok:
        raise OutputError(f"{path}: cannot encode image as {ext}")
    with atomic_write(path, "wb") as f:
        f.write(buf.tobytes())
