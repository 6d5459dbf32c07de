"""Install layers: `pip install lightmark` (no extra) predicts with the shipped ONNX models and never imports torch;
a missing optional dependency is a one-line error naming the extra; the shipped models ship once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lightmark.errors import ModelError
from lightmark.utils import EXTRA_MODULES, EXTRAS, install_hint

ROOT = Path(__file__).parents[1]
SAMPLE = ROOT / "src" / "lightmark" / "assets" / "sample_face.jpg"
OPTIONAL = ("torch", "torchvision", "onnx", "scipy", "numba", "matplotlib", "albumentations", "dlib")

BLOCKER = f"""
import sys

BLOCKED = {set(OPTIONAL)!r}
ATTEMPTS = []


class _Block:
    '''Every import of an optional dependency fails, as when it is not installed, and is recorded.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            ATTEMPTS.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _Block())
"""


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _run_without_extras(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter where the optional dependencies cannot be imported; it sets ``OUT`` (a
    JSON-able value). Returns ``{"out": OUT, "attempts": [blocked imports tried]}``."""
    script = tmp_path / "no_extras.py"
    script.write_text(
        BLOCKER
        + textwrap.dedent(code)
        + "\nimport json\nprint('RESULT=' + json.dumps({'out': OUT, 'attempts': ATTEMPTS}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT="))
    return json.loads(line[len("RESULT=") :])


def test_predict_imports_no_optional_dependency(tmp_path: Path) -> None:
    """`import lightmark`, the Python API (``describe`` too: the model's size, parameters and GMACs) and `lightmark
    predict` with every output run on the shipped ONNX model without importing torch (nor onnx, scipy, numba,
    matplotlib, albumentations)."""
    out = tmp_path / "out"
    res = _run_without_extras(
        f"""
        import contextlib, io
        import lightmark
        from lightmark import Predictor
        from lightmark.cli import main

        p = Predictor()
        pts = p.predict({str(SAMPLE)!r})
        batch = p.predict_batch([{str(SAMPLE)!r}])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["predict", {str(SAMPLE)!r}, "--json", {str(out / "p.json")!r}, "--out", {str(out / "s.txt")!r},
                         "--csv", {str(out / "p.csv")!r}, "--coco", {str(out / "c.json")!r},
                         "--pts", {str(out / "pts")!r}, "--vis", {str(out / "vis")!r}, "--quiet"])
        desc = p.describe()  # evaluation reports' model figures, recorded in the ONNX graph at export
        OUT = {{"version": lightmark.__version__, "backend": p.backend, "shape": list(pts.shape),
                "describe": {{k: desc[k] for k in ("params", "size_mb", "gmacs")}},
                "same": bool((abs(batch[0] - pts) < 1e-4).all()), "code": code, "err": err.getvalue(),
                "modules": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}
        """,
        tmp_path,
    )
    assert res["attempts"] == [], f"imported an optional dependency: {res['attempts']}"
    o = res["out"]
    assert o["modules"] == [] and o["backend"] == "onnx" and o["shape"] == [68, 2] and o["same"]
    assert o["code"] == 0, o["err"]
    for name in ("p.json", "s.txt", "p.csv", "c.json", "pts/sample_face.pts", "vis/sample_face.jpg"):
        assert (out / name).is_file(), name
    # the same numbers as the full install's default predictor (the torch backend here, when torch is installed)
    pts = np.array(json.loads((out / "p.json").read_text())["predictions"][0]["landmarks"])
    pytest.importorskip("torch")
    from lightmark.engine.predict import Predictor
    from lightmark.models import model_summary

    whole = Predictor(backend="torch", framing="whole")  # --out reads the crops whole, every output of the call too
    assert o["describe"] == {k: model_summary(whole.model)[k] for k in o["describe"]}
    # 0.05 px: the default model predicts in two passes, and ONNX Runtime's ~1e-4 px difference from torch in the
    # first pass moves the second pass's crop (JSON keeps 0.01 px)
    assert np.abs(pts - whole.predict(SAMPLE)).max() < 0.05


def test_version_without_extras(tmp_path: Path) -> None:
    res = _run_without_extras(
        """
        import contextlib, io
        from lightmark.cli import main

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                main(["--version"])
            except SystemExit as e:
                code = e.code
        OUT = [code, buf.getvalue().strip()]
        """,
        tmp_path,
    )
    from lightmark import __version__

    assert res["out"] == [0, f"lightmark {__version__}"] and res["attempts"] == []


def test_missing_optional_dependencies_are_one_line_errors(tmp_path: Path) -> None:
    """Without the extras, each command that needs one fails with one line naming the extra to install."""
    report = tmp_path / "r.json"
    report.write_text(
        json.dumps(
            {"n": 1, "nme_challenge": 2, "nme_box": 3, "fr_10": 0, "auc_10": 0.7, "per_image": [{"nme_challenge": 2}]}
        )
    )
    cases = {
        "train": (["train", "--train", "x", "--out", str(tmp_path / "run")], "lightmark[train]"),
        "export": (["export", "--out", str(tmp_path / "m.onnx")], "lightmark[export]"),
        "models": (["models"], "lightmark[train]"),
        "synth": (["synth", "--count", "1", "--out", str(tmp_path / "s")], "lightmark[synth]"),
        "predict": (["predict", str(SAMPLE), "--json", str(tmp_path / "p.json"), "--backend", "torch"], "[train]"),
        "report": (["report", "--eval", f"a={report}", "--ced", str(tmp_path / "c.png")], "lightmark[plots]"),
    }
    res = _run_without_extras(
        f"""
        import contextlib, io
        from lightmark.cli import main

        OUT = {{}}
        for name, (argv, _) in {cases!r}.items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
            OUT[name] = [code, err.getvalue()]
        """,
        tmp_path,
    )
    for name, (argv, extra) in cases.items():
        code, err = res["out"][name]
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (name, err)
        assert lines[0].startswith(f"lightmark {argv[0]}: error: ") and extra in lines[0], (name, lines[0])
        assert "pip install 'lightmark[" in lines[0], lines[0]
    assert "needs torch" in res["out"]["train"][1] and "needs matplotlib" in res["out"]["report"][1]
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "c.png").exists()


def test_torch_backend_without_torch_names_the_extra(tmp_path: Path) -> None:
    res = _run_without_extras(
        """
        from lightmark import Predictor
        from lightmark.errors import MissingDependencyError

        try:
            Predictor(backend="torch")
            OUT = "no error"
        except MissingDependencyError as e:
            OUT = str(e)
        """,
        tmp_path,
    )
    assert "needs torch: pip install 'lightmark[train]'" in res["out"]


def test_extras_match_pyproject() -> None:
    """utils.EXTRA_MODULES (what the error messages name) matches pyproject.toml's extras, and the core
    dependencies are the prediction layer only."""
    project = _pyproject()["project"]
    core = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert core == {"numpy", "opencv-python-headless", "onnxruntime", "pillow", "tqdm"}
    extras = project["optional-dependencies"]
    dist = {m: m for m in ("torch", "albumentations", "numba", "scipy", "onnx", "matplotlib")}
    dist.update(dlib="dlib-bin", face_recognition_models="face-recognition-models")
    for extra, modules in EXTRA_MODULES.items():
        names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in extras[extra]}
        assert {dist[m] for m in modules} <= names, extra
    assert all(m in EXTRA_MODULES[e] for m, e in EXTRAS.items())
    assert {"train", "synth", "export", "plots"} <= {
        e for d in extras["dev"] if d.startswith("lightmark[") for e in d[10:-1].split(",")
    }
    torch_req = next(d for d in extras["train"] if d.startswith("torch"))
    assert "==" not in torch_req and "<3" in torch_req  # a range that the Makefile's 2.13.0 satisfies
    assert install_hint("torch") == "pip install 'lightmark[train]'"
    assert install_hint("torch", prefer="export") == "pip install 'lightmark[export]'"
    assert install_hint("onnx", prefer="train") == "pip install 'lightmark[export]'"


def test_every_named_loss_has_a_function() -> None:
    """The torch-free ModelConfig and TrainConfig name losses by enum; the torch module has a function for each."""
    pytest.importorskip("torch")
    from lightmark.choices import CoordinateLoss, HeatmapLoss
    from lightmark.losses import COORDINATE_LOSSES, HEATMAP_LOSSES
    from lightmark.models.config import ModelConfig

    assert set(HEATMAP_LOSSES) == set(HeatmapLoss) and set(COORDINATE_LOSSES) == set(CoordinateLoss)
    with pytest.raises(ValueError, match="unknown decoder 'nope'; known: soft_argmax, argmax, dark"):
        ModelConfig("x", decoder="nope")
    with pytest.raises(ValueError, match="unknown heatmap loss"):
        ModelConfig("x", heatmap_loss="nope")


# -- models ship once ----------------------------------------------------------------------------------------------


@pytest.fixture
def wheel_weights(tmp_path: Path, monkeypatch) -> Path:
    """The weights folder of a wheel install: the shipped ONNX graphs, no .pt checkpoints."""
    import shutil

    from lightmark.models import SHIPPED_MODELS, shipped_model_path, shipped_onnx_path
    from lightmark.models import shipped as shipped_mod

    weights = tmp_path / "weights"
    weights.mkdir()
    for track in SHIPPED_MODELS:
        assert shipped_model_path(track).is_file() and shipped_onnx_path(track).is_file()
        shutil.copy(shipped_onnx_path(track), weights)
    monkeypatch.setattr(shipped_mod, "_weights_dir", lambda: weights)
    return weights


def test_wheel_layout_predicts_with_the_shipped_onnx(wheel_weights: Path) -> None:
    from lightmark.engine.predict import Predictor

    for track in ("protocol", "mixed", None):
        p = Predictor(track)
        assert p.backend == "onnx" and p.onnx_path is not None and p.onnx_path.parent == wheel_weights
        assert p.config.input_size == 128 and p.predict(SAMPLE).shape == (68, 2)
    with pytest.raises(ModelError, match="not in this install.*source repository"):
        Predictor("protocol", backend="torch")


def test_wheel_layout_fine_tuning_says_where_the_checkpoint_is(wheel_weights: Path) -> None:
    pytest.importorskip("torch")
    from lightmark.models import load_model

    with pytest.raises(ModelError, match=r"lightmark_protocol\.pt: not in this install"):
        load_model("protocol")


def test_setuptools_ships_onnx_only() -> None:
    """The wheel's package data: the shipped ONNX graphs, not the .pt checkpoints (models ship once)."""
    tool = _pyproject()["tool"]["setuptools"]
    assert "weights/*.onnx" in tool["package-data"]["lightmark"]
    assert not any(p.endswith(".pt") for p in tool["package-data"]["lightmark"])
    assert tool["exclude-package-data"]["lightmark"] == ["weights/*.pt"]
    # and MANIFEST.in, which also drops them when an old egg-info's SOURCES.txt (an editable install's) lists them
    assert "exclude src/lightmark/weights/*.pt" in (ROOT / "MANIFEST.in").read_text().splitlines()


def test_onnx_initialisers_do_not_give_back_the_checkpoint() -> None:
    """Why the .pt ships beside the .onnx: export folds BatchNorm into the convolutions, so the graph's weights
    cannot be mapped back to the checkpoint's state dict (BatchNorm scale, shift and running statistics)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("torch")
    from lightmark.models import load_checkpoint, shipped_model_path, shipped_onnx_path

    graph = onnx.load(str(shipped_onnx_path("protocol"))).graph
    assert "BatchNormalization" not in {n.op_type for n in graph.node}
    state = load_checkpoint(shipped_model_path("protocol")).state_dict
    bn = [k for k in state if k.endswith("running_var")]
    assert bn and not {i.name for i in graph.initializer} & {
        k.replace("running_var", s) for k in bn for s in ("running_var", "running_mean", "weight", "bias")
    }


def test_editable_install_keeps_torch_and_fine_tuning_paths() -> None:
    """In the source tree both files are there: the torch backend and ONNX agree on the shipped model."""
    pytest.importorskip("torch")
    from lightmark.engine.predict import Predictor

    t, o = Predictor("protocol", backend="torch"), Predictor("protocol")
    assert (t.backend, o.backend) == ("torch", "onnx")
    assert np.abs(t.predict(SAMPLE) - o.predict(SAMPLE)).max() < 0.01
    assert o.config == t.config  # the config read from the ONNX metadata is the checkpoint's


def test_onnx_file_as_the_model(tmp_path: Path) -> None:
    """An exported .onnx file is a model argument of its own (config from its metadata, no checkpoint)."""
    from lightmark.engine.predict import Predictor
    from lightmark.errors import ConfigError
    from lightmark.models import shipped_onnx_path

    graph = shipped_onnx_path("protocol")
    p = Predictor(graph)
    assert p.backend == "onnx" and p.onnx_path == graph
    np.testing.assert_allclose(p.predict(SAMPLE), Predictor("protocol").predict(SAMPLE), atol=1e-4)
    with pytest.raises(ConfigError, match="runs on backend 'onnx'"):
        Predictor(graph, backend="torch")
    with pytest.raises(ModelError, match="model file not found"):
        Predictor(tmp_path / "missing.onnx")


def test_detection_and_the_demo_import_no_optional_dependency(tmp_path: Path) -> None:
    """Whole-image detection (`Predictor.detect`, `lightmark predict --detect`, `framing="detect"`) and the video
    demo's tracker run without torch and the other extras."""
    out = tmp_path / "faces.json"
    res = _run_without_extras(
        f"""
        import contextlib, io
        import numpy as np
        from lightmark import Predictor
        from lightmark.cli import main
        from lightmark.demo import FaceTracker, run_demo
        from lightmark.detectors import create_detector
        from lightmark.data.images import read_image

        img = read_image({str(SAMPLE)!r})
        faces = Predictor().detect(img)
        framed = Predictor(framing="detect").predict(img)
        tracker = FaceTracker(Predictor(), create_detector())
        tracked = tracker.update(img, 0.0)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["predict", {str(SAMPLE)!r}, "--detect", "--json", {str(out)!r}, "--quiet"])
        OUT = {{"faces": len(faces), "framed": list(framed.shape), "tracked": len(tracked), "code": code,
                "err": err.getvalue(), "modules": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}
        """,
        tmp_path,
    )
    assert res["attempts"] == [], f"imported an optional dependency: {res['attempts']}"
    o = res["out"]
    assert o["modules"] == [] and o["faces"] == 1 and o["framed"] == [68, 2] and o["tracked"] == 1
    assert o["code"] == 0 and out.is_file(), o["err"]


def test_benchmark_model_figures_without_torch(tmp_path: Path) -> None:
    """The benchmark reads the shipped graph's recorded parameters and GMACs: no torch needed, none imported."""
    res = _run_without_extras(
        """
        from lightmark.engine.benchmark import _model_figures
        from lightmark.engine.predict import Predictor

        f = _model_figures(Predictor("mixed", backend="onnx", threads=1))
        OUT = [f["params"], f["gmacs"], f["onnx_mb"] > 0]
        """,
        tmp_path,
    )
    from lightmark.engine.onnx_runtime import onnx_summary, ort_session
    from lightmark.models.shipped import shipped_onnx_path

    want = onnx_summary(ort_session(shipped_onnx_path("mixed"), 1))
    assert res["out"] == [want["params"], want["gmacs"], True] and want["params"] > 0
