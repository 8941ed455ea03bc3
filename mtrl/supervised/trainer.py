"""Supervised multi-task training with a pluggable gradient aggregator (SPEC §6).

Reads top to bottom: config check -> seeding -> data -> model -> aggregator/optimiser -> resume -> epochs (train
with the aggregator on the shared parameters, evaluate, log, checkpoint). Per iteration:

1. forward, one loss per task (``mtrl.supervised.metrics``);
2. ``aggregate_backward``: ``G`` = per-task gradients of the *shared* parameters (``shared=backbone`` or
   ``backbone+attention``, see ``mtrl.supervised.models``; K backward passes or one batched vector-Jacobian pass,
   ``train.per_task_grads``; or, with ``train.grad_wrt=rep``, of the shared representation: the ``rep_grad``
   approximation, ``aggregate_backward_rep``), combined by the aggregator, written times ``K``
   (``grad_scale=K``, the sum-of-losses scale of the reference code) or as is (``grad_scale=1``); every other
   parameter gets the gradient of ``Σ_i L_i`` (``head_grads=plain``: each head, and each attention mask when it is
   not shared, its own task's gradient) or of ``Σ_i α_i L_i`` (``head_grads=weighted``, the Nash-MTL/FAMO code);
3. ``optimizer.step()`` unless the aggregator skipped a degenerate input (counted in ``train/skipped_updates``);
4. ``aggregator.step(losses)``: methods that read losses get them re-evaluated at the updated parameters on the
   same batch (as FAMO's trainer does); the others get the losses of step 1.

Outputs in the run directory: ``tb/`` (TensorBoard), ``metrics.jsonl`` (one line per epoch: test metrics, Δm%,
mean train losses), ``checkpoints/ckpt_<iteration>.pt``, ``resolved_config.yaml``, ``diagnostics/shared.bin``
(the aggregator's raw diagnostics, one row per iteration, ``train.diagnostics_file``; :mod:`mtrl.diagnostics_file`),
and at the end ``summary.json``: the papers' evaluation (``mtrl.supervised.evaluation``: the mean of the last 10
epochs' test metrics, CelebA's test F1 at the best-validation epoch, and Δm% of those).

TensorBoard tags: ``train/<task>_loss``, ``train/lr``, ``train/skipped_updates``, ``time/iter_ms``,
``time/aggregator_ms``, ``aggregator/weight/<task>``, ``aggregator/grad_norm/<task>``,
``aggregator/cos_to_direction/<task>``, ``aggregator/imbalance_ratio``, ``aggregator/cos_theta``,
``aggregator/conflict_frac``, ``aggregator/pareto_failure``, ``aggregator/solver_ms`` (window means, x = iteration);
``test/<metric>``, ``test/<task>_loss``, ``test/delta_m`` and ``train_epoch/<task>_loss`` (x = epoch, in ``tb/epoch/``;
a resume purges what the interrupted run logged after its checkpoint from both).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from mtrl import _cli, _threads, seeding
from mtrl._io import JsonlRecords, atomic_write_text
from mtrl._io import remove_temp_files as remove_text_temp_files
from mtrl.aggregators import aggregate_backward, make_aggregator
from mtrl.aggregators._autograd import HEAD_GRADS, PerTaskGradients, aggregate_backward_rep
from mtrl.aggregators._autograd import MODES as PER_TASK_GRADS
from mtrl.aggregators._base import GramWeighting
from mtrl.checkpoint import (
    ABANDONED,
    CheckpointError,
    abandon_newer,
    check_optimizer_state,
    claim_run_dir,
    clear_lost_run,
    continued_run_dir,
    find_resume_checkpoint,
    remove_temp_files,
    restoring,
    save_checkpoint,
)
from mtrl.diagnostics_file import DiagnosticsWriter
from mtrl.supervised import evaluation as E
from mtrl.supervised import metrics as M
from mtrl.supervised.data import (
    CelebADataset,
    DataLayoutError,
    NpyMultiTaskDataset,
    check_npy_root,
    read_celeba_index,
)
from mtrl.supervised.models import SHARED_CHOICES, CelebACNN, MTANSegNet
from mtrl.supervised.synthetic import WRITERS

log = logging.getLogger("mtrl.supervised")
BENCHMARKS = ("nyuv2", "cityscapes", "celeba")
METRICS_FILE = "metrics.jsonl"
_AGG_SCALARS = ("imbalance_ratio", "cos_theta", "conflict_frac", "pareto_failure", "solver_ms")
_AGG_LISTS = {"weights": "weight", "grad_norms": "grad_norm", "cos_to_direction": "cos_to_direction"}


GRAD_WRT = ("params", "rep")


def _torch_threads(cfg: DictConfig) -> Any:
    """``train.torch_threads``: ``auto`` where a config lacks the key (``null`` stays torch's own default)."""
    return OmegaConf.select(cfg, "train.torch_threads", default=_threads.AUTO)


def _opt(cfg: DictConfig, key: str, default: Any) -> Any:
    """A setting added after configs and checkpoints existed (its default where an older config lacks it)."""
    v = OmegaConf.select(cfg, key)
    return default if v is None else v


class ConfigError(ValueError):
    """A configuration that cannot run; reported as one line before anything is built."""


# keys whose shipped value is null, and the kind of value they take otherwise (the type check of every key)
_NULLABLE = {"train.eval_batch_size": "int", "train.max_batches_per_epoch": "int", "optim.lr_step": "int"}


# ====================================================================== config
def _kwargs(cfg: DictConfig) -> dict[str, Any]:
    kw = cfg.get("aggregator_kwargs") or {}
    return OmegaConf.to_container(kw, resolve=True) if isinstance(kw, DictConfig) else dict(kw)  # type: ignore


def task_names(cfg: DictConfig) -> list[str]:
    """Task names of the configured benchmark (CelebA: its 40 attribute names)."""
    if cfg.benchmark.name == "celeba":
        from mtrl.supervised.synthetic import CELEBA_ATTRIBUTES

        return list(CELEBA_ATTRIBUTES[: int(cfg.benchmark.n_tasks)])
    return list(cfg.benchmark.tasks)


def check_config(cfg: DictConfig) -> None:
    """Reject impossible configurations with one sentence (:class:`ConfigError`); check a real data root."""
    name = cfg.benchmark.name
    wrong = _cli.check_types(cfg, "supervised", nullable=_NULLABLE, exempt=("resume",))
    if wrong:  # every key's type first, as the RL side (issue 21): later checks compute with the values
        raise ConfigError(wrong)
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARKS)}")
    try:
        make_aggregator(str(cfg.aggregator), **_kwargs(cfg))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"aggregator: {err}") from None
    if cfg.shared not in SHARED_CHOICES:
        raise ConfigError(f"shared must be one of {', '.join(SHARED_CHOICES)}, got {cfg.shared!r}")
    if str(cfg.grad_scale) not in ("K", "1"):
        raise ConfigError(f"grad_scale must be K (sum-of-losses scale) or 1 (as returned), got {cfg.grad_scale!r}")
    _check_head_grads_and_preset(cfg)
    positive = {"epochs": cfg.epochs, "optim.batch_size": cfg.optim.batch_size, "optim.lr": cfg.optim.lr,
                "model.width": cfg.model.width, "train.log_every": cfg.train.log_every,
                "train.checkpoint_every": cfg.train.checkpoint_every,
                "train.keep_checkpoints": cfg.train.keep_checkpoints}  # fmt: skip
    for opt in ("train.max_batches_per_epoch", "train.eval_batch_size", "optim.lr_step", "evaluation.last_k"):
        v = OmegaConf.select(cfg, opt)
        if v is not None:
            positive[opt] = v
    for k, v in positive.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or not math.isfinite(v):
            raise ConfigError(f"{k} must be a positive finite number, got {v!r}")
    if float(cfg.model.width) * 64 < 2:  # the first layer's 64 x width channels (fewer than 2 were silently 2)
        raise ConfigError(f"model.width={cfg.model.width} gives fewer than 2 channels in the first layer (64 x width); "
                          "use model.width >= 0.03125")  # fmt: skip
    try:
        _threads.check_torch_threads(_torch_threads(cfg))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if str(_opt(cfg, "train.per_task_grads", "auto")) not in PER_TASK_GRADS:
        raise ConfigError(f"train.per_task_grads must be one of {', '.join(PER_TASK_GRADS)}, "
                          f"got {cfg.train.per_task_grads!r}")  # fmt: skip
    grad_wrt = str(_opt(cfg, "train.grad_wrt", "params"))
    if grad_wrt not in GRAD_WRT:
        raise ConfigError(f"train.grad_wrt must be one of {', '.join(GRAD_WRT)}, got {grad_wrt!r}")
    if grad_wrt == "rep" and cfg.model.arch == "mtan_segnet" and bool(cfg.model.attention):
        raise ConfigError(
            "train.grad_wrt=rep needs one shared representation: MTAN's attention branch reuses shared layers "
            "inside each task's path; use model.attention=false (plain SegNet) or train.grad_wrt=params"
        )
    if cfg.train.num_workers < 0:
        raise ConfigError(f"train.num_workers must be >= 0, got {cfg.train.num_workers}")
    if not cfg.data.synthetic:
        root = None if OmegaConf.is_missing(cfg.data, "root") else cfg.data.get("root")
        if root is None:
            raise ConfigError(f"data.root is required for real {name} data (or data=synthetic); see docs/supervised.md")
        try:
            if name == "celeba":
                read_celeba_index(root)
            else:
                check_npy_root(root, name)
        except DataLayoutError as err:
            raise ConfigError(str(err)) from None


