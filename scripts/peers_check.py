"""lightmark side by side with the peers users compare it with: dlib's 68-point shape predictor (ERT, HOG detector)
and MediaPipe's face mesh (468 vertices read as 68 points), on the same images in one run.

- Validation crops (AFLW2000-3D, 199): NME/384 overall and by yaw, and on the faces each peer's detector found.
- The 170 HELEN holdout faces: inter-ocular NME of the inner 51 points, the jaw and all 68 (dlib's model was
  trained on 300-W, HELEN's training pictures included, so its HELEN figure is on faces it has seen).
- Time per face on one core, every contender called in turn on the same crop (medians and ratios of one run).

MediaPipe's mesh has no 68-point definition: each point is an affine combination of the 4 mesh vertices that fit
it best (``fit_mesh_map``), fitted on other labelled faces than those scored, in the convention of the set scored:
on the 100 FaceSynthetics samples (3D jaw, as AFLW2000-3D) for the validation crops, on the 700 HELEN faces outside
the holdout (300-W's visible jaw) for the holdout. face-alignment (FAN) is not here: it downloads its weights at
run time, which fails offline.

MediaPipe 0.10.21 (the last release that ships the mesh model) pins numpy < 2; ``make compare-peers`` builds a
virtual environment with it, dlib and lightmark, and runs, pinned to one core:

    taskset -c 0 python scripts/peers_check.py [--data ../shared/data] [--json docs/evals/peers.json] [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from lightmark.constants import JAW
from lightmark.data.formats import FaceDataset, load_dataset, read_name_lists
from lightmark.data.images import read_image
from lightmark.engine.baselines import (
    DlibPredictor,
    MediaPipeMeshPredictor,
    MeshMap,
    fit_mesh_map,
)
from lightmark.engine.predict import Predictor
from lightmark.engine.timing import ratio_stats, time_interleaved, timing_stats
from lightmark.metrics import challenge_norm, interocular_norm, nme, summarize
from lightmark.report import peers_table

HOLDOUT = Path(__file__).resolve().parents[1] / "splits" / "helen_holdout_170.txt"
TIMED_IMAGE = "image00013"  # a near-frontal validation crop (MediaPipe finds it)
REFERENCE = "lightmark predict(box=), one pass (the tracker's path)"


def fit_map(data: FaceDataset, mesh_reader: MediaPipeMeshPredictor, name: str) -> tuple[MeshMap, int]:
    """The mesh map fitted on every face of ``data`` the mesh finds; and how many that was."""
    meshes, labels = [], []
    for s in data.samples:
        mesh = mesh_reader.mesh(read_image(s.image_path))
        if mesh is not None:
            meshes.append(mesh)
            labels.append(s.landmarks)
    gt = np.stack(labels)
    return fit_mesh_map(np.stack(meshes), gt, interocular_norm(gt), fitted_on=f"{name} ({len(gt)} faces)"), len(gt)


def helen_scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Mean inter-ocular NME (percent) of all 68 points, the inner 51 and the jaw of (N, 68, 2) predictions."""
    norm = interocular_norm(gt)
    return {
        "n": len(gt),
        "all_68": float(nme(pred, gt, norm).mean()),
        "inner_51": float(nme(pred[:, 17:], gt[:, 17:], norm).mean()),
        "jaw_17": float(nme(pred[:, JAW], gt[:, JAW], norm).mean()),
    }


def score(contenders: dict, val: FaceDataset, helen: FaceDataset) -> dict:
    """Every contender on both sets, and on the faces each peer's own detector found (``results.detected`` of a
    baseline: the fall-back shape stands in elsewhere)."""
    preds = {}
    for name, (on_val, on_helen) in contenders.items():
        preds[name] = {
            "val": on_val.predict_dataset(val, progress=False),
            "helen": on_helen.predict_dataset(helen, progress=False),
        }
    peers = [n for n, (p, _) in contenders.items() if not isinstance(p, Predictor)]
    gt_v, gt_h = val.landmarks_array(), helen.landmarks_array()
    out = {}
    for name, p in preds.items():
        row = {"val": summarize(p["val"].landmarks, gt_v, p["val"].image_sizes, val.yaws())}
        row["helen_170"] = helen_scores(p["helen"].landmarks, gt_h)
        if name in peers:
            row["found"] = {"val": int(p["val"].detected.sum()), "helen_170": int(p["helen"].detected.sum())}
        for peer in peers:
            fv, fh = preds[peer]["val"].detected, preds[peer]["helen"].detected
            e = nme(p["val"].landmarks[fv], gt_v[fv], challenge_norm(p["val"].image_sizes[fv]))
            row[f"val_found_by_{peer}"] = {"n": int(fv.sum()), "nme_challenge": float(e.mean())}
            row[f"helen_found_by_{peer}"] = helen_scores(p["helen"].landmarks[fh], gt_h[fh])
        out[name] = row
    return out


