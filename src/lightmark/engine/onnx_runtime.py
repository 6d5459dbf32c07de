"""ONNX Runtime helpers that need neither torch nor the ``onnx`` package: sessions, the ``lightmark.*`` metadata
of exported graphs (:mod:`lightmark.engine.export` writes it) and file hashes.

This is all that prediction with a shipped ``.onnx`` model needs besides numpy and OpenCV.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from typing import Any

from ..errors import ModelError
from ..models.config import ModelConfig

META_CONFIG = "lightmark.config"
"""Metadata key: the model config as JSON (:meth:`ModelConfig.to_dict`)."""
META_SOURCE_SHA256 = "lightmark.source_sha256"
"""Metadata key: SHA-256 of the checkpoint the graph was exported from."""
META_VERSION = "lightmark.version"
"""Metadata key: the lightmark version that exported the graph."""
META_SUMMARY = "lightmark.summary"
"""Metadata key: the exported model's ``{"params", "size_mb", "gmacs"}`` as JSON
(:func:`~lightmark.models.model_summary`, counted on the torch model), so that reports need no torch."""
SUMMARY_KEYS = ("params", "size_mb", "gmacs")


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ort_session(model: bytes | str | os.PathLike, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session: ``threads`` intra-op threads (None = ORT default), sequential execution.

    The intra-op threads sleep between calls instead of spinning (ORT's default), so that the cores are free for
    the caller's own work (video capture, a detector, other processes) the moment a call returns."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_metadata(session: Any) -> dict[str, str]:
    """The custom metadata map of an ONNX Runtime session's model."""
    return dict(session.get_modelmeta().custom_metadata_map)


def onnx_summary(session: Any) -> dict | None:
    """The model's ``{"params", "size_mb", "gmacs"}`` recorded at export (:data:`META_SUMMARY`), None when the graph
    records none (graphs exported before session 13, or by other tools).

    Raises:
        ModelError: the graph records a summary that is not one (malformed JSON or missing figures)."""
    text = onnx_metadata(session).get(META_SUMMARY)
    if text is None:
        return None
    try:
        summary = json.loads(text)
    except ValueError as e:
        raise ModelError(f"ONNX graph: malformed {META_SUMMARY} metadata ({e})") from None
    if not isinstance(summary, dict) or any(k not in summary for k in SUMMARY_KEYS):
        raise ModelError(f"ONNX graph: {META_SUMMARY} metadata lacks {', '.join(SUMMARY_KEYS)}")
    return {k: summary[k] for k in SUMMARY_KEYS}


def onnx_config(session: Any, source: str = "ONNX graph") -> ModelConfig | None:
    """The :class:`ModelConfig` recorded in a session's metadata (graphs exported by lightmark), None when the
    graph records none.

    Raises:
        ModelError: the recorded config is not valid JSON or does not describe a model.
    """
    text = onnx_metadata(session).get(META_CONFIG)
    if text is None:
        return None
    try:
        return ModelConfig.from_dict(json.loads(text))
    except (TypeError, ValueError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        raise ModelError(f"{source}: malformed model config in its metadata ({e})") from None
