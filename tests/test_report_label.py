"""scripts/report.py --label dir: runs of the same aggregator under different directories (e.g. architectures)
are reported separately, named by the directory above seed_<s>."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("rliable", reason="the analysis extra (rliable) is needed for reports")

_spec = importlib.util.spec_from_file_location("report_label", Path(__file__).parents[1] / "scripts" / "report.py")
report = importlib.util.module_from_spec(_spec)
sys.modules["report_label"] = report
_spec.loader.exec_module(report)


def _run(d: Path, seed: int, success: list[float]) -> None:
    d.mkdir(parents=True)
    with open(d / "eval.jsonl", "w") as f:
        for step, s in enumerate(success):
            tasks = {t: {"success_rate": s, "episode_return": 0.0} for t in ("a", "b")}
            f.write(json.dumps({"step": step * 10, "seed": seed, "method": "ls", "tasks": tasks}) + "\n")


def test_dir_label_separates_runs_with_the_same_aggregator(tmp_path):
    for arch, level in (("multihead", 0.2), ("sm", 0.6)):
        for seed in (1, 2):
            _run(tmp_path / "runs" / arch / f"seed_{seed}", seed, [0.0, level])
    assert report.dir_label(tmp_path / "runs" / "sm" / "seed_1") == "sm"
    assert report.dir_label(tmp_path / "runs" / "sm") == "sm"
    out = tmp_path / "rep"
    assert report.main([str(tmp_path / "runs"), "--out", str(out), "--last-k", "1", "--reps", "200",
                        "--label", "dir", "--target", "sm"]) == 0  # fmt: skip
    rows = {r["method"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert set(rows) == {"multihead", "sm"}
    assert float(rows["sm"]["final_mean"]) == pytest.approx(0.6)
    assert float(rows["multihead"]["final_mean"]) == pytest.approx(0.2)
    # default labelling merges them under the aggregator's name
    out2 = tmp_path / "rep2"
    assert report.main([str(tmp_path / "runs"), "--out", str(out2), "--last-k", "1", "--reps", "200"]) == 0
    rows2 = {r["method"]: r for r in csv.DictReader(open(out2 / "summary.csv"))}
    assert set(rows2) == {"ls"} and rows2["ls"]["n_seeds"] == "4"