def _check_head_grads_and_preset(cfg: DictConfig) -> None:
    """``head_grads`` (``plain|weighted``; weighted needs a method with task weights) and an ``experiment=``
    preset's benchmark (a preset holds one benchmark's reference settings; see docs/reference-supervised.md)."""
    head = str(_opt(cfg, "head_grads", "plain"))
    if head not in HEAD_GRADS:
        raise ConfigError(f"head_grads must be one of {', '.join(HEAD_GRADS)}, got {head!r}")
    if head == "weighted":
        agg = make_aggregator(str(cfg.aggregator), **_kwargs(cfg))
        if not isinstance(agg, GramWeighting):  # e.g. pcgrad, or a composition: ask it once on a small input
            K = len(task_names(cfg))
            G = torch.randn(K, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            if agg(G, losses=torch.ones(K, dtype=torch.float64)).weights is None:
                raise ConfigError(f"head_grads=weighted gives head i the gradient of α_i L_i and needs task weights "
                                  f"α; aggregator {cfg.aggregator} returns none: use head_grads=plain")  # fmt: skip
    preset = OmegaConf.select(cfg, "preset")
    if preset is not None and preset.get("benchmark") and str(preset.benchmark) != str(cfg.benchmark.name):
        b = cfg.benchmark.name
        raise ConfigError(f"experiment={preset.name} holds the {preset.benchmark} reference settings; it cannot "
                          f"run with benchmark={b} (use experiment=<method>_{b})")  # fmt: skip


# ====================================================================== data and model
def _ensure_synthetic(cfg: DictConfig, run_dir: Path) -> Path:
    """Write the synthetic data set once (``data.root`` or ``<run_dir>/synthetic_data``); reuse it if present."""
    name = cfg.benchmark.name
    root = Path(cfg.data.root) if cfg.data.get("root") else run_dir / "synthetic_data"
    try:
        read_celeba_index(root) if name == "celeba" else check_npy_root(root, name)
        return root
    except DataLayoutError:
        pass
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"data.root {str(root)!r} is not empty and has no valid {name} layout; refusing to write")
    s = OmegaConf.to_container(cfg.benchmark.synthetic, resolve=True)
    WRITERS[name](root, **s, seed=0)  # type: ignore[arg-type]
    log.info("wrote synthetic %s data to %s", name, root)
    return root


