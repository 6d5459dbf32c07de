"""A face/no-face linear probe on the shipped mixed model's frozen backbone (pooled features of its last two
stages), trained on synthetic data only, scored on the detect path's crops of the validation crops, the group
photos and the non-face images of scripts/detect_check.py (issue 12; docs/usage.md, "A face head"). An experiment:
nothing here is shipped. About 2 minutes on 2 cores.

    python scripts/face_probe.py
"""

import importlib.util
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from lightmark import Predictor
from lightmark.data import load_dataset
from lightmark.data.images import read_image
from lightmark.data.transforms import face_roll, upright_matrix
from lightmark.engine.faces import first_matrix
from lightmark.synth.compose import procedural_background

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("detect_check", ROOT / "scripts" / "detect_check.py")
dc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dc)
DATA = ROOT.parent / "shared" / "data"
rng = np.random.default_rng(123)
p = Predictor("mixed", backend="torch", threads=2)
onnx = Predictor("mixed", threads=2)
model = p.model.eval()
S, c = p.input_size, p.config


def feats(crops):
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), 64):
            batch = np.stack(crops[i : i + 64]).transpose(0, 3, 1, 2)
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            f = model.backbone((x - model.mean) / model.std)
            out.append(torch.cat([f[-1].mean((2, 3)), f[-2].mean((2, 3))], 1).numpy())
    return np.concatenate(out)


def jitter_crop(img, pts, rng):
    ratio = c.fine_ratio * float(np.exp(rng.normal(0, 0.12)))
    ang = face_roll(pts) + rng.normal(0, 12)
    off = tuple(rng.normal(0, 0.06, 2))
    m = upright_matrix(pts, S, ratio, c.fine_shift_up, ang, off, flip=bool(rng.random() < 0.5))
    return p.cut(img, m)


t0 = time.time()
pos, neg = [], []
synth = load_dataset(ROOT.parent / "synth" / "s256").samples  # make synth-12k
for s in synth[:2500]:
    img = read_image(s.image_path)
    pos.append(jitter_crop(img, s.landmarks, rng))
    # far off the face: mostly background / hair / shoulder
    ang, d = rng.uniform(0, 360), rng.uniform(0.8, 1.2)
    off = (d * np.cos(np.deg2rad(ang)), d * np.sin(np.deg2rad(ang)))
    ratio = c.fine_ratio * float(np.exp(rng.normal(0, 0.3)))
    m = upright_matrix(s.landmarks, S, ratio, c.fine_shift_up, rng.normal(0, 20), off)
    neg.append(p.cut(img, m))
for s in load_dataset(DATA / "facesynthetics_100").samples:
    img = read_image(s.image_path)
    for _ in range(5):
        pos.append(jitter_crop(img, s.landmarks, rng))
det = p.detector.__class__(threads=2, score_threshold=0.2, min_face=48.0)
hard = 0
for _k in range(400):
    size = int(rng.integers(256, 900))
    bg = (procedural_background(rng, size) * 255 + 0.5).astype(np.uint8)
    for d in det.detect(bg)[:3]:  # detector false positives: the hardest negatives, framed like the detect path
        neg.append(p.cut(bg, first_matrix(p, d, det.box_to_face)))
        hard += 1
    for _ in range(3):
        side = rng.uniform(0.15, 1.0) * size
        x0, y0 = rng.uniform(0, size - side, 2)
        m = cv2.getRotationMatrix2D((0, 0), 0, S / side)
        m[:, 2] = [-x0 * S / side, -y0 * S / side]
        neg.append(p.cut(bg, m))
print(f"{len(pos)} positives, {len(neg)} negatives ({hard} detector false positives), {time.time() - t0:.0f} s")
X = np.concatenate([feats(pos), feats(neg)])
y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
mu, sd = X.mean(0), X.std(0) + 1e-6
Xt, yt = torch.from_numpy((X - mu) / sd).float(), torch.from_numpy(y).float()
lin = torch.nn.Linear(X.shape[1], 1)
opt = torch.optim.LBFGS(lin.parameters(), max_iter=300)
wpos = len(neg) / len(pos)


def closure():
    opt.zero_grad()
    z = lin(Xt).squeeze(1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, yt, pos_weight=torch.tensor(wpos))
    loss = bce + 1e-3 * (lin.weight**2).sum()
    loss.backward()
    return loss


opt.step(closure)
with torch.no_grad():
    tr = torch.sigmoid(lin(Xt).squeeze(1)).numpy()
print("train acc", ((tr > 0.5) == y).mean(), flush=True)


def prob(crops):
    with torch.no_grad():
        return torch.sigmoid(lin(torch.from_numpy((feats(crops) - mu) / sd).float()).squeeze(1)).numpy()


def detect_records(img, truths):
    faces = onnx.detect(img, min_score=None)
    if not faces:
        return []
    crops = [onnx.cut(img, onnx.fine_matrix(f.landmarks)) for f in faces]
    pr = prob(crops)
    recs = []
    for f, q in zip(faces, pr, strict=False):
        match = any(np.linalg.norm(f.landmarks - t, axis=1).mean() < 0.25 * dc.face_size(t) for t in truths)
        recs.append((match, f.score, f.face_score, float(q)))
    return recs


R = {"val": [], "groups": [], "nonfaces": []}
for s in load_dataset(DATA / "aflw2000" / "val").samples:
    R["val"].append(detect_records(read_image(s.image_path), [s.landmarks]))
grng = np.random.default_rng(0)
faces, crops = dc.helen_faces(DATA), dc.synth_backgrounds(DATA)
for i in range(12):
    size = (1280, 720) if i % 2 == 0 else (1920, 1080)
    pick = [faces[k] for k in grng.choice(len(faces), int(grng.integers(3, 7)), replace=False)]
    img, truths = dc.make_group_photo(grng, pick, size, dc.tiled_background(grng, crops, size))
    R["groups"].append(detect_records(img, truths))
for _name, img in dc.nonface_images(np.random.default_rng(0), DATA):
    R["nonfaces"].append(detect_records(img, []))
print(f"evaluated, {time.time() - t0:.0f} s")


def tally(rule):
    """(faces found, detections invented) per part under a keep rule on (match, det, face, probe)."""
    out = {}
    for part, per in R.items():
        found = sum(sum(r[0] and rule(r) for r in recs) for recs in per)
        inv = sum(sum((not r[0]) and rule(r) for r in recs) for recs in per)
        out[part] = (found, inv)
    return out


print("current rule det+face>=1.35:", tally(lambda r: r[1] + r[2] >= 1.35))
for t in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
    print(f"probe >= {t}:", tally(lambda r, t=t: r[3] >= t))
for t in (1.6, 1.8, 2.0, 2.1, 2.2, 2.25, 2.3):
    print(f"det + face + probe >= {t}:", tally(lambda r, t=t: r[1] + r[2] + r[3] >= t))
