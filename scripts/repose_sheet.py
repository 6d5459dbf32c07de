"""Contact sheet of re-posed pictures (``lightmark.synth.repose``): FaceSynthetics samples and 300-W HELEN faces, each
shown as given (its own labels) and re-posed at yaw -90, -60, -30, 0, +30, +60, +90 with the new labels (the 68
landmark vertices projected: 3D jaw for FaceSynthetics, the visible-outline jaw ``ibug68_2d`` for HELEN, whose labels
follow the outline); one FaceSynthetics row also changes the expression at every yaw.

    python scripts/repose_sheet.py --out docs/repose_sheet.jpg [--png /tmp/repose_sheet.png]

About a minute on one core. Reads ../shared/data (never copied into the repository); writes one JPEG.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lightmark.data.formats import load_dataset  # noqa: E402
from lightmark.data.images import read_image  # noqa: E402
from lightmark.synth import load_face_model  # noqa: E402
from lightmark.synth.labels import BACKGROUND  # noqa: E402
from lightmark.synth.repose import ReposeConfig, draw_pose, prepare_source, repose  # noqa: E402
from lightmark.utils import atomic_save_bytes  # noqa: E402
from lightmark.viz import contact_sheet  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
YAWS = (-90, -60, -30, 0, 30, 60, 90)
FS_NAMES = ("000000", "000002", "000005", "000009", "000044", "000028")
FS_EXPRESSION = "000013"  # this row also changes the expression (ReposeConfig.expression = 0.6)
HELEN_NAMES = ("100040721_2.jpg", "100466187_1.jpg")


def _row(model, sample, jaw: str, expression: float, seed: int) -> tuple[list, list, list]:
    """Pictures, labels and captions of one row: the source, then each of :data:`YAWS`."""
    image = read_image(sample.image_path)
    seg = sample.meta.get("seg_path")
    mask = None if seg is None else cv2.imread(str(seg), cv2.IMREAD_UNCHANGED) != BACKGROUND
    src = prepare_source(model, image, sample.landmarks, jaw, sample.meta.get("pupils"), mask)
    scheme = "ibug68_2d" if jaw == "2d" else "ibug68"
    name = Path(sample.name).stem
    images, points, captions = [image], [sample.landmarks], [f"{name} (yaw {src.pose[0]:.0f})"]
    cfg = ReposeConfig(yaws=list(YAWS), expression=expression)
    rng = np.random.default_rng(seed)
    for k, yaw in enumerate(YAWS):
        _, expr = draw_pose(rng, cfg, k, model, src.fit.expression)
        r = repose(src, yaw, expr if expression > 0 else None)
        images.append(r.image)
        points.append(r.landmarks[scheme])
        captions.append(f"{yaw:+d}" + (" expr" if expression > 0 else ""))
    return images, points, captions


def build_sheet(tile: int) -> np.ndarray:
    """The sheet (RGB): one row per source picture."""
    model = load_face_model()
    fs = {Path(s.name).stem: s for s in load_dataset(DATA / "facesynthetics_100", require_landmarks=True)}
    helen = {s.name: s for s in load_dataset(DATA / "300w_helen_train", require_landmarks=True)}
    rows = [(fs[n], "3d", 0.0) for n in FS_NAMES] + [(fs[FS_EXPRESSION], "3d", 0.6)]
    rows += [(helen[n], "2d", 0.0) for n in HELEN_NAMES]
    images, points, captions = [], [], []
    for i, (sample, jaw, expression) in enumerate(rows):
        im, pts, caps = _row(model, sample, jaw, expression, seed=i)
        images += im
        points += pts
        captions += caps
        print(f"{sample.name}: done", flush=True)
    return contact_sheet(images, points, cols=len(YAWS) + 1, tile=tile, captions=captions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "repose_sheet.jpg", help="JPEG to write")
    ap.add_argument("--png", type=Path, help="also a PNG copy (for viewers that read PNG only)")
    ap.add_argument("--tile", type=int, default=168, help="side of each picture in pixels")
    ap.add_argument("--quality", type=int, default=76, help="JPEG quality")
    a = ap.parse_args()
    sheet = build_sheet(a.tile)
    ok, buf = cv2.imencode(".jpg", sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, a.quality])
    if not ok:
        raise SystemExit(f"{a.out}: JPEG encoding failed")
    atomic_save_bytes(a.out, buf.tobytes())
    print(f"wrote {a.out} ({len(buf) / 1024:.0f} KB, {sheet.shape[1]}x{sheet.shape[0]})")
    if a.png:
        cv2.imwrite(str(a.png), sheet[:, :, ::-1])


if __name__ == "__main__":
    main()
