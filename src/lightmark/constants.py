"""Constants shared by the whole package: the one source of truth for the 68-point layout."""

from __future__ import annotations

NUM_LANDMARKS: int = 68
"""Number of iBUG/300-W landmarks the models predict."""

CHALLENGE_SIZE: int = 384
"""Side of the Light-Weight Facial Landmark Prediction Challenge crops (NME divides by sqrt(W*H) = 384)."""

# Horizontal-flip permutation: after mirroring an image, point i of the mirrored face is point FLIP_PERM[i]
# of the original (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer mouth 48-59, inner mouth 60-67).
FLIP_PERM: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw
    *range(26, 16, -1),  # brows
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # nostrils
    45, 44, 43, 42, 47, 46,  # right eye <- left eye
    39, 38, 37, 36, 41, 40,  # left eye <- right eye
    54, 53, 52, 51, 50, 49, 48,  # outer upper lip
    59, 58, 57, 56, 55,  # outer lower lip
    64, 63, 62, 61, 60,  # inner upper lip
    67, 66, 65,  # inner lower lip
)  # fmt: skip

# Named index ranges (Python slices) of the 68-point layout.
JAW = slice(0, 17)
RIGHT_BROW = slice(17, 22)
LEFT_BROW = slice(22, 27)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)  # subject's right eye (image left on a frontal face)
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
INNER = slice(17, 68)  # all but the jaw: brows, nose, eyes, mouth (the "inner 51" of 300-W error reports)
OUTER_EYE_CORNERS: tuple[int, int] = (36, 45)
"""Outer eye corners: the 300-W inter-ocular normaliser."""

# Line segments used to draw a 68-point face (each a run of consecutive indices; closed ones loop).
CONTOURS: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False),
    (17, 22, False),
    (22, 27, False),
    (27, 31, False),
    (31, 36, False),
    (36, 42, True),
    (42, 48, True),
    (48, 60, True),
    (60, 68, True),
)

CROP_SIDE_RATIO: float = 1.90
"""Side of a face crop / side (max(w, h)) of its 68-landmark box, as in the challenge's crops (1.90 +- 0.16)."""

CROP_SHIFT_UP: float = 0.084
"""The crop window's centre sits this fraction of its side above the landmark box centre (challenge crops)."""

FINE_SIDE_RATIO: float = 1.45
"""Fine (second) pass of a two-pass model: crop side / side of the upright landmark box - the face fills ~70 % of
the input instead of ~53 % in the challenge framing."""

FINE_SHIFT_UP: float = 0.05
"""Fine pass: the window's centre sits this fraction of its side above the upright landmark box centre."""

YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0001))
"""Absolute-yaw bins (degrees) of the AFLW2000-3D literature: [0,30), [30,60), [60,90]."""

YAW_BIN_NAMES: tuple[str, ...] = ("yaw_0_30", "yaw_30_60", "yaw_60_90")

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

MAX_IMAGE_PIXELS: int = 100_000_000
"""Images above this many pixels are refused before they are decoded (decompression-bomb guard)."""

assert len(FLIP_PERM) == NUM_LANDMARKS and sorted(FLIP_PERM) == list(range(NUM_LANDMARKS))
assert all(FLIP_PERM[FLIP_PERM[i]] == i for i in range(NUM_LANDMARKS))
