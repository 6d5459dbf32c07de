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
        "meta": {"size_mb": 3.5, "params": 901_234, "gmacs": 0.0531, "latency_ms": {"median": 1.804, "p90": 2.0}},
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
