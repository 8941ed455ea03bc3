"""Supervised training on synthetic data: every task loss falls (ls, cagrad, imgrad on NYUv2 and CityScapes),
logs and metrics.jsonl, exact resume (also after Ctrl-C mid-epoch), refused checkpoints, CelebA, the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from mtrl._paths import config_dir
from mtrl.aggregators import AGGREGATORS
from mtrl.checkpoint import CheckpointError, list_checkpoints
from mtrl.supervised import trainer
from mtrl.supervised.trainer import ConfigError, train

SMALL = [
    "data=synthetic", "model.width=0.125", "benchmark.synthetic.n_train=16", "benchmark.synthetic.n_val=4",
    "optim.batch_size=2", "optim.lr=5e-3", "train.torch_threads=1", "train.progress=false",
]  # fmt: skip
DENSE = ["benchmark.synthetic.height=32", "benchmark.synthetic.width=64"]  # 32x64 images


def _cfg(out: Path, *overrides: str, tensorboard: bool = False):
    dense = [] if "benchmark=celeba" in overrides else DENSE
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(
            config_name="supervised",
            overrides=[*SMALL, *dense, f"train.tensorboard={str(tensorboard).lower()}", f"out_dir={out}", *overrides],
        )


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One synthetic data set per benchmark, shared by the runs (written by the trainer itself)."""
    return {b: tmp_path_factory.mktemp(f"data_{b}") / "data" for b in ("nyuv2", "cityscapes")}


@pytest.mark.parametrize("benchmark", ["nyuv2", "cityscapes"])
@pytest.mark.parametrize("method", ["ls", "cagrad", "imgrad"])
def test_every_task_loss_falls(tmp_path: Path, data_roots: dict[str, Path], benchmark: str, method: str) -> None:
    cfg = _cfg(tmp_path, f"benchmark={benchmark}", f"aggregator={method}", "epochs=5",
               f"data.root={data_roots[benchmark]}")  # fmt: skip
    out = train(cfg, tmp_path)
    first, last = out["records"][0]["train_loss"], out["records"][-1]["train_loss"]
    assert set(first) == set(cfg.benchmark.tasks)
    for task in first:
        assert last[task] < 0.97 * first[task], (task, first[task], last[task])
    assert out["skipped"] == 0


def test_logs_metrics_jsonl_and_tensorboard(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "benchmark=nyuv2", "aggregator=imgrad", "epochs=2", "train.log_every=4", tensorboard=True)
    train(cfg, tmp_path)
    records = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["iteration"] == 16
    test = records[-1]["test"]
    for k in ("miou", "pix_acc", "abs_err", "rel_err", "normal_mean", "normal_median", "within_11_25", "within_30"):
        assert k in test and test[k] == test[k]  # present and not NaN
    from mtrl.supervised.metrics import delta_m

    assert records[-1]["delta_m"] == pytest.approx(delta_m(test, "nyuv2"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    per_epoch = EventAccumulator(str(tmp_path / "tb" / "epoch"))  # x = epoch
    per_epoch.Reload()
    assert [e.step for e in per_epoch.Scalars("test/delta_m")] == [1, 2]
    tags = set(acc.Tags()["scalars"]) | set(per_epoch.Tags()["scalars"])
    for tag in ("train/segmentation_loss", "train/normal_loss", "test/delta_m", "test/miou", "aggregator/cos_theta",
                "aggregator/imbalance_ratio", "aggregator/conflict_frac", "aggregator/pareto_failure",
                "aggregator/weight/depth", "aggregator/grad_norm/normal", "time/iter_ms"):  # fmt: skip
        assert tag in tags, tag
    assert [e.step for e in acc.Scalars("train/depth_loss")] == [4, 8, 12, 16]


def _params(path: Path) -> dict[str, torch.Tensor]:
    from mtrl.checkpoint import load_checkpoint

    return load_checkpoint(list_checkpoints(path / "checkpoints")[-1])["model"]


def test_resume_matches_an_uninterrupted_run_also_after_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    common = ("benchmark=cityscapes", "aggregator=cagrad", "augment=true")
    full = train(_cfg(tmp_path / "full", *common, "epochs=2"), tmp_path)
    # 1 epoch, then resume to 2
    train(_cfg(tmp_path / "split", *common, "epochs=1"), tmp_path)
    resumed = train(_cfg(tmp_path / "split", *common, "epochs=2", "resume=true"), tmp_path)
    # Ctrl-C at the 11th iteration (mid-epoch 2): a checkpoint is written, then resume
    real = trainer.aggregate_backward
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "aggregate_backward", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "ctrlc", *common, "epochs=2"), tmp_path)
    monkeypatch.setattr(trainer, "aggregate_backward", real)
    assert list_checkpoints(tmp_path / "ctrlc" / "checkpoints")[-1].name == "ckpt_0000000011.pt"
    after = train(_cfg(tmp_path / "ctrlc", *common, "epochs=2", "resume=true"), tmp_path)
    for run in (resumed, after):
        assert [r["test"] for r in run["records"]] == [r["test"] for r in full["records"]]
        assert [r["train_loss"] for r in run["records"]] == [r["train_loss"] for r in full["records"]]
    ref = _params(tmp_path / "full")
    for name in ("split", "ctrlc"):
        got = _params(tmp_path / name)
        assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_corrupt_or_mismatched_checkpoints_are_refused_and_kept(tmp_path: Path) -> None:
    train(_cfg(tmp_path, "benchmark=cityscapes", "aggregator=ls", "epochs=1"), tmp_path)
    with pytest.raises(CheckpointError, match="aggregator: checkpoint 'ls' vs run 'imgrad'"):
        train(_cfg(tmp_path, "benchmark=cityscapes", "aggregator=imgrad", "epochs=2", "resume=true"), tmp_path)
    ckpt = list_checkpoints(tmp_path / "checkpoints")[-1]
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        train(_cfg(tmp_path, "benchmark=cityscapes", "aggregator=ls", "epochs=2", "resume=true"), tmp_path)
    assert ckpt.exists() and ckpt.stat().st_size == len(data) // 2


