"""Per-image latency of ``Predictor.predict`` (or ``detect``) in two checkouts of lightmark, timed in turn.

Each checkout runs in its own worker process (one thread for the model, the detector and OpenCV; the model loaded
and warmed up once); the images of a folder are sent to the two workers alternately (A B, B A, ...), and each worker
times only its own call, so whatever else the machine does slows both alike. Prints median, mean and 90th
percentile per checkout and the ratio of the means (the cost of a default reading depends on the image, so the mean
over a folder is its cost).

    git worktree add ../before <commit>
    python scripts/ab_latency.py --before ../before/src --after src [--model mixed] [--rounds 398] [--call detect]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = """
import sys, time
import cv2
import lightmark
from lightmark import Predictor
from lightmark.data.formats import load_dataset
from lightmark.data.images import read_image
cv2.setNumThreads(1)  # the crop's warp on one thread too, as `lightmark benchmark` times it (this is its own process)
images = [read_image(s.image_path) for s in load_dataset(sys.argv[2]).samples]
predictor = Predictor(sys.argv[1], threads=1)
call = getattr(predictor, sys.argv[3])  # predict or detect
for image in images[:5]:
    call(image)
print("ready", lightmark.__file__, flush=True)
for line in sys.stdin:
    image = images[int(line) % len(images)]
    t = time.perf_counter_ns()
    call(image)
    print((time.perf_counter_ns() - t) / 1e6, flush=True)
"""


def start_worker(src: str, model: str, data: str, call: str = "predict") -> subprocess.Popen:
    """A worker process importing lightmark from ``src``, ready for image indices on stdin (it runs in ``/``, so a
    model path is made absolute; a shipped track name is passed as it is)."""
    if Path(model).exists():
        model = str(Path(model).resolve())
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()), OMP_NUM_THREADS="1")
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, model, str(Path(data).resolve()), call],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )
    ready = worker.stdout.readline().split()
    if not ready or ready[0] != "ready":
        raise SystemExit(f"the worker for {src} did not start")
    print(f"{src}: lightmark from {ready[1]}")  # the two checkouts are really two
    return worker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the first checkout's src folder")
    ap.add_argument("--after", required=True, help="the second checkout's src folder")
    ap.add_argument("--model", default="mixed", help="shipped track name or model path (both checkouts)")
    ap.add_argument("--data", default="../shared/data/aflw2000/val", help="a folder of images")
    ap.add_argument("--rounds", type=int, default=398, help="calls per checkout (the folder's images in turn)")
    ap.add_argument("--call", choices=["predict", "detect"], default="predict", help="the Predictor method timed")
    a = ap.parse_args()
    workers = {
        name: start_worker(src, a.model, a.data, a.call) for name, src in (("before", a.before), ("after", a.after))
    }
    ms: dict[str, list[float]] = {name: [] for name in workers}
    for r in range(a.rounds):
        for name in list(workers) if r % 2 == 0 else list(workers)[::-1]:
            workers[name].stdin.write(f"{r}\n")
            workers[name].stdin.flush()
            ms[name].append(float(workers[name].stdout.readline()))
    for w in workers.values():
        w.stdin.close()
        w.wait()
    for name, v in ms.items():
        print(f"{name:6s} median {np.median(v):6.2f} ms  mean {np.mean(v):6.2f} ms  p90 {np.percentile(v, 90):6.2f} ms")
    ratio = np.mean(ms["after"]) / np.mean(ms["before"])
    print(f"mean after / before: {ratio:.3f} ({a.model}, {a.call}, {a.rounds} calls each)")


if __name__ == "__main__":
    main()
