"""ONNX export and the ONNX Runtime backend of Predictor (small untrained models: no shipped weights needed)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import onnx
import pytest
import torch

from conftest import require_shared
from lightmark.cli import main
from lightmark.engine import export as export_mod
from lightmark.engine.export import META_SOURCE_SHA256, export_onnx, file_sha256, onnx_metadata, ort_session
from lightmark.engine.predict import Predictor
from lightmark.errors import LightmarkError, ModelError
from lightmark.models import SHIPPED_MODELS, create_model, save_checkpoint


def sharp_model(name: str = "shufflenetv2_x0_5_heatmap", seed: int = 0, **overrides):
    """A small untrained model whose outputs spread over the crop (peaky heatmaps), unlike a fresh one."""
    torch.manual_seed(seed)
    if "regression" in name:
        return create_model(name, input_size=64, **overrides).eval()
    model = create_model(name, input_size=64, beta=20.0, **overrides).eval()
    with torch.no_grad():
        model.head.out.weight.mul_(20.0)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint and its ONNX twin (exported once for the module), with the export's reported difference."""
    path = tmp_path_factory.mktemp("export") / "tiny.pt"
    save_checkpoint(path, sharp_model())
    diff = export_onnx(path, path.with_suffix(".onnx"))
    return path, diff


@pytest.fixture()
def checkpoint(tmp_path, exported):
    """A private copy of the checkpoint, without a twin."""
    return shutil.copy(exported[0], tmp_path / "tiny.pt")


def test_export_matches_torch_and_has_dynamic_batch(exported):
    checkpoint, diff = exported
    out = checkpoint.with_suffix(".onnx")
    assert 0 <= diff < 0.01
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    sess = ort_session(out, threads=1)
    assert onnx_metadata(sess)[META_SOURCE_SHA256] == file_sha256(checkpoint)
    x = np.random.default_rng(1).uniform(0, 255, (3, 3, 64, 64)).astype(np.float32)
    y = sess.run(None, {"image": x})[0]
    assert y.shape == (3, 68, 2)
    with torch.no_grad():
        ref = sharp_model().landmarks(torch.from_numpy(x)).numpy()
    assert np.abs(y - ref).max() < 0.01
    assert ref.std() > 1.0  # the check is not trivially passed by a constant output


def test_export_records_the_model_summary(exported, monkeypatch):
    """The graph records the torch model's parameters, float32 size and GMACs (not the padded export's), so that
    ``Predictor.describe`` (evaluation reports) on ONNX Runtime counts nothing on torch; a graph without the record
    (older exports, other tools) is counted on the torch model as before; a record without the figures is an
    error, not a silent recount."""
    from lightmark.engine.onnx_runtime import META_SUMMARY, onnx_summary
    from lightmark.models import model_summary

    checkpoint, _ = exported
    want = {k: model_summary(sharp_model())[k] for k in ("params", "size_mb", "gmacs")}
    sess = ort_session(checkpoint.with_suffix(".onnx"), threads=1)
    assert onnx_summary(sess) == want and want["params"] > 0
    p = Predictor(checkpoint, backend="onnx")
    monkeypatch.setattr("lightmark.models.model_summary", lambda *a, **k: pytest.fail("counted on torch"))
    assert {k: p.describe()[k] for k in want} == want
    monkeypatch.setattr(export_mod, "SUMMARY_KEYS", ())  # an export that records an empty summary
    bare = Predictor(checkpoint, backend="onnx", onnx=export_mod.onnx_bytes(sharp_model()))
    assert json_keys(onnx_metadata(bare.session)[META_SUMMARY]) == []
    monkeypatch.undo()
    with pytest.raises(ModelError, match="metadata lacks params, size_mb, gmacs"):
        bare.describe()
    monkeypatch.setattr(export_mod, "META_SUMMARY", "unused.key")  # an export that records none (older ones)
    older = Predictor(checkpoint, backend="onnx", onnx=export_mod.onnx_bytes(sharp_model()))
    monkeypatch.undo()
    assert {k: older.describe()[k] for k in want} == want  # counted on the torch model


def json_keys(text: str) -> list[str]:
    import json

    return list(json.loads(text))


@pytest.mark.parametrize("name", ["shufflenetv2_x0_5_regression"])
def test_export_model_object_other_head(tmp_path, name):
    assert export_onnx(sharp_model(name), tmp_path / "m.onnx") < 0.01


def test_export_a_stride4_heatmap_head(tmp_path):
    """A 16x16 heatmap at 64 px (stride 4) exports and matches its torch model."""
    model = sharp_model(heatmap_stride=4)
    assert model(torch.zeros(1, 3, 64, 64)).shape[-1] == 16
    assert export_onnx(model, tmp_path / "m.onnx") < 0.01


def test_export_refuses_a_mismatching_graph(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "verify_onnx", lambda *a, **k: 0.5)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match="differs"):
        export_onnx(checkpoint, out)
    assert not out.exists()


def test_cli_export_onnx(checkpoint, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "--format", "onnx", "--model", str(checkpoint), "--out", str(out)]) == 0
    assert out.is_file() and "max |onnx - torch|" in capsys.readouterr().out


def _synthetic_images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((120, 100), (64, 64), (300, 200))]


