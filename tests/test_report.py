"""scripts/report.py on a hand-made sweep: its numbers must equal values computed by hand from the JSONL."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("rliable", reason="the analysis extra (rliable) is needed for reports")

_spec = importlib.util.spec_from_file_location("report", Path(__file__).parents[1] / "scripts" / "report.py")
report = importlib.util.module_from_spec(_spec)
sys.modules["report"] = report  # dataclasses look their module up
_spec.loader.exec_module(report)

TASKS = ["reach", "push", "door"]
# success per evaluation (rows) and task (columns); runs have different lengths
DATA = {
    ("ls", 0): [[0.0, 0.0, 0.0], [0.2, 0.0, 0.4], [0.4, 0.2, 0.6], [0.6, 0.2, 0.8]],
    ("ls", 1): [[0.0, 0.0, 0.0], [0.4, 0.0, 0.2], [0.6, 0.0, 0.6]],
    ("ls", 2): [[0.0, 0.2, 0.0], [0.2, 0.2, 0.2], [0.4, 0.4, 0.4], [0.8, 0.4, 0.6]],
    ("imgrad", 0): [[0.0, 0.0, 0.2], [0.6, 0.2, 0.6], [0.8, 0.4, 1.0], [1.0, 0.6, 1.0]],
    ("imgrad", 1): [[0.2, 0.0, 0.0], [0.4, 0.4, 0.4], [1.0, 0.4, 0.8], [1.0, 0.4, 1.0]],
    ("imgrad", 2): [[0.0, 0.0, 0.0], [0.6, 0.2, 0.4], [0.8, 0.6, 0.8], [0.8, 0.8, 1.0]],
}


def _write_sweep(root: Path) -> None:
    for (method, seed), evals in DATA.items():
        d = root / f"agent.aggregator={method},seed={seed}"
        d.mkdir(parents=True)
        with (d / "eval.jsonl").open("w") as f:
            for i, row in enumerate(evals):
                rec = {
                    "step": 1000 * (i + 1),
                    "total_env_steps": 3000 * (i + 1),
                    "protocol": "fake",
                    "seed": seed,
                    "method": method,
                    "success_rate": float(np.mean(row)),
                    "episode_return": 0.0,
                    "tasks": {t: {"success_rate": v, "episode_return": 0.0} for t, v in zip(TASKS, row)},
                }
                f.write(json.dumps(rec) + "\n")
            if method == "imgrad" and seed == 2:
                f.write("{corrupt line\n")
    crashed = root / "agent.aggregator=imgrad,seed=3" / ".hydra"
    crashed.mkdir(parents=True)
    (crashed / "config.yaml").write_text("seed: 3\nagent:\n  aggregator: imgrad\n")


def _final(method: str, seed: int, k: int) -> np.ndarray:
    return np.mean(np.array(DATA[(method, seed)])[-k:], axis=0)


def test_report_numbers_equal_hand_computation(tmp_path: Path) -> None:
    _write_sweep(tmp_path / "sweep")
    out = tmp_path / "report"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--last-k", "2", "--reps", "200"]) == 0
    rows = {r["method"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert {"method", "n_seeds", "final_mean", "final_sem", "iqm", "iqm_low", "iqm_high"} <= set(rows["ls"])
    for method in ("ls", "imgrad"):
        finals = np.array([_final(method, s, 2).mean() for s in range(3)])
        assert float(rows[method]["final_mean"]) == pytest.approx(finals.mean())
        assert float(rows[method]["final_sem"]) == pytest.approx(finals.std(ddof=1) / math.sqrt(3))
        bests = [np.array(DATA[(method, s)]).mean(1).max() for s in range(3)]
        assert float(rows[method]["best_mean"]) == pytest.approx(np.mean(bests))
        # IQM over runs x tasks: the 25%-trimmed mean of all final per-task scores
        allscores = np.concatenate([_final(method, s, 2) for s in range(3)])
        assert float(rows[method]["iqm"]) == pytest.approx(stats.trim_mean(allscores, 0.25))
        assert float(rows[method]["iqm_low"]) <= float(rows[method]["iqm"]) <= float(rows[method]["iqm_high"])
        assert int(rows[method]["n_seeds"]) == 3
    assert int(rows["imgrad"]["n_missing"]) == 1 and int(rows["ls"]["n_missing"]) == 0
    per_task = {r["method"]: r for r in csv.DictReader((out / "per_task.csv").open())}
    expected = np.mean([_final("ls", s, 2) for s in range(3)], axis=0)
    np.testing.assert_allclose([float(per_task["ls"][t]) for t in TASKS], expected, atol=1e-4)
    poi = list(csv.DictReader((out / "poi.csv").open()))
    assert poi[0]["other"] == "ls" and float(poi[0]["poi"]) > 0.5  # imgrad's hand-made scores are higher
    md = (out / "report.md").read_text()
    assert "last 2 evaluations" in md and "seed=3" in md and "Unreadable JSONL lines" in md
    for png in ("curves.png", "heatmap.png", "intervals.png"):
        assert (out / png).stat().st_size > 5000


def test_learning_curves_align_runs_of_different_lengths(tmp_path: Path) -> None:
    _write_sweep(tmp_path / "sweep")
    curves = report.learning_curves(report.discover(tmp_path / "sweep"))
    steps, mean, _, n = curves["ls"]
    np.testing.assert_array_equal(steps, [1000, 2000, 3000, 4000])
    np.testing.assert_array_equal(n, [3, 3, 3, 2])  # ls seed 1 stopped after 3 evaluations
    assert mean[3] == pytest.approx(np.mean([np.mean(DATA[("ls", 0)][3]), np.mean(DATA[("ls", 2)][3])]))


def test_report_refuses_an_empty_sweep(tmp_path: Path, capsys) -> None:
    assert report.main([str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no run with evaluations" in capsys.readouterr().err


def test_max_step_compares_runs_at_an_equal_budget(tmp_path: Path) -> None:
    _write_sweep(tmp_path / "sweep")
    out = tmp_path / "report"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--last-k", "1", "--reps", "200",
                        "--max-step", "2000"]) == 0  # fmt: skip
    rows = {r["method"]: r for r in csv.DictReader((out / "summary.csv").open())}
    finals = np.array([np.mean(DATA[("ls", s)][1]) for s in range(3)])  # the evaluation at step 2000
    assert float(rows["ls"]["final_mean"]) == pytest.approx(finals.mean())
