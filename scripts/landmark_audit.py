"""Audit the synthetic renderer's 68-point landmark definition against FaceSynthetics' labels.

Fits the ICT model to every FaceSynthetics sample (once on all 68 points, then once per region left out), measures
where FaceSynthetics' labels sit against the ICT vertices (image and mesh frames), compares where both data sets put
points against their segmentation edges (brows, lids, nose, lips), measures on synthetic faces how much of a known
definition change the fits absorb, derives the FaceSynthetics-matched definition (``ibug68_fs``) and checks it by
two-fold cross-validation. Writes the numbers as JSON and the figure ``docs/landmark_audit.jpg``.

    python scripts/landmark_audit.py --json docs/evals/landmark_audit.json --figure docs/landmark_audit.jpg

About 7 minutes on one core (about 1000 fits of ~0.45 s); ``--cache FILE.npz`` keeps the FaceSynthetics fits (derived
data: keep it outside the repository) so that a rerun skips them. Nothing is fitted to any validation set.
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
sys.path.insert(0, str(ROOT / "src"))

from lightmark.data.formats import read_ldmks  # noqa: E402
from lightmark.synth import landmark_audit as A  # noqa: E402
from lightmark.synth import landmark_audit_figure as F  # noqa: E402
from lightmark.synth import load_face_model  # noqa: E402
from lightmark.synth.landmark_sets import IBUG68_FS_SURFACE  # noqa: E402
from lightmark.synth.textures import list_samples  # noqa: E402

SIZE = 512  # FaceSynthetics images


def load_fs(folder: Path, count: int) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Names, 68 labels (N,68,2) and segmentations of the first ``count`` FaceSynthetics samples."""
    samples = list_samples(folder)[:count]
    labels = np.stack([read_ldmks(s.ldmks)[0].astype(np.float64) for s in samples])
    segs = [cv2.imread(str(s.seg), cv2.IMREAD_UNCHANGED) for s in samples]
    return [s.name for s in samples], labels, segs


def run_audit(model, labels: np.ndarray, cache: Path | None, loro: bool) -> A.Audit:
    """The full and leave-one-region-out audit of every sample (read from / written to ``cache``)."""
    keys = list(A.Residuals.__dataclass_fields__)
    if cache is not None and cache.is_file():
        z = np.load(cache)
        if z["full_image"].shape[0] == len(labels):
            part = {p: A.Residuals(**{k: z[f"{p}_{k}"] for k in keys}) for p in ("full", "loro")}
            return A.Audit(part["full"], part["loro"], z["params"], SIZE)
    t0 = time.time()

    def tick(i: int) -> None:
        if (i + 1) % 10 == 0:
            print(f"  fitted {i + 1}/{len(labels)} ({time.time() - t0:.0f} s)", flush=True)

    audit = A.audit_samples(model, labels, SIZE, tuple(A.REGIONS) if loro else (), tick)
    if cache is not None:
        arrays = {f"{p}_{k}": getattr(getattr(audit, p), k) for p in ("full", "loro") for k in keys}
        np.savez_compressed(cache, params=audit.params, **arrays)
    return audit


def fs_seg_depths(model, audit: A.Audit, labels: np.ndarray, segs: list[np.ndarray]) -> np.ndarray:
    """(N,K) depths of the :data:`SEG_EDGES` labels in their classes, as fractions of the inter-ocular distance."""
    out = []
    for i, seg in enumerate(segs):
        fit = A.fit_from_params(model, audit.params[i], SIZE)
        V = model.vertices(fit.identity, fit.expression)
        up = A.image_up(fit.camera.P, V[model.landmarks68].mean(0))
        out.append(A.seg_depths(seg, labels[i], up) / audit.full.iod[i])
    return np.stack(out)


