"""Shared test fixtures: the real data in ../shared/data (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()


def _absent(what: Path) -> None:
    msg = f"../shared/data is absent: {what} not found (real-data tests need it; see the README)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def require_shared(subpath: str | os.PathLike = "") -> Path:
    """Path of ``subpath`` inside ../shared/data; skips the test (fails on CI=true) when it is absent."""
    path = SHARED_DATA / subpath
    if not path.exists():
        _absent(path)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The resolved ../shared/data folder (skip, or fail when CI=true, if absent)."""
    return require_shared()
