"""Measure the video demo end to end on a 640x480 clip the project makes itself.

    python scripts/demo_clip.py --out runs/demo_clip
    # writes clip.mp4, annotated_{raw,smooth}.mp4, landmarks_{raw,smooth}.csv, stats.json

The clip is a face rendered by lightmark.synth composited on a background: a still segment, then motion and a jump,
run through ``lightmark demo`` as a user would (default detector: BlazeFace), writing annotated videos to look at.
Prints processing FPS, end-to-end FPS (with video decoding and writing) and the frame-to-frame jitter estimate. The
figures against ground truth (error raw and smoothed, still-face jitter, lost frames) come from
``scripts/video_benchmark.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/demo_clip", help="output folder")
    ap.add_argument("--still", type=int, default=150, help="frames of the still segment")
    ap.add_argument("--move", type=int, default=120, help="frames of the moving segment")
    ap.add_argument("--jump", type=int, default=30, help="frames after the jump")
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    args = ap.parse_args()

    from lightmark.demo import DemoConfig, make_synthetic_clip, run_demo
    from lightmark.synth import SynthConfig, render_sample

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SynthConfig(size=512, p_hand=0, p_object=0, p_sunglasses=0, yaw_max=25.0)
    image, ldmks, seg, _ = render_sample(109, cfg)
    clip = make_synthetic_clip(
        out / "clip.mp4",
        image,
        ldmks[:68],
        mask=(seg > 0).astype(np.uint8),
        size=(640, 480),
        fps=30.0,
        still=args.still,
        move=args.move,
        jump=args.jump,
        face_side=140.0,
    )
    runs = {}
    for smooth in (False, True):
        name = "smooth" if smooth else "raw"
        config = DemoConfig(threads=args.threads, smooth=smooth)
        stats = run_demo(clip.path, out=out / f"annotated_{name}.mp4", csv=out / f"landmarks_{name}.csv", config=config)
        runs[name] = stats.to_dict()
        print(
            f"smooth={smooth}: {stats.frames} frames, processing {stats.fps:.0f} FPS, end to end "
            f"{stats.fps_total:.0f} FPS, jitter raw {stats.jitter_raw:.3f} px, smoothed {stats.jitter_smoothed:.3f} px"
        )
    (out / "stats.json").write_text(json.dumps({"clip": str(clip.path), **runs}, indent=1, default=str))


if __name__ == "__main__":
    main()