def build_datasets(cfg: DictConfig, run_dir: Path) -> tuple[Dataset, dict[str, Dataset]]:
    """``(train set, {eval split: set})``: NYUv2/CityScapes evaluate on ``val`` (the papers' test split, logged
    as ``test/``); CelebA on ``val`` and ``test``."""
    name = cfg.benchmark.name
    root = _ensure_synthetic(cfg, run_dir) if cfg.data.synthetic else Path(cfg.data.root)
    if name == "celeba":
        size = tuple(cfg.benchmark.image_size)
        return CelebADataset(root, "train", size), {s: CelebADataset(root, s, size) for s in ("val", "test")}
    train = NpyMultiTaskDataset(root, name, "train", augment=bool(cfg.augment))
    return train, {"test": NpyMultiTaskDataset(root, name, "val", augment=False)}


def build_model(cfg: DictConfig) -> MTANSegNet | CelebACNN:
    if cfg.model.arch == "celeba_cnn":
        return CelebACNN(int(cfg.benchmark.n_tasks), float(cfg.model.width))
    if cfg.model.arch == "mtan_segnet":
        tasks = dict(cfg.benchmark.tasks)
        return MTANSegNet(tasks, int(cfg.benchmark.n_classes), float(cfg.model.width), bool(cfg.model.attention))
    raise ConfigError(f"unknown model.arch {cfg.model.arch!r}; valid: mtan_segnet, celeba_cnn")


