"""BlazeFace short-range (MediaPipe, Apache-2.0) on ONNX Runtime: SSD anchors and weighted NMS in numpy.

The network takes a 128x128 RGB square in [-1, 1] and scores 896 anchors (stride 8: 16x16 cells x 2, stride 16:
8x8 cells x 6); each anchor regresses a box (cx, cy, w, h) and six keypoints in 128-px units relative to its centre.
The image is letterboxed to a square first. The network finds faces of about a fifth of its input side or more, so
for small faces in large photos :class:`BlazeFace` also runs square tiles at halving sizes (``min_face``), all tiles
in one batched call, and merges everything with MediaPipe's weighted NMS. ``scripts/convert_blazeface.py`` rebuilds
the ONNX file from the mediapipe wheel; its licence and origin are in ``weights/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, ModelError
from .base import SAME_FACE_IOU, BoxToFace, Detection, by_size, iou, largest_face

INPUT = 128
MODEL_FILE = "blazeface_short_range.onnx"
SMALLEST_FACE = 0.15
"""Smallest face (68-landmark box side) found reliably, as a fraction of the window: 99 of 100 validation faces
shrunk to 16 px in the 128 px input were found, 100 of 100 at 20 px. Tiles are sized so that ``min_face`` px is at
least this fraction of a tile."""
LEVEL_RATIO = 3.0
"""Most shrink between tile levels: a level's half-overlapping tiles hold every face up to half their side whole,
and the next coarser level finds faces from ``SMALLEST_FACE`` x its (at most 3x larger) side."""
UPRIGHT = 50.0
"""With ``rotations``, a turned copy's detection counts only when the face is about upright in that copy (roll within
this many degrees): the network's eye keypoints are unreliable on faces far from upright."""
TILE_EDGE = 0.02
"""A tile's detection touching an inner tile edge (within this fraction of the tile) is a cut face: dropped (the face
is whole in a neighbouring tile or a coarser level)."""
MOSAIC: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (1, 0, 90), (0, 1, 180), (1, 1, 270))
"""The 2x2 mosaic of :meth:`BlazeFace.turns_with_faces`: (column, row, turn in degrees clockwise) of each quadrant,
which holds the whole image letterboxed to half the input's side and turned by that much."""
MOSAIC_EDGE = 0.03
"""A mosaic detection may reach past its quadrant by at most this fraction of the input (a face at the image's edge);
one reaching further straddles two quadrants: dropped."""


def ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1] of the input, in MediaPipe's order (cell by cell, anchors of a cell together).
    All anchors have unit size (``fixed_anchor_size``), so boxes decode relative to the input side."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        g = INPUT // stride
        ys, xs = np.mgrid[0:g, 0:g]
        centres = np.stack([(xs + 0.5) / g, (ys + 0.5) / g], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def decode(
    raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, threshold: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Network outputs -> per input, its anchors scoring at least ``threshold``, in anchor order: boxes (M, 4) as
    (x0, y0, x1, y1), scores (M,) and keypoints (M, 6, 2), all coordinates in [0, 1] of the input square. ``raw``
    (B, 896, 16), ``logits`` (B, 896, 1), ``anchors`` (896, 2). Only those anchors are decoded (a few of the 896:
    about 0.05 against 0.24 ms a call)."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[..., 0].astype(np.float32), -80.0, 80.0)))  # (B, 896)
    b, i = np.nonzero(scores >= threshold)  # (M,) each
    r = raw[b, i].astype(np.float32) / INPUT  # (M, 16)
    centre = r[:, 0:2] + anchors[i]
    half = r[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], -1)
    keypoints = r[:, 4:16].reshape(-1, 6, 2) + anchors[i][:, None, :]
    return [(boxes[b == k], scores[k, i[b == k]], keypoints[b == k]) for k in range(len(scores))]


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression: the best remaining box and every box overlapping it by more
    than ``threshold`` IoU form a cluster; the cluster's boxes and keypoints are averaged, weighted by score, and
    it keeps its best score. (M, 4) boxes, (M,) scores, (M, K, 2) keypoints -> [(box, score, keypoints)]."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    out = []
    alive = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        members = alive & (iou(boxes[i], boxes) > threshold)
        members[i] = True
        w = scores[members] / scores[members].sum()
        out.append((w @ boxes[members], float(scores[i]), np.tensordot(w, keypoints[members], axes=1)))
        alive &= ~members
    return out


def suppress(detections: list[Detection], threshold: float) -> list[Detection]:
    """Plain non-maximum suppression: the best-scoring detection of every group overlapping by more than
    ``threshold`` IoU survives, unchanged."""
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: -d.score):
        if not kept or iou(d.box, np.stack([k.box for k in kept])).max() <= threshold:
            kept.append(d)
    return kept


