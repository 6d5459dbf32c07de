"""Tests of lightmark.schemes and of the code that takes a landmark scheme: metrics, drawing, readers, model config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lightmark import constants as C
from lightmark.data import detect_format, load_dataset, read_ldmks, read_pts, write_image, write_ldmks, write_pts
from lightmark.data.formats import format_ldmks, ldmks_suffix
from lightmark.errors import AnnotationError, ConfigError
from lightmark.metrics import interocular_norm, region_nme, summarize
from lightmark.models.config import ModelConfig
from lightmark.models.registry import model_config
from lightmark.schemes import LandmarkScheme, get_scheme, list_schemes, register_scheme, scheme_for_count
from lightmark.viz import draw_landmarks

SIDE = 64


def _face(k: int, n: int = 1, seed: int = 0) -> np.ndarray:
    return 4 + np.random.default_rng(seed).random((n, k, 2)) * (SIDE - 8)


# ------------------------------------------------------------------------------------------------ the schemes


@pytest.mark.parametrize("name", list_schemes())
def test_every_scheme_is_consistent(name: str) -> None:
    s = get_scheme(name)
    k, perm = s.num_points, s.flip_perm
    assert len(perm) == k and sorted(perm) == list(range(k))
    assert all(perm[perm[i]] == i for i in range(k))  # an involution
    assert all(0 <= a < b <= k for a, b, _ in s.contours)
    a, b = s.eye_corners
    assert perm[a] == b and a != b
    assert s.jaw and all(0 <= i < k for i in s.jaw)
    assert sorted(perm[i] for i in s.jaw) == sorted(s.jaw)  # the jaw mirrors onto itself
    for ix in s.regions.values():
        assert ix and all(0 <= i < k for i in ix)
    covered = [i for ix in s.regions.values() for i in ix]
    assert sorted(covered) == list(range(k)), "regions partition the points"
    if s.to_ibug68 is not None:
        assert len(s.to_ibug68) == C.NUM_LANDMARKS == len(set(s.to_ibug68))
    assert s.description
    assert get_scheme(s) is s


def test_builtin_names_and_lookup() -> None:
    assert {"ibug68", "ibug68_2d", "wflw98"} <= set(list_schemes())
    assert scheme_for_count(68).name == "ibug68" and scheme_for_count(98).name == "wflw98"
    assert scheme_for_count(5) is None
    with pytest.raises(ConfigError, match=r"unknown landmark scheme 'nope'.*ibug68.*wflw98"):
        get_scheme("nope")


def test_ibug68_is_constants_layout() -> None:
    s = get_scheme("ibug68")
    assert s.num_points == C.NUM_LANDMARKS
    assert s.flip_perm == C.FLIP_PERM
    assert s.contours == C.CONTOURS
    assert s.eye_corners == C.OUTER_EYE_CORNERS
    assert s.jaw == tuple(range(17)) == tuple(range(C.JAW.start, C.JAW.stop))
    assert s.to_ibug68 == tuple(range(68))
    assert s.regions["mouth"] == tuple(range(C.MOUTH.start, C.MOUTH.stop))
    assert s.regions["eyes"] == tuple(range(36, 48))
    two_d = get_scheme("ibug68_2d")
    assert (two_d.flip_perm, two_d.contours, two_d.eye_corners, two_d.jaw) == (s.flip_perm, s.contours, (36, 45), s.jaw)
    assert "visible" in two_d.description


def test_wflw98_layout() -> None:
    s = get_scheme("wflw98")
    perm = s.flip_perm
    assert s.num_points == 98 and s.eye_corners == (60, 72)
    assert s.jaw == tuple(range(33))
    assert all(perm[i] == 32 - i for i in range(33))  # jaw reversed
    assert [i for i in range(98) if perm[i] == i] == [16, 51, 52, 53, 54, 57, 79, 85, 90, 94]  # the midline
    assert (perm[33], perm[38], perm[60], perm[64], perm[65], perm[76], perm[88], perm[93], perm[96]) == (
        46, 50, 72, 68, 75, 82, 92, 95, 97,
    )  # fmt: skip


@pytest.mark.parametrize("target", ["ibug68", "ibug68_2d"])
def test_wflw98_to_ibug68_map(target: str) -> None:
    s, t = get_scheme("wflw98"), get_scheme(target)
    m = s.to_ibug68
    assert len(m) == 68 and len(set(m)) == 68, "injective"
    assert all(m[t.flip_perm[i]] == s.flip_perm[m[i]] for i in range(68)), "left/right consistent"
    assert (m[36], m[45]) == (60, 72), "outer eye corners"
    assert [m[i] for i in t.jaw] == list(range(0, 33, 2))
    assert [m[i] for i in range(48, 68)] == list(range(76, 96))
    pts = _face(98)[0]
    np.testing.assert_array_equal(s.as_ibug68(pts), pts[list(m)])
    assert s.as_ibug68(np.zeros((3, 98, 2))).shape == (3, 68, 2)
    with pytest.raises(ValueError, match="98"):
        s.as_ibug68(np.zeros((68, 2)))


def test_bad_schemes_are_refused() -> None:
    good = get_scheme("ibug68")
    perm = list(good.flip_perm)
    perm[0], perm[1] = perm[1], perm[0]  # no longer an involution
    bad = {
        "flip_perm": tuple(perm),
        "num_points": 67,
        "eye_corners": (36, 36),
        "contours": ((60, 69, True),),
        "regions": {"jaw": (0, 99)},
        "to_ibug68": tuple(range(67)) + (0,),
        "jaw": (),
    }
    for key, value in bad.items():
        with pytest.raises(ConfigError):
            dataclasses.replace(good, name="bad", **{key: value})
    with pytest.raises(ConfigError, match="already registered"):
        register_scheme(dataclasses.replace(good, description="another"))
    assert register_scheme(good) is good  # the same scheme again: no-op
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        good.regions["jaw"] = (0,)  # type: ignore[index]


def test_register_a_new_scheme() -> None:
    from lightmark import schemes

    five = LandmarkScheme(
        name="test_five",
        num_points=5,
        flip_perm=(1, 0, 2, 4, 3),
        contours=((3, 5, False),),
        eye_corners=(0, 1),
        regions={"eyes": (0, 1), "nose": (2,), "mouth": (3, 4)},
        to_ibug68=None,
        jaw=(3, 4),
    )
    try:
        assert register_scheme(five) is get_scheme("test_five")
        assert "test_five" in list_schemes()
        gt = _face(5, 2)
        np.testing.assert_allclose(interocular_norm(gt, "test_five"), np.linalg.norm(gt[:, 0] - gt[:, 1], axis=-1))
        with pytest.raises(ValueError, match="no map"):
            five.as_ibug68(gt)
    finally:
        schemes._SCHEMES.pop("test_five", None)


# ------------------------------------------------------------------------------------------------ metrics


def test_metrics_follow_the_scheme() -> None:
    gt = _face(98, 3)
    io = interocular_norm(gt, "wflw98")
    np.testing.assert_allclose(io, np.linalg.norm(gt[:, 60] - gt[:, 72], axis=-1))
    s = summarize(gt + 1.0, gt, [SIDE, SIDE], scheme="wflw98")
    assert s["nme_interocular"] == pytest.approx(float(np.mean(np.sqrt(2) / io * 100)))
    regions = region_nme(gt + 1.0, gt, io, get_scheme("wflw98"))
    assert list(regions) == ["jaw", "brows", "nose", "eyes", "mouth", "pupils"]
    np.testing.assert_allclose(regions["jaw"], np.sqrt(2) / io * 100)
    assert set(region_nme(_face(68), _face(68), 1.0)) == {"jaw", "brows", "nose", "eyes", "mouth"}


@pytest.mark.parametrize(
    "call",
    [
        lambda g: interocular_norm(g),  # 98 points, default ibug68
        lambda g: summarize(g, g, [SIDE, SIDE]),
        lambda g: region_nme(g, g, 1.0),
        lambda g: interocular_norm(g[:, :68], "wflw98"),
        lambda g: summarize(g[:, :70], g[:, :70], [SIDE, SIDE]),
    ],
)
def test_metrics_refuse_another_point_count(call) -> None:
    with pytest.raises(ValueError, match="points per face, but scheme"):
        call(_face(98, 2))


# ------------------------------------------------------------------------------------------------ drawing


def test_draw_contours_of_any_scheme() -> None:
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    pts = _face(98)[0]
    dots = draw_landmarks(image, pts, lines=False, radius=1)
    lines = draw_landmarks(image, pts, radius=1)
    assert (lines != dots).any(), "98 points: WFLW's contours drawn"
    np.testing.assert_array_equal(draw_landmarks(image, pts, radius=1, scheme="wflw98"), lines)
    odd = _face(7)[0]
    np.testing.assert_array_equal(
        draw_landmarks(image, odd, radius=1), draw_landmarks(image, odd, lines=False, radius=1)
    )
    with pytest.raises(ValueError, match="scheme 'wflw98' has 98"):
        draw_landmarks(image, _face(68)[0], scheme="wflw98")


# ------------------------------------------------------------------------------------------------ readers


def test_readers_check_the_scheme_count(tmp_path: Path) -> None:
    pts98 = _face(98)[0]
    write_pts(tmp_path / "a.pts", pts98, "wflw98")
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts", "wflw98"), pts98, atol=1e-4)
    with pytest.raises(AnnotationError, match="expected 68 points, header says n_points: 98"):
        read_pts(tmp_path / "a.pts")
    with pytest.raises(AnnotationError, match=r"expected 68 \(x, y\) points"):
        write_pts(tmp_path / "b.pts", pts98)
    text = format_ldmks(pts98, scheme="wflw98")
    assert len(text.splitlines()) == 98
    (tmp_path / "c.txt").write_text(text)
    back, pupils = read_ldmks(tmp_path / "c.txt", "wflw98")
    assert pupils is None and back.shape == (98, 2)
    with pytest.raises(AnnotationError, match="expected 68 or 70 points"):
        read_ldmks(tmp_path / "c.txt")


def test_facesynthetics_folder_per_scheme(tmp_path: Path) -> None:
    assert ldmks_suffix() == "_ldmks.txt" and ldmks_suffix("wflw98") == "_ldmks_wflw98.txt"
    write_image(tmp_path / "000000.png", np.full((SIDE, SIDE, 3), 128, np.uint8))
    pts98 = _face(98)[0]
    write_ldmks(tmp_path / f"000000{ldmks_suffix('wflw98')}", pts98, scheme="wflw98")
    assert detect_format(tmp_path) == "facesynthetics"
    ds = load_dataset(tmp_path, scheme="wflw98", require_landmarks=True)
    assert ds.scheme == "wflw98" and ds.landmarks_array().shape == (1, 98, 2)
    np.testing.assert_allclose(ds[0].landmarks, pts98, atol=5e-4)
    assert ds[:0].scheme == "wflw98" and ds[:0].landmarks_array().shape == (0, 98, 2)
    unlabelled = load_dataset(tmp_path)  # ibug68 reads 000000_ldmks.txt, absent here
    assert unlabelled.scheme == "ibug68" and not unlabelled.has_landmarks
    pts68 = _face(68)[0]
    write_ldmks(tmp_path / "000000_ldmks.txt", pts68, np.zeros((2, 2)))
    np.testing.assert_allclose(load_dataset(tmp_path)[0].landmarks, pts68, atol=5e-4)


# ------------------------------------------------------------------------------------------------ model config


def test_model_config_scheme_round_trip() -> None:
    cfg = ModelConfig("m", scheme="wflw98")
    assert cfg.num_landmarks == 98 and cfg.flip_perm == get_scheme("wflw98").flip_perm
    assert cfg.landmark_scheme is get_scheme("wflw98")
    d = cfg.to_dict()
    assert d["scheme"] == "wflw98" and d["num_landmarks"] == 98
    back = ModelConfig.from_dict(d)
    assert back == cfg and back.to_dict() == d
    import json

    assert ModelConfig.from_dict(json.loads(json.dumps(d))) == cfg  # as ONNX metadata stores it (lists)
    assert ModelConfig(**d) == cfg


def test_old_model_config_loads_as_ibug68() -> None:
    old = ModelConfig("m").to_dict()
    del old["scheme"]
    old["flip_perm"] = list(old["flip_perm"])
    cfg = ModelConfig.from_dict(old)
    assert cfg.scheme == "ibug68" and cfg.num_landmarks == 68 and cfg.flip_perm == C.FLIP_PERM
    assert ModelConfig(**old) == cfg
    with pytest.raises(ConfigError, match="num_landmarks 98 does not match scheme 'ibug68'"):
        ModelConfig.from_dict({**old, "num_landmarks": 98})
    with pytest.raises(ConfigError, match="flip_perm"):
        ModelConfig.from_dict({**old, "flip_perm": list(range(68))})
    with pytest.raises(ConfigError, match="unknown model config key"):
        ModelConfig.from_dict({**old, "colour": 1})
    with pytest.raises(ConfigError, match="unknown landmark scheme"):
        ModelConfig("m", scheme="nope")


def test_model_registry_scheme_override() -> None:
    cfg = model_config("shufflenetv2_x0_5_heatmap", scheme="wflw98", input_size=96)
    assert (cfg.scheme, cfg.num_landmarks, cfg.input_size) == ("wflw98", 98, 96)
    assert cfg.flip_perm == get_scheme("wflw98").flip_perm
    assert model_config("shufflenetv2_x0_5_heatmap").num_landmarks == 68
    again = dataclasses.replace(cfg, scheme="ibug68_2d", num_landmarks=None, flip_perm=None)
    assert again.num_landmarks == 68 and again.flip_perm == C.FLIP_PERM


def test_train_config_scheme_option() -> None:
    pytest.importorskip("torch")
    from lightmark.engine.train import RESUME_KEYS, TrainConfig, _model_overrides, check_config, with_model

    field = {f.name: f for f in dataclasses.fields(TrainConfig)}["scheme"]
    assert field.default == "ibug68" and field.metadata["help"]
    assert "scheme" in RESUME_KEYS
    cfg = TrainConfig(train=["x"], scheme="wflw98")
    assert _model_overrides(cfg)["scheme"] == "wflw98"
    assert model_config(with_model(cfg).model, **_model_overrides(cfg)).num_landmarks == 98
    with pytest.raises(ConfigError, match="unknown landmark scheme"):
        check_config(TrainConfig(train=["x"], scheme="nope"))


def test_training_set_takes_jaw_and_flip_from_the_scheme(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from lightmark.data.training import LandmarkTrainSet
    from lightmark.engine.train import TrainConfig, _model_overrides, build_trainset, with_model

    monkeypatch.setenv("LIGHTMARK_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "synth"
    for i in range(2):
        write_image(data / f"00000{i}.png", np.full((SIDE, SIDE, 3), 90 + 40 * i, np.uint8))
        write_ldmks(data / f"00000{i}{ldmks_suffix('wflw98')}", _face(98, seed=i)[0], scheme="wflw98")
    cfg = TrainConfig(
        train=[str(data)], scheme="wflw98", jaw_weights=[0.25], input_size=32, photometric=0.0, samples_per_epoch=4
    )
    flip = model_config(with_model(cfg).model, **_model_overrides(cfg)).flip_perm
    ts = build_trainset(cfg, flip, progress=False)
    _, pts, w = ts[(0, 0)]
    assert pts.shape == (98, 2)
    assert w[:33].tolist() == [0.25] * 33 and w[33:].tolist() == [1.0] * 65
    with pytest.raises(ValueError, match="flip_perm has 68 entries for 98-point cache 0"):
        LandmarkTrainSet(ts.caches, 32, 4, flip_perm=C.FLIP_PERM)


def test_coco_category_follows_the_scheme() -> None:
    from lightmark.engine.coco import COCO_KEYPOINT_NAMES, COCO_SKELETON, coco_document

    def category(k: int, scheme=None) -> dict:
        doc = coco_document(["a.png"], np.array([[SIDE, SIDE]]), [(0, _face(k)[0], None, None)], scheme)
        return doc["categories"][0]

    assert category(68)["keypoints"] == list(COCO_KEYPOINT_NAMES)
    assert category(68)["skeleton"] == [list(e) for e in COCO_SKELETON]
    wflw = category(98)
    assert wflw["keypoints"][:2] == ["wflw98_0", "wflw98_1"] and len(wflw["keypoints"]) == 98
    assert [33, 1] not in wflw["skeleton"] and [42, 34] in wflw["skeleton"]  # jaw open, right brow closed
    assert category(98, "wflw98") == wflw
    assert category(7) == {**category(7), "keypoints": [f"point_{i}" for i in range(7)], "skeleton": []}
