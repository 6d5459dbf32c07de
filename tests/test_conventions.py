"""Command-line and API conventions: --version, one-line errors for model names and devices."""

from __future__ import annotations

import pytest

from lightmark import __version__
from lightmark.cli import main
from lightmark.engine.predict import Predictor
from lightmark.errors import ConfigError, ModelError


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"lightmark {__version__}"


def test_unknown_model_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ModelError, match="shipped models: protocol, mixed"):
        Predictor("nonexistent")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA machine has the device")
def test_cuda_without_cuda_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Predictor(device="cuda")


def test_cli_model_mistake_is_one_line(capsys, tmp_path) -> None:
    img = tmp_path / "x.png"
    from lightmark.data.images import write_image

    write_image(img, __import__("numpy").zeros((64, 64, 3), "uint8"))
    assert main(["predict", str(img), "--out", str(tmp_path / "s.txt"), "--model", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shipped models" in err[0]
