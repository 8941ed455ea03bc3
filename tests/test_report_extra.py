"""Issue 15: ``scripts/report.py`` without the analysis extra says which extra to install (one line, exit 2)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("report_noextra", Path(__file__).parents[1] / "scripts" / "report.py")
report = importlib.util.module_from_spec(_spec)
sys.modules["report_noextra"] = report  # dataclasses look their module up
_spec.loader.exec_module(report)


def test_missing_analysis_extra_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "_missing", lambda module: module == "rliable")
    assert report.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "rliable" in err[0] and ".[analysis]" in err[0]
    assert not (tmp_path / "out").exists()
