"""Bad input never crashes: odd-but-valid images are converted and predicted; broken files, bad annotations,
crafted pickles/checkpoints, unwritable outputs and impossible options give a one-line CLI error (exit code 2)
naming the file and the problem, and nothing is written. (The readers' own error messages are tested in
test_images.py, test_formats.py, test_safe_pickle.py and test_models.py; this file covers what those do not,
and the behaviour end to end through the CLI.)"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import pickle
import re
import struct
import subprocess
import sys
import typing
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from lightmark.cli import command_parsers, main
from lightmark.constants import MAX_IMAGE_PIXELS, NUM_LANDMARKS
from lightmark.data import load_dataset, read_image, write_image, write_ldmks, write_pts
from lightmark.data.images import image_size
from lightmark.engine.predict import Predictor
from lightmark.errors import AnnotationError, ConfigError, ImageError, OutputError, UnsafeFileError
from lightmark.models import create_model, save_checkpoint
from lightmark.submission import check_submission, read_submission

MODEL = "shufflenetv2_x0_5_heatmap"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: one torch thread is fastest, and does not fight other jobs for the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained 64-px model checkpoint: enough to run the whole prediction path."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, create_model(MODEL, input_size=64))
    return path


@pytest.fixture(scope="module")
def predictor(tiny_model: Path) -> Predictor:
    return Predictor(tiny_model)


def _fails(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI expecting exit code 2 and exactly one stderr line ``lightmark CMD: error: ...``."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"lightmark {argv[0]}: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _pattern(h: int, w: int) -> np.ndarray:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (220, 40, 30)
    a[:, w // 2 :] = (30, 60, 230)
    return a


def _jpeg(h: int = 48, w: int = 40, seed: int = 0) -> bytes:
    a = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    return cv2.imencode(".jpg", a)[1].tobytes()


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small valid JPEG whose start-of-frame header is patched to claim ``width`` x ``height``."""
    data = bytearray(_jpeg(16, 16))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# ------------------------------------------------------------------------------ odd but valid images: predict


def _save_pil(path: Path, im: Image.Image, **kw) -> None:
    im.save(path, **kw)


