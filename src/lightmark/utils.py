"""Small helpers used across the package: atomic file output, thread pinning, optional dependencies, progress
bars.

Importing this module changes nothing in the process (no umask, thread or signal setting).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from .errors import MissingDependencyError, OutputError

EXTRAS: dict[str, str] = {
    "torch": "train",
    "albumentations": "train",
    "numba": "synth",
    "scipy": "synth",
    "onnx": "export",
    "matplotlib": "plots",
    "dlib": "dlib",
    "face_recognition_models": "dlib",
}
"""Optional dependency (top-level module) -> the ``pip install 'lightmark[EXTRA]'`` extra that installs it.
``pip install lightmark`` alone predicts with ONNX Runtime (numpy, OpenCV, onnxruntime, Pillow, tqdm)."""
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "albumentations"),
    "synth": ("numba", "scipy"),
    "export": ("torch", "onnx"),
    "plots": ("matplotlib",),
    "dlib": ("dlib", "face_recognition_models"),
}
"""The optional modules each extra installs (pyproject.toml's ``[project.optional-dependencies]``; a test keeps
the two in step)."""

_TMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def _existing_mode(path: Path) -> int | None:
    """Permission bits of the file at ``path``, None when there is none (or it cannot be read)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _create_temporary(path: Path, mode: int) -> tuple[int, Path]:
    """Create ``.<name>.<random>.tmp`` beside ``path`` (never an existing file) with ``mode`` less the process's
    umask, applied by the kernel as for any new file: the umask itself is never read (reading it means changing
    it, which is process-wide and not thread-safe)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, _TMP_FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name for {path.name}")


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path`` (never a half-written file).

    The old file (if any) stays intact until the rename, and the temporary file is removed on any failure.
    The new file gets the old file's permissions, else those of any new file (``0o666 & ~umask``). ``encoding``
    and ``newline`` are :func:`open`'s (text modes only; ``newline=""`` for the csv module).

    Raises:
        OutputError: the folder cannot be created or written, the path is a folder, or writing fails
            (disk full...). An ``OSError`` raised inside the ``with`` block is reported as OutputError too.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        old_mode = _existing_mode(path)
        # created no more open than the file it replaces, so the new content is never readable by more users
        fd, tmp = _create_temporary(path, 0o666 if old_mode is None else old_mode)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    binary = "b" in mode
    try:
        if old_mode is not None:
            try:
                os.chmod(tmp, old_mode)  # the umask may have masked some of its bits
            except OSError:
                os.close(fd)
                raise
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else newline) as f:
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
    """Pin torch and OpenCV to ``n`` threads for the whole process (None leaves the defaults). For
    applications (the CLI, the demo); library code uses :func:`scoped_threads` instead."""
    if n is None:
        return
    import sys

    import cv2

    if "torch" in sys.modules:  # torch only when something loaded it: ONNX Runtime prediction never does
        sys.modules["torch"].set_num_threads(n)
    cv2.setNumThreads(n)


@contextlib.contextmanager
def scoped_threads(n: int | None, *, opencv: bool = False) -> Iterator[None]:
    """Run the block with torch's intra-op thread count (and OpenCV's with ``opencv``) at ``n``, restoring the
    previous counts on exit, also on error (None: change nothing).

    torch and OpenCV have no per-call or per-model setting: the count is process-wide while the block runs, so
    torch work on other threads at the same moment runs with ``n`` threads too. Keep the block short (one
    forward pass), so that the rest of the process keeps its own setting.
    """
    if n is None:
        yield
        return
    import torch

    n = int(n)
    old_torch = torch.get_num_threads()
    if old_torch != n:
        torch.set_num_threads(n)
    try:
        with opencv_threads(n) if opencv else contextlib.nullcontext():
            yield
    finally:
        if old_torch != n:
            torch.set_num_threads(old_torch)


@contextlib.contextmanager
def opencv_threads(n: int) -> Iterator[None]:
    """Run the block with OpenCV's thread count at ``n`` (process-wide while it runs), restored on exit."""
    import cv2

    old = cv2.getNumThreads()
    cv2.setNumThreads(int(n))
    try:
        yield
    finally:
        cv2.setNumThreads(old)


def install_hint(module: str, prefer: str | None = None) -> str:
    """``pip install 'lightmark[EXTRA]'`` for an optional module (its top-level package): the ``prefer`` extra
    when it installs the module (e.g. "export" for torch in ``lightmark export``), else :data:`EXTRAS`'s; a module
    of no extra gets ``pip install MODULE``."""
    top = module.split(".")[0]
    if prefer is not None and top in EXTRA_MODULES.get(prefer, ()):
        return f"pip install 'lightmark[{prefer}]'"
    return f"pip install 'lightmark[{EXTRAS[top]}]'" if top in EXTRAS else f"pip install {top}"


def missing_dependency(module: str, what: str, prefer: str | None = None) -> MissingDependencyError:
    """The one-line error for an optional dependency that is not installed: ``WHAT needs MODULE: pip install
    'lightmark[EXTRA]'`` (see :func:`install_hint` for ``prefer``)."""
    top = module.split(".")[0]
    return MissingDependencyError(f"{what} needs {top}: {install_hint(top, prefer)}")


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (an optional dependency), or raise :class:`~lightmark.errors.MissingDependencyError`
    naming ``what`` needs it and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but one of its own imports is broken: not ours to rename
        raise missing_dependency(module, what) from None


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm progress bar (on stderr) shown only when ``enabled`` (``--quiet`` turns it off) and stderr is a
    terminal (tqdm's ``disable=None``): logs and pipes get no bar."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if enabled else True, **kwargs)


def default_cache_dir() -> Path:
    """lightmark's cache folder: ``$LIGHTMARK_CACHE``, else ``~/.cache/lightmark`` (crop caches, texture fits)."""
    return Path(os.environ.get("LIGHTMARK_CACHE", Path.home() / ".cache" / "lightmark"))
