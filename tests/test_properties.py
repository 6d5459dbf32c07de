"""Property-based tests (hypothesis): annotation readers and the submission format round-trip random data;
readers fed random or mutated bytes raise only their typed errors; metric invariants."""

from __future__ import annotations

import io
import pickle
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lightmark.constants import NUM_LANDMARKS, YAW_BINS
from lightmark.data import load_dataset, read_image, read_ldmks, read_pts, safe_load_pickle, write_image
from lightmark.errors import AnnotationError, ImageError, LightmarkError, SubmissionError, UnsafeFileError
from lightmark.metrics import (
    auc,
    box_norm,
    ced_curve,
    challenge_norm,
    failure_rate,
    interocular_norm,
    nme,
    summarize,
    yaw_bin_masks,
)
from lightmark.submission import check_submission, read_submission, write_submission

FAST = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SIDE = 16

# file-name-safe text: letters (any script), digits, a few separators; no white space in submission names
_name_chars = st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd"), whitelist_characters="-_()+é")
_stems = st.text(_name_chars, min_size=1, max_size=12)


# ------------------------------------------------------------------------------ challenge annot.pkl round trip


@st.composite
def _challenge_sets(draw):
    names = draw(st.lists(_stems.map(lambda s: s + ".png"), min_size=1, max_size=4, unique=True))
    # anything within the loader's bounds: [-1x, 2x] the image side
    pts = draw(arrays(np.float32, (len(names), NUM_LANDMARKS, 2), elements=st.floats(-SIDE, 2 * SIDE, width=32)))
    layout = draw(st.sampled_from(["tuples_np_float32", "lists_float", "arrays", "stacked", "dict"]))
    protocol = draw(st.integers(0, pickle.HIGHEST_PROTOCOL))
    return names, pts, layout, protocol


@FAST
@given(_challenge_sets())
def test_challenge_pickle_round_trip(case) -> None:
    names, pts, layout, protocol = case
    if layout == "tuples_np_float32":  # the challenge's own layout
        ys = [[(np.float32(x), np.float32(y)) for x, y in p] for p in pts]
    elif layout == "lists_float":
        ys = [[[float(x), float(y)] for x, y in p] for p in pts]
    elif layout == "arrays":
        ys = list(pts)
    else:
        ys = pts
    obj = {"X": names, "Y": ys} if layout == "dict" else (names, ys)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for n in names:
            write_image(root / n, np.zeros((SIDE, SIDE, 3), np.uint8))
        (root / "annot.pkl").write_bytes(pickle.dumps(obj, protocol=protocol))
        ds = load_dataset(root)
    order = np.argsort(np.array(names, dtype=object))
    assert ds.format == "challenge" and ds.names == sorted(names)
    got = ds.landmarks_array()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, pts[order])


@settings(max_examples=60, deadline=None, database=None)
@given(st.data())
def test_mutated_annot_pkl_raises_only_typed_errors(data) -> None:
    names = ["a.png", "b.png"]
    pts = np.random.default_rng(0).uniform(0, SIDE - 1, (2, NUM_LANDMARKS, 2)).astype(np.float32)
    protocol = data.draw(st.integers(0, pickle.HIGHEST_PROTOCOL))
    raw = bytearray(pickle.dumps((names, [[(np.float32(x), np.float32(y)) for x, y in p] for p in pts]), protocol))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i : i + data.draw(st.integers(1, 16))]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            break
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for n in names:
            write_image(root / n, np.zeros((SIDE, SIDE, 3), np.uint8))
        (root / "annot.pkl").write_bytes(bytes(raw))
        try:
            ds = load_dataset(root)
        except LightmarkError:
            return
    assert all(s.landmarks.shape == (NUM_LANDMARKS, 2) and np.isfinite(s.landmarks).all() for s in ds)


_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes, bytearray, np.generic, np.ndarray, np.dtype)
_plain_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


def _only_plain(obj) -> bool:
    """True when ``obj`` is built only from builtin containers/scalars and numpy scalars, arrays and dtypes."""
    if isinstance(obj, (list, tuple, set, frozenset)):
        return all(_only_plain(v) for v in obj)
    if isinstance(obj, dict):
        return all(_only_plain(k) and _only_plain(v) for k, v in obj.items())
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        return all(_only_plain(v) for v in obj.ravel())
    return isinstance(obj, _PLAIN_LEAVES)


