"""Random plausible facial expressions as ICT/ARKit blendshape weights."""

from __future__ import annotations

import numpy as np

# Archetypes: shape name (a trailing "*" means both _L and _R) -> (low, high) weight range.
ARCHETYPES: dict[str, dict[str, tuple[float, float]]] = {
    "neutral": {},
    "smile": {
        "mouthSmile_*": (0.4, 1.0),
        "cheekSquint_*": (0.0, 0.6),
        "eyeSquint_*": (0.0, 0.4),
        "mouthDimple_*": (0.0, 0.4),
    },
    "smile_teeth": {
        "mouthSmile_*": (0.5, 1.0),
        "jawOpen": (0.05, 0.3),
        "mouthUpperUp_*": (0.2, 0.7),
        "mouthLowerDown_*": (0.1, 0.6),
        "cheekSquint_*": (0.2, 0.7),
        "eyeSquint_*": (0.1, 0.5),
    },
    "laugh": {
        "mouthSmile_*": (0.5, 1.0),
        "jawOpen": (0.3, 0.8),
        "cheekSquint_*": (0.4, 1.0),
        "eyeSquint_*": (0.3, 0.8),
        "eyeBlink_*": (0.0, 0.5),
        "mouthUpperUp_*": (0.2, 0.6),
    },
    "surprise": {
        "browInnerUp_*": (0.5, 1.0),
        "browOuterUp_*": (0.4, 1.0),
        "eyeWide_*": (0.3, 1.0),
        "jawOpen": (0.1, 0.7),
        "mouthFunnel": (0.0, 0.4),
    },
    "anger": {
        "browDown_*": (0.5, 1.0),
        "eyeSquint_*": (0.2, 0.8),
        "noseSneer_*": (0.0, 0.7),
        "mouthPress_*": (0.0, 0.6),
        "mouthFrown_*": (0.0, 0.5),
        "jawForward": (0.0, 0.3),
    },
    "shout": {
        "browDown_*": (0.3, 1.0),
        "jawOpen": (0.5, 1.0),
        "mouthStretch_*": (0.2, 0.8),
        "mouthUpperUp_*": (0.2, 0.8),
        "noseSneer_*": (0.0, 0.6),
        "mouthLowerDown_*": (0.2, 0.8),
    },
    "sad": {
        "browInnerUp_*": (0.4, 1.0),
        "mouthFrown_*": (0.3, 1.0),
        "mouthShrugLower": (0.0, 0.6),
        "eyeSquint_*": (0.0, 0.3),
        "mouthPress_*": (0.0, 0.3),
    },
    "disgust": {
        "noseSneer_*": (0.4, 1.0),
        "mouthUpperUp_*": (0.3, 0.9),
        "browDown_*": (0.2, 0.8),
        "mouthFrown_*": (0.0, 0.5),
        "cheekSquint_*": (0.0, 0.5),
    },
    "fear": {"browInnerUp_*": (0.5, 1.0), "eyeWide_*": (0.4, 1.0), "mouthStretch_*": (0.3, 0.9), "jawOpen": (0.0, 0.4)},
    "pucker": {"mouthPucker": (0.5, 1.0), "mouthFunnel": (0.0, 0.6), "cheekSquint_*": (0.0, 0.3)},
    "kiss": {"mouthPucker": (0.7, 1.0), "mouthFunnel": (0.2, 0.6), "eyeBlink_*": (0.0, 1.0)},
    "talk_a": {"jawOpen": (0.15, 0.5), "mouthLowerDown_*": (0.0, 0.5), "mouthUpperUp_*": (0.0, 0.3)},
    "talk_o": {"jawOpen": (0.1, 0.4), "mouthFunnel": (0.3, 0.9), "mouthPucker": (0.0, 0.5)},
    "talk_e": {
        "jawOpen": (0.05, 0.3),
        "mouthStretch_*": (0.2, 0.7),
        "mouthSmile_*": (0.0, 0.3),
        "mouthUpperUp_*": (0.0, 0.4),
    },
    "talk_m": {
        "mouthPress_*": (0.3, 0.9),
        "mouthRollLower": (0.0, 0.6),
        "mouthRollUpper": (0.0, 0.5),
        "mouthShrugUpper": (0.0, 0.4),
    },
    "yawn": {
        "jawOpen": (0.8, 1.0),
        "mouthStretch_*": (0.0, 0.5),
        "eyeSquint_*": (0.3, 0.8),
        "eyeBlink_*": (0.0, 0.8),
        "browInnerUp_*": (0.0, 0.5),
    },
    "blink": {"eyeBlink_*": (0.7, 1.0)},
    "squint": {"eyeSquint_*": (0.4, 1.0), "cheekSquint_*": (0.2, 0.8), "browDown_*": (0.0, 0.5)},
    "puff": {"cheekPuff_*": (0.5, 1.0), "mouthPress_*": (0.0, 0.5), "mouthClose": (0.0, 0.3)},
    "jaw_side": {"jawLeft": (0.0, 1.0), "jawRight": (0.0, 1.0), "jawOpen": (0.0, 0.4)},
    "mouth_side": {"mouthLeft": (0.0, 1.0), "mouthRight": (0.0, 1.0)},
    "lip_suck": {"mouthRollLower": (0.3, 1.0), "mouthRollUpper": (0.3, 1.0), "mouthPress_*": (0.0, 0.5)},
    "chin_raise": {"mouthShrugLower": (0.4, 1.0), "mouthShrugUpper": (0.0, 0.6), "mouthFrown_*": (0.0, 0.6)},
    "wide_open": {
        "jawOpen": (0.7, 1.0),
        "mouthFunnel": (0.0, 0.5),
        "eyeWide_*": (0.0, 0.7),
        "browOuterUp_*": (0.0, 0.8),
    },
}
ARCHETYPE_WEIGHTS: dict[str, float] = {
    "neutral": 3.0,
    "smile": 2.5,
    "smile_teeth": 2.0,
    "laugh": 1.0,
    "surprise": 1.0,
    "anger": 1.0,
    "shout": 0.7,
    "sad": 0.8,
    "disgust": 0.6,
    "fear": 0.6,
    "pucker": 0.6,
    "kiss": 0.3,
    "talk_a": 1.5,
    "talk_o": 1.0,
    "talk_e": 1.0,
    "talk_m": 0.8,
    "yawn": 0.4,
    "blink": 0.8,
    "squint": 0.6,
    "puff": 0.3,
    "jaw_side": 0.5,
    "mouth_side": 0.6,
    "lip_suck": 0.4,
    "chin_raise": 0.5,
    "wide_open": 0.6,
}
# mutually exclusive pairs: keep only the larger one
EXCLUSIVE = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"))