def _odd_images() -> dict[str, tuple]:
    """name -> (writer(path), (height, width) after decoding)."""

    def grey16(p):
        _save_pil(p, Image.fromarray((np.arange(30 * 20).reshape(30, 20) * 100).astype(np.uint16)))

    def rgb16(p):
        cv2.imwrite(str(p), (_pattern(30, 20).astype(np.uint16) * 257)[..., ::-1])

    def exif(p):
        e = Image.Exif()
        e[0x0112] = 6  # stored 40 wide x 20 high, displayed rotated: 20 wide x 40 high
        _save_pil(p, Image.fromarray(_pattern(20, 40)), exif=e.tobytes(), quality=95)

    def palette_t(p):
        pal = Image.fromarray(_pattern(30, 20)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        _save_pil(p, pal, transparency=int(np.asarray(pal)[0, 0]))

    return {
        "grey16.png": (grey16, (30, 20)),
        "rgb16.png": (rgb16, (30, 20)),
        "grey.png": (lambda p: _save_pil(p, Image.fromarray(np.full((30, 20), 90, np.uint8), "L")), (30, 20)),
        "grey.jpg": (lambda p: _save_pil(p, Image.fromarray(np.full((30, 20), 90, np.uint8), "L")), (30, 20)),
        "bilevel.png": (lambda p: _save_pil(p, Image.fromarray(_pattern(30, 20)).convert("1")), (30, 20)),
        "rgba.png": (lambda p: _save_pil(p, Image.fromarray(_pattern(30, 20)).convert("RGBA")), (30, 20)),
        "la.png": (lambda p: _save_pil(p, Image.fromarray(_pattern(30, 20)).convert("LA")), (30, 20)),
        "palette.png": (lambda p: _save_pil(p, Image.fromarray(_pattern(30, 20)).convert("P")), (30, 20)),
        "palette_transparent.png": (palette_t, (30, 20)),
        "cmyk.jpg": (lambda p: _save_pil(p, Image.fromarray(_pattern(30, 20)).convert("CMYK")), (30, 20)),
        "exif_rotated.jpg": (exif, (40, 20)),
        "tiny_8x8.png": (lambda p: write_image(p, _pattern(8, 8)), (8, 8)),
        "tall.tif": (lambda p: write_image(p, _pattern(70, 9)), (70, 9)),
        "photo.webp": (lambda p: write_image(p, _pattern(30, 20)), (30, 20)),
        "photo.bmp": (lambda p: write_image(p, _pattern(30, 20)), (30, 20)),
    }


ODD = _odd_images()


@pytest.mark.parametrize("name", list(ODD))
def test_odd_valid_image_is_converted_and_predicted(tmp_path: Path, predictor: Predictor, name: str) -> None:
    writer, (h, w) = ODD[name]
    path = tmp_path / name
    writer(path)
    img = read_image(path)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert image_size(path) == (w, h)
    pts = predictor.predict(path)
    assert pts.shape == (NUM_LANDMARKS, 2) and np.isfinite(pts).all()
    # the model's crop covers the whole (padded) image: predictions stay within it
    side = max(w, h)
    assert (pts > -side).all() and (pts < 2 * side).all()


def test_cli_predicts_a_folder_of_odd_images_with_non_ascii_names(tmp_path: Path, tiny_model: Path, capsys) -> None:
    folder = tmp_path / "visages"
    folder.mkdir()
    for i, (name, (writer, _)) in enumerate(ODD.items()):
        writer(folder / (f"ü_é_日本_{i}_" + name if i % 2 else name))
    out, js = tmp_path / "sortie" / "solution.txt", tmp_path / "pred.json"
    argv = ["predict", str(folder), "--model", str(tiny_model), "--out", str(out), "--json", str(js), "--quiet"]
    assert main(argv) == 0
    names, pts = read_submission(out)
    assert sorted(names) == sorted(p.name for p in folder.iterdir()) and len(names) == len(ODD)
    assert any("日本" in n for n in names) and np.isfinite(pts).all()
    assert check_submission(out, folder).ok
    row = next(line for line in out.read_text(encoding="utf-8").splitlines() if "ü_é_日本_1_" in line)
    assert row.startswith("ü_é_日本_1_rgb16.png ") and len(row.split(" ")) == 1 + 2 * NUM_LANDMARKS


def test_pixel_limit_boundary_and_enormous_headers(tmp_path: Path, tiny_model: Path, capsys, monkeypatch) -> None:
    """Refused from the header alone: a 60000x60000 JPEG or 30000x30000 PNG would need gigabytes to decode."""
    p = tmp_path / "ok.png"
    write_image(p, _pattern(10, 10))
    assert read_image(p, max_pixels=100).shape == (10, 10, 3)  # the limit itself is allowed
    with pytest.raises(ImageError, match=r"ok\.png: image too large \(10x10 = 100 pixels > 99\)"):
        read_image(p, max_pixels=99)
    assert MAX_IMAGE_PIXELS == 100_000_000  # documented in docs/robustness.md
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "huge.jpg").write_bytes(_jpeg_claiming(60_000, 60_000))
    import cv2
    from PIL import Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    with monkeypatch.context() as m:  # refused from the header: neither OpenCV nor Pillow decodes a pixel
        m.setattr(cv2, "imdecode", no_decoding)
        m.setattr(Image.Image, "load", no_decoding)
        with pytest.raises(ImageError, match=r"huge\.jpg: image too large \(60000x60000"):
            read_image(folder / "huge.jpg")
    (folder / "huge.jpg").unlink()
    (folder / "huge.png").write_bytes(_png_claiming(30_000, 30_000))
    out = tmp_path / "s.txt"
    _fails(capsys, ["predict", str(folder), "--model", str(tiny_model), "--out", str(out), "--quiet"],
           "huge.png", "image too large")  # fmt: skip
    assert not out.exists()


# ------------------------------------------------------------------------------------- broken images: CLI


def _not_an_image(f: Path) -> Path:
    (f / "notes.jpg").write_text("I am a text file with a .jpg name\n")
    return f / "notes.jpg"


def _empty(f: Path) -> Path:
    (f / "empty.jpg").write_bytes(b"")
    return f / "empty.jpg"