def absorption(model, views: list, shift: float = 0.3) -> dict:
    """How much of a region-wide shift (``shift`` cm along the surface: brows, nose, eyes, mouth down or up, the
    jaw outwards) an audit of synthetic faces recovers, on the full fit and on the leave-one-region-out fit."""
    sign = A.outward_sign(model)
    plan = {"jaw": (0, shift), "brows": (1, -shift), "nose": (1, shift), "eyes": (1, shift), "mouth": (1, -shift)}
    out = {}
    for name, (comp, amount) in plan.items():
        ix = np.asarray(A.REGIONS[name])
        ix = ix[sign[ix] != 0] if comp == 0 else ix
        off = np.zeros((68, 2))
        off[ix, comp] = amount * (sign[ix] if comp == 0 else 1.0)
        ids, w = A.shifted_definition(model, off)
        got = {"full": [], "loro": []}
        for V, cam in views:
            lab = cam.project(A.surface_points(V, ids, w))
            fit, x = A.fit_weighted(model, lab, cam.size)
            got["full"].append(A.measure(model, fit, lab))
            wt = np.ones(68)
            wt[list(A.REGIONS[name])] = 0.0
            held, _ = A.fit_weighted(model, lab, cam.size, wt, x0=x)
            got["loro"].append(A.measure(model, held, lab))
        row = {"direction": ["outwards", "up"][comp], "shift_cm": amount}
        for k, res in got.items():
            rec = A.point_offsets(model, A.Residuals.stack(res))
            row[f"recovered_{k}"] = round(float((rec[ix, comp] * off[ix, comp]).sum() / (off[ix, comp] ** 2).sum()), 3)
        out[name] = row
        print(f"  absorption {name}: {row}", flush=True)
    return out


def cross_validate(model, audit: A.Audit, labels, fs_depth, renders, views) -> dict:
    """Two-fold: the definition derived on one half of the samples, refitted on the other; per region and over the
    changed points, the mean size of the systematic offsets and the mean residual, current vs. corrected."""
    n = len(labels)
    halves = [np.arange(0, n, 2), np.arange(1, n, 2)]
    cur, new, changed = [], [], np.zeros(68, bool)
    for a, b in (halves, halves[::-1]):
        dv = A.derive_definition(model, _take(audit.full, a), fs_depth[a], renders, views)
        ids, w = dv.definition
        changed |= np.abs(dv.offsets).sum(1) > 0
        for i in b:
            fit, _ = A.fit_weighted(model, labels[i], SIZE, definition=(ids, w))
            new.append(A.measure(model, fit, labels[i], ids, w))
        cur.append(_take(audit.full, b))
    rows = {}
    for name, r in (("current", A.Residuals.stack(cur)), ("corrected", A.Residuals.stack(new))):
        st = A.point_stats(r)
        mag = np.linalg.norm(st["mean_iod"], axis=1)
        res = np.linalg.norm(r.image, axis=2).mean(0)
        row = {f"{k}_systematic_iod": float(mag[list(ix)].mean()) for k, ix in A.REGIONS.items()}
        row |= {f"{k}_residual_px": float(res[list(ix)].mean()) for k, ix in A.REGIONS.items()}
        row |= {"changed_systematic_iod": float(mag[changed].mean()), "changed_residual_px": float(res[changed].mean())}
        row |= {"all_residual_px": float(res.mean())}
        rows[name] = row
    rows["changed_points"] = np.flatnonzero(changed).tolist()
    return rows


def _take(r: A.Residuals, ix: np.ndarray) -> A.Residuals:
    return A.Residuals(**{k: getattr(r, k)[ix] for k in A.Residuals.__dataclass_fields__})


def _r(a, nd: int = 4):
    return np.round(np.asarray(a, np.float64), nd).tolist()


def report(model, audit, fs_depth, our_depth, our_fs_depth, dv, absorb, cv, names) -> dict:
    """The JSON document."""
    sign = A.outward_sign(model)
    st = {"full": A.point_stats(audit.full), "loro": A.point_stats(audit.loro)}
    keys = list(A.SEG_EDGES)
    region_of = {i: k for k, ix in A.REGIONS.items() for i in ix}
    points = []
    for i in range(68):
        row = {"point": i, "region": region_of[i]}
        for f, s in st.items():
            row[f] = {
                k: _r(s[k][i], 3) for k in ("mean_px", "sd_px", "mean_iod", "sd_iod", "mean_mesh", "sd_mesh", "effect")
            }
        if i in A.SEG_EDGES:
            k = keys.index(i)
            row["seg_depth_iod"] = {
                "edge": A.SEG_EDGES[i][1],
                "facesynthetics": _r(np.nanmedian(fs_depth[:, k])),
                "ours": _r(np.nanmedian(our_depth[:, k])),
                "ours_ibug68_fs": _r(np.nanmedian(our_fs_depth[:, k])),
            }
        row["fit_offset_cm"] = _r(dv.fit[i])
        row["kappa"] = None if np.isnan(dv.kappa[i]) else _r(dv.kappa[i], 3)
        row["applied_offset_cm"] = _r(dv.offsets[i])
        points.append(row)
    table = A.definition_table(model, dv.definition)
    return {
        "samples": len(names),
        "image_size": SIZE,
        "iod_px": {
            "mean": _r(audit.full.iod.mean(), 2),
            "min": _r(audit.full.iod.min(), 2),
            "max": _r(audit.full.iod.max(), 2),
        },
        "mean_residual_px": _r(np.linalg.norm(audit.full.image, axis=2).mean(), 3),
        "components": "right (image right of a frontal face: the subject's left), up; 'out': away from the midline",
        "regions": {f: A.region_stats(s, sign) for f, s in st.items()},
        "points": points,
        "absorption": absorb,
        "cross_validation": cv,
        "definition": {str(k): {"ids": list(v[0]), "weights": list(v[1])} for k, v in table.items()},
        "definition_matches_landmark_sets": table == IBUG68_FS_SURFACE,
    }


