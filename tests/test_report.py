"""README results tables generated from evaluation JSONs."""

from __future__ import annotations

import json

import pytest

from lightmark.report import END, START, results_table, update_readme


def _report(path, nme: float) -> str:
    data = {
        "n": 3,
        "nme_challenge": nme,
        "nme_box": 2 * nme,
        "fr_10": 0.0,
        "auc_10": 0.7,
        "yaw_0_30": {"n": 1, "nme_challenge": 1.0, "nme_box": 2.0},
        "yaw_30_60": {"n": 1, "nme_challenge": 2.0, "nme_box": 4.0},
        "yaw_60_90": {"n": 0, "nme_challenge": None, "nme_box": None},
        "meta": {
            "size_mb": 3.5,
            "params": 901_234,
            "gmacs": 0.0531,
            "latency_ms": {"median": 1.7, "p90": 2.0, "mean": 1.804},
        },
        "per_image": [{"name": f"{i}.jpg", "nme_challenge": nme * (i + 1) / 2, "nme_box": 0.0} for i in range(3)],
    }
    path.write_text(json.dumps(data))
    return str(path)


def test_table_rows_and_values(tmp_path) -> None:
    table = results_table({"a": _report(tmp_path / "a.json", 3.14159), "b": _report(tmp_path / "b.json", 2.0)})
    lines = table.splitlines()
    assert len(lines) == 4
    assert "| a | 3 | **3.14** | 1.00 | 2.00 | - | 6.28 | 0.00 | 0.700 | 3.50 | 0.90 | 0.053 | 1.80 |" in lines


def test_table_without_cost_figures(tmp_path) -> None:
    """A JSON without model cost (e.g. written by an older version) shows dashes, not zeros."""
    p = tmp_path / "old.json"
    data = json.loads(open(_report(p, 2.0)).read())
    data["meta"] = {}
    p.write_text(json.dumps(data))
    assert results_table({"old": str(p)}).splitlines()[-1].endswith("| - | - | - | - |")


def test_ced_plot_of_several_reports(tmp_path) -> None:
    from lightmark.report import ced_plot

    out = ced_plot({"a": _report(tmp_path / "a.json", 3.0), "b": _report(tmp_path / "b.json", 5.0)}, tmp_path / "c.png")
    assert out.stat().st_size > 5000


def test_update_readme(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\nrest\n")
    update_readme(readme, "NEW TABLE")
    assert readme.read_text() == f"intro\n{START}\nNEW TABLE\n{END}\nrest\n"
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(ValueError):
        update_readme(tmp_path / "plain.md", "x")


def test_ced_plot_refuses_a_json_without_per_image_figures(tmp_path) -> None:
    from lightmark.errors import ConfigError
    from lightmark.report import ced_plot

    p = tmp_path / "summary_only.json"
    data = json.loads(open(_report(p, 2.0)).read())
    del data["per_image"]
    p.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="per-image"):
        ced_plot({"x": str(p)}, tmp_path / "c.png")


def _ratio(median: float) -> dict:
    return {"median": median, "q25": median - 0.05, "q75": median + 0.05}


BENCH = {
    "settings": {"images": 199},
    "latency": {
        "threads": 1,
        "ms": {k: {"median": v, "runs": 398} for k, v in (("dlib", 2.5), ("predict", 2.0), ("network", 1.5))},
        "ratio_to_dlib": {"predict": _ratio(0.8), "network": _ratio(0.6)},
    },
    "accuracy": {"dlib": 6.457, "predict": 2.4266},
    "throughput": [
        {
            "threads": 2,
            "batch_size": 32,
            "dlib_processes": 2,
            "faces_per_s": {"dlib": 745.0, "predict_batch": 859.4, "network": 1222.0},
            "speed_ratio_to_dlib": _ratio(1.16),
        }
    ],
}


def test_latency_tables_of_a_benchmark_record() -> None:
    from lightmark.report import latency_tables

    lines = latency_tables(BENCH).splitlines()
    assert lines[0].startswith("| one face per call, 1 thread (199 faces, 398 calls each) |")
    assert "| dlib 68-point shape predictor, given the box | 2.50 | 1 | 6.46 |" in lines
    assert any(r.endswith("| 2.00 | 0.80 [0.75, 0.85] | 2.43 |") for r in lines)  # predict: ms, ratio, NME
    assert any(r.endswith("| 1.50 | 0.60 [0.55, 0.65] | - |") for r in lines)  # network: no NME
    assert not any("refine=1" in r for r in lines)  # a contender the record lacks has no row
    assert "| 32 faces, 2 thread(s); dlib on 2 processes | 859 | 1222 | 745 | 1.16 [1.11, 1.21] |" in lines


