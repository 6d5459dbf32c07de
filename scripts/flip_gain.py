"""Why the flip test helps one model more than another (session 22): the direct and the mirrored reading of each
validation crop scored apart and averaged, and each reading's error split into what every face shares (a point's
mean offset over the 199 faces: the landmark definition, a decoding bias) and what varies from face to face.

    python scripts/flip_gain.py --model mixed mixed_resnet18 --json docs/evals/flip_gain.json

One pass on the whole 384x384 crop (no refining pass, no detector), one thread, ONNX where the model has a twin.
Averaging two readings halves the face-to-face part of their error where the two are independent, and leaves a
shared offset that both readings make (the mirror maps a point's offset onto its mirror partner's: an offset the
left and right halves of the face share with opposite signs, e.g. jaw points drawn inwards, survives the
average; one that moves both halves the same way, e.g. every point to the right, cancels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lightmark.data.formats import load_dataset
from lightmark.data.images import read_image
from lightmark.engine.predict import Framing, Predictor, map_back_mirrored

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SIDE = 384  # the challenge crops' side: NME/384


def error_parts(points: np.ndarray, truth: np.ndarray) -> dict:
    """(N, K, 2) readings and labels -> NME/384 (%), the mean offset over every point (px, x and y), and the root mean
    square of the error split into the per-point mean offset (shared by the faces) and the rest (px)."""
    d = points - truth  # (N, K, 2)
    bias = d.mean(axis=0)  # (K, 2): each point's offset shared by every face
    return {
        "nme": float(np.linalg.norm(d, axis=-1).mean() / SIDE * 100),
        "mean_dx": float(d[..., 0].mean()),
        "mean_dy": float(d[..., 1].mean()),
        "rms_shared": float(np.sqrt((bias**2).sum(-1).mean())),
        "rms_per_face": float(np.sqrt(((d - bias) ** 2).sum(-1).mean())),
    }


def facing(truth: np.ndarray) -> np.ndarray:
    """(N, 68, 2) labels -> (N,) which way each face turns in the image: the nose tip's (point 30) x offset from the
    middle of the jaw's ends (points 0 and 16; 3D labels keep both ends on a turned face), over the jaw's width.
    Negative: the nose points to the image's left."""
    middle = 0.5 * (truth[:, 0, 0] + truth[:, 16, 0])
    return (truth[:, 30, 0] - middle) / np.maximum(np.abs(truth[:, 16, 0] - truth[:, 0, 0]), 1.0)


def readings(predictor: Predictor, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The direct reading of each image and the reading of its mirror image mapped back: two (N, K, 2) arrays."""
    direct = np.stack([predictor.predict(image) for image in images])
    mirrored = np.stack([predictor.predict(np.ascontiguousarray(image[:, ::-1])) for image in images])
    back = map_back_mirrored(mirrored, images[0].shape[1], predictor.config.flip_perm)
    return direct.astype(np.float64), back.astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=["mixed", "mixed_resnet18"])
    ap.add_argument("--data", type=Path, default=DATA / "aflw2000" / "val")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    data = load_dataset(args.data, require_landmarks=True)
    images = [read_image(s.image_path) for s in data.samples]
    truth = np.stack([s.landmarks for s in data.samples]).astype(np.float64)
    report = {}
    for name in args.model:
        predictor = Predictor(name, threads=1, flip_test=False, refine=0, framing=Framing.WHOLE)
        direct, mirrored = readings(predictor, images)
        rows = {
            "direct": error_parts(direct, truth),
            "mirrored": error_parts(mirrored, truth),
            "average": error_parts(0.5 * (direct + mirrored), truth),
        }
        side = facing(truth)
        for name_side, mask in (("facing_left", side < 0), ("facing_right", side >= 0)):
            rows[name_side] = {
                "n": int(mask.sum()),
                "direct": error_parts(direct[mask], truth[mask])["nme"],
                "mirrored": error_parts(mirrored[mask], truth[mask])["nme"],
            }
        per_face = {
            k: np.linalg.norm(v - truth, axis=-1).mean(axis=1) / SIDE * 100 for k, v in (("d", direct), ("m", mirrored))
        }
        gain = per_face["d"] - per_face["m"]  # (N,) > 0: the mirrored reading is the better one
        rows["per_face"] = {
            "median_direct": float(np.median(per_face["d"])),
            "median_mirrored": float(np.median(per_face["m"])),
            "mirrored_better": int((gain > 0).sum()),
            "largest_gains": [
                {"image": data.samples[i].name, "direct": float(per_face["d"][i]), "mirrored": float(per_face["m"][i])}
                for i in np.argsort(-gain)[:5]
            ],
        }
        gap = np.linalg.norm(direct - mirrored, axis=-1).mean(axis=1) / SIDE * 100  # (N,) NME/384 between readings
        rows["readings_apart_nme"] = {"mean": float(gap.mean()), "median": float(np.median(gap))}
        report[name] = rows
        print(name)
        for k in ("direct", "mirrored", "average"):
            r = rows[k]
            print(
                f"  {k:8s} NME/384 {r['nme']:.3f}  mean offset dx {r['mean_dx']:+.2f} dy {r['mean_dy']:+.2f} px  "
                f"RMS shared {r['rms_shared']:.2f} px, per face {r['rms_per_face']:.2f} px"
            )
        for k in ("facing_left", "facing_right"):
            r = rows[k]
            where = k.replace("_", " ")
            print(f"  {r['n']} faces {where} in the image: direct {r['direct']:.3f}, mirrored {r['mirrored']:.3f}")
        f = rows["per_face"]
        top = ", ".join(f"{g['image']} {g['direct']:.1f} -> {g['mirrored']:.1f}" for g in f["largest_gains"][:3])
        print(
            f"  per face: median direct {f['median_direct']:.3f}, mirrored {f['median_mirrored']:.3f}; the mirrored "
            f"reading better on {f['mirrored_better']} of {len(gain)}; largest gains {top}"
        )
        print(f"  the two readings lie {gap.mean():.3f} NME/384 apart (median {np.median(gap):.3f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
