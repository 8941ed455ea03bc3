"""Issue 15, supervised trainer: resumes never continue an abandoned branch, fall back past a corrupt newest
checkpoint, purge TensorBoard after the checkpoint, and a refused resume is refused before anything is written."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtrl.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from mtrl.supervised import trainer
from mtrl.supervised.trainer import train

from .test_supervised_train import DENSE, SMALL, _cfg

REPO = Path(__file__).resolve().parents[1]
COMMON = ("benchmark=cityscapes", "aggregator=ls", "train.keep_checkpoints=5")  # 8 iterations per epoch


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def _tree(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------------ item 2
def test_resume_from_an_older_checkpoint_then_a_crash_never_resumes_the_abandoned_branch(tmp_path, monkeypatch):
    full = train(_cfg(tmp_path, *COMMON, "epochs=3"), tmp_path)  # checkpoints at iterations 8, 16, 24
    old = tmp_path / "checkpoints" / "ckpt_0000000008.pt"
    real = trainer.evaluate
    calls = {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 3's evaluation, before its checkpoint
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(trainer, "evaluate", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(tmp_path, *COMMON, "epochs=3", f"resume={old}"), tmp_path)
    monkeypatch.setattr(trainer, "evaluate", real)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["ckpt_0000000008.pt", "ckpt_0000000016.pt"]
    assert _names(tmp_path / "checkpoints" / "abandoned") == ["ckpt_0000000016.pt", "ckpt_0000000024.pt"]
    out = train(_cfg(tmp_path, *COMMON, "epochs=3", "resume=true"), tmp_path)
    assert [r["epoch"] for r in out["records"]] == [1, 2, 3]  # the stale ckpt_24 would have ended at epoch 2
    assert [r["test"] for r in out["records"]] == [r["test"] for r in full["records"]]


# ------------------------------------------------------------------------------------------------ item 11
def test_corrupt_newest_checkpoint_falls_back_to_an_older_intact_one(tmp_path, caplog):
    train(_cfg(tmp_path, *COMMON, "epochs=2"), tmp_path)
    newest = list_checkpoints(tmp_path / "checkpoints")[-1]
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    newest.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        out = train(_cfg(tmp_path, *COMMON, "epochs=3", "resume=true"), tmp_path)
    lines = [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]
    assert len(lines) == 1 and "corrupt" in lines[0] and "ckpt_0000000008.pt" in lines[0] and "\n" not in lines[0]
    assert [r["epoch"] for r in out["records"]] == [1, 2, 3] and out["iteration"] == 24
    assert (tmp_path / "checkpoints" / "abandoned" / newest.name).read_bytes() == bytes(raw)  # kept, out of the way


# ------------------------------------------------------------------------------------------------ item 8
def test_tensorboard_has_each_step_once_after_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = (*COMMON, "epochs=2", "train.log_every=4")
    train(_cfg(tmp_path, *tb, tensorboard=True), tmp_path)
    old = tmp_path / "checkpoints" / "ckpt_0000000008.pt"
    train(_cfg(tmp_path, *tb, f"resume={old}", tensorboard=True), tmp_path)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    per_epoch = EventAccumulator(str(tmp_path / "tb" / "epoch"))
    per_epoch.Reload()
    for a, tag, want in ((acc, "train/depth_loss", [4, 8, 12, 16]), (per_epoch, "test/miou", [1, 2]),
                         (per_epoch, "train_epoch/depth_loss", [1, 2])):  # fmt: skip
        steps = [e.step for e in a.Scalars(tag)]
        assert steps == sorted(set(steps)) == want, (tag, steps)


# ------------------------------------------------------------------------------------------------ item 5
def test_refused_resume_is_refused_before_anything_is_written(tmp_path):
    """The command line checks the checkpoint a resume names before Hydra (or the trainer) writes anything."""
    run = tmp_path / "run"
    train(_cfg(run, *COMMON, "epochs=1", tensorboard=True), tmp_path)
    before = _tree(run)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [*SMALL, *DENSE, "benchmark=cityscapes", "aggregator=imgrad", "epochs=2", f"resume={run}"]
    proc = subprocess.run([sys.executable, "-m", "mtrl.supervised.train", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert (
        lines[0].startswith("mtrl.supervised.train: error:")
        and "aggregator: checkpoint 'ls' vs run 'imgrad'" in lines[0]
    )
    assert _tree(run) == before  # no train.log, no .hydra/, no new event file, resolved_config.yaml untouched
    assert not (tmp_path / "outputs").exists()


def test_refused_resume_in_process_builds_and_writes_nothing(tmp_path, monkeypatch):
    train(_cfg(tmp_path, *COMMON, "epochs=1", tensorboard=True), tmp_path)
    before = _tree(tmp_path)

    def no_data(*a, **k):
        raise AssertionError("data built before the checkpoint was checked")

    monkeypatch.setattr(trainer, "build_datasets", no_data)
    with pytest.raises(CheckpointError, match="aggregator: checkpoint 'ls' vs run 'imgrad'"):
        train(_cfg(tmp_path, "benchmark=cityscapes", "aggregator=imgrad", "epochs=2", "resume=true",
                   tensorboard=True), tmp_path)  # fmt: skip
    after = _tree(tmp_path)
    after.pop(".lock", None), before.pop(".lock", None)
    assert after == before


def test_checkpoint_of_another_code_version_is_refused_in_one_line(tmp_path):
    train(_cfg(tmp_path, *COMMON, "epochs=1"), tmp_path)
    path = list_checkpoints(tmp_path / "checkpoints")[-1]
    state = load_checkpoint(path)
    state["model"] = {k.replace("decoder", "dec"): v for k, v in state["model"].items()}  # a renamed parameter
    save_checkpoint(tmp_path / "checkpoints", 8, state, keep=5)
    with pytest.raises(CheckpointError, match="cannot be restored into this code version") as err:
        train(_cfg(tmp_path, *COMMON, "epochs=2", "resume=true"), tmp_path)
    assert "\n" not in str(err.value)
    assert torch.is_tensor(next(iter(load_checkpoint(path)["model"].values())))  # file kept
