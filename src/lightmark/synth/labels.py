"""Segmentation classes of the synthetic samples (``NNNNNN_seg.png``, one uint8 class per pixel).

Classes 0-18 follow the FaceSynthetics numbering, including its sides: the ``*_LEFT`` classes (3, 5, 7) sit on
the subject's left (the image right of a frontal face) only in name: measured on the FaceSynthetics samples, the
eye/brow/ear classes 4/6/8 are on the subject's right (the side of landmarks 0-7 and 36-41, the first pupil).
We use the same ids at the same places. 19 and 20 are ours.
"""

from __future__ import annotations

BACKGROUND = 0
SKIN = 1
NOSE = 2
EYE_SUBJECT_LEFT = 3  # FaceSynthetics RIGHT_EYE: the eye of landmarks 42-47
EYE_SUBJECT_RIGHT = 4  # FaceSynthetics LEFT_EYE: the eye of landmarks 36-41
BROW_SUBJECT_LEFT = 5  # landmarks 22-26
BROW_SUBJECT_RIGHT = 6  # landmarks 17-21
EAR_SUBJECT_LEFT = 7
EAR_SUBJECT_RIGHT = 8
MOUTH_INTERIOR = 9
UPPER_LIP = 10
LOWER_LIP = 11
NECK = 12
HAIR = 13
BEARD = 14
CLOTHING = 15
GLASSES = 16
HEADWEAR = 17
FACEWEAR = 18
TEETH = 19
OCCLUDER = 20
IGNORE = 255

CLASS_NAMES: dict[int, str] = {
    BACKGROUND: "background",
    SKIN: "skin",
    NOSE: "nose",
    EYE_SUBJECT_LEFT: "eye (subject's left; FaceSynthetics 'right_eye')",
    EYE_SUBJECT_RIGHT: "eye (subject's right; FaceSynthetics 'left_eye')",
    BROW_SUBJECT_LEFT: "eyebrow (subject's left)",
    BROW_SUBJECT_RIGHT: "eyebrow (subject's right)",
    EAR_SUBJECT_LEFT: "ear (subject's left)",
    EAR_SUBJECT_RIGHT: "ear (subject's right)",
    MOUTH_INTERIOR: "mouth interior (gums, tongue, mouth cavity)",
    UPPER_LIP: "upper lip",
    LOWER_LIP: "lower lip",
    NECK: "neck",
    HAIR: "hair",
    BEARD: "beard",
    CLOTHING: "clothing",
    GLASSES: "glasses (frames, sunglass lenses)",
    HEADWEAR: "headwear (unused)",
    FACEWEAR: "facewear (face masks)",
    TEETH: "teeth",
    OCCLUDER: "hands and other occluding objects",
}
