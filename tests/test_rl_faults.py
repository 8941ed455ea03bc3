"""Issue 15: faults, resumes and sweeps lose nothing and corrupt nothing (fake env, tiny nets)."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mtrl.checkpoint as ckpt_mod
import mtrl.train as train_mod
from mtrl.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from mtrl.train import ConfigError, DivergedError, check_config

from .test_rl_train import TINY, cfg_of, run

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _steps(out: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (out / "eval.jsonl").read_text().splitlines()]


def _popen(*args: str, cwd: Path = REPO) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mtrl.train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = _popen(*args, cwd=cwd)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _one_line(p: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == code and len(lines) == 1 and lines[0].startswith("mtrl.train: error:"), p.stderr
    return lines[0]


def _tree(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------------ item 2
def test_resume_from_an_older_checkpoint_then_a_crash_never_resumes_the_abandoned_branch(tmp_path, monkeypatch):
    every = ("train.eval_every=10", "train.checkpoint_every=20", "train.keep_checkpoints=5")
    run(tmp_path, "train.steps_per_task=60", *every)
    old = tmp_path / "checkpoints" / "ckpt_0000000020.pt"
    real_evaluate = train_mod.evaluate
    calls = {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # step 40, before its checkpoint
            raise RuntimeError("simulated crash")
        return real_evaluate(*a, **k)

    monkeypatch.setattr(train_mod, "evaluate", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_mod.train(cfg_of(*TINY, "train.steps_per_task=60", f"resume={old}", *every), tmp_path)
    monkeypatch.setattr(train_mod, "evaluate", real_evaluate)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["ckpt_0000000020.pt"]
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "abandoned").iterdir()) == [
        "ckpt_0000000040.pt", "ckpt_0000000060.pt"]  # fmt: skip
    out = run(tmp_path, "train.steps_per_task=60", "resume=true", *every)
    assert out["step"] == 60
    assert _steps(tmp_path) == [10, 20, 30, 40, 50, 60]


# ------------------------------------------------------------------------------------------------ items 3, 4
def test_second_run_in_a_directory_is_refused_and_sigterm_writes_a_checkpoint_even_during_evaluation(tmp_path):
    run_dir = tmp_path / "run"
    # evaluation takes most of the time (an evaluation every step, 20 episodes), so SIGTERM lands in one
    args = [*TINY, "train.steps_per_task=1000000", "train.eval_every=1", "env.eval_episodes=20",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    first = _popen(*args)
    try:
        deadline = time.time() + 90
        while not (run_dir / "eval.jsonl").exists() and time.time() < deadline:
            time.sleep(0.2)
        config_before = (run_dir / ".hydra" / "config.yaml").read_text()
        second = _cli(*TINY, "seed=2", "train.steps_per_task=50", f"hydra.run.dir={run_dir}")
        assert "in use by another run" in _one_line(second)
        assert (run_dir / ".hydra" / "config.yaml").read_text() == config_before  # seed 1's config kept
        time.sleep(1.0)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, err
    assert "SIGTERM at step" in (run_dir / "train.log").read_text() and "Traceback" not in err
    ck = latest_checkpoint(run_dir / "checkpoints")
    assert ck is not None
    state = load_checkpoint(ck)
    assert _steps(run_dir)[-1] == state["loop"]["step"] > 0  # the evaluation in progress finished, then saved
    # the lock went with the process: the run continues
    out = train_mod.train(cfg_of(*TINY, f"train.steps_per_task={state['loop']['step'] + 2}", "resume=true"), run_dir)
    assert out["step"] == state["loop"]["step"] + 2


# ------------------------------------------------------------------------------------------------ items 5, 10
def test_refused_resume_writes_nothing_and_a_resume_writes_only_into_its_run(tmp_path):
    run_dir, cwd = tmp_path / "run", tmp_path / "elsewhere"
    cwd.mkdir()
    p = _cli(*TINY, "train.steps_per_task=20", f"hydra.run.dir={run_dir}")
    assert p.returncode == 0, p.stderr
    before, log_before = _tree(run_dir), (run_dir / "train.log").read_text()
    hydra_before = (run_dir / ".hydra" / "overrides.yaml").read_text()
    t0 = time.time()
    refused = _cli(*TINY, "train.steps_per_task=40", f"resume={run_dir}", "agent.aggregator=cagrad", cwd=cwd)
    assert "does not match" in _one_line(refused) and time.time() - t0 < 60
    assert _tree(run_dir) == before and not list(cwd.iterdir())
    ok = _cli(*TINY, "train.steps_per_task=40", f"resume={run_dir}", cwd=cwd)
    assert ok.returncode == 0, ok.stderr
    assert not list(cwd.iterdir())  # no stray Hydra run directory
    log_after = (run_dir / "train.log").read_text()
    assert log_after.startswith(log_before) and "resumed from" in log_after  # train.log continued
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == hydra_before  # the original's .hydra/ kept
    assert _steps(run_dir)[-1] == 40


# ------------------------------------------------------------------------------------------------ item 6
@pytest.mark.parametrize("override", ["agent.lr=inf", "agent.alpha_lr=nan", "agent.init_alpha=inf"])
def test_non_finite_hyperparameters_are_refused(override):
    with pytest.raises(ConfigError, match="positive finite"):
        check_config(cfg_of(*TINY, override))


def test_a_diverged_run_stops_with_a_clear_message_and_never_checkpoints_nan(tmp_path):
    with pytest.raises(DivergedError, match="diverged at step"):
        run(tmp_path, "train.steps_per_task=200", "train.checkpoint_every=10", "agent.lr=1e30",
            "train.max_skipped_in_a_row=5")  # fmt: skip
    for p in list_checkpoints(tmp_path / "checkpoints"):
        state = load_checkpoint(p)
        for net in ("actor", "q1", "q2"):
            assert all(torch.isfinite(v).all() for v in state["agent"][net].values()), (p, net)


# ------------------------------------------------------------------------------------------------ item 7
def test_a_sweep_checks_every_job_before_starting_any(tmp_path):
    p = _cli("-m", *TINY, "train.steps_per_task=20", "agent.aggregator=ls,imgard,cagrad",
             f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert p.returncode == 2 and "imgard" in p.stderr and "none started" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "sweep").exists()


# ------------------------------------------------------------------------------------------------ item 8
def test_tensorboard_has_each_step_once_after_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = ("logger=tensorboard", "train.log_every=10", "train.eval_every=10", "train.checkpoint_every=20",
          "train.keep_checkpoints=5")  # fmt: skip
    run(tmp_path, "train.steps_per_task=40", *tb)
    old = tmp_path / "checkpoints" / "ckpt_0000000020.pt"
    run(tmp_path, "train.steps_per_task=40", f"resume={old}", *tb)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    for tag in ("train/critic_loss", "eval/success_rate"):
        steps = [e.step for e in acc.Scalars(tag)]
        assert steps == sorted(set(steps)) == [10, 20, 30, 40], (tag, steps)


def test_alpha_aggregator_diagnostics_are_logged(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(tmp_path, "train.steps_per_task=30", "logger=tensorboard", "agent.alpha=shared",
        "agent.aggregate_on=[critic,actor,alpha]", "agent.aggregator=imgrad")  # fmt: skip
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert "aggregator_alpha/cos_theta" in acc.Tags()["scalars"]


# ------------------------------------------------------------------------------------------------ item 9
def test_temp_files_are_removed_and_a_full_disk_keeps_the_older_checkpoints(tmp_path, monkeypatch):
    run(tmp_path, "train.steps_per_task=20")
    stale = [tmp_path / "checkpoints" / ".ckpt_0000000030.pt.tmp4242", tmp_path / ".eval.jsonl.tmp4242"]
    for p in stale:
        p.write_bytes(b"x" * 100)
    run(tmp_path, "train.steps_per_task=30", "resume=true")
    assert not any(p.exists() for p in stale)

    d = tmp_path / "ck"
    save_checkpoint(d, 1, {"a": torch.zeros(3)}, keep=3)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.os, "fsync", full)
    with pytest.raises(CheckpointError, match=r"disk full.*partial file removed.*ckpt_0000000001\.pt"):
        save_checkpoint(d, 2, {"a": torch.ones(3)}, keep=3)
    assert sorted(p.name for p in d.iterdir()) == ["ckpt_0000000001.pt"]


# ------------------------------------------------------------------------------------------------ item 11
def test_corrupt_newest_checkpoint_falls_back_to_an_older_intact_one(tmp_path, caplog):
    every = ("train.eval_every=10", "train.checkpoint_every=20", "train.keep_checkpoints=5")
    run(tmp_path, "train.steps_per_task=40", *every)
    newest = latest_checkpoint(tmp_path / "checkpoints")
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    newest.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        out = run(tmp_path, "train.steps_per_task=60", "resume=true", *every)
    assert out["step"] == 60
    assert any("corrupt" in r.getMessage() and "falling back" in r.getMessage() for r in caplog.records)
    assert _steps(tmp_path) == [10, 20, 30, 40, 50, 60]
    assert (tmp_path / "checkpoints" / "abandoned" / newest.name).read_bytes() == bytes(raw)  # kept, out of the way


# ------------------------------------------------------------------------------------------------ one-line errors
@pytest.mark.parametrize("override, message", [
    ("seed=-1", "seed must be an integer >= 0"), ("seed=abc", "seed must be an integer >= 0"),
    ("train.steps_per_task=2.5", "train.steps_per_task must be a whole number"),
    ("agent.hidden_dim=2.5", "agent.hidden_dim must be a whole number"),
    ("agent.hidden_dim=100000000", "need at least .* GiB, more than this machine's"),
    ("agent.batch_size_per_task=100000000000", "need at least .* GiB, more than this machine's"),
])  # fmt: skip
def test_bad_seeds_and_fractional_sizes_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(cfg_of(*TINY, override))


@pytest.mark.parametrize("arg, message", [
    ("env=mt11", "available options in 'env': fake, mt1, mt10"),
    ("agent.hiden_dim=64", "did you mean agent.hidden_dim?"),
])  # fmt: skip
def test_hydra_help_is_kept_in_the_one_line(tmp_path, arg, message):
    line = _one_line(_cli(arg, f"hydra.run.dir={tmp_path / 'run'}"))
    assert message in line and not (tmp_path / "run").exists()


def test_checkpoint_of_another_code_version_is_refused_in_one_line(tmp_path):
    run(tmp_path, "train.steps_per_task=20")
    ck = latest_checkpoint(tmp_path / "checkpoints")
    state = load_checkpoint(ck)
    actor = state["agent"]["actor"]
    actor[f"{next(iter(actor))}_renamed"] = actor.pop(next(iter(actor)))  # a renamed parameter
    save_checkpoint(tmp_path / "checkpoints", 20, state, keep=3)
    with pytest.raises(CheckpointError, match="cannot be restored into this code version"):
        run(tmp_path, "train.steps_per_task=30", "resume=true")


def test_one_bad_line_in_eval_jsonl_does_not_block_resume(tmp_path):
    run(tmp_path, "train.steps_per_task=20", "train.eval_every=10")
    with open(tmp_path / "eval.jsonl", "a") as f:
        f.write('{"step": 30, "succ\n')
    out = run(tmp_path, "train.steps_per_task=30", "train.eval_every=10", "resume=true")
    assert out["step"] == 30 and _steps(tmp_path) == [10, 20, 30]


def test_a_sweep_job_that_fails_while_running_fails_alone(tmp_path):
    p = _cli("-m", *TINY, "train.steps_per_task=30", "train.max_skipped_in_a_row=2", "agent.lr=1e30,0.001",
             f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert p.returncode != 0 and "mtrl.train: error: training diverged" in p.stderr
    finished = [d for d in (tmp_path / "sweep").rglob("eval.jsonl") if _steps(d.parent)[-1] == 30]
    assert len(finished) == 1  # the good job ran to the end
