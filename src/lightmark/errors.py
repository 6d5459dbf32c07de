"""Typed exceptions. Everything the package raises on bad input derives from :class:`LightmarkError`."""

from __future__ import annotations


class LightmarkError(Exception):
    """Base class of every error lightmark raises on purpose (bad input, unsafe files, bad configs)."""


class ImageError(LightmarkError):
    """An image file is missing, unreadable, truncated, of an unsupported kind or too large."""


class AnnotationError(LightmarkError):
    """An annotation file is malformed: wrong point count, non-finite values, mismatched names..."""


class DatasetError(LightmarkError):
    """A dataset path has an unknown layout, is empty, or is inconsistent."""


class UnsafeFileError(LightmarkError):
    """A file would run code or reference objects outside the allowed set when loaded (refused)."""


class ModelError(LightmarkError):
    """A model name is unknown, a checkpoint is malformed, or weights do not fit the architecture."""


class OutputError(LightmarkError):
    """An output path cannot be written."""


class SubmissionError(LightmarkError):
    """A challenge submission file does not follow the format."""


class ConfigError(LightmarkError, ValueError):
    """An option has an impossible value (batch size 0, unknown loss, weights that do not match the sets...)."""


class MissingDependencyError(LightmarkError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""
