"""Shared test fixtures: the real data in ../shared/data (never copied into the repository)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

SHARED_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()


def _absent(what: Path) -> None:
    msg = f"../shared/data is absent: {what} not found (real-data tests need it; see the README)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def require_dlib() -> None:
    """Skips the test when dlib is not installed; fails on CI=true, whose set-up installs it (lightmark[dlib])."""
    if importlib.util.find_spec("dlib") is None:
        msg = "dlib not installed (pip install 'lightmark[dlib]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def require_shared(subpath: str | os.PathLike = "") -> Path:
    """Path of ``subpath`` inside ../shared/data; skips the test (fails on CI=true) when it is absent."""
    path = SHARED_DATA / subpath
    if not path.exists():
        _absent(path)
    return path


def load_script(name: str) -> ModuleType:
    """The module of ``scripts/<name>.py`` (scripts are not a package), imported from its file."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The resolved ../shared/data folder (skip, or fail when CI=true, if absent)."""
    return require_shared()


class UprightFraming:
    """The crop framing of a :class:`~lightmark.demo.tracking.CropModel` (128 px input, upright crops as
    ``engine/faces.first_matrix`` and ``Predictor.fine_matrix`` frame them), for test doubles that answer
    ``landmarks(frame, mats)`` themselves."""

    input_size = 128
    num_points = 68

    def first_matrix(self, detection, box_to_face):
        from lightmark.data.transforms import upright_matrix

        return upright_matrix(detection.face_corners(box_to_face), self.input_size, angle_deg=detection.roll)

    def fine_matrix(self, points):
        from lightmark.data.transforms import upright_matrix

        return upright_matrix(points, self.input_size)
