"""Issue 15 (newcomer's path): the run directory is printed at the start, and a plain progress line every
``train.log_every`` steps goes to stdout and ``train.log`` (terminal or not); the ETA (line and bar) comes from
the rate after warm-up, never from the cheap warm-up steps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mtrl.train import Progress

REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_eta_counts_only_what_follows_warm_up() -> None:
    clock = Clock()
    p = Progress(total=1000, step=0, first_update=100, clock=clock)
    for step in range(1, 101):  # warm-up: 100 steps in 1 s (random actions, no updates)
        clock.t += 0.01
        if step == 100:  # the step that ends warm-up does 5 updates at once, in 2 s: warm-up, not the rate
            clock.t += 2.0
        p.after_updates(step, 0 if step < 100 else 5)
        if step < 100:
            assert p.eta(step) == "after warm-up" and p.rates(step) is None
    assert p.eta(100) == "-"
    for step in range(101, 301):  # training: 1 step (1 update) per 0.5 s
        clock.t += 0.5
        p.after_updates(step, 5 + step - 100)
    steps_per_s, updates_per_s = p.rates(300, 205)
    assert steps_per_s == pytest.approx(2.0) and updates_per_s == pytest.approx(2.0)
    assert p.eta(300) == "0:05:50"  # 700 steps left at 2 steps/s = 350 s (warm-up's 100 steps/s would say 7 s)
    line = p.line(300, 205, {"step": 200, "success_rate": 0.25})
    assert "step 300/1000 (30.0%)" in line and "2.00 updates/s" in line and "ETA 0:05:50" in line
    assert "last eval success 0.25 (step 200)" in line and "warm-up" not in line
    assert "warm-up (random actions, no updates)" in Progress(1000, 0, 100, clock=clock).line(50, 0, None)


def test_a_resumed_run_past_warm_up_times_from_the_resume() -> None:
    clock = Clock()
    p = Progress(total=500, step=400, first_update=100, n_updates=300, clock=clock)
    clock.t = 10.0
    assert p.rates(450, 350) == (5.0, 5.0) and p.eta(450) == "0:00:10"


def test_run_directory_and_progress_lines_on_stdout_and_in_train_log(tmp_path) -> None:
    run_dir = tmp_path / "run"
    args = ["env=fake", "env.num_tasks=2", "agent.hidden_dim=16", "agent.num_layers=1", "agent.batch_size_per_task=8",
            "train.steps_per_task=60", "train.warmup_steps_per_task=20", "train.log_every=20", "train.eval_every=60",
            "train.checkpoint_every=60", "train.torch_threads=1", "train.progress=true", "logger=none",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mtrl.train", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in (proc.stdout, (run_dir / "train.log").read_text()):
        assert any(f"run directory: {run_dir.resolve()}" in line for line in text.splitlines()[:3])  # at the start
        steps = [int(m) for m in re.findall(r"progress: step (\d+)/60", text)]
        assert steps == [20, 40, 60]
        assert "ETA after warm-up" not in text.split("progress: step 40/60")[1]  # timed after warm-up
        assert re.search(r"progress: step 60/60 \(100.0%\) \| episodes \d+ \| [\d.]+ updates/s \| last eval success "
                         r"- \| elapsed [\d:]+ \| ETA 0:00:00", text)  # fmt: skip
    # the bar (forced on): no tqdm remaining-time estimate, ours instead
    bar = proc.stderr.replace("\r", "\n")
    assert "eta=" in bar and not re.search(r"\d<\d", bar)