def tile_grid(width: int, height: int, min_face: float | None) -> list[tuple[float, float, float]]:
    """Square windows ``(x, y, side)`` to run: the whole image letterboxed, then, when a face of ``min_face`` px is
    smaller than :data:`SMALLEST_FACE` of it, levels of half-overlapping tiles whose sides shrink geometrically (by
    at most :data:`LEVEL_RATIO` per level) down to the side where such a face is just large enough. None: the whole
    image only."""
    full = float(max(width, height))
    windows = [((width - full) / 2, (height - full) / 2, full)]
    if min_face is None or min_face >= SMALLEST_FACE * full:
        return windows
    smallest = max(float(INPUT), min_face / SMALLEST_FACE)
    levels = int(np.ceil(np.log(full / smallest) / np.log(LEVEL_RATIO)))
    for i in range(1, levels + 1):
        side = full * (smallest / full) ** (i / levels)
        for y in _starts(height, side):
            windows += [(x, y, side) for x in _starts(width, side)]
    return windows


def _starts(extent: int, side: float) -> list[float]:
    """Window starts along one axis: evenly spaced, half overlapping, covering ``extent`` (centred when it fits)."""
    if extent <= side:
        return [(extent - side) / 2]
    n = int(np.ceil((extent - side) / (side / 2))) + 1
    return list(np.linspace(0.0, extent - side, n))


def pixel_window(x: float, y: float, side: float) -> tuple[int, int, int]:
    """The whole-pixel square ``(x0, y0, side)`` that :func:`cut_window` cuts for the window ``(x, y, side)`` (whose
    corner may fall between pixels): what its detections map back from."""
    return int(round(x)), int(round(y)), max(1, int(round(side)))