def sample_expression(rng: np.random.Generator, names: tuple[str, ...], cfg) -> tuple[np.ndarray, list[str]]:
    """Blendshape weights (E,) in [0,1] for the model's ``names``: 1-2 archetypes, asymmetry and noise."""
    idx = {n: i for i, n in enumerate(names)}
    w = np.zeros(len(names), np.float64)
    keys = list(ARCHETYPES)
    p = np.array([ARCHETYPE_WEIGHTS[k] for k in keys])
    k = 1 if rng.random() < 0.6 else 2
    chosen = list(rng.choice(keys, size=k, replace=False, p=p / p.sum()))
    intensity = rng.uniform(0.5, 1.0) * cfg.expression_scale
    for a in chosen:
        asym = rng.uniform(0.0, 0.6) if rng.random() < cfg.p_asymmetric else 0.0
        side_gain = {"_L": 1.0, "_R": 1.0}
        side_gain["_L" if rng.random() < 0.5 else "_R"] = 1.0 - asym
        for name, (lo, hi) in ARCHETYPES[a].items():
            v = rng.uniform(lo, hi) * intensity
            targets = [name[:-1] + "L", name[:-1] + "R"] if name.endswith("*") else [name]
            for t in targets:
                if t not in idx:
                    continue
                g = side_gain.get(t[-2:], 1.0) if name.endswith("*") else 1.0
                w[idx[t]] = max(w[idx[t]], v * g)
    # a wink: one eye closed
    if rng.random() < cfg.p_wink:
        side = "_L" if rng.random() < 0.5 else "_R"
        if "eyeBlink" + side in idx:
            w[idx["eyeBlink" + side]] = rng.uniform(0.7, 1.0)
    # background activity of every shape
    if rng.random() < 0.7:
        w += rng.exponential(0.04, len(w)) * (rng.random(len(w)) < 0.3)
    for a, b in EXCLUSIVE:
        if a in idx and b in idx:
            if w[idx[a]] >= w[idx[b]]:
                w[idx[b]] = 0.0
            else:
                w[idx[a]] = 0.0
    # gaze shapes are driven by the eyeball rotation (see generator), not here
    for n in names:
        if n.startswith("eyeLook"):
            w[idx[n]] = 0.0
    return np.clip(w, 0.0, 1.0).astype(np.float32), chosen
