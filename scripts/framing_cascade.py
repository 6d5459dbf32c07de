"""Where a second framing pays: the figures behind ``lightmark.engine.faces.SURE_READING``.

For every image of the validation crops and their six re-framed copies it reads the face twice - as a crop
(``framing="whole"``) and around the detected face (``framing="detect"``) - and for the largest detection of each
validation crop it reads both first views of the detect path (``WIDE_FIRST_CROP``). It then scores the cascade
"read the second framing only when the first reading's mean confidence is below T" for a range of T: NME/384 of
each set and how many images needed the second framing. T = inf is reading both everywhere (the rule through
session 12); the more confident reading wins in both. It also scores reading both everywhere and averaging the two
readings (weighted by their mean confidence) where they agree, within ``AGREE`` of the landmark box's side, the more
confident one kept elsewhere: what a second reading is worth as test-time augmentation (session 27).

    OMP_NUM_THREADS=1 python scripts/framing_cascade.py [--model mixed protocol] [--json framing_cascade.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from lightmark.data.formats import FaceDataset, load_dataset
from lightmark.data.images import read_image
from lightmark.data.reframe import reframed_sets
from lightmark.engine.faces import SURE_READING, WIDE_FIRST_CROP, landmarks_of_detections
from lightmark.engine.predict import Predictor
from lightmark.metrics import nme

THRESHOLDS = (0.0, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8, math.inf)
AGREE = (0.03, 0.05, 0.1)


def nme384(points: np.ndarray, truth: np.ndarray) -> float:
    """NME/384 of one face's (K, 2) points on a 384x384 crop, in percent (:func:`lightmark.metrics.nme`)."""
    return float(nme(points, truth, 384.0)[0])


def read_sets(data: str, work: str) -> dict[str, FaceDataset]:
    """The validation crops and their re-framed copies (written once under ``work``, as reframe_eval does)."""
    source = load_dataset(data, require_landmarks=True)
    return {"val": source} | {n: d for n, d in reframed_sets(source, work).items() if n != "none"}


def framing_readings(model: str, sets: dict[str, FaceDataset]) -> dict[str, np.ndarray]:
    """Per set, (N, 4 + 2 x len(AGREE)): crop reading's mean confidence and NME/384, then the detection reading's,
    then per ``AGREE`` threshold: the NME/384 of the two averaged where they agree (:func:`agreement_average`) and
    whether they agreed."""
    whole = Predictor(model, threads=1, framing="whole")
    detect = Predictor(model, threads=1, framing="detect")
    out = {}
    for name, ds in sets.items():
        rows = []
        for s in ds.samples:
            image = read_image(s.image_path)
            a, ca = whole.predict_batch_with_confidence([image])
            b, cb = detect.predict_batch_with_confidence([image])  # the crop reading where nothing is detected
            row = [ca[0].mean(), nme384(a[0], s.landmarks), cb[0].mean(), nme384(b[0], s.landmarks)]
            for t in AGREE:
                avg, agreed = agreement_average(a[0], ca[0].mean(), b[0], cb[0].mean(), t)
                row += [nme384(avg, s.landmarks), float(agreed)]
            rows.append(row)
        out[name] = np.array(rows)
    return out


def agreement_average(a: np.ndarray, ca: float, b: np.ndarray, cb: float, agree: float) -> tuple[np.ndarray, bool]:
    """Two (K, 2) readings of one face with mean confidences ``ca``, ``cb``: their confidence-weighted mean where
    their mean point distance is below ``agree`` x the side of ``a``'s landmark box, else the more confident one
    (``a`` on ties); and whether they agreed."""
    apart = float(np.linalg.norm(a - b, axis=1).mean() / max(float(np.ptp(a, axis=0).max()), 1e-6))
    if apart < agree:
        return (ca * a + cb * b) / (ca + cb), True
    return (b if cb > ca else a), False


def view_readings(model: str, val: FaceDataset) -> np.ndarray:
    """(N, 4) for the largest detection of each validation crop that has one: first view's mean confidence and
    NME/384, then the wide view's (each refined as ``Predictor.detect`` refines)."""
    p = Predictor(model, threads=1)
    rows = []
    for s in val.samples:
        image = read_image(s.image_path)
        dets = p.detector.detect(image)[:1]
        if not dets:
            continue
        row = []
        for wider in (1.0, WIDE_FIRST_CROP):
            pts, conf, _ = landmarks_of_detections(p, image, dets, p.detector.box_to_face, views=(wider,))
            row += [conf[0].mean(), nme384(pts[0], s.landmarks)]
        rows.append(row)
    return np.array(rows)


def cascade(readings: np.ndarray, threshold: float) -> tuple[float, int]:
    """NME/384 and the number of second readings of "second framing only below ``threshold``"."""
    c1, e1, c2, e2 = readings[:, :4].T
    second = c1 < threshold
    return float(np.where(second & (c2 > c1), e2, e1).mean()), int(second.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["mixed", "protocol"], help="shipped track names or checkpoints")
    ap.add_argument("--data", default="../shared/data/aflw2000/val", help="labelled square crops")
    ap.add_argument("--work", default="/tmp/lightmark_reframe", help="where the re-framed sets are written")
    ap.add_argument("--json", help="write the figures as JSON")
    a = ap.parse_args()
    sets = read_sets(a.data, a.work)
    report = {"sure_reading": SURE_READING, "thresholds": [str(t) for t in THRESHOLDS], "models": {}}
    for model in a.model:
        readings = framing_readings(model, sets)
        readings["detect path, wide view"] = view_readings(model, sets["val"])
        figures = {}
        print(f"{model}: NME/384 / second readings, by threshold")
        print(f"{'set':<24}" + "".join(f"{'T=' + str(t):>14}" for t in THRESHOLDS))
        for name, r in readings.items():
            cells = [cascade(r, t) for t in THRESHOLDS]
            figures[name] = {
                "n": len(r),
                "by_threshold": {str(t): {"nme": e, "second": k} for t, (e, k) in zip(THRESHOLDS, cells, strict=True)},
            }
            print(f"{name:<24}" + "".join(f"{e:>9.3f}/{k:>4d}" for e, k in cells))
            if r.shape[1] > 4:  # the framings' readings (not the detect path's two views): averaged where they agree
                avg = {
                    str(t): {"nme": float(r[:, 4 + 2 * i].mean()), "agreed": int(r[:, 5 + 2 * i].sum())}
                    for i, t in enumerate(AGREE)
                }
                figures[name]["averaged_where_agreeing"] = avg
                print(
                    f"{'  both, averaged':<24}"
                    + "".join(f"{'<' + t:>8}: {v['nme']:.3f}/{v['agreed']:>3d}" for t, v in avg.items())
                )
        report["models"][model] = figures
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