def figure(model, audit, dv, labels, names, folder: Path, renders: list, path: Path) -> None:
    """docs/landmark_audit.jpg: the mean face; three FaceSynthetics samples with their labels and their eyebrow and
    lip classes; three of our renders with both definitions and the same classes."""
    face = F.mean_face_panel(model, A.point_offsets(model, audit.full), dv.definition, size=720)
    tiles = []
    for i in [i for i in (1, 9, 20) if i < len(names)] or list(range(min(3, len(names)))):
        img = cv2.imread(str(folder / f"{names[i]}.png"))[:, :, ::-1]
        seg = cv2.imread(str(folder / f"{names[i]}_seg.png"), cv2.IMREAD_UNCHANGED)
        tiles.append(F.sample_panel(img, [(labels[i], F.RED)], 360, f"FaceSynthetics {names[i]}", seg))
    for k, (img, cur, fs, seg) in enumerate(renders):
        tiles.append(F.sample_panel(img, [(cur, F.GREEN), (fs, F.MAGENTA)], 360, f"ours, seed 7 #{k}", seg))
    right = F.grid(tiles, 3)
    h = max(face.shape[0], right.shape[0])
    sheet = np.concatenate([np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0))) for im in (face, right)], 1)
    cap = np.full((34, sheet.shape[1], 3), 15, np.uint8)
    legend = (
        "red: FaceSynthetics labels   green: current ICT vertices   magenta: ibug68_fs   outlines: brow, lip classes"
    )
    F._text(cap, legend, 8, 23, 0.6)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate([cap, sheet], 0)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "facesynthetics_100")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "evals" / "landmark_audit.json")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "landmark_audit.jpg")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--renders", type=int, default=40, help="our renders for the segmentation comparison")
    ap.add_argument("--views", type=int, default=24, help="synthetic faces for the absorption measurements")
    ap.add_argument("--cache", type=Path, default=None, help="npz keeping the FaceSynthetics fits (outside the repo)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    model = load_face_model()
    names, labels, segs = load_fs(args.data, args.samples)
    print(f"auditing {len(names)} FaceSynthetics samples", flush=True)
    audit = run_audit(model, labels, args.cache, loro=True)
    fs_depth = fs_seg_depths(model, audit, labels, segs)
    renders, shown = A.seg_views(model, args.renders)
    views = A.synthetic_views(model, args.views)
    dv = A.derive_definition(model, audit.full, fs_depth, renders, views)
    our_depth = A.view_depths(renders, A.vertex_definition(model))
    our_fs_depth = A.view_depths(renders, dv.definition)
    absorb = absorption(model, views[: max(8, args.views // 2)])
    cv = cross_validate(model, audit, labels, fs_depth, renders, views)
    doc = report(model, audit, fs_depth, our_depth, our_fs_depth, dv, absorb, cv, names)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    figure(model, audit, dv, labels, names, args.data, shown[:3], args.figure)
    print(json.dumps({"regions": doc["regions"], "cross_validation": cv}, indent=1))
    if not doc["definition_matches_landmark_sets"]:
        print("NOTE: the derived definition differs from landmark_sets.IBUG68_FS_SURFACE:")
        print(json.dumps(doc["definition"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
