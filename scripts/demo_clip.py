"""Measure the video demo end to end on a 640x480 clip the project makes itself.

    python scripts/demo_clip.py --out runs/demo_clip   # writes clip.mp4, annotated.mp4, landmarks.csv, stats.json

The clip is a face rendered by lightmark.synth composited on a background: a still segment (jitter with and
without One Euro smoothing), then motion and a jump. Prints processing FPS, end-to-end FPS and the jitter factor.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/demo_clip")
    ap.add_argument("--still", type=int, default=150)
    ap.add_argument("--move", type=int, default=120)
    ap.add_argument("--jump", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from lightmark.demo import make_synthetic_clip, run_demo
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
        stats = run_demo(
            out / "clip.mp4",
            out=out / f"annotated_{'smooth' if smooth else 'raw'}.mp4",
            csv=out / f"landmarks_{'smooth' if smooth else 'raw'}.csv",
            threads=args.threads,
            smooth=smooth,
        )
        runs["smooth" if smooth else "raw"] = stats.to_dict()
        print(
            f"smooth={smooth}: {stats.frames} frames, processing {stats.fps:.0f} FPS, end to end "
            f"{stats.fps_total:.0f} FPS, jitter raw {stats.jitter_raw:.3f} px, smoothed {stats.jitter_smoothed:.3f} px"
        )
    (out / "stats.json").write_text(
        json.dumps({"clip": str(clip.path) if hasattr(clip, "path") else None, **runs}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
