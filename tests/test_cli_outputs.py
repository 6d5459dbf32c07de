"""`lightmark predict`'s outputs (solution.txt, JSON, CSV, COCO keypoints, .pts, annotated images) as methods of
PredictionResults; outputs checked before any prediction; `lightmark report` misuse; help with an example on every
command; progress bars only on a terminal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lightmark.cli import EXAMPLES, command_parsers, main
from lightmark.constants import CONTOURS
from lightmark.data.formats import read_pts
from lightmark.engine.predict import COCO_KEYPOINT_NAMES, COCO_SKELETON, PredictionResults, Predictor

SAMPLE = Path(__file__).parents[1] / "src" / "lightmark" / "assets" / "sample_face.jpg"


def _results(n: int = 2) -> PredictionResults:
    rng = np.random.default_rng(0)
    pts = rng.uniform(10, 90, (n, 68, 2)).astype(np.float32)
    return PredictionResults(
        names=[f"sub/face{i}.png" for i in range(n)],
        landmarks=pts,
        image_sizes=np.array([[100, 120]] * n),
        paths=[],
    )


def _one_line_error(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for f in fragments:
        assert f in err[0], (f, err[0])
    return err[0]


# -- PredictionResults writers ---------------------------------------------------------------------------------------


def test_save_pts_round_trips_through_the_reader(tmp_path: Path) -> None:
    res = _results()
    written = res.save_pts(tmp_path / "pts")
    assert written == [tmp_path / "pts" / "sub" / f"face{i}.pts" for i in range(2)]
    text = written[0].read_text().splitlines()
    assert text[:3] == ["version: 1", "n_points: 68", "{"] and text[-1] == "}" and len(text) == 68 + 4
    x, y = (float(v) for v in text[3].split())
    assert (x, y) == pytest.approx(res.landmarks[0, 0] + 1.0, abs=1e-3)  # the format is 1-based
    for path, pts in zip(written, res.landmarks, strict=True):
        np.testing.assert_allclose(read_pts(path), pts, atol=1e-3)


def test_save_csv(tmp_path: Path) -> None:
    res = _results()
    res.save_csv(tmp_path / "p.csv")
    rows = list(csv.reader((tmp_path / "p.csv").open(newline="")))
    assert rows[0][:5] == ["name", "width", "height", "x0", "y0"] and rows[0][-2:] == ["x67", "y67"]
    assert len(rows) == 3 and all(len(r) == 3 + 136 for r in rows)
    assert rows[1][:3] == ["sub/face0.png", "100", "120"]
    np.testing.assert_allclose(np.array(rows[2][3:], float).reshape(68, 2), res.landmarks[1], atol=1e-3)


def test_save_coco(tmp_path: Path) -> None:
    res = _results()
    res.save_coco(tmp_path / "c.json")
    coco = json.loads((tmp_path / "c.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == res.names
    assert coco["images"][0] | {"id": 0} == {"id": 0, "file_name": "sub/face0.png", "width": 100, "height": 120}
    (cat,) = coco["categories"]
    assert cat["keypoints"] == list(COCO_KEYPOINT_NAMES) and len(set(cat["keypoints"])) == 68
    assert cat["keypoints"][0] == "jaw_0" and cat["keypoints"][-1] == "inner_mouth_7"
    ann = coco["annotations"][1]
    assert ann["image_id"] == coco["images"][1]["id"] and ann["category_id"] == cat["id"]
    kp = np.array(ann["keypoints"], float).reshape(68, 3)
    np.testing.assert_allclose(kp[:, :2], res.landmarks[1], atol=1e-3)
    assert (kp[:, 2] == 2).all() and ann["num_keypoints"] == 68 and ann["iscrowd"] == 0
    x0, y0 = res.landmarks[1].min(0)
    x1, y1 = res.landmarks[1].max(0)
    np.testing.assert_allclose(ann["bbox"], [x0, y0, x1 - x0, y1 - y0], atol=1e-3)
    # the skeleton: 1-based, one edge per consecutive pair of each contour, plus the closing edge of closed ones
    edges = {tuple(e) for e in cat["skeleton"]}
    assert edges == set(COCO_SKELETON) and len(edges) == sum(e - s - 1 + c for s, e, c in CONTOURS)
    assert (1, 2) in edges and (42, 37) in edges and (17, 1) not in edges  # eye closed, jaw open
    assert all(1 <= a <= 68 and 1 <= b <= 68 for a, b in edges)


# -- lightmark predict -----------------------------------------------------------------------------------------------


def test_predict_json_alone_and_every_output(tmp_path: Path, capsys) -> None:
    js = tmp_path / "p.json"
    assert main(["predict", str(SAMPLE), "--json", str(js), "--quiet"]) == 0
    assert not (tmp_path / "solution.txt").exists()
    pred = json.loads(js.read_text())["predictions"][0]
    assert pred["name"] == "sample_face.jpg" and (pred["width"], pred["height"]) == (384, 384)
    out = tmp_path / "all"
    argv = ["predict", str(SAMPLE), "--quiet", "--csv", str(out / "p.csv"), "--coco", str(out / "c.json")]
    assert main([*argv, "--pts", str(out / "pts")]) == 0
    stdout = capsys.readouterr().out
    assert f"wrote {out / 'p.csv'}" in stdout and f"wrote 1 .pts files to {out / 'pts'}" in stdout
    np.testing.assert_allclose(read_pts(out / "pts" / "sample_face.pts"), pred["landmarks"], atol=2e-3)
    row = list(csv.reader((out / "p.csv").open()))[1]
    np.testing.assert_allclose(np.array(row[3:], float).reshape(68, 2), pred["landmarks"], atol=2e-3)
    coco = json.loads((out / "c.json").read_text())
    np.testing.assert_allclose(np.array(coco["annotations"][0]["keypoints"]).reshape(68, 3)[:, :2],
                               pred["landmarks"], atol=2e-3)  # fmt: skip


def test_predict_output_mistakes_are_one_line_and_found_before_predicting(tmp_path: Path, capsys, monkeypatch) -> None:
    def no_prediction(*a, **kw):
        raise AssertionError("predicted before checking the outputs")

    monkeypatch.setattr(Predictor, "predict_batch", no_prediction)
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a regular file")
    ok = tmp_path / "ok"
    base = ["predict", str(SAMPLE), "--quiet"]
    _one_line_error(capsys, base, "nothing to write", "--json")
    _one_line_error(capsys, [*base, "--zip", str(ok / "s.zip")], "--zip", "--out")
    _one_line_error(capsys, [*base, "--json", str(ok / "p.json"), "--pts", str(blocker)], "not a folder")
    _one_line_error(capsys, [*base, "--out", str(ok / "s.txt"), "--csv", str(tmp_path)], "is a folder")
    _one_line_error(capsys, [*base, "--json", str(ok / "p.json"), "--coco", str(blocker / "c.json")], "cannot write")
    _one_line_error(capsys, [*base, "--json", str(ok / "p.json"), "--vis", str(blocker)], "not a folder")
    _one_line_error(capsys, [*base, "--json", str(ok / "p.json"), "--vis-limit", "-1"], "--vis-limit")
    assert not ok.exists() and blocker.read_text() == "a regular file"


def test_predict_batch_takes_paths_and_arrays() -> None:
    from lightmark.data.images import read_image
    from lightmark.errors import ConfigError, ImageError

    p = Predictor()
    img = read_image(SAMPLE)
    both = p.predict_batch([SAMPLE, img, str(SAMPLE)])
    assert both.shape == (3, 68, 2)
    np.testing.assert_allclose(both[0], both[1], atol=1e-5)
    np.testing.assert_allclose(both[2], p.predict(SAMPLE), atol=1e-5)
    with pytest.raises(ImageError, match="sequence of images"):
        p.predict_batch(SAMPLE)
    with pytest.raises(ImageError, match="sequence of images"):
        p.predict_batch(img)
    with pytest.raises(ConfigError, match="boxes: expected one per image"):
        p.predict_batch([img, img], boxes=[(0, 0, 10, 10)])


def test_progress_bar_only_on_a_terminal(capsys) -> None:
    """predict_dataset(progress=True) writes no bar when stderr is not a terminal (tqdm's disable=None)."""
    res = Predictor().predict_dataset([SAMPLE], progress=True)
    assert len(res) == 1 and capsys.readouterr().err == ""


# -- lightmark report ------------------------------------------------------------------------------------------------


def _eval_json(path: Path, per_image: bool = True) -> Path:
    data = {"n": 2, "nme_challenge": 2.5, "nme_box": 5.0, "fr_10": 0.0, "auc_10": 0.75}
    if per_image:
        data["per_image"] = [{"nme_challenge": 2.0}, {"nme_challenge": 3.0}]
    path.write_text(json.dumps(data))
    return path


def test_report_misuse_is_one_line(tmp_path: Path, capsys) -> None:
    good = _eval_json(tmp_path / "good.json")
    bare = _eval_json(tmp_path / "bare.json", per_image=False)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"n": 1}')
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nold\n<!-- results:end -->\n")
    base = ["report", "--eval"]
    _one_line_error(capsys, [*base, str(good)], "expects LABEL=PATH")
    _one_line_error(capsys, [*base, f"={good}"], "expects LABEL=PATH")
    _one_line_error(capsys, [*base, "a="], "expects LABEL=PATH")
    _one_line_error(capsys, [*base, f"a={good}", "--eval", f"a={bare}"], "label 'a' given twice")
    _one_line_error(capsys, [*base, f"a|b={good}"], "markdown table")
    _one_line_error(capsys, [*base, f"a={tmp_path / 'missing.json'}"], "missing.json: cannot read")
    _one_line_error(capsys, [*base, f"a={tmp_path / 'bad.json'}"], "bad.json: not a JSON file")
    _one_line_error(capsys, [*base, f"a={tmp_path / 'list.json'}"], "not an evaluation report")
    _one_line_error(capsys, [*base, f"a={tmp_path / 'other.json'}"], "not an evaluation report", "nme_challenge")
    _one_line_error(capsys, [*base, f"a={tmp_path}"], "cannot read")
    _one_line_error(capsys, [*base, f"a={good}", "--section", "results"], "--section", "--readme")
    _one_line_error(capsys, [*base, f"a={good}", "--readme", str(tmp_path / "nope.md")], "nope.md: cannot read")
    _one_line_error(capsys, [*base, f"a={good}", "--readme", str(readme), "--section", "other"], "no <!-- other:start")
    _one_line_error(capsys, [*base, f"a={bare}", "--ced", str(tmp_path / "c.png")], "no per-image figures")
    _one_line_error(capsys, [*base, f"a={good}", "--ced", str(tmp_path)], "cannot write")
    assert "old" in readme.read_text() and not (tmp_path / "c.png").exists()
    # and the right use works
    assert main([*base, f"model a={good}", "--readme", str(readme)]) == 0
    assert "| model a | 2 | **2.50** |" in readme.read_text()