def task_losses(benchmark: str, tasks: dict[str, str] | None, pred: Any, batch: dict[str, torch.Tensor]) -> list:
    """One scalar loss per task (MTAN ``model_fit``; CelebA: BCE per attribute)."""
    if benchmark == "celeba":
        y = batch["attributes"]
        per = torch.nn.functional.binary_cross_entropy_with_logits(pred, y, reduction="none").mean(0)
        return list(per.unbind())
    out = []
    for t, kind in (tasks or {}).items():
        if kind == "segmentation":
            out.append(M.segmentation_loss(pred[t], batch["label"]))
        elif kind == "depth":
            out.append(M.depth_loss(pred[t], batch["depth"]))
        else:
            out.append(M.normal_loss(pred[t], batch["normal"]))
    return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, cfg: DictConfig, device: torch.device) -> dict[str, float]:
    """Test metrics of one split: mIoU/pixel accuracy from a confusion matrix over the split, depth and normal
    errors and losses as means of per-batch values (SPEC §6); CelebA: F1 and accuracy per attribute and their mean."""
    name = cfg.benchmark.name
    tasks = None if name == "celeba" else dict(cfg.benchmark.tasks)
    names = task_names(cfg)
    model.eval()
    bm = M.BatchMean()
    conf = M.ConfusionMatrix(int(cfg.benchmark.n_classes)) if name != "celeba" else None
    f1 = M.BinaryF1(len(names)) if name == "celeba" else None
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        pred = model(batch["image"])
        for t, loss in zip(names, task_losses(name, tasks, pred, batch)):
            bm.add(f"{t}_loss", float(loss))
        if f1 is not None:
            f1.update(pred, batch["attributes"])
            continue
        for t, kind in tasks.items():  # type: ignore[union-attr]
            if kind == "segmentation":
                conf.update(pred[t].argmax(1), batch["label"])  # type: ignore[union-attr]
            elif kind == "depth":
                for k, v in zip(("abs_err", "rel_err"), M.depth_errors(pred[t], batch["depth"])):
                    bm.add(k, v)
            else:
                keys = ("normal_mean", "normal_median", "within_11_25", "within_22_5", "within_30")
                for k, v in zip(keys, M.normal_errors(pred[t], batch["normal"])):
                    bm.add(k, v)
    out = bm.means()
    if conf is not None:
        out["miou"], out["pix_acc"] = conf.miou(), conf.pix_acc()
    if f1 is not None:
        scores, acc = f1.f1(), f1.accuracy()
        out["f1_mean"], out["acc_mean"] = float(scores.mean()), float(acc.mean())
        out.update({f"f1/{t}": float(v) for t, v in zip(names, scores)})
    return out


# ====================================================================== logging
class _Writer:
    """TensorBoard scalars and ``metrics.jsonl`` (rewritten atomically).

    Two event streams, one x-axis each, so that a resume can purge both: ``tb/`` (x = iteration: ``train/``,
    ``aggregator/``, ``time/``) and ``tb/epoch/`` (x = epoch: ``test/``, ``val/``, ``train_epoch/``). ``purge``
    (on resume: ``(iteration + 1, epoch + 1)`` of the checkpoint) drops what the interrupted run logged after the
    checkpoint, so each step appears once.
    """

    def __init__(self, out_dir: Path, enabled: bool, purge: tuple[int, int] | None = None) -> None:
        self.out_dir = out_dir
        self.metrics = JsonlRecords(out_dir / METRICS_FILE)
        self.tb = self.tb_epoch = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            it, ep = purge if purge is not None else (None, None)
            self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=it)
            self.tb_epoch = SummaryWriter(str(out_dir / "tb" / "epoch"), purge_step=ep)

    def scalars(self, values: dict[str, float], step: int, per_epoch: bool = False) -> None:
        tb = self.tb_epoch if per_epoch else self.tb
        if tb is not None:
            for k, v in values.items():
                if v is not None and math.isfinite(float(v)):
                    tb.add_scalar(k, float(v), step)

    def text(self, tag: str, text: str) -> None:
        if self.tb is not None:
            self.tb.add_text(tag, "```yaml\n" + text + "\n```", 0)

    def record(self, rec: dict[str, Any]) -> None:
        self.metrics.append(rec)

    def restore(self, up_to_epoch: int, saved: list[dict[str, Any]] | None = None) -> None:
        self.metrics.restore("epoch", up_to_epoch, saved)

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.metrics.records

    def close(self) -> None:
        for tb in (self.tb, self.tb_epoch):
            if tb is not None:
                tb.flush()
                tb.close()


def _window_add(window: dict[str, list[float]], tasks: list[str], res: Any) -> None:
    stats = res.stats
    for key in _AGG_SCALARS:
        if stats.get(key) is not None:
            window[f"aggregator/{key}"].append(float(stats[key]))
    for key, short in _AGG_LISTS.items():
        values = stats.get(key)
        if values is not None:
            for t, v in zip(tasks, list(values)):
                window[f"aggregator/{short}/{t}"].append(float(v))


def _means(window: dict[str, list[float]]) -> dict[str, float]:
    out = {}
    for k, vs in window.items():
        finite = [v for v in vs if math.isfinite(v)]
        if finite:
            out[k] = float(np.mean(finite))
    return out


# ====================================================================== resume
# a checkpoint loaded by the command line's check before Hydra starts (key -> (path, payload)), reused by ``train``
_PRELOADED: dict[str, tuple[Path, dict[str, Any]]] = {}


