"""Issue 21: a run directory is never silently reused, a resume never silently loses history, and the last
tracebacks are one line (fake env, tiny nets; the supervised trainer on tiny synthetic data)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mtrl.checkpoint as ckpt_mod
from mtrl import _cli
from mtrl.aggregators import make_aggregator
from mtrl.checkpoint import (
    CheckpointError,
    RunDirError,
    held_run,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from mtrl.supervised import trainer
from mtrl.train import ConfigError, check_config

from .test_rl_train import TINY, _lock_is_free, cfg_of, run
from .test_supervised_train import _cfg

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
SUP = ("benchmark=cityscapes", "aggregator=ls", "epochs=1", "train.max_batches_per_epoch=2")


def _steps(d: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (d / "eval.jsonl").read_text().splitlines() if x.strip()]


def _tree(d: Path) -> dict[str, tuple[int, int]]:
    """Every file of a run but the lock (whose pid line each process that takes the lock rewrites)."""
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")
            if p.is_file() and p.name != ".lock"}  # fmt: skip


def _cli_run(*args: str, module: str = "mtrl.train", cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _one_line(p: subprocess.CompletedProcess, prog: str = "mtrl.train") -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{prog}: error:"), p.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------------ item 1
def test_a_fresh_run_in_a_finished_runs_directory_is_refused_and_the_first_run_is_intact(tmp_path):
    """The fault-injection test: a second, fresh run (another seed) started in a finished run's directory."""
    run_dir = tmp_path / "run"
    first = _cli_run(*TINY, "train.steps_per_task=40", "train.eval_every=10", "train.checkpoint_every=20",
                     f"hydra.run.dir={run_dir}")  # fmt: skip
    assert first.returncode == 0, first.stderr
    before = _tree(run_dir)
    second = _cli_run(*TINY, "seed=2", "train.steps_per_task=20", f"hydra.run.dir={run_dir}")
    line = _one_line(second)
    assert "already holds a run (fake/ls, seed 1, last step 40)" in line and "resume=true" in line
    assert _tree(run_dir) == before  # eval.jsonl, checkpoints, .hydra/, train.log: untouched
    assert _steps(run_dir) == [10, 20, 30, 40]
    # the same in-process (the library entry point), and for the supervised trainer
    with pytest.raises(RunDirError, match="already holds a run"):
        run(run_dir, "seed=2", "train.steps_per_task=20")
    assert _tree(run_dir) == before


def test_held_run_needs_results_not_just_hydra_files(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "train.log").write_text("started\n")
    (tmp_path / "eval.jsonl").write_text("")
    assert held_run(tmp_path) is None  # a run that died before any result: nothing to lose
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "events.out.tfevents.1.host").write_bytes(b"x")
    assert held_run(tmp_path) == "a run"


