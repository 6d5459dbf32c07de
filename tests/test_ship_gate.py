"""scripts/ship_gate.py: a candidate passes only when no gated figure is worse than the shipped model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def gate():
    return load_script("ship_gate")


def _val(nme: float, yaw90: float) -> dict:
    bins = {b: {"nme_challenge": nme} for b in ("yaw_0_30", "yaw_30_60")}
    return {"nme_challenge": nme, **bins, "yaw_60_90": {"nme_challenge": yaw90}}


def _helen(inner: float, jaw: float) -> dict:
    part = {"inner_51": inner, "jaw_17": jaw}
    return {"all_870": part, "holdout_170": part}


def _write(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_better_everywhere_passes_and_worse_jaw_is_only_shown(gate, tmp_path, capsys):
    cand = _write(tmp_path, "c.json", _val(2.4, 3.0))
    ship = _write(tmp_path, "s.json", _val(2.5, 3.4))
    hc = _write(tmp_path, "hc.json", {"/runs/x/best.pt": _helen(5.0, 12.0)})  # keyed by model path
    hs = _write(tmp_path, "hs.json", {"protocol": _helen(5.2, 11.0), "mixed": _helen(4.0, 9.0)})
    assert gate.main(["--val", cand, ship, "--helen", hc, f"{hs}:protocol"]) == 0
    out = capsys.readouterr().out
    assert "| val yaw_60_90 | 3.000 | 3.400 | -0.400 |" in out
    assert "| HELEN 870 jaw_17 | 12.000 | 11.000 | +1.000 |" in out  # informational: no "(worse)"


def test_one_worse_reframe_row_fails(gate, tmp_path, capsys):
    rows = {"latency_ms": 9.0, "none": 2.5, "roll_90": 2.7}
    cand = _write(tmp_path, "c.json", {"rows": {"auto": {**rows, "roll_90": 2.75}}})
    ship = _write(tmp_path, "s.json", {"rows": {"auto": rows}})
    assert gate.main(["--reframe", cand, ship]) == 1
    assert "worse: reframe roll_90" in capsys.readouterr().out
    assert gate.main(["--reframe", cand, ship, "--tolerance", "0.1"]) == 0