def _fingerprint(cfg: DictConfig, n_train: int | None = None) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it (``n_train`` is known once the data is read)."""
    fp = {"benchmark": cfg.benchmark.name, "tasks": ",".join(task_names(cfg)), "arch": str(cfg.model.arch),
          "width": float(cfg.model.width), "attention": bool(cfg.model.attention), "shared": str(cfg.shared),
          "grad_scale": str(cfg.grad_scale), "aggregator": str(cfg.aggregator),
          "synthetic": bool(cfg.data.synthetic), "n_train": n_train}  # fmt: skip
    if str(_opt(cfg, "train.grad_wrt", "params")) != "params":  # only when not the default: older checkpoints resume
        fp["grad_wrt"] = str(cfg.train.grad_wrt)
    if str(_opt(cfg, "head_grads", "plain")) != "plain":  # likewise
        fp["head_grads"] = str(cfg.head_grads)
    return fp


def load_resume(cfg: DictConfig, ckpt_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint ``cfg.resume`` names, checked against the config (``n_train`` is checked once the data is
    read). ``resume=true``: the newest intact checkpoint (a corrupt newest one is reported in one line and the
    next older one used); the one the command line's check loaded already is reused."""
    key = f"{cfg.resume}|{Path(ckpt_dir).resolve()}"
    if key in _PRELOADED:
        return _PRELOADED.pop(key)
    return find_resume_checkpoint(cfg.resume, ckpt_dir, _fingerprint(cfg), skip=("n_train",))


def precheck(cfg: DictConfig, run_dir: str | Path | None, lock: bool = True) -> None:
    """The command line's check before Hydra creates anything: the config, then the checkpoint a resume names
    (a refused resume costs one line and writes nothing), then the run directory's lock."""
    check_config(cfg)
    resume = cfg.resume not in (False, None, "false")
    run_dir = cfg.get("out_dir") or (continued_run_dir(cfg.resume) if resume else None) or run_dir
    if run_dir is None:
        return
    ckpt_dir = Path(run_dir) / "checkpoints"
    if resume:
        found = load_resume(cfg, ckpt_dir)
        if found is not None:
            _PRELOADED[f"{cfg.resume}|{ckpt_dir.resolve()}"] = found
    if lock:
        claim_run_dir(run_dir, cfg.resume)  # before Hydra writes .hydra/ and train.log; a directory holding a
        # run: refused, the lock released


# ====================================================================== training
def _device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def _epoch_batches(n: int, batch_size: int, gen: torch.Generator, drop_single: bool) -> list[list[int]]:
    perm = torch.randperm(n, generator=gen).tolist()
    batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_single and len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()  # BatchNorm1d cannot train on one sample
    return batches


_SIGUSR2 = getattr(signal, "SIGUSR2", 0)  # 0: not on this platform