def test_architecture_table_of_an_arch_record() -> None:
    from lightmark.report import architecture_table

    arch = {
        "dlib_ms": {"median": 2.44},
        "candidates": {
            "resnet18_regression@128": {
                "params": 3_460_000,
                "size_mb": 13.86,
                "gmacs": 0.16,
                "ms": {"median": 4.416},
                "ratio_to_dlib": _ratio(1.81),
                "nme": 3.0213,
            },
            "shufflenetv2_x0_5_heatmap@128": {
                "params": 187_300,
                "size_mb": 0.777,
                "gmacs": 0.0155,
                "ms": {"median": 1.99},
                "nme": None,
            },  # fmt: skip
        },
    }
    lines = architecture_table(arch).splitlines()
    assert "| dlib shape predictor, given the box | - | - | - | 2.44 | 1 | - |" in lines
    assert "| resnet18_regression@128 | 3.46 | 13.9 | 0.160 | 4.42 | 1.81 [1.76, 1.86] | 3.02 |" in lines
    assert "| shufflenetv2_x0_5_heatmap@128 | 0.19 | 0.8 | 0.015 | 1.99 | - | - |" in lines  # not timed with dlib


def test_report_cli_writes_the_latency_section(tmp_path, capsys) -> None:
    from lightmark.cli import main

    bench, readme = tmp_path / "b.json", tmp_path / "README.md"
    bench.write_text(json.dumps(BENCH))
    readme.write_text("# x\n<!-- latency:start -->\nold\n<!-- latency:end -->\n")
    assert main(["report", "--benchmark", str(bench), "--readme", str(readme), "--section", "latency"]) == 0
    text = readme.read_text()
    assert "old" not in text and "| 32 faces, 2 thread(s)" in text
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n": 1}))
    assert main(["report", "--arch", str(bad)]) == 2  # one-line error, exit status 2
    assert "bad.json: not a record of `scripts/arch_table.py --json` (no candidates)" in capsys.readouterr().err


def test_peers_table_of_a_peers_record() -> None:
    from lightmark.report import peers_table

    ratio = {"median": 0.5, "q25": 0.45, "q75": 0.55}

    def row(v: float, y: float, inner: float, jaw: float) -> dict:
        return {
            "val": {"nme_challenge": v, "yaw_60_90": {"nme_challenge": y}},
            "helen_170": {"inner_51": inner, "jaw_17": jaw},
        }

    record = {
        "accuracy": {
            "lightmark": row(2.254, 3.46, 3.3, 9.6),
            "peer": {**row(3.32, 8.43, 3.16, 7.27), "found": {"val": 187, "helen_170": 170}},
        },
        "latency_ms": {
            "lightmark": {"median": 1.0, "ratio_to_lightmark_box": ratio | {"median": 1.0}},
            "peer": {"median": 2.0, "ratio_to_lightmark_box": ratio},
        },
    }
    lines = peers_table(record).splitlines()
    assert lines[2] == "| lightmark | 2.25 | 3.46 | 3.30 | 9.60 | - |"
    assert lines[3] == "| peer | 3.32 | 8.43 | 3.16 | 7.27 | 187 / 170 |"
    assert lines[-2:] == ["| lightmark | 1.00 | 1.00 [0.45, 0.55] |", "| peer | 2.00 | 0.50 [0.45, 0.55] |"]
    record["latency_whole_ms"] = {"peer": {"median": 5.0, "mean": 5.25, "ratio_to_mediapipe": ratio}}
    lines = peers_table(record).splitlines()
    assert lines[-3].startswith("| one core, a whole image per call | ms, median | ms, mean |")
    assert lines[-1] == "| peer | 5.00 | 5.25 | 0.50 [0.45, 0.55] |"


def test_report_cli_refuses_a_record_that_is_not_a_peers_record(tmp_path, capsys) -> None:
    from lightmark.cli import main

    bad = tmp_path / "peers.json"
    bad.write_text(json.dumps({"accuracy": {}}))
    assert main(["report", "--peers", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "peers.json: not a record of `scripts/peers_check.py --json` (no accuracy, latency_ms)" in err