def cut_window(image: np.ndarray, x: float, y: float, side: float, size: int = INPUT) -> np.ndarray:
    """The square window (x, y, side) of an RGB image (:func:`pixel_window`), black where it runs out, resized to
    ``size`` px (area filter when shrinking)."""
    h, w = image.shape[:2]
    x0, y0, s = pixel_window(x, y, side)
    part = image[max(y0, 0) : min(y0 + s, h), max(x0, 0) : min(x0 + s, w)]
    top, left = max(-y0, 0), max(-x0, 0)
    k = s // size
    if k > 1 and s == k * size and part.size and not (top % k or left % k or part.shape[0] % k or part.shape[1] % k):
        # a whole video frame letterboxed (640x480, 1280x720, 1920x1080): its black bands fall on whole blocks of
        # the k-fold area shrink, so the picture is shrunk first and the bands added at the small size - the
        # same pixels, 2-2.7x faster (tests/test_detectors.py)
        part = cv2.resize(part, (part.shape[1] // k, part.shape[0] // k), interpolation=cv2.INTER_AREA)
        s, top, left = size, top // k, left // k
    part = cv2.copyMakeBorder(
        part, top, s - top - part.shape[0], left, s - left - part.shape[1], cv2.BORDER_CONSTANT, value=0
    )
    if s == size:
        return part
    return cv2.resize(part, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)


CHUNK = 4
"""Inputs per ONNX Runtime call of :class:`BlazeFace` (a photo's tiles, a batch of images): a large batch spills the
caches, so the network's time per input grows with the batch. Session 17, one thread, 128 inputs: 2.0-3.3 ms per
input in calls of 1-8, 3.0-3.5 in calls of 16, 3.4-5.0 in one call (4.7 ms per tile of a 3840x2160 photo's 358)."""


class BlazeFace:
    """MediaPipe's BlazeFace short-range detector (shipped as ONNX), whole image plus optional tiles.

    Args:
        model: the ONNX file (default: the shipped one).
        threads: ONNX Runtime intra-op threads (None: its default).
        score_threshold: keep faces scoring at least this (MediaPipe's default 0.5).
        iou_threshold: weighted-NMS overlap (MediaPipe's 0.3).
        min_face: the smallest face side (px) to look for; tiles are added until such a face is large enough for
            the network (None: the whole image only - the fast path for video).
        rotations: in-plane angles (degrees, multiples of 90) of rotated copies of the image also searched, for
            faces rolled past about 45 degrees; their detections are mapped back and merged. () = upright only.
    """

    name = "blazeface"
    # Where the 68-landmark box sits relative to BlazeFace's box, in the face's upright frame: medians over the 100
    # FaceSynthetics samples (synthetic: no real face tunes it), `python scripts/detector_calibration.py`; the 870
    # HELEN faces give (0.00, 0.06, 0.97), the validation crops (0.00, 0.07, 0.95).
    box_to_face = BoxToFace(dx=0.0, dy=0.04, scale=0.95)

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        threads: int | None = 1,
        score_threshold: float = 0.5,
        iou_threshold: float = 0.3,
        min_face: float | None = None,
        rotations: tuple[int, ...] = (),
    ) -> None:
        from ..engine.onnx_runtime import ort_session

        path = Path(model) if model is not None else Path(__file__).resolve().parent.parent / "weights" / MODEL_FILE
        if not path.is_file():
            raise ModelError(f"{path}: no such face detector model (scripts/convert_blazeface.py rebuilds it)")
        self.session = ort_session(path, threads)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.min_face = None if min_face is None else float(min_face)
        self.rotations = tuple(t for t in _quarter_turns(rotations, "rotations") if t)
        self.anchors = ssd_anchors()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, largest first (with ``rotations``: of overlapping detections from different
        turned copies, the best-scoring one)."""
        found = self.orientations(image)
        return by_size(suppress(found, SAME_FACE_IOU) if self.rotations else found)

    def orientations(self, image: np.ndarray, turns: Sequence[int] | None = None) -> list[Detection]:
        """Every face found in the image turned by each of ``turns`` (degrees clockwise, multiples of 90, 0 = the
        image itself; None: upright and every one of ``rotations``), merged per turn and mapped back to the image,
        not yet suppressed across turns: one face may appear once per turn that found it upright, each time with its
        own roll. With turned copies, a detection counts only where the face is about upright in that copy
        (:data:`UPRIGHT`)."""
        turns = (0, *self.rotations) if turns is None else _quarter_turns(turns)
        found = []
        for angle in turns:  # each turned copy merged on its own: keypoints are never averaged across turns
            if angle == 0:
                here = self._merge(self._candidates(image))
                found += _upright(here) if self.rotations else here
            else:
                rotated, back = _rotate(image, angle)
                found += [d.mapped(back) for d in _upright(self._merge(self._candidates(rotated)))]
        return found

    def turns_with_faces(self, image: np.ndarray) -> tuple[int, ...]:
        """The turns (0 and ``rotations``) in which the image's largest face is about upright, best-scoring first
        (:meth:`mosaic_face`): the copies :meth:`orientations` may search at full resolution (the best one first).
        () when the mosaic shows no face (a face below about a third of the image's side is too small for it)."""
        return tuple(dict.fromkeys(turn for turn, _ in self.mosaic_face(image)))

    def mosaic_face(self, image: np.ndarray) -> list[tuple[int, Detection]]:
        """``(turn, detection)`` of the image's largest face in each turned copy that sees it upright, best-scoring
        first, from one network call on a 2x2 mosaic of the copies (:meth:`mosaic_detections`); the largest face is
        picked by the rule :meth:`~lightmark.engine.predict.Predictor.predict` reads it by
        (:func:`~.base.largest_face`). [] when the mosaic shows no face."""
        found = self.mosaic_detections(image)
        return sorted((found[i] for i in largest_face([d for _, d in found])), key=lambda td: -td[1].score)

    def mosaic_detections(self, image: np.ndarray) -> list[tuple[int, Detection]]:
        """``(turn, detection)`` of every face about upright in one of the image's turned copies (0 and
        ``rotations``), found by one network call on a 2x2 mosaic (:data:`MOSAIC`) of the whole image and its
        copies turned by 90, 180 and 270 degrees, each letterboxed to half the input's side; each detection merged
        within its quadrant and mapped back to the image's pixels (its roll too)."""
        mosaic, window = turned_mosaic(image)
        ((boxes, scores, keypoints),) = self._run(mosaic[None])  # (M, 4), (M,), (M, 6, 2): the anchors above
        cell = np.floor(boxes[:, :2] + boxes[:, 2:]).astype(int)  # (M, 2) the quadrant (col, row): floor(2 x centre)
        found: list[tuple[int, Detection]] = []
        for col, row, angle in MOSAIC:
            if angle and angle not in self.rotations:
                continue
            lo, hi = np.array([col, row]) / 2, np.array([col + 1, row + 1]) / 2
            inside = (
                (cell[:, 0] == col)
                & (cell[:, 1] == row)
                & np.all(boxes[:, :2] > lo - MOSAIC_EDGE, 1)
                & np.all(boxes[:, 2:] < hi + MOSAIC_EDGE, 1)
            )
            idx = np.flatnonzero(inside)
            if not len(idx):
                continue
            merged = weighted_nms(boxes[idx], scores[idx], keypoints[idx], self.iou_threshold)
            m = mosaic_to_image((col, row, angle), window)
            found += [(angle, d.mapped(m)) for d in _upright([_detection(b, sc, kp) for b, sc, kp in merged])]
        return found

    def _run(self, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(T, 128, 128, 3) uint8 inputs -> per input, :func:`decode`'s boxes, scores and keypoints of the anchors at
        the score threshold or above, in [0, 1] of the input; the network runs on :data:`CHUNK` inputs at a time."""
        name, outs = self.session.get_inputs()[0].name, []
        for i in range(0, len(batch), CHUNK):
            x = batch[i : i + CHUNK].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
            outs.append(self.session.run(None, {name: x}))
        raw, logits = (np.concatenate(part) for part in zip(*outs, strict=True))
        return decode(raw, logits, self.anchors, self.score_threshold)

    def _candidates(self, image: np.ndarray) -> list[Detection]:
        """Every anchor above the threshold in every window of one image (before NMS), in image pixels."""
        h, w = image.shape[:2]
        windows = tile_grid(w, h, self.min_face)
        found = self._run(np.stack([cut_window(image, *win) for win in windows]))
        out = []
        for t, ((wx, wy, side), (boxes, scores, keypoints)) in enumerate(zip(windows, found, strict=True)):
            px, py, ps = pixel_window(wx, wy, side)
            scale = np.float64(ps)  # float64 like offset: the float32 outputs are mapped in float64
            offset = np.array([px, py]) - 0.5  # [0, 1] of the window -> image pixel centres: * scale + offset
            for box01, score, kps in zip(boxes, scores, keypoints, strict=True):
                if t > 0 and _touches_inner_edge(box01, (wx, wy, side), w, h):
                    continue
                box = np.concatenate([box01[:2] * scale + offset, box01[2:] * scale + offset])
                out.append(_detection(box, float(score), kps * scale + offset))
        return out

    def _merge(self, found: list[Detection]) -> list[Detection]:
        if not found:
            return []
        merged = weighted_nms(
            np.stack([d.box for d in found]),
            np.array([d.score for d in found]),
            np.stack([d.keypoints for d in found]),
            self.iou_threshold,
        )
        return [_detection(b, s, k) for b, s, k in merged]


def _detection(box: np.ndarray, score: float, keypoints: np.ndarray) -> Detection:
    """A detection with the roll its eye keypoints imply."""
    return Detection(box=box, score=float(score), keypoints=keypoints, roll=_eye_roll(keypoints))


def _upright(detections: list[Detection]) -> list[Detection]:
    """The detections whose face is about upright in the image they were found in (roll within :data:`UPRIGHT`)."""
    return [d for d in detections if abs(d.roll) <= UPRIGHT]


def _quarter_turns(turns: Sequence[int], what: str = "turns") -> tuple[int, ...]:
    """Turns in degrees normalised to 0, 90, 180 or 270; anything else is a :class:`ConfigError` naming ``what``."""
    if any(int(t) != t or int(t) % 90 for t in turns):
        raise ConfigError(f"{what}: multiples of 90 degrees only, got {tuple(turns)}")
    return tuple(int(t) % 360 for t in turns)


def turned_mosaic(image: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The (128, 128, C) 2x2 mosaic of :meth:`BlazeFace.mosaic_detections` (:data:`MOSAIC`: the image letterboxed to
    half the input's side, as it is and turned by 90, 180 and 270 degrees), and the image's square window (x, y,
    side) that each quadrant holds."""
    h, w = image.shape[:2]
    window = tile_grid(w, h, None)[0]  # the whole image letterboxed to a square
    half = INPUT // 2
    small = cut_window(image, *window, half)
    mosaic = np.zeros((INPUT, INPUT, *image.shape[2:]), image.dtype)
    for col, row, angle in MOSAIC:
        mosaic[row * half : (row + 1) * half, col * half : (col + 1) * half] = (
            small if angle == 0 else cv2.rotate(small, TURN_CODES[angle])
        )
    return mosaic, window


def mosaic_to_image(quadrant: tuple[int, int, int], window: tuple[float, float, float]) -> np.ndarray:
    """The (2, 3) map from the [0, 1] coordinates of :meth:`BlazeFace.mosaic_detections`'s mosaic to the image's
    pixels, for the detections of the ``quadrant`` (column, row, turn: one of :data:`MOSAIC`) that holds the image's
    square ``window`` (x, y, side in image pixels) shrunk to half the input and turned."""
    col, row, angle = quadrant
    half = INPUT // 2
    to_quadrant = np.array([[INPUT, 0.0, -0.5 - col * half], [0.0, INPUT, -0.5 - row * half]])  # its pixel centres
    wx, wy, side = pixel_window(*window)
    k = side / half
    to_image = np.array([[k, 0.0, wx + 0.5 * k - 0.5], [0.0, k, wy + 0.5 * k - 0.5]])  # the small square's pixels
    return _compose(to_image, _compose(_turn_back(angle, half, half), to_quadrant))


def _eye_roll(keypoints: np.ndarray) -> float:
    """Roll (degrees, clockwise on screen) of the line from the subject's right eye (keypoint 0) to the left one."""
    d = keypoints[1] - keypoints[0]
    return float(np.degrees(np.arctan2(d[1], d[0])))


def _touches_inner_edge(box01: np.ndarray, window: tuple[float, float, float], width: int, height: int) -> bool:
    """A box (in [0, 1] of a tile) reaching a tile edge that is not an image edge."""
    x, y, side = window
    m = TILE_EDGE
    return bool(
        (box01[0] < m and x > 0)
        or (box01[1] < m and y > 0)
        or (box01[2] > 1 - m and x + side < width)
        or (box01[3] > 1 - m and y + side < height)
    )


TURN_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
"""OpenCV's rotation code of each quarter turn (degrees, clockwise on screen)."""


def _turn_back(angle: int, width: int, height: int) -> np.ndarray:
    """The (2, 3) map from the pixels of a ``width`` x ``height`` image turned by ``angle`` degrees clockwise (0, 90,
    180, 270) back to the image's own."""
    w, h = width, height
    return {
        0: np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        90: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, h - 1.0]]),
        180: np.array([[-1.0, 0.0, w - 1.0], [0.0, -1.0, h - 1.0]]),
        270: np.array([[0.0, -1.0, w - 1.0], [1.0, 0.0, 0.0]]),
    }[angle]


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine map ``outer`` after ``inner``."""
    out = outer[:, :2] @ inner
    out[:, 2] += outer[:, 2]
    return out


def _rotate(image: np.ndarray, angle: int) -> tuple[np.ndarray, np.ndarray]:
    """The image turned ``angle`` degrees (90, 180, 270) clockwise on screen, and the (2, 3) map from the turned
    image's pixels back to the original's."""
    h, w = image.shape[:2]
    return np.ascontiguousarray(cv2.rotate(image, TURN_CODES[angle])), _turn_back(angle, w, h)