def train(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Run (or resume) one supervised multi-task training; return a summary (last metrics, Δm%, paths).

    Whatever ends it after the run directory is claimed (the end, a refused resume, a damaged data file, a checkpoint
    of another shape, an interrupt) releases the lock, restores the thread count and the signal handlers and closes
    the writers: ``cleanup`` undoes each as it is set up, in reverse order."""
    with contextlib.ExitStack() as cleanup:
        return _train(cfg, out_dir, cleanup)


def _train(cfg: DictConfig, out_dir: str | Path, cleanup: contextlib.ExitStack) -> dict[str, Any]:
    # --- config, seeding, device
    check_config(cfg)
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else continued_run_dir(cfg.resume) or Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # one run writes into a directory at a time (a second one: one line, exit 2); a fresh run never reuses a
    # directory that holds a run (issue 21)
    cleanup.callback(claim_run_dir(out_dir, cfg.resume).close)
    cleanup.callback(torch.set_num_threads, torch.get_num_threads())
    remove_temp_files(out_dir / "checkpoints")
    remove_text_temp_files(out_dir)
    _threads.set_torch_threads(_torch_threads(cfg))  # auto: the job's CPUs / launcher jobs (mtrl/_threads.py)
    rngs = seeding.seed_everything(int(cfg.seed))
    device = _device(str(cfg.device))
    name = cfg.benchmark.name
    tasks = task_names(cfg)
    task_kinds = None if name == "celeba" else dict(cfg.benchmark.tasks)
    K = len(tasks)

    # --- resume: the checkpoint is read and checked against the config before anything is built or written
    ckpt_dir = out_dir / "checkpoints"
    resumed = None
    if cfg.resume not in (False, None, "false"):
        resumed = load_resume(cfg, ckpt_dir)
        if resumed is None:  # a fresh start: the lost run's metrics and TensorBoard events must not mix in
            gone = clear_lost_run(out_dir)
            log.warning("resume=%s: no checkpoint in %s yet, starting from scratch%s", cfg.resume, ckpt_dir,
                        f" (removed the lost run's {', '.join(gone)})" if gone else "")  # fmt: skip

    # --- data
    train_set, eval_sets = build_datasets(cfg, out_dir)
    bs = int(cfg.optim.batch_size)
    ebs = int(cfg.train.eval_batch_size or bs)
    workers = int(cfg.train.num_workers)
    eval_loaders = {
        s: DataLoader(d, batch_size=ebs, shuffle=False, num_workers=workers, generator=torch.Generator().manual_seed(0))
        for s, d in eval_sets.items()
    }

    # --- model, aggregator, optimiser
    model = build_model(cfg).to(device)
    shared, task_specific = model.split_parameters(str(cfg.shared))
    aggregator = make_aggregator(str(cfg.aggregator), **_kwargs(cfg))
    aggregator.seed(int(cfg.seed))
    scale = float(K) if str(cfg.grad_scale) == "K" else 1.0
    jacobian = PerTaskGradients(str(_opt(cfg, "train.per_task_grads", "auto")))
    by_rep = str(_opt(cfg, "train.grad_wrt", "params")) == "rep"
    head_grads = str(_opt(cfg, "head_grads", "plain"))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.optim.lr))
    step_size = cfg.optim.get("lr_step")
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=int(step_size or 10**9), gamma=float(cfg.optim.lr_gamma)
    )

    # --- start or resume
    fingerprint = _fingerprint(cfg, len(train_set))
    epoch, batch_pos, iteration, n_skipped = 0, 0, 0, 0
    perm_batches: list[list[int]] | None = None
    loader_seed = 0
    epoch_sums = [0.0] * K
    epoch_count = 0
    saved_records = None
    if resumed is not None:
        path, state = resumed
        saved_records = state.get("records")  # format v2: metrics.jsonl up to the checkpoint (v1: none)
        theirs = state.get("fingerprint", {}).get("n_train")
        if theirs != fingerprint["n_train"]:
            raise CheckpointError(f"checkpoint {path} does not match this run (n_train: checkpoint {theirs!r} vs run "
                                  f"{fingerprint['n_train']!r}); refusing to resume, file kept")  # fmt: skip
        with restoring(path):  # a checkpoint of another code version (missing key, other shapes): one line
            model.load_state_dict(state["model"])
            check_optimizer_state(optimizer, state["optimizer"])  # Adam moments of another shape: refused
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            aggregator.load_state_dict(state["aggregator"])
            jacobian.load_state_dict(state.get("per_task_grads", {}))
            seeding.set_state(rngs, state["rng"])
            epoch, batch_pos, iteration = int(state["epoch"]), int(state["batch"]), int(state["iteration"])
            n_skipped = int(state["n_skipped"])
            perm_batches, loader_seed = state["batches"], int(state["loader_seed"])
            epoch_sums, epoch_count = list(state["epoch_sums"]), int(state["epoch_count"])
        del state
        log.info("resumed from %s (epoch %d, batch %d)", path, epoch, batch_pos)
        newer = abandon_newer(path.parent, iteration)
        if newer:  # a later resume=true must continue this branch, not the one left behind
            log.warning("resumed from the older %s: %d newer checkpoint(s) moved to %s", path.name, len(newer),
                        path.parent / ABANDONED)  # fmt: skip
    # TensorBoard (after the resume): what the interrupted run logged after the checkpoint is purged
    writer = _Writer(out_dir, bool(cfg.train.tensorboard),
                     purge=(iteration + 1, epoch + 1) if resumed is not None else None)  # fmt: skip
    cleanup.callback(writer.close)
    if resumed is not None:
        writer.restore(epoch, saved_records)
    raw = DiagnosticsWriter(out_dir, "shared", tasks, x="iteration", keep_up_to=iteration if resumed is not None
                            else None) if bool(_opt(cfg, "train.diagnostics_file", True)) else None  # fmt: skip
    if raw is not None:
        cleanup.callback(raw.flush)
    text = OmegaConf.to_yaml(cfg, resolve=True)
    atomic_write_text(out_dir / "resolved_config.yaml", text)
    if resumed is None:
        writer.text("config", text)

    def checkpoint() -> Path:
        payload = {
            "fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "aggregator": aggregator.state_dict(),
            "per_task_grads": jacobian.state_dict(),
            "rng": seeding.get_state(rngs), "epoch": epoch, "batch": batch_pos, "iteration": iteration,
            "n_skipped": n_skipped, "batches": perm_batches, "loader_seed": loader_seed, "epoch_sums": epoch_sums,
            "epoch_count": epoch_count, "records": list(writer.records),
        }  # fmt: skip
        if raw is not None:  # the raw rows up to this iteration are on disk before the checkpoint names it
            raw.flush(sync=True)
        return save_checkpoint(ckpt_dir, iteration, payload, int(cfg.train.keep_checkpoints))

    stop: dict[str, Any] = {"requested": False, "signal": None}

    def on_sigint(signum: int, frame: Any) -> None:
        if stop["requested"] and signum != _SIGUSR2:  # second Ctrl-C / SIGTERM: stop now (SIGUSR2 may come twice)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stop["requested"] = True
        stop["signal"] = signum
        log.warning("%s: writing a checkpoint after this iteration (again to stop at once)",
                    signal.Signals(signum).name)  # fmt: skip

    # SIGTERM (what Slurm and most schedulers send before killing) is handled like Ctrl-C; exit status 143
    in_main = sys.modules.get("threading") is None or __import__("threading").current_thread().name == "MainThread"
    old_handler = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    old_term = signal.signal(signal.SIGTERM, on_sigint) if in_main else None
    # SIGUSR2: what submitit asks Slurm to send before a time limit (mtrl/launch/_slurm.py): the same, exit 140;
    # a handler installed before (submitit's, in a hydra/launcher=slurm job) then requeues the job
    old_usr2 = signal.signal(_SIGUSR2, on_sigint) if in_main and _SIGUSR2 else None
    for signum, old in ((signal.SIGINT, old_handler), (signal.SIGTERM, old_term), (_SIGUSR2, old_usr2)):
        if old is not None:
            cleanup.callback(signal.signal, signum, old)
    total_epochs = int(cfg.epochs)
    max_batches = cfg.train.max_batches_per_epoch
    last: dict[str, Any] = {}
    final: dict[str, Any] | None = None
    try:
        while epoch < total_epochs:
            # --- one epoch of training
            model.train()
            if perm_batches is None:
                perm_batches = _epoch_batches(len(train_set), bs, rngs.torch, drop_single=name == "celeba")
                if max_batches:
                    perm_batches = perm_batches[: int(max_batches)]
                batch_pos, epoch_sums, epoch_count = 0, [0.0] * K, 0
                loader_seed = int(torch.randint(2**62, (1,), generator=rngs.torch))
            # the loader's own generator (worker seeds) keeps the global RNG, which augmentation draws from, untouched
            gen = torch.Generator().manual_seed(loader_seed + batch_pos)
            loader = DataLoader(train_set, batch_sampler=perm_batches[batch_pos:], num_workers=workers, generator=gen)
            bar = _progress(cfg.train.progress, len(perm_batches), batch_pos, f"epoch {epoch + 1}/{total_epochs}")
            window: dict[str, list[float]] = defaultdict(list)
            t_iter = t_epoch = time.perf_counter()
            epoch_agg_ms, epoch_iters = 0.0, 0
            for batch in loader:
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                if by_rep:  # the rep_grad approximation: G w.r.t. the shared representation
                    rep = model.encode(batch["image"])
                    rep_in = rep.detach().requires_grad_()
                    losses = task_losses(name, task_kinds, model.decode(rep_in), batch)
                else:
                    losses = task_losses(name, task_kinds, model(batch["image"]), batch)
                optimizer.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                if by_rep:
                    res = aggregate_backward_rep(aggregator, losses, rep, rep_in, task_specific, scale, jacobian,
                                                 head_grads)  # fmt: skip
                else:
                    res = aggregate_backward(aggregator, losses, shared, task_specific, scale=scale, jacobian=jacobian,
                                             head_grads=head_grads)  # fmt: skip
                agg_ms = (time.perf_counter() - t0) * 1e3
                detached = torch.stack([loss.detach() for loss in losses])
                if res.skipped:
                    n_skipped += 1
                else:
                    optimizer.step()
                if res.skipped or not bool(torch.isfinite(detached).all()):
                    pass  # a skipped or non-finite update must not reach the method's state
                elif aggregator.uses_losses:
                    with torch.no_grad():
                        after = torch.stack(
                            [loss.detach() for loss in task_losses(name, task_kinds, model(batch["image"]), batch)]
                        )
                    if bool(torch.isfinite(after).all()):
                        aggregator.step(after.cpu())
                else:
                    aggregator.step(detached.cpu())
                values = detached.cpu().tolist()
                for i, t in enumerate(tasks):
                    window[f"train/{t}_loss"].append(values[i])
                    epoch_sums[i] += values[i]
                epoch_count += 1
                window["time/aggregator_ms"].append(agg_ms)
                epoch_agg_ms, epoch_iters = epoch_agg_ms + agg_ms, epoch_iters + 1
                _window_add(window, tasks, res)
                iteration += 1
                batch_pos += 1
                if raw is not None:
                    raw.add(iteration, iteration, res.stats, values)
                window["time/iter_ms"].append((time.perf_counter() - t_iter) * 1e3)
                t_iter = time.perf_counter()
                if iteration % int(cfg.train.log_every) == 0:
                    writer.scalars({**_means(window), "train/skipped_updates": n_skipped,
                                    "train/lr": optimizer.param_groups[0]["lr"]}, iteration)  # fmt: skip
                    window = defaultdict(list)
                    if raw is not None:
                        raw.flush()
                if bar is not None:
                    bar.set_postfix({t[:8]: f"{v:.3f}" for t, v in list(zip(tasks, values))[:4]}, refresh=False)
                    bar.update(1)
                if stop["requested"]:
                    path = checkpoint()
                    log.warning(
                        "interrupted at epoch %d, batch %d: checkpoint written to %s", epoch + 1, batch_pos, path
                    )
                    if stop["signal"] == _SIGUSR2 and callable(old_usr2):
                        old_usr2(_SIGUSR2, None)  # submitit's: resubmit this job, exit
                    if stop["signal"] in (signal.SIGTERM, _SIGUSR2):
                        raise SystemExit(128 + stop["signal"])
                    raise KeyboardInterrupt
            if bar is not None:
                bar.close()
            if window:
                writer.scalars({**_means(window), "train/skipped_updates": n_skipped,
                                "train/lr": optimizer.param_groups[0]["lr"]}, iteration)  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_time = time.perf_counter() - t_epoch
            scheduler.step()
            epoch += 1
            perm_batches = None

            # --- evaluate, log, checkpoint
            results = {s: evaluate(model, ld, cfg, device) for s, ld in eval_loaders.items()}
            test = results["test"]
            dm = M.delta_m_if_known(test, name)
            train_means = {t: epoch_sums[i] / max(epoch_count, 1) for i, t in enumerate(tasks)}
            rec = {"epoch": epoch, "iteration": iteration, "benchmark": name, "method": str(cfg.aggregator),
                   "seed": int(cfg.seed), "synthetic": bool(cfg.data.synthetic), "train_loss": train_means,
                   "test": test, "delta_m": dm, "skipped_updates": n_skipped,
                   "train_time_s": train_time, "iter_ms": 1e3 * train_time / max(epoch_iters, 1),
                   "aggregate_backward_ms": epoch_agg_ms / max(epoch_iters, 1)}  # fmt: skip
            if "val" in results:
                rec["val"] = results["val"]
            writer.record(rec)
            scal = {f"test/{k}": v for k, v in test.items() if not k.startswith("f1/")}
            scal.update({f"test_tasks/{k[3:]}/f1": v for k, v in test.items() if k.startswith("f1/")})
            scal.update({f"train_epoch/{t}_loss": v for t, v in train_means.items()})
            if "val" in results:
                scal.update({f"val/{k}": v for k, v in results["val"].items() if not k.startswith("f1/")})
            if dm is not None:
                scal["test/delta_m"] = dm
            writer.scalars(scal, epoch, per_epoch=True)
            last = rec
            headline = f"dm={dm:+.2f}%" if dm is not None else f"f1={test.get('f1_mean', float('nan')):.4f}"
            shown = M.DENSE_METRICS.get(name, ("f1_mean", "acc_mean"))
            log.info("epoch %d/%d  train %s  test %s  %s", epoch, total_epochs,
                     " ".join(f"{t[:6]}={v:.4f}" for t, v in list(train_means.items())[:4]),
                     " ".join(f"{k}={test[k]:.4f}" for k in shown if k in test), headline)  # fmt: skip
            if epoch % int(cfg.train.checkpoint_every) == 0 or epoch == total_epochs:
                checkpoint()
        # --- the papers' evaluation: mean of the last 10 epochs (dense), best-validation epoch (CelebA)
        final = E.paper_summary(writer.records, name, int(_opt(cfg, "evaluation.last_k", E.LAST_K)))
        if final is not None:
            atomic_write_text(out_dir / E.SUMMARY_FILE, json.dumps(final, indent=1) + "\n")
            log.info("result, %s", E.format_summary(final))
    except DataLayoutError as err:  # a damaged data file met during training (also from a loader worker)
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise ConfigError(lines[-1].removeprefix("mtrl.supervised.data.DataLayoutError: ")) from None
    return {"epoch": epoch, "iteration": iteration, "last": last, "out_dir": str(out_dir), "skipped": n_skipped,
            "records": writer.records, "final": final}  # fmt: skip


def _progress(setting: Any, total: int, initial: int, desc: str):
    """A tqdm bar over the batches of one epoch; off when stderr is not a terminal unless forced."""
    enabled = sys.stderr.isatty() if setting == "auto" else bool(setting)
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True, leave=False)
