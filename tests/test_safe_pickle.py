"""Tests of lightmark.data.safe_pickle: numpy/builtins load, anything else is refused and never runs."""

from __future__ import annotations

import copyreg
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
from lightmark.data import safe_load_pickle
from lightmark.errors import AnnotationError, UnsafeFileError


class _SystemCall:
    """Unpickling this would run a shell command creating ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _OpenCall:
    """Unpickling this would create ``marker`` with builtins.open."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _Plain:
    pass


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_builtins_and_numpy_roundtrip(protocol: int):
    obj = (
        ["a.jpg", "b.png"],
        [[(np.float32(1.5), np.float32(-2.0))], {"k": (1, 2.5, None, True, b"raw", "é")}],
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.zeros((2, 3), np.float64)[:, ::2],  # non-contiguous
        np.int64(7),
        np.dtype("<u2"),
        {1, 2},
    )
    out = safe_load_pickle(pickle.dumps(obj, protocol=protocol))
    assert out[0] == obj[0] and out[1][1] == obj[1][1] and out[4] == 7 and out[5] == obj[5] and out[6] == {1, 2}
    assert type(out[1][0][0][0]) is np.float32 and out[1][0][0][0] == np.float32(1.5)
    np.testing.assert_array_equal(out[2], obj[2])
    np.testing.assert_array_equal(out[3], obj[3])
    assert out[2].dtype == np.float32


def test_real_annot_pkl():
    path = require_shared("aflw2000/val/annot.pkl")
    xs, ys = safe_load_pickle(path)
    assert len(xs) == len(ys) == 199 and len(ys[0]) == 68
    assert type(ys[0][0][0]) is np.float32


@pytest.mark.parametrize("payload", [_SystemCall, _OpenCall])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_never_runs(tmp_path: Path, payload: type, protocol: int):
    marker = tmp_path / "pwned"
    evil = tmp_path / "annot.pkl"
    evil.write_bytes(pickle.dumps(["ok", payload(marker)], protocol=protocol))
    with pytest.raises(UnsafeFileError) as info:
        safe_load_pickle(evil)
    msg = str(info.value)
    assert str(evil) in msg and "refused" in msg
    assert ("system" in msg) if payload is _SystemCall else ("open" in msg)
    assert not marker.exists()


def test_refuses_other_globals(tmp_path: Path):
    with pytest.raises(UnsafeFileError, match=r"<bytes>: refused .*_Plain"):
        safe_load_pickle(pickle.dumps(_Plain()))
    with pytest.raises(UnsafeFileError, match=r"builtins\.eval"):
        safe_load_pickle(pickle.dumps(eval))
    with pytest.raises(UnsafeFileError, match=r"mydata: refused .*numpy\.load"):
        safe_load_pickle(pickle.dumps(np.load), name="mydata")
    # numpy arrays of objects still go through find_class for their elements
    with pytest.raises(UnsafeFileError, match="_Plain"):
        safe_load_pickle(pickle.dumps(np.array([_Plain()], dtype=object)))
    # _codecs.encode is allowed for latin-1 only
    evil = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlibq\x00\x86R."
    with pytest.raises(AnnotationError, match="latin-1"):
        safe_load_pickle(evil)


def test_refuses_extension_registry_and_persistent_ids():
    mod = os.system.__module__  # "posix" or "nt"
    copyreg.add_extension(mod, "system", 0xF1)  # even when the reader's registry knows the code
    try:
        data = pickle.dumps(os.system, protocol=2)
        assert data[2:3] == b"\x82"  # EXT1 opcode: no module name in the stream
        with pytest.raises(UnsafeFileError, match=rf"{mod}\.system"):
            safe_load_pickle(data)
    finally:
        copyreg.remove_extension(mod, "system", 0xF1)
    with pytest.raises(UnsafeFileError, match="persistent"):
        safe_load_pickle(b"\x80\x02X\x01\x00\x00\x00aQ.")


def test_corrupt_missing_empty(tmp_path: Path):
    with pytest.raises(AnnotationError, match=r"nope\.pkl: no such file"):
        safe_load_pickle(tmp_path / "nope.pkl")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(AnnotationError, match=r"empty\.pkl: empty file"):
        safe_load_pickle(tmp_path / "empty.pkl")
    good = pickle.dumps(list(range(1000)))
    (tmp_path / "cut.pkl").write_bytes(good[: len(good) // 2])
    with pytest.raises(AnnotationError, match=r"cut\.pkl: not a valid pickle"):
        safe_load_pickle(tmp_path / "cut.pkl")
    with pytest.raises(AnnotationError, match="not a valid pickle"):
        safe_load_pickle(b"this is text, not a pickle")