def test_celeba_synthetic_run(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "benchmark=celeba", "aggregator=imgrad", "epochs=2", "benchmark.image_size=[32,32]",
               "benchmark.synthetic.n_train=64", "optim.batch_size=16", "model.width=0.0625")  # fmt: skip
    out = train(cfg, tmp_path)
    rec = out["records"][-1]
    assert len(rec["train_loss"]) == 40 and "5_o_Clock_Shadow" in rec["train_loss"]
    assert 0.0 <= rec["test"]["f1_mean"] <= 1.0 and "f1_mean" in rec["val"]
    assert isinstance(rec["delta_m"], float)  # against FAMO's single-task bases (meaningless on synthetic data)
    first, last = out["records"][0]["train_loss"], rec["train_loss"]
    assert sum(last.values()) < sum(first.values())


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown aggregator 'nope'"):
        trainer.check_config(_cfg(Path("/tmp/x"), "aggregator=nope"))
    with pytest.raises(ConfigError, match="shared must be one of"):
        trainer.check_config(_cfg(Path("/tmp/x"), "shared=all"))
    with pytest.raises(ConfigError, match="grad_scale"):
        trainer.check_config(_cfg(Path("/tmp/x"), "grad_scale=3"))
    with pytest.raises(ConfigError, match="data.root is required"):
        trainer.check_config(_cfg(Path("/tmp/x"), "data=real"))
    for bad in ("0", "two", "1.5"):
        with pytest.raises(ConfigError, match="train.torch_threads must be auto, null"):
            trainer.check_config(_cfg(Path("/tmp/x"), f"train.torch_threads={bad}"))


def test_torch_threads_default_is_auto_and_never_more_than_the_job_may_use(monkeypatch) -> None:
    """Issue 14: the supervised trainer takes ``train.torch_threads`` as RL does (``auto`` by default: the job's CPU
    allowance, here capped by ``OMP_NUM_THREADS``), so runs sharing a machine cannot oversubscribe it."""
    from omegaconf import OmegaConf

    from mtrl import _threads

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="supervised")
    assert cfg.train.torch_threads == "auto"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.resolve_torch_threads(trainer._torch_threads(cfg)) == 1
    OmegaConf.set_struct(cfg, False)
    del cfg.train["torch_threads"]  # a config written before the key existed: auto as well
    assert trainer._torch_threads(cfg) == "auto"


