"""Sweeps on the fake env: Hydra multirun tree, the Ray launcher, the plain-shell fallback, checkpoint evaluation
and the report's numbers against values computed by hand from the runs' eval.jsonl."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
FAKE = ["env=fake", "experiment=smoke", "train.steps_per_task=200", "train.warmup_steps_per_task=50",
        "train.eval_every=100", "train.log_every=100", "train.checkpoint_every=200", "train.torch_threads=1",
        "train.progress=false"]  # fmt: skip


def _run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory) -> Path:
    """``python -m mtrl.train -m``: 2 methods x 3 seeds on the fake env (Hydra's basic launcher, one process)."""
    sweep = tmp_path_factory.mktemp("sweep")
    _run([sys.executable, "-m", "mtrl.train", "-m", *FAKE, "seed=1,2,3", "agent.aggregator=ls,imgrad",
          f"hydra.sweep.dir={sweep}"])  # fmt: skip
    return sweep


def test_multirun_tree_names_method_and_seed(fake_sweep: Path) -> None:
    for method in ("ls", "imgrad"):
        for seed in (1, 2, 3):
            recs = _records(fake_sweep / "fake" / method / f"seed_{seed}" / "eval.jsonl")
            assert [r["step"] for r in recs] == [100, 200]
            assert {(r["method"], r["seed"]) for r in recs} == {(method, seed)}


def test_report_of_a_fake_sweep_equals_hand_computation(fake_sweep: Path, tmp_path: Path) -> None:
    pytest.importorskip("rliable", reason="the analysis extra (rliable) is needed for reports")
    report = _script("report")
    out = tmp_path / "report"
    assert report.main([str(fake_sweep), "--out", str(out), "--last-k", "2", "--reps", "500"]) == 0
    rows = {r["method"]: r for r in csv.DictReader((out / "summary.csv").open())}
    for method in ("ls", "imgrad"):
        runs = [_records(fake_sweep / "fake" / method / f"seed_{s}" / "eval.jsonl") for s in (1, 2, 3)]
        finals = np.array([np.mean([r["success_rate"] for r in recs[-2:]]) for recs in runs])
        assert int(rows[method]["n_seeds"]) == 3
        assert float(rows[method]["final_mean"]) == pytest.approx(finals.mean(), abs=1e-6)
        assert float(rows[method]["final_sem"]) == pytest.approx(finals.std(ddof=1) / math.sqrt(3), abs=1e-6)
        best = np.mean([max(r["success_rate"] for r in recs) for recs in runs])
        assert float(rows[method]["best_mean"]) == pytest.approx(best, abs=1e-6)
        assert float(rows[method]["iqm_low"]) <= float(rows[method]["iqm"]) <= float(rows[method]["iqm_high"])


def test_evaluate_reproduces_the_final_training_evaluation(fake_sweep: Path, tmp_path: Path) -> None:
    """Same protocol, seed and episode count as the run's own last evaluation: the same per-task numbers."""
    evaluate = _script("evaluate")
    out = tmp_path / "evaluation.jsonl"
    assert evaluate.main([str(fake_sweep / "fake" / "imgrad"), "--out", str(out)]) == 0
    recs = _records(out)
    assert len(recs) == 3
    for rec in recs:
        last = _records(Path(rec["run_dir"]) / "eval.jsonl")[-1]
        assert rec["step"] == last["step"] == 200 and rec["method"] == "imgrad" and rec["protocol"] == "fake"
        assert rec["tasks"] == last["tasks"]


def test_evaluate_reports_a_corrupt_checkpoint_and_exits_nonzero(tmp_path: Path) -> None:
    evaluate = _script("evaluate")
    bad = tmp_path / "run" / "checkpoints" / "ckpt_0000000100.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    assert evaluate.main([str(tmp_path / "run"), "--out", str(tmp_path / "e.jsonl")]) == 1
    assert "error" in _records(tmp_path / "e.jsonl")[0] and bad.exists()
    assert evaluate.main([str(tmp_path / "nothing-here")]) == 2


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("xargs") is None, reason="needs bash and xargs")
def test_run_seeds_fallback_runs_every_seed_and_skips_finished_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "JOBS": "2", "THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [str(ROOT / "scripts" / "run_seeds.sh"), str(tmp_path), "ls", "2", *FAKE]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    for seed in (1, 2):
        assert _records(tmp_path / "fake" / "ls" / f"seed_{seed}" / "eval.jsonl")[-1]["seed"] == seed
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stderr.count("skip (done)") == 2
    bad = subprocess.run([*cmd[:2], "nosuch", "1", *FAKE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "FAILED" in bad.stderr


@pytest.mark.slow  # needs .[launchers]: CI's slow step (pytest -m slow) installs it
def test_ray_launcher_runs_a_two_job_sweep(tmp_path: Path) -> None:
    """A local Ray runtime (hydra/launcher=ray_local) runs two fake-env jobs; each writes its own tree."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[launchers]')")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher is not installed")
    proc = _run([sys.executable, "-m", "mtrl.train", "-m", "hydra/launcher=ray_local", *FAKE, "seed=1,2",
                 "agent.aggregator=cagrad", f"hydra.sweep.dir={tmp_path}"])  # fmt: skip
    assert "Ray Launcher is launching 2 jobs" in proc.stdout + proc.stderr
    for seed in (1, 2):
        recs = _records(tmp_path / "fake" / "cagrad" / f"seed_{seed}" / "eval.jsonl")
        assert recs[-1]["step"] == 200 and recs[-1]["seed"] == seed and recs[-1]["method"] == "cagrad"


@pytest.mark.slow  # needs .[launchers]: CI's slow step (pytest -m slow) installs it
def test_slurm_launcher_config_composes() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher is not installed")
    proc = _run([sys.executable, "-m", "mtrl.train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                 "--cfg", "hydra", "--package", "hydra.launcher"])  # fmt: skip
    assert "SlurmLauncher" in proc.stdout and "partition: gpu" in proc.stdout and "gpus_per_node: 1" in proc.stdout
