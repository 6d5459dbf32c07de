"""Export of every format, in one place: a slim deployable ``.pt`` checkpoint, and ONNX - one float32 graph
from raw RGB pixels (B, 3, S, S) in [0, 255] to (B, K, 2) landmark coordinates in input pixels (normalisation and
the codec's decoding included), with a dynamic batch axis.

The exported ONNX file carries metadata (``lightmark.*`` keys): the model config, the input size and the SHA-256 of
the checkpoint it came from, so a :class:`~lightmark.engine.predict.Predictor` can tell whether an ``.onnx``
file beside a ``.pt`` checkpoint is its up-to-date twin.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings

import numpy as np
import torch

from ..choices import Decoder, ExportFormat
from ..codecs import peak_mass
from ..errors import ModelError
from ..models import (
    Checkpoint,
    LandmarkGraph,
    LandmarkModel,
    load_checkpoint,
    load_model,
    model_summary,
    resolve_model_path,
)
from ..utils import atomic_save_bytes
from .onnx_runtime import (  # torch-free helpers, re-exported here for existing callers
    META_CONFIG,
    META_SOURCE_SHA256,
    META_SUMMARY,
    META_VERSION,
    SUMMARY_KEYS,
    file_sha256,
    onnx_metadata,  # noqa: F401
    ort_session,
)

INPUT_NAME = "image"
OUTPUT_NAME = "landmarks"
CONFIDENCE_NAME = "confidence"  # (B, K) second output of heatmap models
FACE_NAME = "face"  # (B,) third output of models with a face head: P(face)
MAX_DIFF_PX = 0.01
"""Largest accepted |onnx - torch| difference (input pixels) when an export is verified."""


def constants_to_initializers(proto) -> int:
    """Turn the graph's ``Constant`` nodes (the TorchScript exporter writes every slice bound and index as one)
    into initializers and drop its ``Identity`` nodes (their consumers read the input instead), in place, so that
    the node count is the computation's; ONNX Runtime does the same on loading, so this changes no timing.
    Returns how many nodes went."""
    from onnx import numpy_helper

    graph, kept, alias = proto.graph, [], {}
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and set(attrs) == {"value"} and len(node.output) == 1:
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(attrs["value"].t), node.output[0]))
        elif node.op_type == "Identity" and node.output[0] not in outputs:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
        else:
            kept.append(node)
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    removed = len(graph.node) - len(kept)
    del graph.node[:]
    graph.node.extend(kept)
    return removed


class SoftArgmaxGraph(torch.nn.Module):
    """The exported graph of a soft-argmax heatmap model: like :class:`~lightmark.models.LandmarkGraph` (pixels in,
    landmarks out), with the decoding written as one ``Softmax`` and one ``MatMul`` against the constant (H*W, 2)
    grid of heatmap cell centres, instead of the per-axis reductions of :func:`lightmark.codecs.soft_argmax`
    (~3 % less time per call on ONNX Runtime). The same expectation, so the same values within float rounding;
    :func:`verify_onnx` checks the graph against ``model.landmarks`` as for every export."""

    def __init__(self, model: LandmarkModel) -> None:
        super().__init__()
        codec = model.codec
        self.model, self.k, self.beta = model, model.config.num_landmarks, float(codec.beta)
        self.side = codec.heatmap_size  # a constant: reading raw.shape would put Shape nodes in the graph
        g = (torch.arange(codec.heatmap_size, dtype=torch.float32) + 0.5) * codec.stride - 0.5  # cell centres, px
        gy, gx = torch.meshgrid(g, g, indexing="ij")
        self.register_buffer("grid", torch.stack([gx.flatten(), gy.flatten()], 1), persistent=False)  # (H*W, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.model.features(x)
        raw = self.model.head(feats)  # (B, K, H, W)
        logits = raw.reshape(-1, self.k, self.grid.shape[0])  # (B, K, H*W); -1: no shape arithmetic
        if self.beta != 1.0:
            logits = logits * self.beta
        prob = torch.softmax(logits, dim=-1)
        out = (prob @ self.grid, peak_mass(prob, self.k, self.side))  # (B, K, 2) px, (B, K)
        face = self.model.face_probability(feats)  # (B,) or None
        return out if face is None else (*out, face)


def export_graph(model: LandmarkModel) -> torch.nn.Module:
    """The module traced to ONNX: :class:`SoftArgmaxGraph` for soft-argmax heatmap models, else
    :class:`~lightmark.models.LandmarkGraph`."""
    from ..codecs import HeatmapCodec

    codec = model.codec
    if isinstance(codec, HeatmapCodec) and codec.decoder is Decoder.SOFT_ARGMAX:
        return SoftArgmaxGraph(model)
    return LandmarkGraph(model)


def pad_for_onnx_runtime(model: LandmarkModel, multiple: int = 8) -> bool:
    """Zero-pad ``model``'s stage-2 branches (in place: an export copy) to a multiple of ``multiple`` channels, so
    ONNX Runtime runs them in its blocked layout (:func:`~lightmark.models.shufflenetv2.pad_stage`; 58 -> 64 at
    width 1.0, ~12 % less time per call there); the head's reader of those features is widened with zero weights.
    The outputs do not change (within float rounding). Returns whether anything was padded."""
    from ..models.landmark_model import HeatmapHead, RegressionHead
    from ..models.shufflenetv2 import ShuffleNetV2, pad_stage, widen_input

    head = model.head
    if not isinstance(model.backbone, ShuffleNetV2):
        return False  # other backbones (MobileNet, ResNet) have widths in multiples of 8 by construction
    if not isinstance(head, (HeatmapHead, RegressionHead)):
        return False  # an unknown head might read stage 2's features: leave the model as it is
    plain = 2 * model.backbone.stage2[0].branch_channels
    width = pad_stage(model.backbone, 2, multiple)
    if isinstance(head, HeatmapHead) and width != plain:  # its lateral convs read [stem,] c3, c4, c5
        lateral = head.lateral[len(head.lateral) - 3]
        lateral[0] = widen_input(lateral[0], width)
    return width != plain


def onnx_bytes(model: LandmarkModel, opset: int = 17, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise ``model.outputs`` (landmarks, confidence of heatmap heads, face probability of face heads; eval mode,
    CPU, float32) to ONNX bytes with the TorchScript exporter,
    zero-padded for ONNX Runtime (:func:`pad_for_onnx_runtime`), its ``Constant`` nodes made initializers.

    Raises:
        ModelError: the model's decoder runs outside torch (``argmax`` / ``dark``) and cannot be traced.
    """
    import onnx

    if not model.codec.exportable:
        raise ModelError(f"decoder {model.config.decoder!r} runs in numpy and cannot be exported; use soft_argmax")
    m = copy.deepcopy(model).float().cpu().eval()
    summary = model_summary(m)  # before the padding below, which adds zero channels
    pad_for_onnx_runtime(m)
    s = m.config.input_size
    names = [OUTPUT_NAME, CONFIDENCE_NAME] if m.codec.has_confidence else [OUTPUT_NAME]
    if m.face is not None:
        names.append(FACE_NAME)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter's deprecation notices (dynamo=False on purpose: its graphs are the ones measured)
        # and tracer notes are not the user's to act on; every other warning still shows
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*(TorchScript|will be removed)")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            export_graph(m),
            (torch.zeros(1, 3, s, s),),
            buf,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *names)},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    constants_to_initializers(proto)
    from .. import __version__

    meta = {
        META_CONFIG: json.dumps(m.config.to_dict()),
        META_VERSION: __version__,
        META_SUMMARY: json.dumps({k: summary[k] for k in SUMMARY_KEYS}),
        **(metadata or {}),
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    proto.producer_name = "lightmark"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def verification_inputs(input_size: int, seed: int = 0) -> np.ndarray:
    """(4, 3, S, S) float32 test images in [0, 255]: uniform noise, a smooth face-like drawing (skin-toned
    ellipse with eyes, brows, nose and mouth on a gradient), the same darkened and rotated, and a flat grey."""
    import cv2

    s = input_size
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (s, s, 3))
    yy, xx = np.mgrid[0:s, 0:s] / s
    face = np.stack([60 + 80 * xx, 70 + 60 * yy, 90 + 40 * xx * yy], -1)
    c, r = s / 2, s / 2
    cv2.ellipse(face, (int(c), int(c * 1.05)), (int(r * 0.45), int(r * 0.58)), 0, 0, 360, (205, 160, 135), -1)
    for dx in (-1, 1):
        eye = (int(c + dx * r * 0.2), int(c * 0.9))
        cv2.ellipse(face, eye, (int(r * 0.09), int(r * 0.045)), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(face, eye, max(1, int(r * 0.035)), (50, 35, 30), -1)
        cv2.line(face, (eye[0] - int(r * 0.1), eye[1] - int(r * 0.1)), (eye[0] + int(r * 0.1), eye[1] - int(r * 0.12)),
                 (70, 50, 40), max(1, s // 40))  # fmt: skip
    cv2.line(face, (int(c), int(c * 0.95)), (int(c), int(c * 1.15)), (170, 120, 100), max(1, s // 60))
    cv2.ellipse(face, (int(c), int(c * 1.32)), (int(r * 0.16), int(r * 0.05)), 0, 0, 360, (170, 70, 70), -1)
    face = cv2.GaussianBlur(face, (0, 0), max(0.5, s / 128)) + rng.normal(0, 4, face.shape)
    rot = cv2.warpAffine(0.6 * face, cv2.getRotationMatrix2D((c, c), 25, 0.9), (s, s), borderValue=(0, 0, 0))
    grey = np.full((s, s, 3), 128.0)
    batch = np.stack([noise, face, rot, grey]).clip(0, 255).astype(np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def verify_onnx(model: LandmarkModel, onnx_model: bytes | str | os.PathLike, inputs: np.ndarray | None = None) -> float:
    """Max |onnx - torch| over ``inputs`` (default :func:`verification_inputs`) and every output (landmarks in
    input pixels, confidence and face probability in [0, 1]), run as one batch and as batch 1 (checks the dynamic
    batch axis)."""
    x = verification_inputs(model.config.input_size) if inputs is None else np.ascontiguousarray(inputs, np.float32)
    sess = ort_session(onnx_model, threads=1)
    with torch.no_grad():
        out = copy.deepcopy(model).float().cpu().eval().outputs(torch.from_numpy(x))
    refs = [t.numpy() for t in out if t is not None]  # points, confidence, face probability: those it has
    outs, ones = sess.run(None, {INPUT_NAME: x}), sess.run(None, {INPUT_NAME: x[:1]})
    if len(outs) != len(refs):
        raise ModelError(f"ONNX graph has {len(outs)} outputs, the torch model {len(refs)}")
    worst = 0.0
    for ref, out, one in zip(refs, outs, ones, strict=True):
        if out.shape != ref.shape or one.shape != ref[:1].shape:
            raise ModelError(f"ONNX output shape {out.shape} / {one.shape} != torch {ref.shape}")
        worst = max(worst, float(np.abs(out - ref).max()), float(np.abs(one - ref[:1]).max()))
    return worst


def export_onnx(
    model_or_path: LandmarkModel | str | os.PathLike | None,
    out: str | os.PathLike,
    opset: int = 17,
    max_diff: float = MAX_DIFF_PX,
) -> float:
    """Export a model (a :class:`LandmarkModel`, a checkpoint path, or None for the shipped one) to ONNX at
    ``out`` (written atomically) and verify it against the torch model.

    Returns:
        The max |onnx - torch| landmark difference in input pixels.

    Raises:
        ModelError: the checkpoint cannot be loaded or the exported graph differs by more than ``max_diff``.
    """
    meta: dict[str, str] = {}
    if isinstance(model_or_path, LandmarkModel):
        model = model_or_path
    else:
        src = resolve_model_path(model_or_path)
        model = load_model(src)
        meta[META_SOURCE_SHA256] = file_sha256(src)
    data = onnx_bytes(model, opset=opset, metadata=meta)
    diff = verify_onnx(model, data)
    if not diff <= max_diff:
        raise ModelError(f"ONNX export differs from the torch model by {diff:.4g} px (limit {max_diff})")
    atomic_save_bytes(out, data)
    return diff


def own_val_nme(ck: Checkpoint) -> float | None:
    """The validation NME of the weights ``ck`` holds: a slim checkpoint's recorded figure; for a training
    checkpoint written at an epoch's end, that epoch's row of its history (``best.pt``: the best epoch; ``last.pt``:
    the last, not the run's best); None when the weights were never scored (mid-epoch, or no validation set)."""
    if ck.val_nme is not None:
        return ck.val_nme
    if ck.batch_in_epoch == 0 and ck.history and ck.history[-1].get("epoch") == ck.epoch:
        return ck.history[-1].get("val_nme")
    return None


def export_pt(checkpoint: str | os.PathLike, out: str | os.PathLike, use_ema: bool = True, **metadata) -> None:
    """Write a slim deployable checkpoint (config + weights (:meth:`Checkpoint.weights`) + provenance) from a
    training one; ``metadata`` (e.g. ``track="mixed"``) is recorded beside it.

    Re-exporting a slim checkpoint keeps its recorded ``val_nme`` and ``track``; a training checkpoint records the
    validation NME of the weights it holds (:func:`own_val_nme`)."""
    ck = load_checkpoint(checkpoint)
    val_nme = own_val_nme(ck)
    slim = Checkpoint(
        config=ck.config,
        state_dict=ck.weights(use_ema),
        history=ck.history,
        train_config=ck.train_config,
        val_nme=metadata.pop("val_nme", val_nme),
        track=metadata.pop("track", ck.track),
        extra=metadata,
    )
    slim.build_model(source=str(checkpoint))  # refuse weights that do not fit their config before writing
    slim.save(out)


def export_model(model: str | os.PathLike | None, out: str | os.PathLike, fmt: ExportFormat | str, **metadata) -> str:
    """Export a checkpoint path / shipped track name (None: the default model) to ``out`` in format ``fmt`` (a member
    or its value); returns a one-line summary. ``metadata`` is recorded in ``.pt`` exports only."""
    src = resolve_model_path(model)
    fmt = ExportFormat.parse(fmt, "export format")
    if fmt is ExportFormat.PT:
        export_pt(src, out, **metadata)
        return f"wrote {out}"
    if metadata:
        raise ModelError(f"{', '.join(metadata)}: recorded in .pt exports only")
    diff = export_onnx(src, out)
    return f"wrote {out} (max |onnx - torch| = {diff:.2e} px)"