@pytest.mark.parametrize("flip_test", [False, True])
def test_predictor_onnx_twin_agrees_with_torch(exported, flip_test):
    checkpoint = exported[0]
    auto = Predictor(checkpoint, flip_test=flip_test, threads=1)
    ref = Predictor(checkpoint, backend="torch", flip_test=flip_test, threads=1)
    assert auto.backend == "onnx" and auto.onnx_path == checkpoint.with_suffix(".onnx")
    assert ref.backend == "torch"
    images = _synthetic_images()
    a, b = auto.predict_batch(images), ref.predict_batch(images)
    assert a.shape == (3, 68, 2) and a.dtype == np.float32
    assert np.abs(a - b).max() < 0.01
    boxes = [(10.0, 20.0, 80.0, 95.0)] * 3
    assert np.abs(auto.predict_batch(images, boxes) - ref.predict_batch(images, boxes)).max() < 0.01


def test_predictor_onnx_agrees_on_real_crops(exported):
    checkpoint = exported[0]
    from lightmark.data.formats import load_dataset
    from lightmark.data.images import read_image

    samples = load_dataset(require_shared("aflw2000/val")).samples[:4]
    images = [read_image(s.image_path) for s in samples]
    onnx_pred = Predictor(checkpoint, backend="onnx", flip_test=True, threads=1, framing="whole")
    torch_pred = Predictor(checkpoint, backend="torch", flip_test=True, threads=1, framing="whole")
    assert np.abs(onnx_pred.predict_batch(images) - torch_pred.predict_batch(images)).max() < 0.01


def test_stale_or_missing_twin(checkpoint, exported):
    assert Predictor(checkpoint).backend == "torch"  # no twin: auto stays on torch
    twin = shutil.copy(exported[0].with_suffix(".onnx"), checkpoint.with_suffix(".onnx"))
    os.utime(twin, (0, 0))  # an old mtime does not matter: the recorded checkpoint hash does
    assert Predictor(checkpoint).backend == "onnx"
    save_checkpoint(checkpoint, sharp_model(seed=1))  # retrained: the twin is stale
    assert Predictor(checkpoint).backend == "torch"
    fresh = Predictor(checkpoint, backend="onnx")  # explicit onnx: exported in memory
    assert fresh.backend == "onnx" and fresh.onnx_path is None
    images = _synthetic_images()
    ref = Predictor(checkpoint, backend="torch").predict_batch(images)
    assert np.abs(fresh.predict_batch(images) - ref).max() < 0.01


def test_model_object_backends():
    model = sharp_model()
    assert Predictor(model).backend == "torch"
    assert Predictor(model, backend="onnx").backend == "onnx"
    with pytest.raises(LightmarkError, match="unknown backend"):
        Predictor(model, backend="tensorrt")


def test_a_numpy_decoder_is_refused_by_export(tmp_path) -> None:
    """DARK / argmax decoding runs outside torch: exporting it would silently trace a different graph."""
    from lightmark.errors import ModelError

    model = sharp_model()
    model.config.decoder = "dark"
    with pytest.raises(ModelError, match="dark"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_exported_graph_reads_no_shapes_in_the_backbone(exported):
    """The channel shuffle exports as one Gather per unit and the soft-argmax as one MatMul: no Shape/Gather/
    Unsqueeze/Concat arithmetic on the dynamic batch axis."""
    proto = onnx.load(str(exported[0].with_suffix(".onnx")))
    ops = [n.op_type for n in proto.graph.node]
    assert "Shape" not in ops and "Transpose" not in ops and "Constant" not in ops
    assert ops.count("Gather") == 16  # the 16 ShuffleNetV2 units' shuffles
    assert len(ops) < 200  # 980 nodes before (mostly shape arithmetic)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # the batch stays dynamic


def test_constants_become_initializers():
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(export_mod.onnx_bytes(sharp_model()))
    assert not [n for n in proto.graph.node if n.op_type == "Constant"]  # the export moved them all
    value = numpy_helper.from_array(np.arange(3, dtype=np.int64))
    proto.graph.node.insert(0, helper.make_node("Constant", [], ["c0"], value=value))
    assert export_mod.constants_to_initializers(proto) == 1
    (init,) = [i for i in proto.graph.initializer if i.name == "c0"]
    assert numpy_helper.to_array(init).tolist() == [0, 1, 2]
    assert "c0" not in [o for n in proto.graph.node for o in n.output]


@pytest.mark.parametrize("track", sorted(SHIPPED_MODELS))
def test_shipped_twins_are_current_and_clean(track):
    from lightmark.models import shipped_model_path, shipped_onnx_path

    pt, twin = shipped_model_path(track), shipped_onnx_path(track)
    assert pt.is_file() and twin.is_file()  # tracked in the repository: never a reason to skip
    proto = onnx.load(str(twin))
    assert len(proto.graph.node) < 250  # re-exported with the shape-free shuffle (980 nodes before)
    assert {p.key: p.value for p in proto.metadata_props}[META_SOURCE_SHA256] == file_sha256(pt)


@pytest.mark.parametrize("name", ["shufflenetv2_x1_0_heatmap", "shufflenetv2_x1_0_regression"])
def test_export_pads_stage_2_for_onnx_runtime_without_changing_outputs(name):
    """Width 1.0: stage 2's 58-channel branches export zero-padded to 64 (ONNX Runtime's blocked layout); the
    graph still matches the unpadded torch model, and the caller's model is not touched."""
    torch.manual_seed(0)
    model = create_model(name, input_size=64).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = export_mod.onnx_bytes(model)
    assert export_mod.verify_onnx(model, data) < 1e-3
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    proto = onnx.load_from_string(data)
    weights = {init.name: init.dims for init in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    widths = {weights[n.input[1]][0] for n in convs if n.input[1] in weights}
    assert 64 in widths and 58 not in widths
