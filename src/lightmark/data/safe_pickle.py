"""Restricted unpickling for annotation files (``annot.pkl`` of the challenge).

A pickle can name any importable callable and call it while loading. :func:`safe_load_pickle` resolves only
the few globals that plain containers of numbers and numpy scalars/arrays need; anything else is refused
*before* it is imported or called, so nothing in a hostile file runs.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import pickletools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import AnnotationError, UnsafeFileError

__all__ = ["safe_load_pickle", "ALLOWED_GLOBALS"]


def _numpy_core(submodule: str):
    """``numpy._core.<submodule>`` (numpy >= 2 and the 1.26 forward-compat stub) or ``numpy.core.<...>``."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # pragma: no cover - numpy without numpy._core
        return importlib.import_module(f"numpy.core.{submodule}")


def _latin1_encode(obj: str, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode`` (how protocol-2 pickles store ``bytes``), latin-1 only."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in (
        "latin1",
        "latin-1",
        "iso-8859-1",
    ):
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed for latin-1 text, got {encoding!r}")
    return obj.encode("latin-1")


def _from_data(typ: type) -> Callable[..., Any]:
    """``bytes``/``bytearray`` as pickles call them (no argument, bytes, or text + encoding); refuses
    ``bytearray(n)``, which would let a 30-byte file allocate gigabytes of zeros."""

    def make(*args: Any) -> Any:
        if not args or isinstance(args[0], (bytes, bytearray)) or (isinstance(args[0], str) and len(args) == 2):
            return typ(*args)
        what = type(args[0]).__name__
        raise pickle.UnpicklingError(f"{typ.__name__}() is only allowed from bytes or text, not {what}")

    return make


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: pickles pass it to ``_reconstruct``, never call it (calling
    ``ndarray((10**10,))`` from a tiny file would reserve gigabytes)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("calling numpy.ndarray is not allowed")


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's ``_reconstruct`` as ``ndarray.__reduce__`` uses it: an empty array the state then fills."""
    import numpy as np

    if subtype not in (_NdarrayToken, np.ndarray) or np.prod(shape) != 0:
        raise pickle.UnpicklingError("numpy _reconstruct is only allowed for an empty ndarray")
    return _numpy_core("multiarray")._reconstruct(np.ndarray, shape, dtype)


_BUILTIN_TYPES: tuple[type, ...] = (set, frozenset, bytes, bytearray, complex)


def _resolvers() -> dict[tuple[str, str], Callable[[], Any]]:
    """Allowed (module, name) -> lazy resolver; resolving imports numpy only, never the named module."""
    import numpy as np

    def multiarray(name: str) -> Callable[[], Any]:
        return lambda: getattr(_numpy_core("multiarray"), name)

    def frombuffer() -> Any:
        return _numpy_core("numeric")._frombuffer

    table: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy", "dtype"): lambda: np.dtype,
        ("numpy", "ndarray"): lambda: _NdarrayToken,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }
    for mod in ("builtins", "__builtin__"):  # protocols <= 3 (and Python 2) name these types explicitly
        for typ in _BUILTIN_TYPES:
            table[(mod, typ.__name__)] = lambda typ=typ: _from_data(typ) if typ in (bytes, bytearray) else typ
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "scalar")] = multiarray("scalar")
        table[(f"{core}.multiarray", "_reconstruct")] = lambda: _safe_reconstruct
        # Protocol-5 pickles of contiguous arrays (the default for pickle.HIGHEST_PROTOCOL) use _frombuffer.
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return table


ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("numpy", "dtype"), ("numpy", "ndarray"), ("_codecs", "encode")}
    | {(mod, typ.__name__) for mod in ("builtins", "__builtin__") for typ in _BUILTIN_TYPES}
    | {
        (f"{core}.{mod}", name)
        for core in ("numpy.core", "numpy._core")
        for mod, name in (
            ("multiarray", "scalar"),
            ("multiarray", "_reconstruct"),
            ("numeric", "_frombuffer"),
        )
    }
)
"""The only globals a pickle may reference: numpy scalars/arrays/dtypes, the builtin types that protocols
<= 3 spell out (set, frozenset, bytes, bytearray, complex), and ``_codecs.encode`` restricted to latin-1
(protocol-2 bytes). Calls that would allocate memory out of proportion to the file (``bytearray(n)``,
``ndarray(shape)``) are refused."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        self._source = source
        self._table = _resolvers()

    def find_class(self, module: str, name: str) -> Any:
        resolver = self._table.get((module, name))
        if resolver is None:
            raise UnsafeFileError(f"{self._source}: refused to load the global {module}.{name} (not allowed)")
        return resolver()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(f"{self._source}: refused a persistent id in the pickle (not allowed)")


def _check_memo_indices(data: bytes, source: str) -> None:
    """Refuse memo indices larger than the file: the C unpickler sizes its memo table by the largest index at
    once, so an 8-byte pickle storing to index 10^9 would allocate and clear gigabytes. Real pickles number
    their memo entries from 0, one per (>= 2-byte) opcode. Only parses the opcodes (nothing is built)."""
    limit = max(len(data), 1 << 16)  # a 64k-entry table is harmless (512 KB)
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("PUT", "LONG_BINPUT") and int(arg) > limit:
                raise UnsafeFileError(f"{source}: refused a pickle memo index of {arg} for a {len(data)}-byte file")
    except UnsafeFileError:
        raise
    except Exception:  # malformed opcodes: the unpickler itself reports them (the ops before were checked)
        return


def safe_load_pickle(path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview, *, name: str | None = None):
    """Unpickle a file (or bytes) allowing only builtin containers/scalars and numpy scalars/arrays/dtypes.

    Args:
        path_or_bytes: a file path, or the pickle's bytes.
        name: how to name the source in error messages (default: the path, or ``<bytes>``).

    Raises:
        UnsafeFileError: the pickle references any other global (nothing is imported or called).
        AnnotationError: the file is missing, unreadable, empty or not a valid pickle.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        source = name or "<bytes>"
    else:
        path = Path(path_or_bytes)
        source = name or str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise AnnotationError(f"{source}: no such file") from None
        except OSError as e:
            raise AnnotationError(f"{source}: cannot read ({e.strerror or e})") from None
    if not data:
        raise AnnotationError(f"{source}: empty file (0 bytes)")
    _check_memo_indices(data, source)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafeFileError:
        raise
    except RecursionError:
        raise AnnotationError(f"{source}: pickle nested too deeply") from None
    except MemoryError:
        raise AnnotationError(f"{source}: pickle too large to load") from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError, TypeError... from a corrupt stream
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AnnotationError(f"{source}: not a valid pickle ({msg})") from None