def _truncated_jpeg(f: Path) -> Path:
    data = _jpeg()
    (f / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])  # cut in the middle of the scan
    return f / "cut.jpg"


def _truncated_png(f: Path) -> Path:
    data = cv2.imencode(".png", (np.random.default_rng(1).random((40, 40, 3)) * 255).astype(np.uint8))[1]
    (f / "cut.png").write_bytes(data.tobytes()[: len(data) // 2])
    return f / "cut.png"


def _wrong_extension_html(f: Path) -> Path:
    (f / "page.png").write_bytes(b"<html><body>404 not found</body></html>")
    return f / "page.png"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_not_an_image, "not an image"),
        (_empty, "empty file (0 bytes)"),
        (_truncated_jpeg, "truncated JPEG"),
        (_truncated_png, "truncated"),
        (_wrong_extension_html, "not an image"),
    ],
)
def test_cli_broken_image_is_one_line_error(tmp_path: Path, tiny_model: Path, capsys, make, problem: str) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(_jpeg())
    bad = make(folder)
    out = tmp_path / "solution.txt"
    line = _fails(capsys, ["predict", str(folder), "--model", str(tiny_model), "--out", str(out), "--quiet"], problem)
    assert str(bad) in line
    assert not out.exists()
    _fails(capsys, ["predict", str(bad), "--model", str(tiny_model), "--out", str(out), "--quiet"], bad.name)


