"""Tests of the landmark-definition audit (lightmark.synth.landmark_audit) and of the FaceSynthetics-matched label set
it derived (``ibug68_fs``, lightmark.synth.landmark_sets). Tests that fit or render need the ICT Face Model and the
FaceSynthetics sample in ../shared/data (skipped with a message when absent, failing when CI=true)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
from lightmark.constants import FLIP_PERM
from lightmark.data.formats import read_ldmks
from lightmark.synth import SynthConfig, load_face_model, render_dataset, render_sample, sample_seed
from lightmark.synth import landmark_audit as A
from lightmark.synth import landmark_sets as LS
from lightmark.synth.face_model import PARTS
from lightmark.synth.fit import fit_landmarks

ICT_NPZ = "ict_face_model/ict_face_model_light.npz"
FS_DIR = "facesynthetics_100"


@pytest.fixture(scope="module")
def ict():
    return load_face_model(require_shared(ICT_NPZ))


@pytest.fixture(scope="module")
def fs_labels():
    folder = require_shared(FS_DIR)
    return [read_ldmks(p)[0].astype(np.float64) for p in sorted(Path(folder).glob("*_ldmks.txt"))[:3]]


@pytest.fixture(scope="module")
def views(ict):
    return A.synthetic_views(ict, 8, seed=5)


# ---------------------------------------------------------------------------------------------- pure geometry


def test_class_run_and_seg_depths():
    seg = np.zeros((100, 100), np.uint8)
    seg[40:50, 20:80] = 5  # a brow band, rows 40-49
    seg[70:76, 30:70] = 10  # an upper lip, rows 70-75
    run = A.class_run(seg, np.array([[50.0, 42.0], [50.0, 20.0], [5.0, 5.0]]), np.array([0.0, -1.0]), (5,), reach=30)
    np.testing.assert_allclose(run[0], [2.5, -7.5], atol=0.51)  # top edge 2 rows above, bottom edge 8 below
    assert run[1, 0] < 0 and run[1, 1] < run[1, 0]  # the band lies below a point above it
    assert np.isnan(run[2]).all()  # nothing in reach
    labels = np.full((68, 2), 50.0)
    labels[17:27, 1] = 44.0  # brows 4 px inside the band's upper edge (row 40 -> edge at 39.5)
    labels[49:54, 1] = 69.5  # outer upper lip on its upper edge
    d = A.seg_depths(seg, labels, np.array([0.0, -1.0]))
    keys = list(A.SEG_EDGES)
    np.testing.assert_allclose(d[[keys.index(i) for i in range(18, 26)]], 4.5, atol=0.51)
    np.testing.assert_allclose(d[[keys.index(i) for i in range(49, 54)]], 0.0, atol=0.51)


def test_closest_on_triangles():
    V = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    T = np.array([[0, 1, 2], [1, 3, 2]])
    ids, w, d = A.closest_on_triangles(V, T, np.array([0.2, 0.3, 0.5]))
    np.testing.assert_allclose(w @ V[ids], [0.2, 0.3, 0.0], atol=1e-12)
    assert d == pytest.approx(0.5)
    ids, w, d = A.closest_on_triangles(V, T, np.array([2.0, 0.5, 0.0]))  # outside: nearest edge point
    np.testing.assert_allclose(w @ V[ids], [1.0, 0.5, 0.0], atol=1e-12)
    assert d == pytest.approx(1.0) and (w >= 0).all() and w.sum() == pytest.approx(1.0)


def test_pooled_offset_recovers_a_shared_offset():
    rng = np.random.default_rng(0)
    jac = rng.normal(0, 30, (50, 2, 2))
    truth = np.array([0.2, -0.3])
    d = jac @ truth + rng.normal(0, 0.5, (50, 2))
    d[:3] += 40.0  # outliers: the Huber rounds ignore them
    np.testing.assert_allclose(A.pooled_offset(jac, d, np.full(50, 100.0)), truth, atol=0.02)
    assert A.pooled_offset(jac, d, np.full(50, 100.0), midline=True)[0] == 0.0


# ------------------------------------------------------------------------------------------ the ibug68_fs table


def test_fs_table_is_symmetric_and_on_the_face(ict):
    mirror = LS._mirror_vertices(ict.neutral.astype(np.float64))
    table = LS.IBUG68_FS_SURFACE
    assert table and set(table) <= set(range(68))
    for i, (ids, w) in table.items():
        assert all(0 <= v < PARTS["face"][1] for v in ids), i
        assert min(w) >= 0 and sum(w) == pytest.approx(1.0, abs=1e-9), i
        j = FLIP_PERM[i]
        assert j in table, f"point {i} changed but not its mirror {j}"
        if j != i:
            assert table[j][1] == w and tuple(int(mirror[v]) for v in ids) == table[j][0], i
    # each surface point lies within 1 cm of the vertex it replaces (a correction, not another landmark)
    V = ict.neutral.astype(np.float64)
    for i, (ids, w) in table.items():
        assert np.linalg.norm(np.asarray(w) @ V[list(ids)] - V[ict.landmarks68[i]]) < 1.0, i


def test_mirrored_definition_and_table(ict):
    off = np.zeros((68, 2))
    off[[19, 24], 1] = -0.3  # both brows' middles 3 mm down
    off[27, 1] = 0.2
    ids, w = A.mirrored_definition(ict, off)
    V = ict.neutral.astype(np.float64)
    moved = A.surface_points(V, ids, w) - V[ict.landmarks68]
    assert set(A.definition_table(ict, (ids, w))) == {19, 24, 27}
    assert -0.4 < moved[19, 1] < -0.2 and moved[19, 1] == pytest.approx(moved[24, 1])
    assert moved[19, 0] == pytest.approx(-moved[24, 0], abs=0.02) and 0.1 < moved[27, 1] < 0.3
    assert np.abs(moved[[i for i in range(68) if i not in (19, 24, 27)]]).max() == 0.0


# ------------------------------------------------------------------------------------------- fitting / audit


def test_fit_weighted_is_fit_landmarks(ict, fs_labels):
    a = fit_landmarks(ict, fs_labels[0], 512)
    b, x = A.fit_weighted(ict, fs_labels[0], 512)
    np.testing.assert_allclose(b.residuals, a.residuals, atol=1e-9)
    c = A.fit_from_params(ict, x, 512)
    np.testing.assert_allclose(c.camera.P, b.camera.P, atol=1e-9)


def test_audit_statistics_are_finite(ict, fs_labels):
    audit = A.audit_samples(ict, fs_labels, 512, regions=("brows",))
    for r in (audit.full, audit.loro):
        for k in ("image", "upright", "mesh", "jac", "iod"):
            assert np.isfinite(getattr(r, k)).all(), k
    assert (60 < audit.full.iod).all() and (audit.full.iod < 200).all()
    assert np.linalg.norm(audit.full.image, axis=2).mean() < 3.0  # the fit's own residual, ~1.3 px
    # only the brows were left out: the other points are measured on the full fit
    np.testing.assert_array_equal(audit.loro.image[:, :17], audit.full.image[:, :17])
    assert not np.allclose(audit.loro.image[:, 17:27], audit.full.image[:, 17:27])
    stats = A.point_stats(audit.full)
    assert all(np.isfinite(v).all() for v in stats.values())
    regions = A.region_stats(stats, A.outward_sign(ict))
    assert set(regions) == set(A.REGIONS) and all(np.isfinite(list(r.values())).all() for r in regions.values())


def test_audit_recovers_a_known_definition_change(ict, views):
    """Labels drawn with a shifted definition on synthetic faces: the fit-based audit sees a local change (inner brow
    ends apart, nasion up) in part, and de-biasing recovers it; a region-wide shift is absorbed by the full fit and
    seen by the leave-one-region-out fit."""
    off = np.zeros((68, 2))
    off[21, 0], off[22, 0], off[27, 1] = -0.3, 0.3, 0.3
    seen = A.point_offsets(ict, A.transfer(ict, A.mirrored_definition(ict, off), views))
    for i, c in ((21, 0), (22, 0), (27, 1)):
        assert 0.25 * abs(off[i, c]) < seen[i, c] * np.sign(off[i, c]) < 1.1 * abs(off[i, c]), (i, seen[i])
    fixed, kappa = A.debias(ict, seen * (np.abs(off) > 0), views)
    np.testing.assert_allclose(fixed[[21, 22, 27]], off[[21, 22, 27]], atol=0.1)
    assert (kappa[[21, 22, 27]] < 0.95).all()  # the fit did absorb part of it
    # a region-wide change: the brows 3 mm down
    down = np.zeros((68, 2))
    down[17:27, 1] = -0.3
    ids, w = A.shifted_definition(ict, down)
    full, held = [], []
    for V, cam in views:
        lab = cam.project(A.surface_points(V, ids, w))
        fit, x = A.fit_weighted(ict, lab, cam.size)
        full.append(A.measure(ict, fit, lab))
        wt = np.ones(68)
        wt[17:27] = 0.0
        full_out, _ = A.fit_weighted(ict, lab, cam.size, wt, x0=x)
        held.append(A.measure(ict, full_out, lab))
    up_full = A.point_offsets(ict, A.Residuals.stack(full))[17:27, 1].mean()
    up_held = A.point_offsets(ict, A.Residuals.stack(held))[17:27, 1].mean()
    assert abs(up_full) < 0.05 < -up_held  # absorbed by the full fit; the held-out fit sees it


# -------------------------------------------------------------------------------------------- the renderer


def test_ibug68_fs_labels_in_render_sample(ict):
    img, ldmks, seg, p = render_sample(sample_seed(3, 1), SynthConfig(size=96), ict)
    fs = p["ldmks_ibug68_fs"]
    assert fs.shape == (68, 2) and fs.dtype == np.float32
    same = [i for i in range(68) if i not in LS.IBUG68_FS_SURFACE]
    np.testing.assert_array_equal(fs[same], ldmks[same])
    V = ict.vertices(p["identity"], p["expression"])
    np.testing.assert_allclose(fs, LS.ibug68_fs_labels(ldmks, V, p["P"]), atol=1e-3)
    assert np.abs(fs - ldmks[:68]).max() > 0.3  # some points did move (px at 96)


def test_existing_outputs_unchanged(ict, tmp_path):
    """The FaceSynthetics-definition labels are an extra file: every other file is byte-identical with and without
    it, the 68 labels stay the projected ICT vertices, and a default dataset does not write it."""
    a = render_dataset(tmp_path / "a", 2, size=96, seed=4, workers=1, face_model=ict, progress=False)
    cfg = SynthConfig(fs_labels=True)
    b = render_dataset(tmp_path / "b", 2, size=96, seed=4, workers=1, face_model=ict, progress=False, config=cfg)
    assert a["written"] == b["written"] == 2
    files_a = {p.name for p in (tmp_path / "a").iterdir()} - {"synth_config.json"}
    files_b = {p.name for p in (tmp_path / "b").iterdir()} - {"synth_config.json"}
    assert files_b - files_a == {"000000_ldmks_ibug68_fs.txt", "000001_ldmks_ibug68_fs.txt"}
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    lines_fs = (tmp_path / "b" / "000000_ldmks_ibug68_fs.txt").read_text().splitlines()
    lines_68 = (tmp_path / "b" / "000000_ldmks.txt").read_text().splitlines()
    assert len(lines_fs) == 68 and len(lines_68) == 70
    for i in range(68):
        assert (lines_fs[i] == lines_68[i]) == (i not in LS.IBUG68_FS_SURFACE), i
    # the 68 labels are the model's landmark vertices projected by the sample's camera
    _, ldmks, _, p = render_sample(sample_seed(4, 0), SynthConfig(size=96), ict)
    V = ict.vertices(p["identity"], p["expression"])[ict.landmarks68]
    h = V @ p["P"][:, :3].T + p["P"][:, 3]
    np.testing.assert_allclose(read_ldmks(tmp_path / "a" / "000000_ldmks.txt")[0], h[:, :2] / h[:, 2:], atol=2e-3)
    np.testing.assert_allclose(ldmks[:68], h[:, :2] / h[:, 2:], atol=1e-3)


def test_ibug68_fs_brows_and_lip_sit_deeper_in_their_classes(ict):
    """On our renders the current brow points lie on the painted brow's upper edge and the outer upper lip points on
    the lip's upper edge; in ``ibug68_fs`` they lie inside, as FaceSynthetics puts them (~4 % of the inter-ocular
    distance)."""
    renders, shown = A.seg_views(ict, 4, seed=9, size=192)
    ids, w = A.vertex_definition(ict)
    cur = A.view_depths(renders, (ids, w))
    # the measurement of the current definition is that of its labels
    img, ldmks, _, _ = shown[0]
    np.testing.assert_allclose(cur[0], A.seg_depths(renders[0].seg, ldmks, renders[0].up) / renders[0].iod, atol=1e-6)
    table = LS.IBUG68_FS_SURFACE
    for i, (v, wt) in table.items():
        ids[i], w[i] = v, wt
    new = A.view_depths(renders, (ids, w))
    keys = list(A.SEG_EDGES)
    for group in ((19, 20, 23, 24), (50, 51, 52)):
        k = [keys.index(i) for i in group]
        assert np.nanmean(new[:, k]) - np.nanmean(cur[:, k]) > 0.015, group
