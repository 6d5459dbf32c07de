"""Where the 68-landmark box sits relative to a detector's box (``BoxToFace``: the centre offset and the side ratio,
in the face's upright frame, in units of the detector box's side): the medians and interquartile ranges over labelled
faces. The shipped BlazeFace constant comes from the 100 FaceSynthetics samples.

    python scripts/detector_calibration.py [--detector blazeface] [DATASET ...]
        (default: ../shared/data/facesynthetics_100 ../shared/data/300w_helen_train ../shared/data/aflw2000/val)
"""

from __future__ import annotations

import argparse

import numpy as np

from lightmark.data.formats import load_dataset
from lightmark.data.images import read_image
from lightmark.detectors import Detection, create_detector

DEFAULT = ["../shared/data/facesynthetics_100", "../shared/data/300w_helen_train", "../shared/data/aflw2000/val"]


def offsets(detection: Detection, points: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, scale) of the landmark box of ``points`` (K, 2) relative to ``detection``, in its upright frame."""
    t = np.deg2rad(detection.roll)
    u, v = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])  # the face's right and down
    q = np.stack([points @ u, points @ v], 1)
    lo, hi = q.min(0), q.max(0)
    box = detection.box
    c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    d = ((lo + hi) / 2 - np.array([c @ u, c @ v])) / detection.side
    return float(d[0]), float(d[1]), float(max(hi - lo) / detection.side)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="*", default=DEFAULT, help="labelled datasets")
    ap.add_argument("--detector", default="blazeface", help="registry name (lightmark.detectors)")
    a = ap.parse_args()
    det = create_detector(a.detector)
    for path in a.data:
        rows, missed = [], 0
        for s in load_dataset(path, require_landmarks=True).samples:
            found = det.detect(read_image(s.image_path))
            if not found:
                missed += 1
                continue
            rows.append(offsets(found[0], np.asarray(s.landmarks[:68], np.float64)))
        r = np.array(rows)
        med, iqr = np.median(r, 0), np.percentile(r, 75, 0) - np.percentile(r, 25, 0)
        stats = f"dx dy scale: median {np.round(med, 3)}  IQR {np.round(iqr, 3)}"
        print(f"{path}: {len(r)} faces ({missed} not found)  {stats}")


if __name__ == "__main__":
    main()
