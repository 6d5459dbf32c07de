"""Tests of the synthetic engine's other label sets (lightmark.synth.landmark_sets): WFLW's 98 points, and the 68
and the 98 points with the visible-contour ("2D") jaw. Rendering tests need the ICT Face Model in ../shared/data
(skipped with a message when absent, failing when CI=true)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_shared
from lightmark.constants import FLIP_PERM
from lightmark.synth import SynthConfig, load_face_model, render_dataset, render_sample, sample_seed
from lightmark.synth import labels as L
from lightmark.synth import landmark_sets as LS
from lightmark.synth.assets import SIDES, get_assets

ICT_NPZ = "ict_face_model/ict_face_model_light.npz"
SIZE = 192
# no occluders, glasses or beards: the silhouette checks read the segmentation
CLEAN = dict(size=SIZE, p_hand=0.0, p_object=0.0, p_glasses=0.0, p_beard=0.0)
FACE = (L.SKIN, L.NOSE, L.EYE_SUBJECT_LEFT, L.EYE_SUBJECT_RIGHT, L.BROW_SUBJECT_LEFT, L.BROW_SUBJECT_RIGHT)
FACE += (L.UPPER_LIP, L.LOWER_LIP, L.MOUTH_INTERIOR, L.TEETH)


@pytest.fixture(scope="module")
def ict():
    return load_face_model(require_shared(ICT_NPZ))


def _render(ict, seed: int, yaw: float, **cfg):
    cfg = SynthConfig(**{**CLEAN, **cfg, "extra": {"pose": (yaw, 0.0, 0.0)}})
    return render_sample(sample_seed(seed, 0), cfg, ict)


# ------------------------------------------------------------------------------------------------ the tables


def test_wflw_tables_are_consistent():
    assert len(LS.WFLW98_TO_IBUG68) == 68 and len(set(LS.WFLW98_TO_IBUG68)) == 68
    perm = LS.WFLW98_FLIP
    assert sorted(perm) == list(range(98)) and all(perm[perm[i]] == i for i in range(98))
    # the 98 -> 68 map commutes with the two mirror permutations
    assert all(LS.WFLW98_TO_IBUG68[FLIP_PERM[i]] == perm[LS.WFLW98_TO_IBUG68[i]] for i in range(68))
    # WFLW's own pairs (mmpose / HRNet): jaw i <-> 32 - i, brows, eyes, lips, pupils
    pairs = {0: 32, 16: 16, 33: 46, 37: 42, 38: 50, 41: 47, 51: 51, 55: 59, 57: 57, 60: 72, 64: 68, 65: 75}
    pairs |= {67: 73, 76: 82, 79: 79, 83: 87, 85: 85, 88: 92, 90: 90, 93: 95, 94: 94, 96: 97}
    assert all(perm[a] == b for a, b in pairs.items())
    # every point is defined exactly once: a 68-point vertex, a surface point, a lower brow point or a pupil
    defined = [*LS.WFLW98_TO_IBUG68, *LS.WFLW98_SURFACE, *LS.WFLW98_BROW_LOWER, 96, 97]
    assert sorted(defined) == list(range(98))
    for ids, w in LS.WFLW98_SURFACE.values():
        assert len(ids) == len(w) == 3 and abs(sum(w) - 1) < 1e-3 and min(w) >= 0


def test_surface_table_is_derived_from_the_mesh(ict):
    """The hard-coded barycentric points are what derive_wflw98_surface computes on the neutral mesh."""
    derived = LS.derive_wflw98_surface(ict)
    V = ict.neutral.astype(np.float64)
    assert set(derived) == set(LS.WFLW98_SURFACE)
    for i, (ids, w) in LS.WFLW98_SURFACE.items():
        a = (V[list(ids)] * np.array(w)[:, None]).sum(0)
        b = (V[list(derived[i][0])] * np.array(derived[i][1])[:, None]).sum(0)
        assert np.linalg.norm(a - b) < 1e-3, i


# ------------------------------------------------------------------------------------------------ WFLW 98


def test_wflw98_agrees_with_the_68_labels(ict):
    for seed in (1, 2):
        img, ldmks, seg, p = render_sample(sample_seed(seed, 0), SynthConfig(size=SIZE), ict)
        w = p["ldmks_wflw98"]
        assert w.shape == (98, 2) and w.dtype == np.float32 and np.isfinite(w).all()
        np.testing.assert_array_equal(w[list(LS.WFLW98_TO_IBUG68)], ldmks[:68])
        np.testing.assert_array_equal(w[96:], ldmks[68:])
        # the other points are the projections of their mesh points (the sample's brow for the lower brows)
        V = ict.vertices(p["identity"], p["expression"])
        pts = LS.wflw98_points3d(ict, V, p["pupils_model"], p["brow_shape"])
        h = pts @ p["P"][:, :3].T + p["P"][:, 3]
        np.testing.assert_allclose(w, h[:, :2] / h[:, 2:], atol=1e-3)


def test_wflw98_points_lie_between_their_neighbours(ict):
    """Frontal render: odd jaw points near the middle of their 68-point neighbours, lid middles between the
    lid points, lower brows below the upper brow contour (in the brow class) and above the eyes."""
    _, _, seg, p = _render(ict, 4, 0.0, expression_scale=0.0, hair_style_p=(1, 0, 0, 0, 0))
    w = p["ldmks_wflw98"].astype(np.float64)
    for i in range(1, 32, 2):
        mid, gap = (w[i - 1] + w[i + 1]) / 2, np.linalg.norm(w[i + 1] - w[i - 1])
        assert np.linalg.norm(w[i] - mid) < 0.25 * gap, i
    for mid, (a, b) in {62: (61, 63), 66: (65, 67), 70: (69, 71), 74: (73, 75)}.items():
        assert min(w[a, 0], w[b, 0]) < w[mid, 0] < max(w[a, 0], w[b, 0])
    assert w[62, 1] < w[66, 1] and w[70, 1] < w[74, 1]
    for lower, (above, _) in LS.WFLW98_BROW_LOWER.items():
        upper = w[LS.WFLW98_TO_IBUG68[above]]
        assert upper[1] < w[lower, 1] < w[60:76, 1].min(), lower
        # just above the lower edge is eyebrow, just below is not
        x, y = np.round(w[lower]).astype(int)
        assert seg[y - 1, x] in (L.BROW_SUBJECT_LEFT, L.BROW_SUBJECT_RIGHT), lower
        assert seg[y + 2, x] not in (L.BROW_SUBJECT_LEFT, L.BROW_SUBJECT_RIGHT), lower


def test_wflw98_definition_is_mirror_symmetric(ict):
    """Mirroring the mesh (x -> -x, each vertex taking its mirror vertex's place) mirrors the 98 points with
    WFLW's flip permutation: on the neutral mesh and on a random face."""
    V0 = ict.neutral.astype(np.float64)
    mirror = LS._mirror_vertices(V0)
    F = len(mirror)
    assets = get_assets(ict, 256)
    rng = np.random.default_rng(0)
    faces = [V0, ict.vertices(rng.normal(size=ict.num_identity), rng.uniform(0, 0.6, ict.num_expression))]
    for V in faces:
        Vm = V.copy()
        Vm[:F] = V[mirror] * [-1.0, 1.0, 1.0]
        pupils = np.stack([V[assets.pupil_ring[s]].mean(0) for s in SIDES])
        a = LS.wflw98_points3d(ict, V, pupils)
        b = LS.wflw98_points3d(ict, Vm, pupils[::-1] * [-1.0, 1.0, 1.0])
        np.testing.assert_allclose(b, a[list(LS.WFLW98_FLIP)] * [-1.0, 1.0, 1.0], atol=0.02)  # cm
        # the neutral mesh itself: point i mirrored is point perm[i]
        if V is V0:
            np.testing.assert_allclose(a * [-1.0, 1.0, 1.0], a[list(LS.WFLW98_FLIP)], atol=0.02)


def _flip_x(pts: np.ndarray, width: int) -> np.ndarray:
    return np.c_[width - 1 - pts[:, 0], pts[:, 1]]


def test_labels_flip_with_the_image(ict):
    """A rendered sample's mirror image is the mirrored face seen by the mirrored camera: computing both label
    sets there gives the sample's labels flipped and permuted (WFLW's and the 68-point flip permutations), 2D jaws
    included."""
    mirror = LS._mirror_vertices(ict.neutral.astype(np.float64))
    for seed, yaw in ((5, 35.0), (6, -70.0)):
        _, ldmks, _, p = render_sample(sample_seed(seed, 0), SynthConfig(size=SIZE, extra={"pose": (yaw, 8, 5)}), ict)
        V = ict.vertices(p["identity"], p["expression"]).astype(np.float64)
        Vm = V.copy()
        Vm[: len(mirror)] = V[mirror] * [-1.0, 1.0, 1.0]
        flip = np.array([[-1.0, 0.0, SIZE - 1], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        Pm = flip @ p["P"] @ np.diag([-1.0, 1.0, 1.0, 1.0])
        lm_m = np.concatenate([_flip_x(ldmks[:68], SIZE)[list(FLIP_PERM)], _flip_x(ldmks[68:], SIZE)[::-1]])
        lm_m = lm_m.astype(np.float32)
        w = LS.wflw98_labels(lm_m, ict, Vm, Pm, p["brow_shape"])
        np.testing.assert_allclose(w, _flip_x(p["ldmks_wflw98"], SIZE)[list(LS.WFLW98_FLIP)], atol=0.05)
        j2 = LS.ibug68_2d_labels(lm_m, ict, Vm, Pm)
        np.testing.assert_allclose(j2, _flip_x(p["ldmks_ibug68_2d"], SIZE)[list(FLIP_PERM)], atol=0.05)
        w2 = LS.wflw98_2d_labels(w, j2, ict, Vm, Pm)
        w2_flipped = _flip_x(p["ldmks_wflw98_2d"], SIZE)[list(LS.WFLW98_FLIP)]
        odd = list(LS.WFLW98_JAW_MARCHING)
        np.testing.assert_allclose(np.delete(w2, odd, 0), np.delete(w2_flipped, odd, 0), atol=0.05)
        # the odd points' parallels cross skin whose triangulation is not mirror-symmetric (other diagonals, the
        # nose cut): the two sides' candidates differ by up to ~1 mm, a fraction of a pixel here
        np.testing.assert_allclose(w2[odd], w2_flipped[odd], atol=0.25)
        assert (np.abs(p["ldmks_wflw98_2d"][:33] - p["ldmks_wflw98"][:33]) > 2.0).any()  # the jaw did move


# ------------------------------------------------------------------------------------------------ 2D jaw


def test_2d_jaw_frontal_nearly_equals_the_3d_jaw(ict):
    for seed in (0, 1, 2):
        _, ldmks, _, p = _render(ict, seed, 0.0)
        j2 = p["ldmks_ibug68_2d"]
        assert j2.shape == (68, 2) and j2.dtype == np.float32
        np.testing.assert_array_equal(j2[17:], ldmks[17:68])
        np.testing.assert_array_equal(j2[8], ldmks[8])
        assert np.abs(j2[:17] - ldmks[:17]).max() < 0.02 * SIZE  # a few px (perspective of close cameras)


def _first_outside(face: np.ndarray, p: np.ndarray, u: np.ndarray, reach: float) -> float:
    """Distance (px) from ``p`` along ``u`` to the first pixel outside ``face`` (inf beyond ``reach``)."""
    for t in np.arange(0.0, reach + 1e-9, 0.5):
        x, y = np.round(p + t * u).astype(int)
        if not (0 <= x < face.shape[1] and 0 <= y < face.shape[0]) or not face[y, x]:
            return float(t)
    return np.inf


def test_2d_jaw_marches_to_the_silhouette_on_the_turned_away_side(ict):
    """Yaw 60 (the subject's left, points 9-16, turned away): those points move out to the face's outline
    (the boundary of the face classes in ``_seg.png``) or, where the nose or the lips hide the cheek, to the
    cheek's edge beside them; the visible side keeps its 3D points."""
    for seed, yaw in ((0, 60.0), (1, 60.0), (2, -60.0)):
        _, ldmks, seg, p = _render(ict, seed, yaw)
        j3, j2 = ldmks[:17].astype(np.float64), p["ldmks_ibug68_2d"][:17].astype(np.float64)
        far, near = (range(9, 17), range(0, 8)) if yaw > 0 else (range(0, 8), range(9, 17))
        np.testing.assert_array_equal(j2[list(near)], j3[list(near)])
        u = np.array([np.sign(yaw), 0.0])  # outwards on the far side (no roll, no pitch)
        shift = (j2[list(far)] - j3[list(far)]) @ u
        assert (shift >= 0).all() and (shift > 2.0).sum() >= 6
        face = np.isin(seg, FACE)
        on_outline = [_first_outside(face, j2[k], u, 2.5) < np.inf for k in far]
        assert sum(on_outline) >= 3, on_outline  # the lower jaw at least: against the background / neck
        for k, ok in zip(far, on_outline, strict=True):
            x, y = np.round(j2[k] + 2 * u).astype(int)
            beside = seg[y - 2 : y + 3, x - 2 : x + 3]
            assert ok or np.isin(beside, (L.NOSE, L.UPPER_LIP, L.LOWER_LIP, L.MOUTH_INTERIOR, L.TEETH)).any(), k
        # the hidden 3D points lie inside the face, away from the outline
        deep = [_first_outside(face, j3[k], u, 2.5) == np.inf for k in far if abs(j3[k, 0] - j3[8, 0]) > 8]
        assert deep and all(deep)


# ------------------------------------------------------------------------------------------------ WFLW 98, 2D jaw


def test_wflw98_2d_parallels(ict):
    """Every odd WFLW jaw point has its own parallel but the two beside the chin (15, 17: the plane through them
    cuts only the chin's underside, so they keep their 3D point, as the chin); the 68-point ones are all full."""
    assert (np.bincount(LS.jaw_parallels(ict, "ibug68_2d").group, minlength=16) > 0).all()
    par = LS.jaw_parallels(ict, "wflw98_2d")
    sizes = dict(zip(LS.WFLW98_JAW_MARCHING, np.bincount(par.group, minlength=16), strict=True))
    assert [i for i, n in sizes.items() if n == 0] == [15, 17]
    assert min(n for i, n in sizes.items() if i not in (15, 17)) >= 10
    np.testing.assert_array_equal(par.side, np.repeat([-1.0, 1.0], 8))


def test_wflw98_2d_is_wflw98_with_the_2d_jaw(ict):
    """Points 33-97 are the WFLW labels and the even jaw points the 68-point 2D jaw, exactly; frontal, the jaw is
    within a few px of the 3D one; the odd points of the visible side keep their 3D points."""
    for seed, yaw in ((0, 0.0), (1, 0.0), (2, 0.0), (0, 60.0), (2, -60.0)):
        _, _, _, p = _render(ict, seed, yaw)
        w, w2, j2 = p["ldmks_wflw98"], p["ldmks_wflw98_2d"], p["ldmks_ibug68_2d"]
        assert w2.shape == (98, 2) and w2.dtype == np.float32
        np.testing.assert_array_equal(w2[33:], w[33:])
        np.testing.assert_array_equal(w2[0:33:2], j2[:17])
        np.testing.assert_array_equal(w2[[15, 17]], w[[15, 17]])  # beside the chin: no parallel
        if yaw == 0:
            assert np.abs(w2[:33] - w[:33]).max() < 0.02 * SIZE
        else:
            near = range(1, 16, 2) if yaw > 0 else range(17, 32, 2)
            np.testing.assert_array_equal(w2[list(near)], w[list(near)])


def test_wflw98_2d_odd_jaw_points_march_to_the_silhouette(ict):
    """Yaw 60: the odd jaw points of the turned-away side move out onto the face's outline in ``_seg.png`` (or
    the cheek's edge beside the nose or lips), between their even neighbours: within the chord's middle and near
    it (the outline is smooth at this spacing)."""
    for seed, yaw in ((0, 60.0), (1, 60.0), (2, -60.0)):
        _, _, seg, p = _render(ict, seed, yaw)
        w, w2 = p["ldmks_wflw98"].astype(np.float64), p["ldmks_wflw98_2d"].astype(np.float64)
        far = range(19, 32, 2) if yaw > 0 else range(1, 14, 2)  # not 15/17 beside the chin
        u = np.array([np.sign(yaw), 0.0])
        shift = (w2[list(far)] - w[list(far)]) @ u
        assert (shift >= 0).all() and (shift > 2.0).sum() >= 5, shift
        face = np.isin(seg, FACE)
        on_outline = [_first_outside(face, w2[i], u, 2.5) < np.inf for i in far]
        assert sum(on_outline) >= 3, on_outline
        for i, ok in zip(far, on_outline, strict=True):
            x, y = np.round(w2[i] + 2 * u).astype(int)
            beside = seg[y - 2 : y + 3, x - 2 : x + 3]
            assert ok or np.isin(beside, (L.NOSE, L.UPPER_LIP, L.LOWER_LIP, L.MOUTH_INTERIOR, L.TEETH)).any(), i
            a, d = w2[i - 1], w2[i + 1] - w2[i - 1]
            t = (w2[i] - a) @ d / (d @ d)
            off = abs(d[0] * (w2[i] - a)[1] - d[1] * (w2[i] - a)[0]) / np.linalg.norm(d)
            assert 0.2 < t < 0.8 and off < 0.2 * np.linalg.norm(d) + 0.5, (i, t, off)


# ------------------------------------------------------------------------------------------------ files


def test_dataset_writes_the_label_sets(ict, tmp_path):
    n = 2
    render_dataset(tmp_path, n, size=64, seed=3, workers=1, face_model=ict, progress=False)
    for i in range(n):
        _, ldmks, _, p = render_sample(sample_seed(3, i), SynthConfig(size=64), ict)
        sets = (("wflw98", "ldmks_wflw98", 98), ("ibug68_2d", "ldmks_ibug68_2d", 68))
        for name, key, k in (*sets, ("wflw98_2d", "ldmks_wflw98_2d", 98)):
            f = tmp_path / f"{i:06d}_ldmks_{name}.txt"
            lines = f.read_text().splitlines()
            assert len(lines) == k and all(len(v.split(".")[1]) == 3 for t in lines for v in t.split())
            np.testing.assert_allclose(np.loadtxt(f), p[key], atol=5e-4 + 1e-6)
        # the 68-point file is unchanged and agrees with both
        written = np.loadtxt(tmp_path / f"{i:06d}_ldmks.txt")
        np.testing.assert_allclose(written, ldmks, atol=5e-4 + 1e-6)
    # resuming re-renders a sample whose label set is missing
    before = {f.name: f.read_bytes() for f in tmp_path.glob("000001*")}
    (tmp_path / "000001_ldmks_wflw98.txt").unlink()
    st = render_dataset(tmp_path, n, size=64, seed=3, workers=1, face_model=ict, progress=False)
    assert st["written"] == 1 and {f.name: f.read_bytes() for f in tmp_path.glob("000001*")} == before  # identical
