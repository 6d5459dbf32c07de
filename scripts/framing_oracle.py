"""How a model does when its crop is framed around the true landmarks: ``Predictor.predict(image, landmarks=)``
(the refining crop, upright by the model's roll rule) against the axis-aligned challenge framing of the same
points, on the labelled validation crops (NME/384).

    python scripts/framing_oracle.py [--model mixed] [--data ../shared/data/aflw2000/val]
"""

from __future__ import annotations

import argparse

import numpy as np

from lightmark import Predictor
from lightmark.data import load_dataset
from lightmark.data.images import read_image
from lightmark.engine.predict import landmarks_matrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mixed", help="checkpoint, ONNX or shipped track name")
    ap.add_argument("--data", default="../shared/data/aflw2000/val", help="labelled 384x384 crops")
    args = ap.parse_args()
    p = Predictor(args.model, threads=1)
    refined, challenge = [], []
    for s in load_dataset(args.data).samples:
        img, gt = read_image(s.image_path), s.landmarks
        m = landmarks_matrix(gt, p.input_size)
        axis, _ = p.predict_mapped_with_confidence(p.cut(img, m)[None], [m])
        refined.append(np.linalg.norm(p.predict(img, landmarks=gt) - gt, axis=1).mean() / 3.84)
        challenge.append(np.linalg.norm(axis[0] - gt, axis=1).mean() / 3.84)
    print(f"{args.model}: predict(landmarks=truth) {np.mean(refined):.3f}  challenge framing {np.mean(challenge):.3f}")


if __name__ == "__main__":
    main()