def timing(model: str, dlib: DlibPredictor, mp_map: MeshMap, image: np.ndarray, box: tuple, rounds: int) -> dict:
    """Milliseconds per call of each contender on one crop, called in turn (lightmark and dlib given the face's
    68-landmark box, as ``lightmark benchmark`` does); per-call ratios to lightmark's one-pass ``predict(box=)``,
    the tracker's path in video."""
    one_pass, default = Predictor(model, threads=1, refine=0), Predictor(model, threads=1)
    still, tracker = MediaPipeMeshPredictor(mp_map), MediaPipeMeshPredictor(mp_map, tracking=True)
    calls = {
        REFERENCE: lambda r: one_pass.predict(image, box=box),
        "lightmark predict(box=), two passes (default)": lambda r: default.predict(image, box=box),
        "lightmark predict(image) (default reading)": lambda r: default.predict(image),
        "lightmark detect (detector + landmarks)": lambda r: default.detect(image),
        "dlib predict(box=)": lambda r: dlib.predict(image, box),
        "dlib HOG + predict": lambda r: dlib.predict(image),
        "MediaPipe mesh, image mode (detector + mesh)": lambda r: still.predict(image),
        "MediaPipe mesh, tracking (mesh only)": lambda r: tracker.predict(image),
    }
    ms = time_interleaved(calls, rounds, warmup=20)
    return {
        name: {**timing_stats(v), "ratio_to_lightmark_box": ratio_stats(v, ms[REFERENCE])} for name, v in ms.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="the shared data folder")
    ap.add_argument("--json", help="write the figures as JSON")
    ap.add_argument("--rounds", type=int, default=200, help="timed rounds (each calls every contender once)")
    a = ap.parse_args()
    data = Path(a.data)
    val = load_dataset(data / "aflw2000" / "val", require_landmarks=True)
    full = load_dataset(data / "300w_helen_train", require_landmarks=True)
    held = read_name_lists([str(HOLDOUT)])
    helen = FaceDataset(full.root, full.format, [s for s in full.samples if s.name in held])
    rest = FaceDataset(full.root, full.format, [s for s in full.samples if s.name not in held])
    reader = MediaPipeMeshPredictor()
    map_3d, n3 = fit_map(load_dataset(data / "facesynthetics_100", require_landmarks=True), reader, "FaceSynthetics")
    map_2d, n2 = fit_map(rest, reader, "300-W HELEN outside the holdout")
    print(f"mesh maps fitted on {n3} FaceSynthetics faces and {n2} HELEN faces")
    protocol, mixed, dlib = Predictor("protocol", threads=1), Predictor("mixed", threads=1), DlibPredictor()
    contenders = {
        "lightmark protocol (synthetic only)": (protocol, protocol),
        "lightmark mixed (default model)": (mixed, mixed),
        "dlib 68 (HOG + ERT)": (dlib, dlib),
        "MediaPipe face mesh -> 68": (MediaPipeMeshPredictor(map_3d), MediaPipeMeshPredictor(map_2d)),
    }
    acc = score(contenders, val, helen)
    timed = next(s for s in val.samples if Path(s.name).stem == TIMED_IMAGE)
    box = (*timed.landmarks.min(0), *timed.landmarks.max(0))
    speed = timing("mixed", dlib, map_3d, read_image(timed.image_path), box, a.rounds)
    out = {"accuracy": acc, "latency_ms": speed, "timed_image": TIMED_IMAGE, "rounds": a.rounds}
    out |= {"cpus": sorted(os.sched_getaffinity(0)), "mesh_maps": {"val": map_3d.to_dict(), "helen": map_2d.to_dict()}}
    print(peers_table(out))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
