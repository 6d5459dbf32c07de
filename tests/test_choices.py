"""The string enums of lightmark.choices: values in, members out, plain strings in every saved form."""

from __future__ import annotations

import json

import pytest

from lightmark.choices import Backend, Choice, CoordinateLoss, DatasetFormat, Decoder, Head, HeatmapLoss
from lightmark.errors import ConfigError
from lightmark.models.config import ModelConfig


def test_members_are_their_values_in_strings_and_json() -> None:
    assert Head.HEATMAP == "heatmap" and "regression" == Head.REGRESSION
    assert str(Decoder.DARK) == "dark" and f"{Decoder.DARK}" == "dark" and f"{Decoder.DARK:>6}" == "  dark"
    assert f"{Decoder.DARK!r}" == "'dark'"  # messages quote the value, as for a string
    assert json.dumps({"d": HeatmapLoss.KL}) == '{"d": "heatmap_kl"}'
    assert {CoordinateLoss.WING: 1}["wing"] == 1  # a member is a dict key its value finds
    assert Backend.values() == ("auto", "torch", "onnx")


def test_parse_takes_members_and_values_and_lists_the_known_ones() -> None:
    assert Decoder.parse("argmax") is Decoder.ARGMAX and Decoder.parse(Decoder.DARK) is Decoder.DARK
    with pytest.raises(ConfigError, match=r"^unknown dataset format 'coco'; known: challenge, facesynthetics, pts"):
        DatasetFormat.parse("coco", "dataset format")
    with pytest.raises(ValueError, match=r"^unknown head 'HEATMAP'; known: heatmap, regression$"):
        Head.parse("HEATMAP")  # values are case-sensitive: what the files store
    assert all(issubclass(c, Choice) for c in (Backend, CoordinateLoss, DatasetFormat, Decoder, Head, HeatmapLoss))


def test_model_config_holds_members_and_saves_plain_strings() -> None:
    cfg = ModelConfig("x", backbone="mobilenet", head="regression", decoder="dark", heatmap_loss="adaptive_wing")
    assert cfg.head is Head.REGRESSION and cfg.decoder is Decoder.DARK and cfg.heatmap_loss is HeatmapLoss.ADAPTIVE_WING
    saved = cfg.to_dict()
    assert {k: type(saved[k]) for k in ("backbone", "head", "decoder", "heatmap_loss")} == dict.fromkeys(
        ("backbone", "head", "decoder", "heatmap_loss"), str
    )
    assert saved["head"] == "regression" and ModelConfig.from_dict(json.loads(json.dumps(saved))) == cfg
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        ModelConfig("x", backbone="vgg")


def test_values_given_to_dataclasses_become_members() -> None:
    """Code that compares by identity (``fmt is DatasetFormat.PTS``) gets members whichever form was given."""
    from pathlib import Path

    pytest.importorskip("torch")
    from lightmark.codecs import HeatmapCodec
    from lightmark.data.formats import FaceDataset

    assert FaceDataset(Path("."), "pts", []).format is DatasetFormat.PTS
    codec = HeatmapCodec(64, 16, decoder="argmax", heatmap_loss="heatmap_mse")
    assert codec.decoder is Decoder.ARGMAX and codec.heatmap_loss is HeatmapLoss.MSE
    with pytest.raises(ConfigError, match="unknown dataset format 'coco'"):
        FaceDataset(Path("."), "coco", [])