@st.composite
def _pickle_bytes(draw) -> bytes:
    """Random bytes, or a pickle of plain data with a few bytes changed, cut or inserted."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    raw = bytearray(pickle.dumps(draw(_plain_data), protocol=draw(st.integers(0, pickle.HIGHEST_PROTOCOL))))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            raw[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i : i + draw(st.integers(1, 8))]
        else:
            raw[i:i] = draw(st.binary(min_size=1, max_size=8))
        if not raw:
            break
    return bytes(raw)


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")  # protocol-0 text, damaged
@settings(max_examples=120, deadline=None, database=None)
@given(_pickle_bytes())
def test_safe_pickle_random_bytes(raw: bytes) -> None:
    """Random or damaged pickles: a one-line typed error naming the source, or plain data identical to what the
    unrestricted unpickler builds (safe to call then: every global the stream named was an allowed one)."""
    try:
        out = safe_load_pickle(raw)
    except (AnnotationError, UnsafeFileError) as e:
        assert str(e).startswith("<bytes>: ") and "\n" not in str(e), str(e)
        return
    assert _only_plain(out), repr(out)[:200]
    assert repr(out) == repr(pickle.loads(raw))


# ------------------------------------------------------------------------------------ text annotation readers


_lines = st.lists(
    st.one_of(
        st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats()).map(lambda t: f"{t[0]} {t[1]}"),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
        st.sampled_from(["{", "}", "n_points: 68", "version: 1", "n_points: x", "", "1,2", "1 2 3"]),
    ),
    max_size=75,
)


@settings(max_examples=60, deadline=None, database=None)
@given(_lines, st.booleans())
def test_text_readers_raise_only_annotation_errors(lines: list[str], pts_header: bool) -> None:
    text = ("version: 1\nn_points: 68\n{\n" if pts_header else "") + "\n".join(lines) + ("\n}\n" if pts_header else "")
    with tempfile.TemporaryDirectory() as d:
        for name, reader in (("x.pts", read_pts), ("x_ldmks.txt", lambda p: read_ldmks(p)[0])):
            path = Path(d) / name
            path.write_text(text, encoding="utf-8")
            try:
                pts = reader(path)
            except AnnotationError as e:
                assert str(path) in str(e)
                continue
            assert pts.shape == (NUM_LANDMARKS, 2) and pts.dtype == np.float32 and np.isfinite(pts).all()


# --------------------------------------------------------------------------------------------- submissions


@st.composite
def _submissions(draw):
    names = draw(st.lists(_stems.map(lambda s: s + ".jpg"), min_size=0, max_size=5, unique=True))
    pts = draw(arrays(np.float64, (len(names), NUM_LANDMARKS, 2), elements=st.floats(-9999, 9999)))
    return names, pts


@FAST
@given(_submissions())
def test_submission_round_trip(case) -> None:
    names, pts = case
    with tempfile.TemporaryDirectory() as d:
        txt, zp = Path(d) / "solution.txt", Path(d) / "sub.zip"
        write_submission(txt, names, pts, zip_path=zp)
        for path in (txt, zp):
            got_names, got = read_submission(path)
            assert got_names == names and got.shape == (len(names), NUM_LANDMARKS, 2)
            np.testing.assert_allclose(got, pts, rtol=0, atol=5e-4 + 1e-9)  # three decimals
            rep = check_submission(path)
            assert rep.ok and rep.rows == len(names), rep.problems


@FAST
@given(_stems, st.sampled_from([" ", "\t", "\n", "\u00a0", "\u3000"]), _stems)
def test_submission_refuses_names_with_white_space(a: str, space: str, b: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(SubmissionError, match="white space"):
            write_submission(Path(d) / "s.txt", ["ok.jpg", a + space + b + ".jpg"], np.zeros((2, NUM_LANDMARKS, 2)))
        assert not any(Path(d).iterdir())  # nothing written, not even the valid first row


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=4), st.booleans())
def test_submission_reader_on_garbage(lines: list[str], with_valid_row: bool) -> None:
    if with_valid_row:
        lines = [*lines, "ok.jpg " + " ".join(["1.5"] * 2 * NUM_LANDMARKS)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.txt"
        path.write_text("\n".join(lines), encoding="utf-8")
        rep = check_submission(path)  # never raises for a readable file: lists the problems
        try:
            names, pts = read_submission(path)
        except SubmissionError as e:
            assert not rep.ok and str(path) in str(e)
            return
        assert rep.ok and len(names) == rep.rows == len(pts)


# ------------------------------------------------------------------------------------------------- images


def _seed_images() -> list[tuple[str, bytes]]:
    from PIL import Image

    a = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    out = [(".jpg", cv2.imencode(".jpg", a)[1].tobytes()), (".png", cv2.imencode(".png", a)[1].tobytes())]
    for fmt, mode, ext in (
        ("PNG", "RGBA", ".png"),
        ("PNG", "P", ".png"),
        ("JPEG", "CMYK", ".jpg"),
        ("TIFF", "RGB", ".tif"),
    ):
        buf = io.BytesIO()
        Image.fromarray(a).convert(mode).save(buf, fmt)
        out.append((ext, buf.getvalue()))
    return out


SEEDS = _seed_images()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's warnings about broken TIFF tags
@settings(max_examples=60, deadline=None, database=None)
@given(st.data())
def test_mutated_images_decode_or_raise_image_error(data) -> None:
    ext, raw = data.draw(st.sampled_from(SEEDS))
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 5))):
        i = data.draw(st.integers(0, len(raw) - 1))
        if data.draw(st.booleans()):
            raw[i] = data.draw(st.integers(0, 255))
        else:
            del raw[i : i + data.draw(st.integers(1, 32))]
        if not raw:
            break
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"x{ext}"
        path.write_bytes(bytes(raw))
        try:
            img = read_image(path)
        except ImageError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            return
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


# ----------------------------------------------------------------------------------------------------- metrics

_BASE = np.random.default_rng(0).uniform(50, 330, (3, NUM_LANDMARKS, 2))  # non-degenerate faces
_faces = arrays(np.float64, (3, NUM_LANDMARKS, 2), elements=st.floats(-40, 40)).map(lambda d: _BASE + d)
_noise = arrays(np.float64, (3, NUM_LANDMARKS, 2), elements=st.floats(-30, 30))
_nmes = arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 50))


def _rotate(p: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return p @ np.array([[c, -s], [s, c]]).T


@FAST
@given(_faces, _noise, st.floats(0, 2 * np.pi), st.floats(0.1, 10))
def test_nme_invariant_to_rotation_and_similarity_scaling(gt, off, angle: float, k: float) -> None:
    pred = gt + off
    assume((box_norm(gt) > 1).all() and (interocular_norm(gt) > 1).all())
    sizes = np.array([[384, 384], [200, 300], [64, 48]], np.float64)
    base = nme(pred, gt, challenge_norm(sizes))
    np.testing.assert_allclose(
        nme(_rotate(pred, angle), _rotate(gt, angle), challenge_norm(sizes)), base, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(nme(k * pred, k * gt, challenge_norm(k * sizes)), base, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        nme(k * pred, k * gt, box_norm(k * gt)), nme(pred, gt, box_norm(gt)), rtol=1e-9, atol=1e-9
    )
    io = nme(pred, gt, interocular_norm(gt))
    np.testing.assert_allclose(nme(k * pred, k * gt, interocular_norm(k * gt)), io, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(nme(gt, pred, challenge_norm(sizes)), base, rtol=1e-12, atol=1e-12)  # symmetric
    perm = np.array([2, 0, 1])
    np.testing.assert_allclose(
        nme(pred[perm], gt[perm], challenge_norm(sizes[perm])), base[perm], rtol=1e-12, atol=1e-12
    )


@settings(max_examples=60, deadline=None, database=None)
@given(_nmes, st.floats(0.5, 20), st.floats(0.5, 20))
def test_failure_rate_auc_and_ced_consistency(e: np.ndarray, t1: float, t2: float) -> None:
    lo, hi = min(t1, t2), max(t1, t2)
    assert 0 <= failure_rate(e, hi) <= failure_rate(e, lo) <= 100
    assert 0 <= auc(e, lo) <= auc(e, hi) <= 1
    t, frac = ced_curve(e, max_threshold=hi, steps=2001)
    assert frac[0] == np.mean(e <= 0) and np.all(np.diff(frac) >= 0) and 0 <= frac.min() <= frac.max() <= 1
    assert frac[-1] == pytest.approx(1 - failure_rate(e, hi) / 100)
    trapz = np.sum((frac[1:] + frac[:-1]) / 2 * np.diff(t)) / hi
    assert trapz == pytest.approx(auc(e, hi), abs=2e-3)  # AUC = area under the CED / threshold


@FAST
@given(
    _faces,
    _noise,
    arrays(np.float64, 3, elements=st.one_of(st.floats(-120, 120), st.just(np.nan))),
)
def test_summarize_yaw_bins_partition_the_known_yaws(gt, off, yaws) -> None:
    assume((box_norm(gt) > 1).all() and (interocular_norm(gt) > 1).all())
    s = summarize(gt + off, gt, [384, 384], yaws=yaws)
    masks = yaw_bin_masks(yaws)
    in_range = np.isfinite(yaws) & (np.abs(yaws) < YAW_BINS[-1][1])
    assert sum(m.astype(int) for m in masks.values()).tolist() == in_range.astype(int).tolist()
    assert sum(s[name]["n"] for name in masks) == int(in_range.sum())
    bins = [s[name]["nme_challenge"] for name in masks]
    if None in bins:
        assert s["nme_challenge_balanced"] is None
    else:
        assert min(bins) - 1e-9 <= s["nme_challenge_balanced"] <= max(bins) + 1e-9
    per_face = nme(gt + off, gt, challenge_norm([[384, 384]] * 3))
    assert s["n"] == 3 and s["nme_challenge"] == pytest.approx(per_face.mean(), rel=1e-12)
    assert s["fr_10"] == pytest.approx(failure_rate(per_face, 10.0))
    assert s["auc_10"] == pytest.approx(auc(per_face, 10.0))
