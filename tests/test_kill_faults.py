"""Issue 21: the fault-injection campaign's kinds of faults, kept as (slow) tests: SIGKILL at random moments and
around checkpoint writes, each followed by ``resume=true`` until the run ends, must leave a run identical to its
uninterrupted twin (evaluations, final checkpoint, TensorBoard steps once each, no temp files). SIGTERM and the
full disk are covered in ``tests/test_rl_faults.py``, ``tests/test_supervised_train.py`` and
``tests/test_run_dirs.py``."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtrl.checkpoint import latest_checkpoint, load_checkpoint

from .test_rl_train import TINY, assert_same

REPO = Path(__file__).resolve().parents[1]
ARGS = (*TINY, "train.steps_per_task=150", "train.eval_every=10", "train.checkpoint_every=10",
        "train.log_every=10", "logger=tensorboard")  # fmt: skip
SUP = ("data=synthetic", "model.width=0.125", "benchmark=cityscapes", "benchmark.synthetic.n_train=16",
       "benchmark.synthetic.n_val=4", "benchmark.synthetic.height=32", "benchmark.synthetic.width=64",
       "optim.batch_size=2", "epochs=4", "train.torch_threads=1", "train.progress=false")  # fmt: skip


def _popen(module: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _finish(module: str, *args: str) -> float:
    t0 = time.time()
    p = _popen(module, *args)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return time.time() - t0


def _no_temp_files(d: Path) -> None:
    assert not [p for p in d.rglob("*") if ".tmp" in p.name], "temp files left behind"


def _tb_steps_once(d: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(d))
    acc.Reload()
    steps = [e.step for e in acc.Scalars(tag)]
    assert steps == sorted(set(steps)), steps
    return steps


def _kill_and_resume(module: str, run_dir: Path, args: tuple[str, ...], kill_at: list[float] | None,
                     around_writes: int = 0) -> int:  # fmt: skip
    """Start the run, SIGKILL it (after each delay of ``kill_at``, or as soon as a checkpoint temp file appears,
    ``around_writes`` times), then ``resume=true`` until it finishes; returns the number of kills that landed."""
    kills = 0
    delays = list(kill_at or [])
    first = True
    while True:
        p = _popen(module, *args, f"hydra.run.dir={run_dir}", *(() if first else ("resume=true",)))
        first = False
        if delays:
            deadline = time.time() + delays.pop(0)
            while p.poll() is None and time.time() < deadline:
                time.sleep(0.01)
        elif kills < around_writes:
            ck = run_dir / "checkpoints"
            while p.poll() is None and not (ck.is_dir() and any(".tmp" in x.name for x in ck.iterdir())):
                time.sleep(0.0005)
        else:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
            return kills
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
        else:
            assert p.returncode == 0, p.stderr.read() if p.stderr else ""
            return kills


@pytest.mark.slow
def test_rl_sigkill_at_random_moments_and_around_checkpoint_writes_loses_nothing(tmp_path):
    twin = tmp_path / "twin"
    duration = _finish("mtrl.train", *ARGS, f"hydra.run.dir={twin}")
    rng = random.Random(21)
    for name, kill_at, around in (("random", [rng.uniform(1.0, duration) for _ in range(4)], 0),
                                  ("writes", None, 3)):  # fmt: skip
        run_dir = tmp_path / name
        kills = _kill_and_resume("mtrl.train", run_dir, ARGS, kill_at, around)
        assert kills >= 1, name
        assert (run_dir / "eval.jsonl").read_text() == (twin / "eval.jsonl").read_text(), name
        a, b = load_checkpoint(latest_checkpoint(run_dir / "checkpoints")), load_checkpoint(
            latest_checkpoint(twin / "checkpoints"))  # fmt: skip
        for key in ("agent", "buffer", "loop", "evals"):
            assert_same(a[key], b[key], f"{name}:{key}")
        assert _tb_steps_once(run_dir / "tb", "eval/success_rate") == list(range(10, 151, 10))
        _no_temp_files(run_dir)


@pytest.mark.slow
def test_supervised_sigkill_at_random_moments_loses_nothing(tmp_path):
    twin = tmp_path / "twin"
    duration = _finish("mtrl.supervised.train", *SUP, f"hydra.run.dir={twin}")
    rng = random.Random(21)
    run_dir = tmp_path / "killed"
    kills = _kill_and_resume("mtrl.supervised.train", run_dir, SUP, [rng.uniform(2.0, duration) for _ in range(2)])
    assert kills >= 1
    import json

    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    twins = [json.loads(x) for x in (twin / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2, 3, 4]
    assert [r["test"] for r in recs] == [r["test"] for r in twins]
    _no_temp_files(run_dir)


@pytest.mark.slow
def test_rl_full_disk_mid_run_then_resume_loses_nothing(tmp_path, monkeypatch):
    """ENOSPC from the 5th fsync on (an evaluation or a checkpoint write): the run stops, the files it had keep
    their content, no temp file is left; once there is space again, ``resume=true`` ends as the uninterrupted run."""
    import errno

    from mtrl.checkpoint import CheckpointError, os_error_line

    from .test_rl_train import run

    every = ("train.steps_per_task=60", "train.eval_every=10", "train.checkpoint_every=20")
    run(tmp_path / "twin", *every)
    real, calls = os.fsync, {"n": 0}

    def full(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises((OSError, CheckpointError)) as info:
        run(tmp_path / "full", *every)
    monkeypatch.setattr(os, "fsync", real)
    if isinstance(info.value, OSError):
        assert os_error_line(info.value).startswith("disk full writing ") and "eval.jsonl" in os_error_line(info.value)
    _no_temp_files(tmp_path / "full")
    run(tmp_path / "full", *every, "resume=true")
    assert (tmp_path / "full" / "eval.jsonl").read_text() == (tmp_path / "twin" / "eval.jsonl").read_text()