def test_cli_folder_without_images(tmp_path: Path, tiny_model: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no images here")
    out = str(tmp_path / "s.txt")
    _fails(capsys, ["predict", str(tmp_path / "empty"), "--model", str(tiny_model), "--out", out], "empty folder")
    _fails(capsys, ["predict", str(tmp_path / "docs"), "--model", str(tiny_model), "--out", out], "no images found")
    _fails(capsys, ["evaluate", "--data", str(tmp_path / "docs"), "--model", str(tiny_model)], "no images found")
    assert not Path(out).exists()


# --------------------------------------------------------------------- batch prediction: fail fast / --skip-bad


@pytest.fixture
def batch_with_one_broken(tmp_path: Path) -> Path:
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(4):
        (folder / f"face{i}.jpg").write_bytes(_jpeg(seed=i))
    data = _jpeg(seed=2)
    (folder / "face2.jpg").write_bytes(data[: len(data) * 2 // 3])  # truncated, between good ones
    return folder


def test_batch_fails_before_writing_anything(batch_with_one_broken: Path, tiny_model: Path, tmp_path: Path,
                                             capsys) -> None:  # fmt: skip
    """A real process: stderr is exactly one line naming the file (no traceback, no C-library noise)."""
    out = tmp_path / "out"
    argv = [
        "predict", str(batch_with_one_broken), "--model", str(tiny_model),
        "--out", str(out / "solution.txt"), "--zip", str(out / "sub.zip"), "--json", str(out / "p.json"),
    ]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "lightmark.cli", *argv, "--quiet"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightmark predict: error: "), proc.stderr
    assert lines[0].endswith("face2.jpg: truncated JPEG (no end-of-image marker after the last scan)"), lines
    assert str(batch_with_one_broken / "face2.jpg") in lines[0]
    # with the progress bar on, the error is still one whole line at the end
    assert main(argv) == 2
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    assert err[-1] == lines[0] and "Traceback" not in "".join(err)
    assert not out.exists()


def test_batch_skip_bad_predicts_the_rest(batch_with_one_broken: Path, tiny_model: Path, tmp_path: Path, capsys):
    out, js = tmp_path / "solution.txt", tmp_path / "p.json"
    argv = ["predict", str(batch_with_one_broken), "--model", str(tiny_model), "--out", str(out), "--quiet"]
    assert main([*argv, "--json", str(js), "--skip-bad", "--batch-size", "2"]) == 0
    err = [e for e in capsys.readouterr().err.strip().splitlines() if not e.startswith("warning: ")]  # drawn faces
    assert len(err) == 1 and err[0].startswith("skipped face2.jpg: ") and "truncated JPEG" in err[0]
    names, pts = read_submission(out)
    assert names == ["face0.jpg", "face1.jpg", "face3.jpg"] and pts.shape == (3, NUM_LANDMARKS, 2)
    import json

    assert [s[0] for s in json.loads(js.read_text())["skipped"]] == ["face2.jpg"]
    # the API: raises on the first bad image by default, lists it with skip_bad
    predictor = Predictor(tiny_model)
    with pytest.raises(ImageError, match=r"face2\.jpg: truncated JPEG"):
        predictor.predict_dataset(batch_with_one_broken, progress=False)
    res = predictor.predict_dataset(batch_with_one_broken, progress=False, skip_bad=True)
    assert res.names == names and [s[0] for s in res.skipped] == ["face2.jpg"]


def test_skip_bad_with_every_image_broken_writes_nothing(tmp_path: Path, tiny_model: Path, capsys) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"GIF89a but not really")
    out = tmp_path / "out" / "s.txt"
    code = main(["predict", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "--model", str(tiny_model),
                 "--out", str(out), "--skip-bad", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == "lightmark predict: error: none of the 2 images could be read; nothing written"
    assert err[0].startswith("skipped a.jpg") and err[1].startswith("skipped b.jpg")
    assert not out.parent.exists()


# ------------------------------------------------------------------------------------------------- annotations


def _challenge(root: Path, names: list, ys: list, images=("a.png", "b.png")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n in images:
        write_image(root / n, np.full((32, 32, 3), 99, np.uint8))
    (root / "annot.pkl").write_bytes(pickle.dumps((names, ys)))
    return root


def _pts(seed: int = 0) -> list:
    return [tuple(p) for p in np.random.default_rng(seed).uniform(2, 30, (NUM_LANDMARKS, 2)).astype(np.float32)]


@pytest.mark.parametrize(
    ("names", "ys", "problem"),
    [
        (["a.png", "b.png"], [_pts()], "X and Y have different lengths (2 names, 1 landmark sets)"),
        (["a.png", "a.png"], [_pts(), _pts(1)], "duplicate image name 'a.png'"),
        (["a.png", "zz.png"], [_pts(), _pts(1)], "missing image file zz.png"),
        (["a.png"], [_pts()[:60]], "a.png: expected 68 (x, y) points"),
        (["a.png"], [[(np.nan, 1.0)] * NUM_LANDMARKS], "a.png: landmarks contain NaN or inf"),
        (["a.png"], [[(1.0, -np.inf)] * NUM_LANDMARKS], "a.png: landmarks contain NaN or inf"),
        (["a.png"], [[(1e6, 1.0)] * NUM_LANDMARKS], "far outside the 32x32 image"),
    ],
)
def test_cli_bad_challenge_annotations(tmp_path: Path, tiny_model: Path, capsys, names, ys, problem) -> None:
    root = _challenge(tmp_path / "val", names, ys)
    line = _fails(capsys, ["evaluate", "--data", str(root), "--model", str(tiny_model), "--quiet"], problem)
    assert str(root / "annot.pkl") in line


@pytest.mark.parametrize("fmt", ["pts", "ldmks", "mat"])
def test_far_outside_points_in_paired_formats(tmp_path: Path, fmt: str) -> None:
    write_image(tmp_path / "face.png", np.zeros((32, 32, 3), np.uint8))
    pts = np.random.default_rng(0).uniform(0, 31, (NUM_LANDMARKS, 2))
    pts[17] = (500.0, 10.0)  # 15 image widths to the right
    if fmt == "pts":
        write_pts(tmp_path / "face.pts", pts)
    elif fmt == "ldmks":
        write_ldmks(tmp_path / "face_ldmks.txt", pts)
    else:
        scipy.io.savemat(tmp_path / "face.mat", {"pt3d_68": np.vstack([pts.T, np.zeros((1, 68))])})
    with pytest.raises(AnnotationError, match=r"point 17 \(500\.0, 10\.0\) is far outside the 32x32 image face\.png"):
        load_dataset(tmp_path)


def test_cli_broken_pts_header_and_mat_without_pt3d(tmp_path: Path, tiny_model: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        write_image(d / "face.jpg", np.zeros((32, 32, 3), np.uint8))
    (a / "face.pts").write_text("version 1\nn_points: 68\n{\n}\n")
    scipy.io.savemat(b / "face.mat", {"pt2d": np.zeros((2, 21))})
    _fails(capsys, ["evaluate", "--data", str(a), "--model", str(tiny_model)], "face.pts: broken .pts header line 1")
    _fails(capsys, ["evaluate", "--data", str(b), "--model", str(tiny_model)], "face.mat: no 'pt3d_68' variable")


def _shared_sublists(depth: int, width: int = 100) -> list:
    node: list = [1.0, 2.0]
    for _ in range(depth):
        node = [node] * width  # pickled once, referenced `width` times: 10^(2*depth) numbers in ~1 KB
    return node


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (pickle.dumps((["a.png"], [_shared_sublists(6)])), "expected 68 (x, y) points of numbers, got 100"),
        (pickle.dumps((["a.png"], [[_shared_sublists(5)] * NUM_LANDMARKS])), "points of numbers"),
        (b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x40\x85R.", "bytearray() is only allowed"),
        (b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x40\x85\x85R.", "calling numpy.ndarray is not allowed"),
        (
            b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x40\x85C\x01b\x87R.",
            "only allowed for an empty ndarray",
        ),
        (b"\x80\x04N" + b"r" + struct.pack("<I", 0x40000000) + b".", "refused a pickle memo index of 1073741824"),
    ],
)
def test_tiny_annot_pkl_cannot_exhaust_memory_or_time(tmp_path: Path, payload: bytes, problem: str) -> None:
    """A few hundred bytes describing 10^12 numbers, or a few bytes asking for a 1 GiB allocation (bytearray(n),
    ndarray(shape), a memo index of 2^30 that the C unpickler would size its table by): refused at once."""
    root = _challenge(tmp_path / "val", [], [], images=("a.png",))
    (root / "annot.pkl").write_bytes(payload)
    assert len(payload) < 2000
    with pytest.raises((AnnotationError, UnsafeFileError), match=r"annot\.pkl: .*" + re.escape(problem)):
        load_dataset(root)  # the refusal names the request: nothing was allocated or built first


# ------------------------------------------------------------------------------ crafted pickle and checkpoint


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_cli_crafted_pickle_and_checkpoint_are_refused(tmp_path: Path, tiny_model: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    root = _challenge(tmp_path / "val", [], [], images=("a.png",))
    (root / "annot.pkl").write_bytes(pickle.dumps((["a.png"], [_RunsShell(marker)])))
    _fails(capsys, ["evaluate", "--data", str(root), "--model", str(tiny_model)],
           "annot.pkl: refused to load the global posix.system")  # fmt: skip
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lightmark-checkpoint-v1", "config": {}, "state_dict": _RunsShell(marker)}, evil)
    out = tmp_path / "s.txt"
    _fails(capsys, ["predict", str(root / "a.png"), "--model", str(evil), "--out", str(out)],
           "evil.pt: refused to load, the file references code", "GLOBAL posix.system")  # fmt: skip
    _fails(capsys, ["export", "--format", "pt", "--model", str(evil), "--out", str(tmp_path / "x.pt")], "refused")
    assert not marker.exists() and not out.exists()
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"definitely not a checkpoint")
    _fails(capsys, ["predict", str(root / "a.png"), "--model", str(garbage), "--out", str(out)],
           "garbage.pt: not a readable checkpoint")  # fmt: skip


# -------------------------------------------------------------------------------------- unwritable outputs


@pytest.fixture
def one_image(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "face.jpg").write_bytes(_jpeg())
    return tmp_path / "in" / "face.jpg"


def test_cli_output_under_a_regular_file_or_onto_a_folder(tmp_path: Path, tiny_model: Path, one_image, capsys):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a regular file")
    base = ["predict", str(one_image), "--model", str(tiny_model), "--quiet"]
    ok_out = tmp_path / "ok" / "solution.txt"
    _fails(capsys, [*base, "--out", str(blocker / "solution.txt")], "blocker.txt/solution.txt: cannot write",
           "blocker.txt is not a folder")  # fmt: skip
    _fails(capsys, [*base, "--out", str(tmp_path / "in")], "cannot write (is a folder)")
    # a bad secondary output is found before anything is written, the good --out included
    _fails(capsys, [*base, "--out", str(ok_out), "--zip", str(blocker / "s.zip")], "s.zip: cannot write")
    _fails(capsys, [*base, "--out", str(ok_out), "--json", str(tmp_path / "in")], "is a folder")
    _fails(capsys, [*base, "--out", str(ok_out), "--vis", str(blocker)], "exists and is not a folder")
    assert not ok_out.parent.exists()
    assert blocker.read_text() == "a regular file"
    # the other commands
    _fails(capsys, ["export", "--format", "pt", "--model", str(tiny_model), "--out", str(blocker / "m.pt")],
           "m.pt: cannot write")  # fmt: skip
    _fails(capsys, ["check-submission", str(tmp_path / "in")], "file not found")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_output_into_a_read_only_folder(tmp_path: Path, tiny_model: Path, one_image, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _fails(capsys, ["predict", str(one_image), "--model", str(tiny_model), "--out", str(ro / "s.txt"), "--quiet"],
               "s.txt: cannot write (permission denied")  # fmt: skip
        assert not any(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_cli_output_into_a_read_only_folder_simulated(tmp_path: Path, tiny_model: Path, one_image, capsys,
                                                      monkeypatch) -> None:  # fmt: skip
    """The same as root (who may write anywhere): the OS refuses both the access check and the file creation."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access, real_open = os.access, os.open

    def access(path, mode, *a, **kw):
        return False if Path(path) == ro and mode & os.W_OK else real_access(path, mode, *a, **kw)

    def create(path, flags, *a, **kw):
        if flags & os.O_CREAT and Path(path).parent == ro:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "access", access)
    argv = ["predict", str(one_image), "--model", str(tiny_model), "--out", str(ro / "s.txt"), "--quiet"]
    _fails(capsys, argv, "s.txt: cannot write (permission denied in")
    # the folder turns read-only during the prediction: the write itself fails, still one line, no file
    monkeypatch.setattr(os, "access", real_access)
    monkeypatch.setattr(os, "open", create)
    _fails(capsys, argv, "s.txt: cannot write (Permission denied)")
    assert not any(ro.iterdir())


def test_cli_train_and_evaluate_outputs(tmp_path: Path, tiny_model: Path, capsys, monkeypatch) -> None:
    data = tmp_path / "fs"
    data.mkdir()
    for i in range(2):
        write_image(data / f"{i:06d}.png", np.full((64, 64, 3), 120, np.uint8))
        write_ldmks(data / f"{i:06d}_ldmks.txt", np.random.default_rng(i).uniform(16, 48, (NUM_LANDMARKS, 2)))
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    train = ["train", "--train", str(data), "--model", MODEL, "--input-size", "64", "--epochs", "1",
             "--samples-per-epoch", "4", "--batch-size", "2", "--workers", "0", "--quiet"]  # fmt: skip
    _fails(capsys, [*train, "--out", str(blocker / "run")], "run: cannot create folder")
    monkeypatch.setenv("LIGHTMARK_CACHE", str(blocker / "cache"))
    _fails(capsys, [*train, "--out", str(tmp_path / "run")], "cannot write the crop cache", "LIGHTMARK_CACHE")
    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    _fails(capsys, ["evaluate", "--data", str(data), "--model", str(tiny_model), "--json", str(data), "--quiet"],
           "cannot write (is a folder)")  # fmt: skip
    _fails(capsys, ["evaluate", "--data", str(data), "--model", str(tiny_model), "--plots", str(blocker / "p")],
           "blocker is not a folder")  # fmt: skip
    # resuming from a checkpoint that is no training run's (another model, no training config) is a clear error,
    # not a state_dict traceback (test_resume.py covers the other refusals)
    (tmp_path / "run2").mkdir()
    save_checkpoint(tmp_path / "run2" / "last.pt", create_model("shufflenetv2_x1_0_heatmap", input_size=64))
    _fails(capsys, [*train, "--out", str(tmp_path / "run2"), "--resume"], "last.pt: cannot resume")


# ------------------------------------------------------------------------------------- impossible options


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--batch-size", "0"], "batch size and epochs must be at least 1"),
        (["--samples-per-epoch", "1"], "samples per epoch (1) must be at least the batch size"),
        (["--loss", "nope"], "unknown coordinate loss 'nope'; known: wing, l1, l2, smooth_l1"),
        (["--loss", "heatmap_mse"], "unknown coordinate loss 'heatmap_mse'"),
        (["--heatmap-loss", "wing"], "unknown heatmap loss 'wing'; known: heatmap_kl, heatmap_mse, adaptive_wing"),
        (["--input-size", "100"], "input_size must be a multiple of 32"),
        (["--model", "resnet9000"], "unknown model 'resnet9000'"),
        (["--train-weights", "1", "2"], "expected 1 non-negative weights"),
        (["--ema", "1.5"], "ema decay"),
    ],
)
def test_cli_train_impossible_options(tmp_path: Path, capsys, extra: list[str], problem: str) -> None:
    """Refused before any data is read (the --train folder does not even exist) or any folder is created."""
    argv = ["train", "--train", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--quiet", *extra]
    _fails(capsys, argv, problem)
    assert not (tmp_path / "run").exists()


def test_cli_predict_and_check_bad_values(tmp_path: Path, tiny_model: Path, one_image, capsys) -> None:
    out = tmp_path / "s.txt"
    _fails(capsys, ["predict", str(one_image), "--model", str(tiny_model), "--out", str(out), "--batch-size", "0"],
           "batch size must be at least 1")  # fmt: skip
    assert not out.exists()
    buf = tmp_path / "sub.zip"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("solution.txt", "a.jpg " + " ".join(["1.0"] * 136) + "\n")
    data = bytearray(buf.read_bytes())
    data[40:48] = b"\xff" * 8  # corrupt the member
    buf.write_bytes(bytes(data))
    _fails(capsys, ["check-submission", str(buf)], "sub.zip: corrupt zip file")


def test_predictor_api_refuses_bad_arrays_boxes_and_landmarks(predictor: Predictor) -> None:
    """Typed errors instead of torch/OpenCV/ZeroDivision errors from deep inside; grey arrays are accepted."""
    assert predictor.predict(np.full((20, 16), 128, np.uint8)).shape == (NUM_LANDMARKS, 2)
    for bad in (np.zeros((9, 9, 4), np.uint8), np.zeros((0, 0, 3), np.uint8), np.zeros((9, 9, 3), np.float32),
                np.zeros((9, 9, 3), np.uint16), 42, None):  # fmt: skip
        with pytest.raises(ImageError, match="expected"):
            predictor.predict(bad)
    img = np.zeros((20, 20, 3), np.uint8)
    for box in ((5, 5, 5, 9), (0, 0, np.nan, 9), (0, 0, 5)):
        with pytest.raises(ConfigError, match="box: expected finite"):
            predictor.predict(img, box=box)
    for lm in (np.zeros((NUM_LANDMARKS, 2)), np.full((NUM_LANDMARKS, 2), np.inf), np.zeros((NUM_LANDMARKS, 3))):
        with pytest.raises(ConfigError, match="landmarks: expected finite"):
            predictor.predict(img, landmarks=lm)
    assert np.isfinite(predictor.predict(img, box=(2, 3, 15, 18))).all()


def test_cli_benchmark_bad_values(tmp_path: Path, tiny_model: Path, capsys) -> None:
    base = ["benchmark", "--model", str(tiny_model), "--threads", "1", "--no-dlib", "--quiet"]
    _fails(capsys, [*base, "--runs", "0"], "need --runs >= 1")
    (tmp_path / "blocker").write_text("x")
    _fails(capsys, [*base, "--json", str(tmp_path / "blocker" / "b.json")], "b.json: cannot write")


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        main(["--debug", "export", "--format", "pt", "--out", str(tmp_path)])


# ------------------------------------------------------------------- options: every one documented, none hidden


def test_every_command_has_help_and_every_option_a_help_text(capsys) -> None:
    for name, parser in command_parsers().items():
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: lightmark {name} ")
        undocumented = [a.dest for a in parser._actions if not (a.help or "").strip()]
        assert not undocumented, (name, undocumented)


def _config_class(command: str) -> tuple[type, dict[str, str]]:
    """The config dataclass ``lightmark COMMAND`` generates its options from, and the fields the CLI excludes."""
    from lightmark import cli
    from lightmark.demo import DemoConfig
    from lightmark.engine.train import TrainConfig

    return (TrainConfig, cli.TRAIN_EXCLUDED) if command == "train" else (DemoConfig, cli.DEMO_EXCLUDED)


def _captured(monkeypatch, command: str) -> list:
    """Replace the function ``lightmark COMMAND`` runs by one that records the config it is given."""
    seen: list = []
    if command == "train":
        from lightmark.engine import train as train_mod

        monkeypatch.setattr(train_mod, "train", lambda cfg, **kw: seen.append(cfg) or SimpleNamespace(history=[]))
    else:
        import lightmark.demo
        from lightmark.demo import DemoStats

        monkeypatch.setattr(lightmark.demo, "run_demo", lambda source, **kw: seen.append(kw["config"]) or DemoStats())
    return seen


def _other_value(cls: type, field: dataclasses.Field, action: argparse.Action):
    """A value of the type of ``field`` that is not its default (one of the option's choices when it has some)."""
    default = None if field.default is dataclasses.MISSING else field.default
    tp = typing.get_type_hints(cls)[field.name]
    if type(None) in typing.get_args(tp):  # X | None
        tp = next(t for t in typing.get_args(tp) if t is not type(None))
    if action.choices:
        return next(c for c in action.choices if c != default)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):  # a string enum: given by value, parsed to its member
        return next(m for m in tp if m != default)
    if tp is bool:
        return not default
    if typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        return [item(2), item(3)] if item in (int, float) else ["a", "b"]
    return (default or 0) + tp(3) if tp in (int, float) else "other"


def _argv_for(action: argparse.Action, value) -> list[str]:
    flag = action.option_strings[0]
    if action.nargs == 0:
        return [flag]
    if isinstance(action, argparse._AppendAction):
        return [arg for v in value for arg in (flag, str(v))]
    return [flag, *map(str, value)] if action.nargs == "+" else [flag, str(value)]


OTHER_REQUIRED = {"train": [], "demo": ["--source", "v.mp4"]}  # required options that are no config field


@pytest.mark.parametrize("command", ["train", "demo"])
def test_config_defaults_are_the_dataclass_defaults(monkeypatch, command: str) -> None:
    """Given only what is required, the run gets the dataclass's defaults, and the help shows them."""
    cls, _ = _config_class(command)
    required = {"train": {"train": ["data"], "out": "run"}, "demo": {}}[command]
    seen = _captured(monkeypatch, command)
    argv = ["--train", "data", "--out", "run"] if command == "train" else []
    assert main([command, *OTHER_REQUIRED[command], *argv, "--quiet"]) == 0
    assert seen == [cls(**required)]
    by_dest = {a.dest: a for a in command_parsers()[command]._actions}
    for f in dataclasses.fields(cls):
        if f.name in by_dest and f.name not in required:
            assert by_dest[f.name].default == f.default, f.name


@pytest.mark.parametrize("command", ["train", "demo"])
def test_every_config_field_is_an_option_or_excluded(monkeypatch, command: str) -> None:
    """Each config field is reachable from the command line (all given a non-default value at once, each lands in
    its own field), or is in the CLI's exclusion list with a reason."""
    cls, excluded = _config_class(command)
    assert set(excluded) <= {f.name for f in dataclasses.fields(cls)}
    by_dest = {a.dest: a for a in command_parsers()[command]._actions if a.option_strings}
    values, argv = {}, []
    for f in dataclasses.fields(cls):
        if f.name in excluded:
            assert excluded[f.name].strip() and f.name not in by_dest, f.name
            continue
        assert f.name in by_dest, f"{cls.__name__}.{f.name} is neither an option of `lightmark {command}` nor excluded"
        values[f.name] = _other_value(cls, f, by_dest[f.name])
        assert values[f.name] != f.default, f.name
        argv += _argv_for(by_dest[f.name], values[f.name])
    seen = _captured(monkeypatch, command)
    assert main([command, *OTHER_REQUIRED[command], *argv, "--quiet"]) == 0
    assert seen == [cls(**values)]
    assert [type(getattr(seen[0], k)) for k in values] == [type(v) for v in values.values()]  # 3, not 3.0