# -- help ------------------------------------------------------------------------------------------------------------


def test_every_command_has_help_and_an_example(capsys) -> None:
    parsers = command_parsers()
    assert set(parsers) == set(EXAMPLES)
    for name, parser in parsers.items():
        text = parser.format_help()
        assert "example:\n  lightmark " + name in text, name
        for action in parser._actions:
            assert action.help, f"lightmark {name} {action.option_strings or action.dest}: no help text"
        for line in EXAMPLES[name].splitlines():  # every example parses
            argv = line.split()[1:]
            if name == "report":
                argv = [a.strip('"') for a in argv]
            command_parsers()[name].parse_args(argv[1:])


def test_predictor_argument_mistakes_are_one_line_errors() -> None:
    from lightmark.errors import ConfigError

    with pytest.raises(ConfigError, match="model: expected a checkpoint or ONNX path"):
        Predictor(123)
    with pytest.raises(ConfigError, match="unknown backend 'tpu'; known: auto, torch, onnx"):
        Predictor(backend="tpu")
    pytest.importorskip("torch")
    with pytest.raises(ConfigError, match="device 'gpu0': not a torch device"):
        Predictor(device="gpu0")


def test_predict_reads_auto_but_a_submission_whole(tmp_path: Path, capsys) -> None:
    """``lightmark predict`` reads an image with the library's default framing (auto for the shipped models); the
    challenge's solution.txt (``--out``) reads the crops whole, without the face detector, and says so."""
    from lightmark.submission import read_submission

    js, sub = tmp_path / "p.json", tmp_path / "solution.txt"
    assert main(["predict", str(SAMPLE), "--json", str(js), "--out", str(sub), "--quiet"]) == 0
    assert "reads the crops whole" in capsys.readouterr().out
    whole = Predictor(framing="whole").predict(SAMPLE)
    np.testing.assert_allclose(json.loads(js.read_text())["predictions"][0]["landmarks"], whole, atol=2e-3)
    assert main(["predict", str(SAMPLE), "--json", str(js), "--quiet"]) == 0
    auto = Predictor().predict(SAMPLE)
    assert Predictor().framing.value == "auto" and np.abs(auto - whole).max() > 1.0  # the two readings differ here
    np.testing.assert_allclose(json.loads(js.read_text())["predictions"][0]["landmarks"], auto, atol=2e-3)
    names, rows = read_submission(sub)
    assert names == ["sample_face.jpg"]
    np.testing.assert_allclose(rows[0], whole, atol=1e-2)  # the file holds the whole-crop reading