def test_supervised_fresh_run_in_a_finished_directory_is_refused(tmp_path):
    trainer.train(_cfg(tmp_path, *SUP), tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(RunDirError, match=r"already holds a run \(cityscapes/ls, seed 0, last epoch 1\)"):
        trainer.train(_cfg(tmp_path, *SUP, "seed=1"), tmp_path)
    assert _tree(tmp_path) == before
    assert _lock_is_free(tmp_path)  # the refusal released the lock it took (mtrl.checkpoint.claim_run_dir)


def test_supervised_failure_after_the_claim_releases_the_lock_and_the_thread_count(tmp_path):
    """A run refused after it claimed its directory and set its thread count (here a data root with no valid
    layout, met while reading the data) leaves the process as it found it: a notebook or a one-process sweep can
    go on in that directory and keeps its own torch threads."""
    bad, run_dir = tmp_path / "data", tmp_path / "run"
    bad.mkdir()
    (bad / "notes.txt").write_text("not a data set\n")
    threads = torch.get_num_threads()
    with pytest.raises(trainer.ConfigError, match="is not empty and has no valid cityscapes layout"):
        trainer.train(_cfg(run_dir, *SUP, f"data.root={bad}", f"train.torch_threads={threads + 1}"), run_dir)
    assert _lock_is_free(run_dir)
    assert torch.get_num_threads() == threads


def test_resume_true_without_a_checkpoint_clears_the_lost_runs_results(tmp_path, caplog):
    """What a requeued job does (`... hydra.run.dir=D resume=true`, always): a run that died before its first
    checkpoint left evaluations and TensorBoard events; the fresh start removes them (one warning line)."""
    tb = ("logger=tensorboard", "train.log_every=10", "train.eval_every=10", "train.checkpoint_every=1000")
    run(tmp_path, "train.steps_per_task=30", *tb)  # a run whose only checkpoint (the final one) ...
    for p in (tmp_path / "checkpoints").iterdir():
        p.unlink()  # ... never got written: it died first
    with caplog.at_level(logging.WARNING):
        out = run(tmp_path, "train.steps_per_task=20", "resume=true", *tb)
    assert out["step"] == 20 and _steps(tmp_path) == [10, 20]
    warned = [r.getMessage() for r in caplog.records if "starting from scratch" in r.getMessage()]
    assert len(warned) == 1 and "eval.jsonl (3 records)" in warned[0] and "tb/" in warned[0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/success_rate")] == [10, 20]  # none of the lost run's 30


def test_supervised_resume_true_without_a_checkpoint_clears_metrics(tmp_path):
    trainer.train(_cfg(tmp_path, *SUP, "epochs=2"), tmp_path)
    for p in (tmp_path / "checkpoints").iterdir():
        p.unlink()
    out = trainer.train(_cfg(tmp_path, *SUP, "resume=true"), tmp_path)
    assert [r["epoch"] for r in out["records"]] == [1]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ item 2
def test_a_sweep_over_another_key_keeps_every_job_and_a_repeat_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    args = ("-m", *TINY, "train.steps_per_task=20", "train.eval_every=20", "agent.lr=3e-4,1e-3",
            f"hydra.sweep.dir={sweep}")  # fmt: skip
    p = _cli_run(*args)
    assert p.returncode == 0, p.stderr
    runs = sorted(str(d.parent.relative_to(sweep)) for d in sweep.rglob("eval.jsonl"))
    assert runs == ["fake/ls/seed_1/agent.lr=0.0003", "fake/ls/seed_1/agent.lr=0.001"]
    before = _tree(sweep)
    again = _cli_run(*args)
    assert again.returncode == 2 and "none started" in again.stderr and "already holds a run" in again.stderr
    assert _tree(sweep) == before


def test_report_shows_the_swept_key_and_groups_by_method_and_seed(tmp_path):
    pytest.importorskip("rliable", reason="the analysis extra (rliable) is needed for reports")
    from .test_report_label import _run as write_run
    from .test_report_label import report

    for lr, level in (("agent.lr=0.001", 0.2), ("agent.lr=0.0003", 0.6)):
        for seed in (1, 2):
            write_run(tmp_path / "sweep" / "fake" / "ls" / f"seed_{seed}" / lr, seed, [0.0, level])
    assert report.swept_keys(tmp_path / "x" / "seed_1" / "agent.lr=0.001") == "agent.lr=0.001"
    assert report.swept_keys(tmp_path / "x" / "seed_1" / "2026-01-01_00-00-00") == ""  # a timestamp is no key
    runs = report.discover(tmp_path / "sweep")
    by = {}
    for r in runs:
        by.setdefault(r.method, set()).add(r.seed)
    assert by == {"ls [agent.lr=0.001]": {1, 2}, "ls [agent.lr=0.0003]": {1, 2}}
    assert report.dir_label(tmp_path / "sweep" / "fake" / "ls" / "seed_1" / "agent.lr=0.001") == "ls [agent.lr=0.001]"


def test_sweep_exclude_keys_name_only_the_swept_keys():
    extra = _cli.sweep_dirname_override(["env=fake", "agent.lr=1e-3,3e-4", "seed=1,2", "train.log_every=5"],
                                        ("env", "agent.aggregator", "seed"))  # fmt: skip
    keys = "['env','agent.aggregator','seed','train.log_every']"
    assert extra == [f"hydra.job.config.override_dirname.exclude_keys={keys}"]
    assert _cli.sweep_dirname_override(["agent.lr=1e-3,3e-4"], ()) == []  # a subdir that does not use it


# ------------------------------------------------------------------------------------------------ item 3
def test_an_emptied_eval_jsonl_is_rebuilt_from_the_checkpoint(tmp_path, caplog):
    every = ("train.eval_every=10", "train.checkpoint_every=20")
    run(tmp_path, "train.steps_per_task=40", *every)
    full = (tmp_path / "eval.jsonl").read_text()
    (tmp_path / "eval.jsonl").write_text("")
    with caplog.at_level(logging.WARNING):
        run(tmp_path, "train.steps_per_task=60", "resume=true", *every)
    assert _steps(tmp_path) == [10, 20, 30, 40, 50, 60]
    assert (tmp_path / "eval.jsonl").read_text().startswith(full)  # the same records, not re-evaluated ones
    assert any("rebuilt from the checkpoint" in r.getMessage() for r in caplog.records)


def test_a_checkpoint_without_records_warns_that_the_history_is_lost(tmp_path, caplog):
    run(tmp_path, "train.steps_per_task=20", "train.eval_every=10")
    ck = latest_checkpoint(tmp_path / "checkpoints")
    state = load_checkpoint(ck)
    del state["evals"]  # as a format-v1 checkpoint
    save_checkpoint(tmp_path / "checkpoints", 20, state, keep=3)
    (tmp_path / "eval.jsonl").unlink()
    with caplog.at_level(logging.WARNING):
        run(tmp_path, "train.steps_per_task=30", "train.eval_every=10", "resume=true")
    assert _steps(tmp_path) == [30]
    assert any("history before this resume is lost" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------------ item 4
def test_a_wrong_shaped_optimiser_state_is_refused(tmp_path):
    run(tmp_path, "train.steps_per_task=20")
    ck = latest_checkpoint(tmp_path / "checkpoints")
    state = load_checkpoint(ck)
    first = next(iter(state["agent"]["actor_opt"]["state"].values()))
    first["exp_avg"] = torch.zeros(3)
    save_checkpoint(tmp_path / "checkpoints", 20, state, keep=3)
    with pytest.raises(CheckpointError, match=r"actor_opt: state 'exp_avg' .* has shape \(3,\)"):
        run(tmp_path, "train.steps_per_task=30", "resume=true")


def test_supervised_wrong_shaped_optimiser_state_is_refused(tmp_path):
    trainer.train(_cfg(tmp_path, *SUP), tmp_path)
    ck = latest_checkpoint(tmp_path / "checkpoints")
    state = load_checkpoint(ck)
    next(iter(state["optimizer"]["state"].values()))["exp_avg_sq"] = torch.zeros(3)
    save_checkpoint(tmp_path / "checkpoints", ckpt_mod.checkpoint_step(ck), state, keep=3)
    with pytest.raises(CheckpointError, match="optimizer: state 'exp_avg_sq'"):
        trainer.train(_cfg(tmp_path, *SUP, "epochs=2", "resume=true"), tmp_path)


@pytest.mark.parametrize("version, ok", [(1, True), (2, True), (3, False), (0, False)])
def test_checkpoint_format_versions(tmp_path, version, ok):
    path = save_checkpoint(tmp_path, 1, {"a": torch.ones(2)}, keep=3)
    raw = path.read_bytes().replace(b"mtrl-checkpoint v2 ", f"mtrl-checkpoint v{version} ".encode(), 1)
    path.write_bytes(raw)
    if ok:
        assert load_checkpoint(path)["format"] == version
    else:
        with pytest.raises(CheckpointError, match=rf"format v{version}; this mtrl reads v1-v2"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):  # resume=true does not fall back past it either
            ckpt_mod.find_resume_checkpoint(True, tmp_path)


def test_a_buffer_pointer_out_of_range_is_refused(tmp_path):
    run(tmp_path, "train.steps_per_task=20")
    ck = latest_checkpoint(tmp_path / "checkpoints")
    state = load_checkpoint(ck)
    state["buffer"]["ptr"] = 10**6
    save_checkpoint(tmp_path / "checkpoints", 20, state, keep=3)
    with pytest.raises(CheckpointError, match="pointer 1000000 / size 20 are out of range"):
        run(tmp_path, "train.steps_per_task=30", "resume=true")


# ------------------------------------------------------------------------------------------------ items 5, 6, types
@pytest.mark.parametrize("override, message", [
    ("agent.aggregate_on=[]", "aggregates no loss"),
    ("agent.target_entropy=abc", "agent.target_entropy must be a number or null, got 'abc'"),
    ("agent.batch_size=abc", "agent.batch_size must be an integer or null, got 'abc'"),
    ("agent.lr=abc", "agent.lr must be a number, got 'abc'"),
    ("agent.compile=maybe", "agent.compile must be true or false"),
    ("env.eval_every=2.5", "env.eval_every must be a whole number"),
    ("agent.aggregator=uw", "needs positive losses, but the SAC actor loss is negative"),
    ("agent.aggregator=dwa+uw", "needs positive losses"),
])  # fmt: skip
def test_rl_config_refusals(override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(cfg_of(*TINY, override))


def test_uw_on_the_critic_alone_is_accepted():
    check_config(cfg_of(*TINY, "agent.aggregator=uw", "agent.aggregate_on=[critic]"))


@pytest.mark.parametrize("override, message", [
    ("epochs=2.5", "epochs must be a whole number"),
    ("optim.batch_size=2.5", "optim.batch_size must be a whole number"),
    ("model.width=1e-6", "fewer than 2 channels"),
    ("optim.lr=inf", "optim.lr must be a positive finite number"),
    ("train.num_workers=abc", "train.num_workers must be an integer, got 'abc'"),
    ("train.eval_batch_size=abc", "train.eval_batch_size must be an integer or null"),
])  # fmt: skip
def test_supervised_config_checks_equal_rls(tmp_path, override, message):
    with pytest.raises(trainer.ConfigError, match=message):
        trainer.check_config(_cfg(tmp_path, override))


def test_an_aggregator_argument_of_the_wrong_kind_is_named():
    with pytest.raises(TypeError, match="max_norm must be a number, got"):
        make_aggregator("nashmtl", max_norm=[1, 2])


# ------------------------------------------------------------------------------------------------ uw
def test_uw_log_sigma_falls_without_bound_on_a_negative_loss():
    """The cause of the RL divergence: ∂/∂s = 1 − L·e^{−2s} > 0 for every s when L < 0, so s = log σ only falls and
    the weight e^{−2s}/(2K) grows exponentially; on a positive loss it settles at σ² = L."""
    neg, pos = make_aggregator("uw"), make_aggregator("uw")
    for _ in range(2000):
        neg.step(np.array([-2.0]))
        pos.step(np.array([2.0]))
    assert neg.log_sigma[0] < -20 and neg.loss_weights(np.array([-2.0]))[0][0] > 1e15
    assert np.exp(2 * pos.log_sigma[0]) == pytest.approx(2.0, rel=0.05)


# ------------------------------------------------------------------------------------------------ one-line errors
def test_run_dir_errors_are_one_line(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    assert "is not a directory" in _one_line(_cli_run(*TINY, f"hydra.run.dir={f}"))
    (tmp_path / "run" / "eval.jsonl").mkdir(parents=True)
    line = _one_line(_cli_run(*TINY, f"hydra.run.dir={tmp_path / 'run'}"))
    assert "eval.jsonl exists and is not a regular file" in line
    other = tmp_path / "other"
    line = _one_line(_cli_run(*TINY, f"resume={tmp_path / 'run'}", f"hydra.run.dir={other}"))
    assert "names another directory" in line and not other.exists()
    line = _one_line(_cli_run(*TINY, f"resume={tmp_path}/it's"))
    assert "quote a path" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_run_directory_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "cannot write" in _one_line(_cli_run(*TINY, f"hydra.run.dir={ro}"))
    finally:
        ro.chmod(0o755)


def test_every_os_error_on_the_run_directory_is_one_line(tmp_path, monkeypatch):
    import builtins
    import errno

    for code, words in ((errno.ENOSPC, "disk full"), (errno.EROFS, "cannot write"), (errno.EISDIR, "cannot use")):
        line = ckpt_mod.os_error_line(OSError(code, os.strerror(code), "/r/eval.jsonl"))
        assert words in line and "/r/eval.jsonl" in line and "\n" not in line
    with pytest.raises(RunDirError, match="cannot (write|use) /proc/mtrl-run"):
        ckpt_mod.lock_run_dir("/proc/mtrl-run")  # not creatable

    real_open = builtins.open

    def read_only(path, *a, **k):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", read_only)
    with pytest.raises(RunDirError, match=r"cannot write .*\.lock \(Read-only file system\)"):
        ckpt_mod.lock_run_dir(tmp_path / "run")