def test_cli_refuses_a_bad_root_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mtrl.supervised.train", "benchmark=nyuv2", f"data.root={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtrl.supervised.train: error: NYUv2 root")
    assert "train/image: missing" in lines[0] and "root/{train,val}/{image,label,depth,normal}" in lines[0]
    assert not (tmp_path / "outputs").exists()


def test_resume_from_a_run_directory_continues_there(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(_cfg(first, "benchmark=cityscapes", "epochs=1"), tmp_path)
    cfg = _cfg(first, "benchmark=cityscapes", "epochs=2", f"resume={first}", "out_dir=null")
    out = train(cfg, tmp_path / "hydra_dir")  # Hydra's fresh run directory is not used for outputs
    assert out["out_dir"] == str(first) and [r["epoch"] for r in out["records"]] == [1, 2]
    assert len((first / "metrics.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "hydra_dir" / "metrics.jsonl").exists()


@pytest.mark.parametrize("method", sorted(AGGREGATORS) + ["igbv1+nashmtl", "dwa+imgrad"])
def test_every_method_and_two_compositions_train(tmp_path: Path, data_roots: dict[str, Path], method: str) -> None:
    """One short epoch of synthetic NYUv2 through each registered method: finite losses, no skipped update."""
    cfg = _cfg(tmp_path, "benchmark=nyuv2", f"aggregator={method}", "epochs=1", "train.max_batches_per_epoch=3",
               f"data.root={data_roots['nyuv2']}")  # fmt: skip
    out = train(cfg, tmp_path)
    rec = out["records"][-1]
    assert rec["method"] == method and out["skipped"] == 0
    assert all(math.isfinite(v) for v in rec["train_loss"].values())


def test_sigterm_writes_a_checkpoint_and_exits_143(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15 item 3: SIGTERM (sent by Slurm before a kill) is handled like Ctrl-C: checkpoint, then exit 143."""
    real = trainer.aggregate_backward
    calls = {"n": 0}

    def terminating(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "aggregate_backward", terminating)
    with pytest.raises(SystemExit) as exc:
        train(_cfg(tmp_path, "benchmark=cityscapes", "aggregator=ls", "epochs=2"), tmp_path)
    assert exc.value.code == 143
    assert list_checkpoints(tmp_path / "checkpoints")[-1].name == "ckpt_0000000003.pt"


@pytest.mark.parametrize("method", ["uw", "dwa"])
def test_one_nan_batch_does_not_poison_a_loss_based_aggregator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              method: str) -> None:  # fmt: skip
    """Issue 15 item 1: the skipped update's NaN losses never reach ``aggregator.step``; the model stays finite."""
    real = trainer.task_losses
    calls = {"n": 0}

    def one_nan(*args, **kwargs):
        losses = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            losses = [losses[0] * float("nan"), *losses[1:]]
        return losses

    monkeypatch.setattr(trainer, "task_losses", one_nan)
    out = train(_cfg(tmp_path, "benchmark=cityscapes", f"aggregator={method}", "epochs=2"), tmp_path)
    assert out["skipped"] == 1
    assert all(torch.isfinite(v).all() for v in _params(tmp_path).values() if v.is_floating_point())


@pytest.mark.parametrize("damage", ["garbage", "shape"])
def test_a_corrupt_or_wrongly_shaped_data_file_is_named_in_one_line(tmp_path: Path, damage: str) -> None:
    """Issue 15: a damaged ``.npy`` file met during training ends with a ConfigError naming the file."""
    root = tmp_path / "data"
    common = ("benchmark=cityscapes", "aggregator=ls", "epochs=1", f"data.root={root}")
    train(_cfg(tmp_path / "a", *common), tmp_path)
    bad = root / "train" / "depth" / "3.npy"
    if damage == "garbage":
        bad.write_bytes(b"not a numpy file")
    else:
        np.save(bad, np.zeros((5, 7, 1), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"data file .*train/depth/3\.npy"):
        train(_cfg(tmp_path / "b", *common), tmp_path)


def test_batched_per_task_gradients_train_like_k_backward_passes(tmp_path: Path) -> None:
    """Issue 14: ``train.per_task_grads=batched`` (one batched VJP) trains as ``loop`` (K passes), to float rounding."""
    runs = {}
    for mode in ("loop", "batched"):
        runs[mode] = train(_cfg(tmp_path / mode, "benchmark=cityscapes", "aggregator=imgrad", "epochs=1",
                                "train.max_batches_per_epoch=4", f"train.per_task_grads={mode}"), tmp_path)  # fmt: skip
    a, b = _params(tmp_path / "loop"), _params(tmp_path / "batched")
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


def test_rep_grad_option_trains_and_is_refused_with_mtan_attention(tmp_path: Path) -> None:
    """Issue 14: ``train.grad_wrt=rep`` (LibMTL's rep_grad) runs on the plain SegNet and CelebA; refused with MTAN
    attention (no single shared representation); a checkpoint of the other mode is not resumed."""
    with pytest.raises(ConfigError, match="grad_wrt=rep needs one shared representation"):
        trainer.check_config(_cfg(tmp_path, "train.grad_wrt=rep"))
    with pytest.raises(ConfigError, match="train.grad_wrt must be one of"):
        trainer.check_config(_cfg(tmp_path, "train.grad_wrt=both"))
    with pytest.raises(ConfigError, match="train.per_task_grads must be one of"):
        trainer.check_config(_cfg(tmp_path, "train.per_task_grads=fast"))
    common = ("benchmark=cityscapes", "aggregator=mgda", "model.attention=false", "epochs=3")
    out = train(_cfg(tmp_path, *common, "train.grad_wrt=rep"), tmp_path)
    first, last = out["records"][0]["train_loss"], out["records"][-1]["train_loss"]
    assert out["skipped"] == 0 and all(last[t] < first[t] for t in first), (first, last)
    with pytest.raises(CheckpointError, match="grad_wrt: checkpoint 'rep' vs run None"):
        train(_cfg(tmp_path, *common, "epochs=4", "resume=true"), tmp_path)
