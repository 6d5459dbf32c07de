"""Small helpers used across the package: atomic file output, thread pinning."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import OutputError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import (os.umask is process-wide; changing it later is not thread-safe)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path`` (never a half-written file).

    The old file (if any) stays intact until the rename, and the temporary file is removed on any failure.
    The new file gets the old file's permissions, else the usual ``0o666 & ~umask``.

    Raises:
        OutputError: the folder cannot be created or written, the path is a folder, or writing fails
            (disk full...). An ``OSError`` raised inside the ``with`` block is reported as OutputError too.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    binary = "b" in mode
    try:
        try:
            perms = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            perms = 0o666 & ~_UMASK
        os.chmod(tmp, perms)  # mkstemp creates 0o600
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
        raise


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """Raise :class:`OutputError` now when ``path`` could not be written later; creates nothing.

    Call it before long work (prediction, training) so that a bad output path fails fast, before any other
    output is written. ``folder``: ``path`` is an output folder rather than a file.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise OutputError(f"{path}: cannot write (exists and is not a folder)")
        if not folder and path.is_dir():
            raise OutputError(f"{path}: cannot write (is a folder)")
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:  # missing folders are created on writing
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: cannot write ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write (permission denied in {parent})")


def ensure_dir(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; raise :class:`OutputError` (not ``OSError``) when it cannot be created."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path}: cannot create folder ({e.strerror or e})") from None
    return path


def atomic_save_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def set_threads(n: int | None) -> None:
    """Pin torch and OpenCV to ``n`` threads (None leaves the defaults)."""
    if n is None:
        return
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
