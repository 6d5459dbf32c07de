"""lightmark side by side with the peers users compare it with: dlib's 68-point shape predictor (ERT, HOG detector)
and MediaPipe's face mesh (468 vertices read as 68 points), on the same images in one run.

- Validation crops (AFLW2000-3D, 199): NME/384 overall and by yaw, and on the faces each peer's detector found.
- The 170 HELEN holdout faces: inter-ocular NME of the inner 51 points, the jaw and all 68 (dlib's model was
  trained on 300-W, HELEN's training pictures included, so its HELEN figure is on faces it has seen).
- Time on one core, every contender called in turn on the same image (medians, means and per-call ratios of one
  run): given one face's box on one crop, and for a whole image (finding the face included) over the validation
  crops in turn.

MediaPipe's mesh has no 68-point definition: each point is an affine combination of the 4 mesh vertices nearest it
on average (``fit_mesh_map``), fitted on other labelled faces than those scored, in the convention of the set
scored: on the FaceSynthetics samples the mesh finds (3D jaw, as AFLW2000-3D; errors / landmark-box size) for the
validation crops, on the 700 HELEN faces outside the holdout (300-W's visible jaw; errors / inter-ocular distance)
for the holdout. lightmark is scored twice: through ``predict``'s default reading (which also reads the crop as a
face crop) and with its detector only (``framing detect``; the whole crop where it finds nothing). face-alignment
(FAN) is not here: it downloads its weights at run time, which fails offline.

MediaPipe 0.10.21 (the last release that ships the mesh model) pins numpy < 2; ``make compare-peers`` builds a
virtual environment with it, dlib and lightmark, and runs, pinned to one core:

    taskset -c 0 python scripts/peers_check.py [--data ../shared/data] [--json docs/evals/peers.json] [--rounds 398]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from helen_check import split_holdout  # scripts/, beside this one

from lightmark.data.formats import FaceDataset, load_dataset
from lightmark.data.images import read_image
from lightmark.detectors import create_detector
from lightmark.detectors.base import points_box
from lightmark.engine.baselines import (
    DlibPredictor,
    MediaPipeMeshPredictor,
    MeshMap,
    fit_mesh_map,
)
from lightmark.engine.predict import Framing, Predictor
from lightmark.engine.timing import ratio_stats, time_interleaved, timing_stats
from lightmark.metrics import box_norm, interocular_norm, interocular_scores, summarize
from lightmark.report import peers_table

TIMED_IMAGE = "image00013"  # a near-frontal validation crop (MediaPipe finds it)
REFERENCE = "lightmark predict(box=), one pass (the tracker's path)"
WHOLE_REFERENCE = "MediaPipe mesh, image mode (detector + mesh)"
ACCURATE = "mixed_resnet18"  # the shipped opt-in accurate model, scored and timed beside the default


def fit_map(data: FaceDataset, mesh_reader: MediaPipeMeshPredictor, name: str, norm: Callable) -> MeshMap:
    """The mesh map fitted on every face of ``data`` the mesh finds, errors divided by ``norm(gt)``."""
    meshes, labels = [], []
    for s in data.samples:
        mesh = mesh_reader.mesh(read_image(s.image_path))
        if mesh is not None:
            meshes.append(mesh)
            labels.append(s.landmarks)
    if not labels:
        raise SystemExit(f"MediaPipe's mesh found no face in {data.root}: no map to fit")
    gt = np.stack(labels)
    return fit_mesh_map(np.stack(meshes), gt, norm(gt), fitted_on=f"{name} ({len(gt)} of {len(data)} faces)")


def on_subset(pred, gt: np.ndarray, yaws: np.ndarray | None, keep: np.ndarray) -> dict:
    """The figures of :func:`summarize` (with ``yaws``) or :func:`interocular_scores` on the faces ``keep``."""
    if yaws is None:
        return interocular_scores(pred.landmarks[keep], gt[keep])
    return summarize(pred.landmarks[keep], gt[keep], pred.image_sizes[keep], yaws[keep])


def score(contenders: dict, val: FaceDataset, helen: FaceDataset) -> dict:
    """Every contender on both sets; for a contender with its own detector (the third item of its entry), the
    faces it found and missed, and every contender on the faces it found (elsewhere its fall-back stands in)."""
    preds = {}
    for name, (on_val, on_helen, _) in contenders.items():
        preds[name] = {
            "val": on_val.predict_dataset(val, progress=False),
            "helen": on_helen.predict_dataset(helen, progress=False),
        }
    finders = [n for n, (_, _, own_detector) in contenders.items() if own_detector]
    gt, yaws = {"val": val.landmarks_array(), "helen": helen.landmarks_array()}, {"val": val.yaws(), "helen": None}
    everyone = {part: np.ones(len(gt[part]), bool) for part in gt}
    out = {}
    for name, p in preds.items():
        row = {"val": on_subset(p["val"], gt["val"], yaws["val"], everyone["val"])}
        row["helen_170"] = on_subset(p["helen"], gt["helen"], None, everyone["helen"])
        if name in finders:
            row["found"] = {"val": int(p["val"].detected.sum()), "helen_170": int(p["helen"].detected.sum())}
            row["missed_val"] = [
                {"name": n, "yaw": round(float(y), 1)}
                for n, y, f in zip(val.names, yaws["val"], p["val"].detected, strict=True)
                if not f
            ]
        for finder in finders:
            for part in ("val", "helen"):
                keep = preds[finder][part].detected
                row[f"{part}_found_by_{finder}"] = on_subset(p[part], gt[part], yaws[part], keep)
        out[name] = row
    return out


def timing(model: str, dlib: DlibPredictor, mp_map: MeshMap, image: np.ndarray, box: tuple, rounds: int) -> dict:
    """Milliseconds per call of each contender given one face on one crop, called in turn (lightmark and dlib given
    the face's 68-landmark box, as ``lightmark benchmark`` does; MediaPipe tracking the face it found in the
    previous call); per-call ratios to lightmark's one-pass ``predict(box=)``, the tracker's path in video."""
    one_pass, default = Predictor(model, threads=1, refine=0), Predictor(model, threads=1)
    tracker = MediaPipeMeshPredictor(mp_map, tracking=True)
    calls = {
        REFERENCE: lambda r: one_pass.predict(image, box=box),
        "lightmark predict(box=), two passes (default)": lambda r: default.predict(image, box=box),
        "dlib predict(box=)": lambda r: dlib.predict(image, box),
        "MediaPipe mesh, tracking (mesh only)": lambda r: tracker.predict(image),
    }
    ms = time_interleaved(calls, rounds, warmup=20)
    return {
        name: {**timing_stats(v), "ratio_to_lightmark_box": ratio_stats(v, ms[REFERENCE])} for name, v in ms.items()
    }


def timing_whole(model: str, dlib: DlibPredictor, mp_map: MeshMap, images: list[np.ndarray], rounds: int) -> dict:
    """Milliseconds per whole image (finding the face included), every contender called in turn on the same image,
    round ``r`` on ``images[r % len(images)]``: lightmark's cost depends on the image (a second framing only where
    the first reading is not sure, ``SURE_READING``), so the mean over many images is its throughput; per-call
    ratios to MediaPipe's image mode."""
    default, flip = Predictor(model, threads=1), Predictor(model, threads=1, flip_test=True)
    accurate = Predictor(ACCURATE, threads=1)
    no_tiles = Predictor(model, threads=1, detector=create_detector("blazeface", threads=1))  # the whole image only
    still = MediaPipeMeshPredictor(mp_map)
    n = len(images)
    calls = {
        WHOLE_REFERENCE: lambda r: still.predict(images[r % n]),
        "lightmark predict(image) (default reading)": lambda r: default.predict(images[r % n]),
        "lightmark predict(image), flip test": lambda r: flip.predict(images[r % n]),
        f"lightmark {ACCURATE} predict(image) (default reading)": lambda r: accurate.predict(images[r % n]),
        "lightmark detect (detector + landmarks; tiles for faces down to 48 px)": lambda r: default.detect(
            images[r % n]
        ),
        "lightmark detect, no tiles (whole image only, as MediaPipe)": lambda r: no_tiles.detect(images[r % n]),
        "dlib HOG + predict": lambda r: dlib.predict(images[r % n]),
    }
    ms = time_interleaved(calls, rounds, warmup=20)
    return {
        name: {**timing_stats(v), "ratio_to_mediapipe": ratio_stats(v, ms[WHOLE_REFERENCE])} for name, v in ms.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="the shared data folder")
    ap.add_argument("--json", help="write the figures as JSON")
    ap.add_argument("--rounds", type=int, default=398, help="timed rounds (each calls every contender once)")
    a = ap.parse_args()
    data = Path(a.data)
    val = load_dataset(data / "aflw2000" / "val", require_landmarks=True)
    full = load_dataset(data / "300w_helen_train", require_landmarks=True)
    helen, rest = split_holdout(full)
    reader = MediaPipeMeshPredictor()
    fs = load_dataset(data / "facesynthetics_100", require_landmarks=True)
    map_3d = fit_map(fs, reader, "FaceSynthetics", box_norm)  # for NME/384, which weighs every face alike
    map_2d = fit_map(rest, reader, "300-W HELEN outside the holdout", interocular_norm)
    print(f"mesh maps fitted on {map_3d.fitted_on} and {map_2d.fitted_on}")
    dlib = DlibPredictor()
    contenders = {}  # name: (on the validation crops, on HELEN, finds the face with its own detector)
    labels = (
        ("protocol", "protocol (synthetic only; guarded flip test, its default)"),
        ("mixed", "mixed (default model)"),
    )
    for model, label in labels:
        default, detect = Predictor(model, threads=1), Predictor(model, threads=1, framing=Framing.DETECT)
        contenders[f"lightmark {label}"] = (default, default, False)
        contenders[f"lightmark {model}, detector only (framing detect)"] = (detect, detect, True)
    flip = Predictor("mixed", threads=1, flip_test=True)  # the mirrored crop read too: ~1.5x the time per image
    contenders["lightmark mixed, flip test (default reading)"] = (flip, flip, False)
    accurate = Predictor(ACCURATE, threads=1)  # the opt-in ResNet-18 of the mixed track: ~4x the time (session 21)
    contenders[f"lightmark {ACCURATE} (opt-in accurate model; default reading)"] = (accurate, accurate, False)
    contenders["dlib 68 (HOG, upsample 1 + ERT)"] = (dlib, dlib, True)
    mesh = (MediaPipeMeshPredictor(map_3d), MediaPipeMeshPredictor(map_2d), True)
    contenders["MediaPipe face mesh -> 68"] = mesh
    acc = score(contenders, val, helen)
    timed = next(s for s in val.samples if Path(s.name).stem == TIMED_IMAGE)
    box = points_box(timed.landmarks)
    speed = timing("mixed", dlib, map_3d, read_image(timed.image_path), box, a.rounds)
    crops = [read_image(s.image_path) for s in val.samples]
    whole = timing_whole("mixed", dlib, map_3d, crops, a.rounds)
    out = {"accuracy": acc, "latency_ms": speed, "latency_whole_ms": whole, "timed_image": TIMED_IMAGE}
    out |= {"rounds": a.rounds, "whole_images": f"the {len(crops)} validation crops in turn"}
    out |= {"cpus": sorted(os.sched_getaffinity(0)), "mesh_maps": {"val": map_3d.to_dict(), "helen": map_2d.to_dict()}}
    print(peers_table(out))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
