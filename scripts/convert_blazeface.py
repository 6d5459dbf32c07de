"""Rebuild the shipped BlazeFace face detector (``src/lightmark/weights/blazeface_short_range.onnx``).

Origin: MediaPipe's BlazeFace short-range model, ``mediapipe/modules/face_detection/face_detection_short_range.tflite``
inside the ``mediapipe==0.10.21`` wheel (Apache-2.0, Google; the licence is copied beside the ONNX file). Steps:
1. get the wheel without installing it: ``pip download mediapipe==0.10.21 --no-deps -d DIR`` (this script does it when
   ``--wheel`` is not given; mediapipe itself is never installed or imported);
2. convert the ``.tflite`` to ONNX with ``tflite2onnx==0.4.1`` (``pip install tflite2onnx==0.4.1``);
3. make the batch axis dynamic (the converter writes batch 1: its two output Reshapes get 0 = "keep the batch"),
   so one ONNX Runtime call can run several tiles;
4. copy the wheel's LICENSE next to the model; with ``--compare FILE`` run both graphs on the same random inputs and
   print the largest difference (tflite2onnx's bytes vary between runs, its graph's outputs do not).

    python scripts/convert_blazeface.py [--wheel mediapipe-0.10.21-...whl] [--out DIR]
        [--compare src/lightmark/weights/blazeface_short_range.onnx]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TFLITE = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
ONNX_NAME = "blazeface_short_range.onnx"
LICENSE_NAME = "blazeface_short_range.LICENSE"
MEDIAPIPE = "mediapipe==0.10.21"


def download_wheel(folder: Path) -> Path:
    """``pip download`` the mediapipe wheel (no dependencies) into ``folder``."""
    cmd = [sys.executable, "-m", "pip", "download", MEDIAPIPE, "--no-deps", "-d", str(folder), "-q"]
    subprocess.run(cmd, check=True)
    (wheel,) = folder.glob("mediapipe-*.whl")
    return wheel


def dynamic_batch(src: Path, dst: Path) -> int:
    """Copy the converted graph with a symbolic batch axis; returns its node count."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    for value in [*graph.input, *graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]  # intermediate shapes recorded for batch 1
    reshapes = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    for init in graph.initializer:
        if init.name in reshapes:
            shape = numpy_helper.to_array(init).copy()
            shape[0] = 0  # 0 = copy the input's batch dimension
            init.CopyFrom(numpy_helper.from_array(shape, init.name))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return len(graph.node)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", type=Path, help=f"the {MEDIAPIPE} wheel (default: pip download it)")
    p.add_argument("--out", type=Path, default=Path("src/lightmark/weights"), help="folder for the ONNX file")
    p.add_argument("--compare", type=Path, help="an ONNX file to compare the rebuilt graph's outputs with")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = a.wheel or download_wheel(tmp)
        with zipfile.ZipFile(wheel) as z:
            (tmp / "model.tflite").write_bytes(z.read(TFLITE))
            licence = next(n for n in z.namelist() if n.endswith(".dist-info/LICENSE"))
            (a.out / LICENSE_NAME).write_bytes(z.read(licence))
        subprocess.run(["tflite2onnx", str(tmp / "model.tflite"), str(tmp / "raw.onnx")], check=True)
        nodes = dynamic_batch(tmp / "raw.onnx", a.out / ONNX_NAME)
    digest = hashlib.sha256((a.out / ONNX_NAME).read_bytes()).hexdigest()
    print(f"{a.out / ONNX_NAME}: {nodes} nodes, sha256 {digest}")
    if a.compare:
        print(f"largest output difference from {a.compare}: {max_difference(a.out / ONNX_NAME, a.compare):.3g}")
    return 0


def max_difference(one: Path, other: Path) -> float:
    """Largest |difference| of the two graphs' outputs on 4 random inputs in [-1, 1]."""
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 128, 128)).astype(np.float32)
    outs = [ort.InferenceSession(str(f)).run(None, {"input": x}) for f in (one, other)]
    return max(float(np.abs(p - q).max()) for p, q in zip(*outs, strict=True))


if __name__ == "__main__":
    raise SystemExit(main())
