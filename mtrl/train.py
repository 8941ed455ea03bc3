"""Multi-task SAC on Meta-World MT10 (or MT1, or the fake env) with a pluggable gradient aggregator.

    python -m mtrl.train env=mt10 agent.aggregator=imgrad
    python -m mtrl.train env=mt10 agent.aggregator=cagrad agent.aggregator_kwargs.c=0.9 experiment=quick
    python -m mtrl.train experiment=cagrad_mt10     # the published MT10 run (CAGrad fork of fb/mtrl, run.sh)

Reads top to bottom like cleanrl's ``sac_continuous_action.py`` or SB3's ``learn()``: :func:`train` is the story,
config check -> :func:`open_run` (seeding -> run directory -> resume checkpoint -> envs -> agent (with its
aggregators) -> replay -> :func:`restore` -> logging) -> signal handlers -> loop (:func:`collect`, :func:`update`,
:func:`log_progress`, :func:`evaluate_and_log`, :func:`save`), the phases below it in that order, sharing one
:class:`RunState`. Each phase is a few calls into a small module: ``mtrl.envs``, ``mtrl.agents``, ``mtrl.logging``
(tags, eval.jsonl), ``mtrl.checkpoint``, ``mtrl.seeding``. Outputs go to Hydra's run directory: ``.hydra/``,
``tb/``, ``eval.jsonl``, ``checkpoints/``, ``resolved_config.yaml``, ``train.log``.

Evaluation envs run on the training goals (:func:`make_eval_envs`). The loop's reference-run options, all off by
default: ``train.warmup_updates`` (that many updates at once when warm-up ends, as fb/mtrl's
``mtrl/experiment/multitask.py``), ``train.eval_at_start`` (evaluate at step 0 too), ``agent.replay=uniform``
(:meth:`mtrl.agents.MultiTaskReplayBuffer.sample_uniform`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mtrl import _cli, _threads, seeding
from mtrl._io import remove_temp_files as remove_text_temp_files
from mtrl.agents import ALPHAS, ARCHITECTURES, INITS, LOSSES, REPLAYS, MultiTaskReplayBuffer, MultiTaskSAC, SACConfig
from mtrl.agents.sac import PER_TASK_GRADS
from mtrl.aggregators import make_aggregator
from mtrl.checkpoint import (
    CheckpointError,
    RunDirError,
    RunLockedError,
    abandon_newer,
    claim_run_dir,
    clear_lost_run,
    continued_run_dir,
    find_resume_checkpoint,
    latest_checkpoint,
    remove_temp_files,
    restoring,
    save_checkpoint,
)
from mtrl.envs import (
    EVAL_GOALS,
    PROTOCOLS,
    TASK_IDS,
    env_get_state,
    env_set_state,
    evaluate,
    make_envs,
    step_success,
    task_names,
    true_next_obs,
)
from mtrl.logging import RunLogger

log = logging.getLogger("mtrl.train")
PROG = "mtrl.train"
EVAL_SEED_OFFSET = 10_000  # evaluation envs get their own RNG seed (seed + 10000), never their own goals


class ConfigError(ValueError):
    """A configuration that cannot run; reported as one line before any environment is built."""


class DivergedError(RuntimeError):
    """Training diverged (non-finite parameters or a long run of skipped updates); the run stops with one line."""


# keys whose shipped value is null, and the kind of value they take otherwise (the type check of every key)
_NULLABLE = {"agent.target_entropy": "float", "agent.batch_size": "int"}
# loss weightings whose fixed point needs positive losses: UW's sigma_i^2 -> L_i has none for L_i < 0, and its log-
# sigma then falls without bound (measured: docs/faults.md, "Loss-based weightings and negative losses")
NEEDS_POSITIVE_LOSSES = {"uw"}

# keys of the fingerprint that come from the built envs (compared once they are built)
_ENV_KEYS = ("obs_dim", "act_dim")
# a checkpoint loaded by the command line's check before Hydra starts (path -> payload), reused by ``train``
_PRELOADED: dict[str, tuple[Path, dict[str, Any]]] = {}


# ====================================================================== config checks (before anything is built)
def check_config(cfg: DictConfig) -> None:
    """Reject impossible configurations with one clear sentence (raises :class:`ConfigError`)."""
    e, a, t = cfg.env, cfg.agent, cfg.train
    wrong = _cli.check_types(cfg, "train", nullable=_NULLABLE, exempt=("seed", "resume", "env.reward_alpha"))
    if wrong:  # every key's type first: later checks compute with the values
        raise ConfigError(wrong)
    if e.name not in PROTOCOLS:
        raise ConfigError(f"unknown env {e.name!r}; valid: {', '.join(PROTOCOLS)}")
    if e.name == "mt1":
        from mtrl.envs import metaworld_task_names

        if e.get("task") not in metaworld_task_names():
            raise ConfigError(f"unknown Meta-World task env.task={e.get('task')!r} (e.g. reach-v3, push-v3)")
    if e.get("task_id", "onehot") not in TASK_IDS:
        raise ConfigError(f"env.task_id must be one of {', '.join(TASK_IDS)}, got {e.get('task_id')!r}")
    if e.name == "mt1" and e.get("task_id") == "onehot":
        raise ConfigError("env=mt1 has one task: env.task_id must be none")
    if e.get("eval_goals", "train") not in EVAL_GOALS:
        raise ConfigError(f"env.eval_goals must be one of {', '.join(EVAL_GOALS)}, got {e.get('eval_goals')!r}")
    if e.name == "fake" and e.get("eval_goals") == "unseen":
        raise ConfigError("env.eval_goals=unseen: the fake env has one goal per task, none unseen (Meta-World only)")
    rate = e.get("reward_alpha", 0.001)
    if e.get("normalize_reward") and not (isinstance(rate, (int, float)) and not isinstance(rate, bool)
                                          and 0 < rate <= 1):  # fmt: skip
        raise ConfigError(f"env.reward_alpha must be a number in (0, 1], got {rate!r}")
    if a.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture agent.arch={a.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    bad = sorted(set(a.aggregate_on) - set(LOSSES))
    if bad:
        valid = ", ".join(LOSSES)
        raise ConfigError(f"agent.aggregate_on: unknown loss(es) {', '.join(map(str, bad))}; valid: {valid}")
    if not a.aggregate_on:  # the run would be plain SAC under the method's name (directory, eval.jsonl, report)
        raise ConfigError(f"agent.aggregate_on=[] aggregates no loss, so agent.aggregator={a.aggregator} would never "
                          "be used; for the plain multi-task SAC baseline use agent.aggregator=ls")  # fmt: skip
    negative = sorted(set(map(str, a.aggregate_on)) & {"actor", "alpha"})
    if negative and NEEDS_POSITIVE_LOSSES & set(str(a.aggregator).split("+")):
        raise ConfigError(
            f"agent.aggregator={a.aggregator} needs positive losses, but the SAC {' and '.join(negative)} loss is "
            "negative (alpha*log(pi) - Q), which drives it to diverge (docs/faults.md); use it on the critic only: "
            "agent.aggregate_on=[critic]"
        )
    choices = {"agent.alpha": (a.alpha, ALPHAS), "agent.init": (a.init, INITS), "agent.replay": (a.replay, REPLAYS)}
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise ConfigError(f"{key} must be one of {', '.join(valid)}, got {value!r}")
    if "alpha" in a.aggregate_on and a.alpha != "shared":
        raise ConfigError("agent.aggregate_on with alpha needs agent.alpha=shared (per-task α have no shared gradient)")
    try:
        make_aggregator(str(a.aggregator), **_kwargs(a))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"agent.aggregator: {err}") from None
    if a.per_task_grads not in PER_TASK_GRADS:
        raise ConfigError(f"agent.per_task_grads must be one of {', '.join(PER_TASK_GRADS)}, got {a.per_task_grads!r}")
    every = a.get("diagnostics_every", 10)  # issue 14: the aggregators' diagnostics every n updates
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"agent.diagnostics_every must be an integer >= 1, got {every!r}")
    if a.get("compile", False) not in (True, False):
        raise ConfigError(f"agent.compile must be true or false, got {a.get('compile')!r}")
    try:  # agent.log_std and the reference-training options (docs/reference-sm-care.md)
        tau = a.get("encoder_tau")
        MultiTaskSAC._check_reference_options(SACConfig(
            arch=str(a.arch), per_task_grads=str(a.per_task_grads), log_std=str(a.get("log_std", "tanh")),
            alpha_loss=str(a.get("alpha_loss", "alpha")), encoders=str(a.get("encoders", "separate")),
            tanh_correction=str(a.get("tanh_correction", "exact")),
            actor_attention=str(a.get("actor_attention", "train")),
            target_task_encoder=str(a.get("target_task_encoder", "target")),
            encoder_tau=None if tau is None else float(tau)))  # fmt: skip
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
    try:
        _threads.check_torch_threads(t.get("torch_threads", _threads.AUTO))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    K = len(task_names(e))
    if e.get("task_id") == "none" and K > 1 and a.arch != "shared":
        raise ConfigError(f"env.task_id=none with agent.arch={a.arch}: heads would still tell the tasks apart; "
                          "without a task id the network is one MLP (agent.arch=shared)")  # fmt: skip
    positive = {
        "train.steps_per_task": t.steps_per_task, "train.eval_every": t.eval_every, "train.log_every": t.log_every,
        "train.checkpoint_every": t.checkpoint_every, "train.keep_checkpoints": t.keep_checkpoints,
        "agent.batch_size_per_task": a.batch_size_per_task, "agent.hidden_dim": a.hidden_dim,
        "agent.num_layers": a.num_layers, "agent.buffer_capacity": a.buffer_capacity, "agent.lr": a.lr,
        "agent.alpha_lr": a.alpha_lr, "agent.init_alpha": a.init_alpha, "env.eval_episodes": e.eval_episodes,
        "env.max_episode_steps": e.max_episode_steps, "train.max_skipped_in_a_row": t.get("max_skipped_in_a_row", 100),
    }  # fmt: skip
    if e.name == "fake":
        positive["env.num_tasks"] = e.num_tasks
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    integers = ("train.steps_per_task", "train.eval_every", "train.log_every", "train.checkpoint_every",
                "train.keep_checkpoints", "agent.batch_size_per_task", "agent.hidden_dim", "agent.num_layers",
                "agent.buffer_capacity", "env.eval_episodes", "env.max_episode_steps", "env.num_tasks",
                "train.max_skipped_in_a_row")  # fmt: skip
    for key in integers:
        value = positive.get(key)
        if isinstance(value, float):
            raise ConfigError(f"{key} must be a whole number, got {value!r}")
    for key, value in positive.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
            raise ConfigError(f"{key} must be a positive finite number, got {value!r}")
    if not (isinstance(t.warmup_steps_per_task, int) and t.warmup_steps_per_task >= 0):
        raise ConfigError(f"train.warmup_steps_per_task must be an integer >= 0, got {t.warmup_steps_per_task!r}")
    if not (isinstance(t.warmup_updates, int) and not isinstance(t.warmup_updates, bool) and t.warmup_updates >= 1):
        raise ConfigError(f"train.warmup_updates must be an integer >= 1, got {t.warmup_updates!r}")
    if t.eval_at_start not in (True, False):
        raise ConfigError(f"train.eval_at_start must be true or false, got {t.eval_at_start!r}")
    if a.batch_size is not None and (a.batch_size <= 0 or a.batch_size % K):
        raise ConfigError(f"agent.batch_size={a.batch_size} must be a positive multiple of the {K} tasks")
    if a.buffer_capacity < K:
        raise ConfigError(f"agent.buffer_capacity={a.buffer_capacity} is smaller than the {K} tasks")
    if not (isinstance(a.gamma, (int, float)) and isinstance(a.tau, (int, float)) and 0 < a.gamma <= 1
            and 0 < a.tau <= 1):  # fmt: skip
        raise ConfigError(f"need 0 < agent.gamma <= 1 and 0 < agent.tau <= 1, got {a.gamma}, {a.tau}")
    _device(str(cfg.device))
    _check_memory(cfg, K, batch_per_task=int(a.batch_size) // K if a.batch_size is not None else
                  int(a.batch_size_per_task))  # fmt: skip
    if t.progress not in ("auto", True, False):
        raise ConfigError(f"train.progress must be auto, true or false, got {t.progress!r}")


def _check_memory(cfg: DictConfig, K: int, batch_per_task: int) -> None:
    """Refuse sizes that cannot fit the machine's memory, from a lower bound of what the run allocates (five
    networks of ``num_layers`` hidden x hidden layers, one batch's activations, the replay buffer)."""
    import os

    a = cfg.agent
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    h, n = int(a.hidden_dim), int(a.num_layers)
    params = 5 * 4 * max(n - 1, 1) * h * h  # actor, q1, q2 and the two targets, float32
    activations = 4 * K * batch_per_task * h * n
    replay = 4 * int(a.buffer_capacity) * (2 * K + 2)  # obs, next_obs (at least the one-hot), reward, done
    need = params + activations + replay
    if need > total:
        raise ConfigError(f"agent.hidden_dim={h}, agent.num_layers={n}, batch {batch_per_task} per task and "
                          f"agent.buffer_capacity={int(a.buffer_capacity)} need at least {need / 2**30:.0f} GiB, "
                          f"more than this machine's {total / 2**30:.0f} GiB of memory")  # fmt: skip


def _kwargs(agent_cfg: DictConfig) -> dict[str, Any]:
    kw = agent_cfg.aggregator_kwargs
    return {} if kw is None else dict(OmegaConf.to_container(kw, resolve=True))


def build_agent(cfg: DictConfig, obs_dim: int, act_dim: int, num_tasks: int, device: torch.device) -> MultiTaskSAC:
    """The multi-task SAC of ``cfg.agent`` with one aggregator instance per aggregated loss (seeded from ``seed``)."""
    a_cfg = cfg.agent
    aggregators = {}
    for i, loss_name in enumerate(a_cfg.aggregate_on):
        aggregators[str(loss_name)] = make_aggregator(str(a_cfg.aggregator), **_kwargs(a_cfg))
        aggregators[str(loss_name)].seed(int(cfg.seed) + i)
    sac_cfg = SACConfig(
        hidden_dim=int(a_cfg.hidden_dim), num_layers=int(a_cfg.num_layers), arch=str(a_cfg.arch), lr=float(a_cfg.lr),
        alpha_lr=float(a_cfg.alpha_lr), gamma=float(a_cfg.gamma), tau=float(a_cfg.tau),
        init_alpha=float(a_cfg.init_alpha), target_entropy=a_cfg.target_entropy,
        aggregate_on=tuple(str(x) for x in a_cfg.aggregate_on), per_task_grads=str(a_cfg.per_task_grads),
        alpha=str(a_cfg.alpha), init=str(a_cfg.init), task_names=tuple(task_names(cfg.env)),
        task_id_dims=num_tasks if str(cfg.env.get("task_id", "onehot")) == "onehot" else 0,
        diagnostics_every=int(a_cfg.get("diagnostics_every", 10)), compile=bool(a_cfg.get("compile", False)),
        log_std=str(a_cfg.get("log_std", "tanh")), alpha_loss=str(a_cfg.get("alpha_loss", "alpha")),
        tanh_correction=str(a_cfg.get("tanh_correction", "exact")), encoders=str(a_cfg.get("encoders", "separate")),
        encoder_tau=None if a_cfg.get("encoder_tau") is None else float(a_cfg.encoder_tau),
        target_task_encoder=str(a_cfg.get("target_task_encoder", "target")),
        actor_attention=str(a_cfg.get("actor_attention", "train")),
    )  # fmt: skip
    return MultiTaskSAC(obs_dim, act_dim, num_tasks, sac_cfg, aggregators, device=device)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available (use device=cpu or device=auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (cpu, cuda, cuda:N, auto)") from None


# Settings added after checkpoints existed: in the fingerprint only when not at the value a checkpoint without the
# key was made with (so older checkpoints still resume; ``load_checkpoint`` compares the keys of both sides). These
# are the values of the code before each key existed, not necessarily today's config defaults: a run resumed under
# other settings than it was trained with is refused, never silently switched. ``env.task_id`` is covered by
# ``obs_dim``; ``agent.init`` and ``train.warmup_updates`` only matter before the first checkpoint.
_FINGERPRINT_DEFAULTS = {"agent.alpha": "per_task", "agent.replay": "stratified", "agent.encoders": "separate",
                         "agent.actor_attention": "train", "agent.log_std": "tanh", "agent.alpha_loss": "alpha",
                         "agent.tanh_correction": "exact",
                         "agent.target_task_encoder": "target", "agent.encoder_tau": "None"}  # fmt: skip


def _fingerprint(cfg: DictConfig, names: list[str], obs_dim: int, act_dim: int) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it."""
    a = cfg.agent
    out = {
        "protocol": str(cfg.env.name), "tasks": list(names), "obs_dim": obs_dim, "act_dim": act_dim,
        "arch": str(a.arch), "hidden_dim": int(a.hidden_dim), "num_layers": int(a.num_layers),
        "aggregator": str(a.aggregator), "aggregate_on": [str(x) for x in a.aggregate_on],
        "buffer_capacity": int(a.buffer_capacity), "seed": int(cfg.seed),
    }  # fmt: skip
    for key, default in _FINGERPRINT_DEFAULTS.items():
        value = str(OmegaConf.select(cfg, key, default=default))
        if value != default:
            out[key] = value
    return out


def make_eval_envs(
    env_cfg: DictConfig, seed: int, train_envs: gym.vector.VectorEnv | None = None, eval_seed: int | None = None
) -> tuple[gym.vector.VectorEnv, int]:
    """Evaluation envs of a run with seed ``seed`` and the seed to reset them with (``seed + 10000`` by default).

    They run on the training goals (``train_envs``' goal lists; without ``train_envs``, those of a training env
    built with ``seed``, i.e. the run's own): only which of those goals an evaluation episode gets comes from their
    own RNG. See :mod:`mtrl.envs`. ``env.eval_goals=unseen`` (a diagnostic, not the protocol): the goal lists of
    the evaluation seed instead, goals the run never trained on (Meta-World only; docs/parity.md).
    """
    eval_seed = int(seed) + EVAL_SEED_OFFSET if eval_seed is None else int(eval_seed)
    if str(env_cfg.get("eval_goals", "train")) == "unseen":
        return make_envs(env_cfg, eval_seed, evaluation=True, unseen_goals=True), eval_seed
    source = train_envs if train_envs is not None else make_envs(env_cfg, int(seed))
    try:
        return make_envs(env_cfg, eval_seed, evaluation=True, goals_from=source), eval_seed
    finally:
        if train_envs is None:
            source.close()


# ====================================================================== the run
def train(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train one multi-task SAC run described by ``cfg`` into ``out_dir``; returns a small summary.

    The story: open the run (seeding, run directory, resume, envs, agent, replay, logging: :func:`open_run`), then
    per vector step :func:`collect` one transition per task, :func:`update`, and every so often :func:`log_progress`,
    :func:`evaluate_and_log`, :func:`save`; a signal ends the loop with a checkpoint.
    """
    check_config(cfg)
    run = open_run(cfg, Path(out_dir))
    t_cfg = cfg.train

    # --- Ctrl-C or SIGTERM (what Slurm and most schedulers send before killing): finish the current iteration (or
    # evaluation), write a checkpoint, exit (130 / 143); a second signal stops at once. SIGUSR2 (what submitit asks
    # Slurm to send before a time limit or a preemption; mtrl/launch/_slurm.py) does the same (exit 140) and may
    # come twice; a handler installed before it (submitit's, in a hydra/launcher=slurm job) then requeues the job.
    stop: dict[str, Any] = {"signal": None}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["signal"] = signum
        if signum != _SIGUSR2:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, _terminate_now)

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, _SIGUSR2) if sig}

    total = run.total
    bar = _progress(t_cfg.progress, total, run.step)
    progress = Progress(total, run.step, run.first_update, run.agent.n_updates)
    run.t_window = time.perf_counter()  # the first throughput window starts with the loop
    try:
        if run.step == 0 and t_cfg.eval_at_start:  # the untrained policy (fb/mtrl evaluates at step 0)
            evaluate_and_log(run)
        while run.step < total:
            collect(run)
            update(run)
            progress.after_updates(run.step, run.agent.n_updates)  # the ETA's clock starts when warm-up is over

            # --- log (and a plain progress line: stdout and train.log), evaluate, checkpoint
            if run.step % int(t_cfg.log_every) == 0 or run.step == total:
                log_progress(run, progress, bar)
            if run.step % int(t_cfg.eval_every) == 0 or run.step == total:
                evaluate_and_log(run)
                if bar is not None:
                    bar.set_postfix(success=_fmt(run.last_eval), eta=progress.eta(run.step), refresh=False)
            if run.step % int(t_cfg.checkpoint_every) == 0 or run.step == total:
                save(run)
            if bar is not None:
                bar.update(1)
            if stop["signal"] is not None:
                path = save(run)
                name = signal.Signals(stop["signal"]).name
                log.warning("%s at step %d: checkpoint written to %s", name, run.step, path)
                if stop["signal"] == _SIGUSR2 and callable(old_handlers.get(_SIGUSR2)):
                    old_handlers[_SIGUSR2](stop["signal"], None)  # submitit's: resubmit this job, exit
                if stop["signal"] in (signal.SIGTERM, _SIGUSR2):
                    raise Terminated(name, 128 + stop["signal"])
                raise KeyboardInterrupt
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        run.lock.close()
        if bar is not None:
            bar.close()
        run.logger.close()
        run.envs.close()
        run.eval_envs.close()
    return {"step": run.step, "last_eval": run.last_eval, "out_dir": str(run.out_dir),
            "skipped": dict(run.agent.n_skipped)}  # fmt: skip


@dataclass
class RunState:
    """What the phases of :func:`train` share: the run's parts, its schedule and the loop state a checkpoint saves
    (``step``, ``obs``, the episodes in progress)."""

    cfg: DictConfig
    out_dir: Path
    ckpt_dir: Path
    lock: Any  # the run directory's lock (:func:`mtrl.checkpoint.lock_run_dir`)
    names: list[str]
    K: int  # the number of tasks (one sub-env each)
    device: torch.device
    rngs: seeding.Rngs
    envs: gym.vector.VectorEnv
    agent: MultiTaskSAC
    buffer: MultiTaskReplayBuffer
    fingerprint: dict[str, Any]
    act_dim: int
    # the schedule (per task): train.steps_per_task, train.warmup_steps_per_task, the step whose update ends warm-up
    total: int
    warmup: int
    first_update: int
    batch_per_task: int
    uniform_replay: bool  # agent.replay=uniform: batch_per_task * K drawn from all tasks together
    max_skipped: int
    # the loop state
    obs: np.ndarray
    ep_return: np.ndarray  # the episodes in progress, per task
    ep_success: np.ndarray
    step: int = 0
    skipped_in_a_row: int = 0
    last_eval: dict[str, Any] | None = None
    last_ckpt: Path | None = None
    # the throughput window since the last log line
    t_window: float = 0.0
    steps_window: int = 0
    env_time: float = 0.0
    # built after the resume (:func:`open_run`)
    logger: RunLogger = field(init=False)
    eval_envs: gym.vector.VectorEnv = field(init=False)
    eval_seed: int = field(init=False)


def open_run(cfg: DictConfig, out_dir: Path) -> RunState:
    """Threads, device, seeding, the run directory, the resume checkpoint, envs, agent, replay, logging and the
    evaluation envs, in this order (the order the RNGs are drawn from: a resumed run continues bit for bit)."""
    t_cfg, a_cfg = cfg.train, cfg.agent
    threads = _threads.set_torch_threads(t_cfg.get("torch_threads", _threads.AUTO))  # auto: see mtrl/_threads.py
    log.info("torch threads: %d (train.torch_threads=%s)", threads, t_cfg.get("torch_threads", _threads.AUTO))
    device = _device(str(cfg.device))
    names = task_names(cfg.env)
    K = len(names)
    batch_per_task = int(a_cfg.batch_size) // K if a_cfg.batch_size is not None else int(a_cfg.batch_size_per_task)

    # --- seeding: python, numpy, torch globally + the run's own generators
    rngs = seeding.seed_everything(int(cfg.seed))

    with contextlib.ExitStack() as undo:  # a refused resume or a failed build closes what was opened, the lock last
        lock, ckpt_dir = open_run_dir(cfg, out_dir, K, undo)
        resumed = find_resume(cfg, out_dir, ckpt_dir)
        envs, obs_dim, act_dim = build_envs(cfg, K)
        undo.callback(envs.close)

        # --- agent: one aggregator instance per aggregated loss (stateful methods keep per-loss state)
        agent = build_agent(cfg, obs_dim, act_dim, K, device)

        # --- replay: one buffer per task
        buffer = MultiTaskReplayBuffer(K, max(1, int(a_cfg.buffer_capacity) // K), obs_dim, act_dim)

        # --- start, or resume from the checkpoint
        fingerprint = _fingerprint(cfg, names, obs_dim, act_dim)
        obs, _ = envs.reset(seed=int(cfg.seed))
        warmup = int(t_cfg.warmup_steps_per_task)
        run = RunState(cfg=cfg, out_dir=out_dir, ckpt_dir=ckpt_dir, lock=lock, names=names, K=K, device=device,
                       rngs=rngs, envs=envs, agent=agent, buffer=buffer, fingerprint=fingerprint, act_dim=act_dim,
                       total=int(t_cfg.steps_per_task), warmup=warmup, first_update=max(warmup, 1),
                       batch_per_task=batch_per_task, uniform_replay=str(a_cfg.replay) == "uniform",
                       max_skipped=int(t_cfg.get("max_skipped_in_a_row", 100)),
                       obs=obs, ep_return=np.zeros(K), ep_success=np.zeros(K, dtype=bool))  # fmt: skip
        saved_evals = restore(run, resumed) if resumed is not None else None

        # --- logging (after the resume: TensorBoard purges what the interrupted run logged after the checkpoint)
        run.logger = RunLogger(out_dir, names, str(cfg.env.name), int(cfg.seed), str(a_cfg.aggregator),
                               tensorboard=bool(cfg.logger.tensorboard), purge_step=run.step + 1 if resumed else None,
                               diagnostics_streams=[str(x) for x in a_cfg.aggregate_on]
                               if cfg.logger.get("diagnostics_file", True) else None)  # fmt: skip
        undo.callback(run.logger.close)
        run.logger.log_config(OmegaConf.to_yaml(cfg, resolve=True), tensorboard=resumed is None)
        if resumed is not None:
            run.logger.restore_evals(run.step, saved_evals)
        run.last_eval = run.logger.records[-1] if run.logger.records else None

        # --- evaluation envs: the training goals (restored ones after a resume), their own RNG for the rest
        run.eval_envs, run.eval_seed = make_eval_envs(cfg.env, int(cfg.seed), envs)
        undo.pop_all()  # opened: the run owns them now (train's finally closes them)
    return run


def open_run_dir(cfg: DictConfig, out_dir: Path, K: int, undo: contextlib.ExitStack) -> tuple[Any, Path]:
    """The run directory: locked (one run writes into it at a time; ``undo`` releases the lock if opening the run
    fails), never reused by a fresh run (issue 21), leftovers of killed writes removed. Returns the lock and the
    checkpoint directory."""
    lock = claim_run_dir(out_dir, cfg.resume)
    undo.callback(lock.close)
    ckpt_dir = out_dir / "checkpoints"
    remove_temp_files(ckpt_dir)
    remove_text_temp_files(out_dir)
    log.info("run directory: %s (building the %s environments, %d tasks)", out_dir.resolve(), cfg.env.name, K)
    return lock, ckpt_dir


def find_resume(cfg: DictConfig, out_dir: Path, ckpt_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume from, read and checked against the config before anything is built or written;
    ``None`` for a fresh start (``resume=true`` without a checkpoint clears the lost run's outputs)."""
    resumed = None
    if cfg.resume not in (False, None, "false"):
        resumed = _load_resume(cfg, ckpt_dir)
        if resumed is None:  # a fresh start: the lost run's evaluations and TensorBoard events must not mix in
            gone = clear_lost_run(out_dir)
            log.warning("resume=true but no checkpoint in %s: starting from scratch%s", ckpt_dir,
                        f" (removed the lost run's {', '.join(gone)})" if gone else "")  # fmt: skip
    return resumed


def build_envs(cfg: DictConfig, K: int) -> tuple[gym.vector.VectorEnv, int, int]:
    """The training envs (seed ``cfg.seed``, one sub-env per task) and their observation and action sizes; the
    evaluation envs are built after a resume, on the training goals (:func:`make_eval_envs`)."""
    envs = make_envs(cfg.env, int(cfg.seed))
    assert envs.num_envs == K, f"expected one sub-env per task ({K}), got {envs.num_envs}"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    if not (np.allclose(envs.single_action_space.low, -1) and np.allclose(envs.single_action_space.high, 1)):
        raise ConfigError("the env's actions must lie in [-1, 1]")
    return envs, obs_dim, act_dim


def restore(run: RunState, resumed: tuple[Path, dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Load a checkpoint into the run (agent, replay, RNGs, envs, loop state); returns the evaluations it holds
    (format v2; v1: none). Anything that does not fit is one :class:`CheckpointError` line, the file kept."""
    path, state = resumed
    saved_evals = state.get("evals")  # format v2: the evaluations up to the checkpoint (v1: none)
    theirs = state.get("fingerprint", {})
    diff = [f"{k}: checkpoint {theirs.get(k)!r} vs run {run.fingerprint[k]!r}" for k in _ENV_KEYS
            if theirs.get(k) != run.fingerprint[k]]  # fmt: skip
    if diff:
        raise CheckpointError(f"checkpoint {path} does not match this run ({'; '.join(diff)}); "
                              "refusing to resume, file kept")  # fmt: skip
    with restoring(path):  # a checkpoint of another code version (missing key, other shapes): one line
        run.agent.load_state_dict(state["agent"])
        run.buffer.load_state_dict(state["buffer"])
        seeding.set_state(run.rngs, state["rng"])
    try:
        run.obs, exact = env_set_state(run.envs, state["env"], state["loop"]["obs"].numpy())
        run.step = int(state["loop"]["step"])
        if exact:
            run.ep_return = state["loop"]["ep_return"].numpy().copy()
            run.ep_success = state["loop"]["ep_success"].numpy().copy()
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path}: env state cannot be restored ({err}); file kept") from None
    del state
    log.info("resumed from %s at step %d%s", path, run.step, "" if exact else " (episodes in progress restart)")
    newer = abandon_newer(path.parent, run.step)
    if newer:  # a later resume=true must continue this branch, not the one left behind
        log.warning("resumed from the older %s: %d newer checkpoint(s) moved to %s", path.name, len(newer),
                    path.parent / "abandoned")  # fmt: skip
    return saved_evals


def collect(run: RunState) -> None:
    """One transition per task (uniform random actions during warm-up, the policy after) into the replay buffer;
    finished episodes go to the logger."""
    if run.step < run.warmup:
        actions = run.rngs.numpy.uniform(-1.0, 1.0, size=(run.K, run.act_dim)).astype(np.float32)
    else:
        actions = run.agent.act(run.obs, run.rngs.torch)
    t0 = time.perf_counter()
    next_obs, reward, terminated, truncated, infos = run.envs.step(actions)
    run.env_time += time.perf_counter() - t0
    run.buffer.add(run.obs, actions, reward, true_next_obs(next_obs, infos), terminated)
    run.ep_return += reward
    run.ep_success |= step_success(infos, run.K)
    for i in np.flatnonzero(np.logical_or(terminated, truncated)):
        run.logger.add_episode(int(i), float(run.ep_return[i]), bool(run.ep_success[i]))
        run.ep_return[i], run.ep_success[i] = 0.0, False
    run.obs = next_obs
    run.step += 1
    run.steps_window += 1


def update(run: RunState) -> None:
    """One SAC update per vector step after warm-up (train.warmup_updates of them when warm-up ends, as fb/mtrl's
    mtrl/experiment/multitask.py: ``num_updates = init_steps if step == init_steps else 1``)."""
    t_cfg, step = run.cfg.train, run.step
    for _ in range(int(t_cfg.warmup_updates) if step == run.first_update else int(step >= run.warmup)):
        t0 = time.perf_counter()
        if run.uniform_replay:
            batch = run.buffer.sample_uniform(run.batch_per_task * run.K, run.rngs.numpy, run.device)
        else:
            batch = run.buffer.sample(run.batch_per_task, run.rngs.numpy, run.device)
        info = run.agent.update(batch, run.rngs.torch)
        info.metrics["update_ms"] = 1e3 * (time.perf_counter() - t0)
        if info.diagnostics:  # every agent.diagnostics_every-th update carries losses, α and diagnostics
            run.logger.add_update(info.metrics, info.critic_losses, info.actor_losses, info.alphas, info.results,
                                  step=step, update=run.agent.n_updates)  # fmt: skip
        else:
            run.logger.add_scalar("time/update_ms", info.metrics["update_ms"])
        run.skipped_in_a_row = run.skipped_in_a_row + 1 if any(r.skipped for r in info.results.values()) else 0
        if run.skipped_in_a_row >= run.max_skipped:
            check_finite(run, f"{run.skipped_in_a_row} updates in a row skipped (non-finite gradients or losses)")


def log_progress(run: RunState, progress: Progress, bar: Any) -> None:
    """Flush the logged window (TensorBoard scalars, throughput) and print the plain progress line (stdout and
    train.log; above the bar when there is one)."""
    check_finite(run)
    dt = time.perf_counter() - run.t_window
    sps = run.steps_window * run.K / max(dt, 1e-9)
    window = run.logger.flush(run.step, {
        "time/sps": sps, "time/env_ms": 1e3 * run.env_time / max(run.steps_window, 1),
        "train/skipped_updates": float(sum(run.agent.n_skipped.values()))})  # fmt: skip
    run.t_window, run.steps_window, run.env_time = time.perf_counter(), 0, 0.0
    progress.episodes += int(window.get("rollout/episodes", 0))
    if bar is not None:
        bar.clear()
    log.info(progress.line(run.step, run.agent.n_updates, run.last_eval))
    if bar is not None:
        bar.set_postfix(sps=f"{sps:.0f}", success=_fmt(run.last_eval), eta=progress.eta(run.step), refresh=False)


def evaluate_and_log(run: RunState) -> dict[str, Any]:
    """Evaluate the deterministic policy on the evaluation envs; one eval.jsonl record (also ``run.last_eval``)."""
    res = evaluate(lambda o: run.agent.act(o, deterministic=True), run.eval_envs, run.names,
                   int(run.cfg.env.eval_episodes), run.eval_seed)  # fmt: skip
    rec = run.logger.log_eval(run.step, run.step * run.K, res.success, res.returns)
    log.info("eval step %d: success %.3f return %.1f", run.step, rec["success_rate"], rec["episode_return"])
    run.last_eval = rec
    return rec


def check_finite(run: RunState, why: str = "") -> None:
    """Raise :class:`DivergedError` when a parameter is non-finite (or ``why`` says the run is lost)."""
    bad = run.agent.nonfinite_parameters()
    if bad or why:
        why = why or f"non-finite parameters in {', '.join(bad)}"
        good, step = run.last_ckpt or latest_checkpoint(run.ckpt_dir) or "none", run.step
        raise DivergedError(
            f"training diverged at step {step}: {why}; stopped without a new checkpoint "
            f"(last good checkpoint: {good}); lower agent.lr/agent.alpha_lr or check the rewards"
        )


def save(run: RunState) -> Path:
    """Write a checkpoint of the run at its current step (never of a diverged state) and return its path."""
    check_finite(run)  # a diverged state is never checkpointed
    payload = {
        "fingerprint": run.fingerprint,
        "agent": run.agent.state_dict(),
        "buffer": run.buffer.state_dict(),
        "rng": seeding.get_state(run.rngs),
        "env": env_get_state(run.envs),
        "loop": {"step": run.step, "obs": torch.as_tensor(np.asarray(run.obs, dtype=np.float32)),
                 "ep_return": torch.as_tensor(run.ep_return), "ep_success": torch.as_tensor(run.ep_success)},
        "config": OmegaConf.to_yaml(run.cfg, resolve=True),
        "evals": list(run.logger.records),  # eval.jsonl up to this step: a resume rebuilds a lost file from it
    }  # fmt: skip
    run.logger.sync_diagnostics()  # the raw diagnostic rows up to this step reach the disk before the checkpoint
    run.last_ckpt = save_checkpoint(run.ckpt_dir, run.step, payload, int(run.cfg.train.keep_checkpoints))
    return run.last_ckpt


_SIGUSR2 = getattr(signal, "SIGUSR2", 0)  # 0: not on this platform


class Terminated(SystemExit):
    """SIGTERM (SIGUSR2) after the checkpoint: exit status 143 (140), 128 + the signal, as a shell reports it."""

    def __init__(self, what: str = "SIGTERM", status: int = 128 + signal.SIGTERM) -> None:
        super().__init__(status)
        self.what = what


def _terminate_now(signum, frame):  # noqa: ARG001
    raise Terminated()


def _load_resume(cfg: DictConfig, ckpt_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint ``cfg.resume`` names, checked against the config (the env-derived sizes are checked once
    the envs are built); the one the command line's check loaded already is reused."""
    fp = _fingerprint(cfg, task_names(cfg.env), 0, 0)
    key = f"{cfg.resume}|{Path(ckpt_dir).resolve()}"
    if key in _PRELOADED:
        return _PRELOADED.pop(key)
    return find_resume_checkpoint(cfg.resume, ckpt_dir, fp, skip=_ENV_KEYS, implied=_FINGERPRINT_DEFAULTS)


def _progress(setting: Any, total: int, initial: int):
    """A tqdm bar (steps, SPS, last eval success, ETA); off when stderr is not a terminal unless forced.

    tqdm's own remaining time is left out of the bar: it counts the warm-up steps (random actions, no updates,
    hundreds of times faster) as training and swung from 11 h to 235 h; the bar shows :class:`Progress`'s ETA."""
    enabled = sys.stderr.isatty() if setting == "auto" else bool(setting)
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.05,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")  # fmt: skip


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """The run's progress, for a plain line every ``train.log_every`` steps (stdout and ``train.log``, terminal or
    not) and the bar's ETA.

    Rates and the ETA count only what follows warm-up (the step whose update ends warm-up, with its
    ``train.warmup_updates`` updates, included in warm-up; after a resume past warm-up: what follows the resume),
    evaluations and checkpoints included: ``ETA = (total − step) / (steps per second since warm-up)``. Before that
    the ETA is unknown and says so. ``episodes`` counts the training episodes (all tasks) finished by this process.

    Args:
        total, step: the run's last step and the step it starts from (per task).
        first_update: the step that ends warm-up.
        n_updates: the agent's update counter now.
        clock: seconds (``time.perf_counter``; tests pass their own).
    """

    def __init__(self, total: int, step: int, first_update: int, n_updates: int = 0, clock=time.perf_counter) -> None:
        self.total, self.first_update, self.clock = int(total), int(first_update), clock
        self.t0 = clock()
        self.episodes = 0
        self.base: tuple[float, int, int] | None = None  # (time, step, updates) when warm-up was over
        self.after_updates(step, n_updates)

    def after_updates(self, step: int, n_updates: int) -> None:
        """Called after each step's updates: starts the clock of the rates at the first step past warm-up."""
        if self.base is None and step >= self.first_update:
            self.base = (self.clock(), int(step), int(n_updates))

    def rates(self, step: int, n_updates: int = 0) -> tuple[float, float] | None:
        """``(steps/s, updates/s)`` since warm-up, or ``None`` before a step after warm-up has been timed."""
        if self.base is None or step <= self.base[1]:
            return None
        dt = max(self.clock() - self.base[0], 1e-9)
        return (step - self.base[1]) / dt, (n_updates - self.base[2]) / dt

    def eta(self, step: int) -> str:
        r = self.rates(step)
        if step >= self.total:
            return "0:00:00"
        if r is None:
            return "after warm-up" if self.base is None else "-"
        return _hms((self.total - step) / r[0])

    def line(self, step: int, n_updates: int, last_eval: dict[str, Any] | None) -> str:
        r = self.rates(step, n_updates)
        phase = " warm-up (random actions, no updates)" if step < self.first_update else ""
        ev = "-" if last_eval is None else f"{_fmt(last_eval)} (step {last_eval['step']})"
        return (f"progress: step {step}/{self.total} ({100.0 * step / max(self.total, 1):.1f}%){phase} | "
                f"episodes {self.episodes} | {'-' if r is None else f'{r[1]:.2f}'} updates/s | "
                f"last eval success {ev} | elapsed {_hms(self.clock() - self.t0)} | ETA {self.eta(step)}")  # fmt: skip


def _fmt(rec: dict[str, Any] | None) -> str:
    return "-" if rec is None or not math.isfinite(rec["success_rate"]) else f"{rec['success_rate']:.2f}"


# ====================================================================== command line
def _rewrite_argv(argv: list[str]) -> list[str]:
    """``agent.aggregator_kwargs.<k>=<v>`` adds a key to an open dict: Hydra needs ``++`` for that."""
    return _cli.rewrite_argv(argv, "agent.aggregator_kwargs")


def _precheck(cfg: DictConfig) -> None:
    """The command line's check before Hydra creates anything: the config, then the checkpoint a resume names
    (a refused resume costs one line and writes nothing)."""
    check_config(cfg)
    resume = cfg.resume not in (False, None, "false")
    run_dir = (continued_run_dir(cfg.resume) if resume else None) or _cli.explicit_run_dir()
    if run_dir is None:
        return
    ckpt_dir = Path(run_dir) / "checkpoints"
    if resume:
        found = _load_resume(cfg, ckpt_dir)
        if found is not None:
            _PRELOADED[f"{cfg.resume}|{ckpt_dir.resolve()}"] = found
    claim_run_dir(run_dir, cfg.resume)  # before Hydra writes .hydra/ and train.log; a directory holding a run:
    # refused, the lock released


def _run(cfg: DictConfig, hydra_dir: Path) -> None:
    """``resume=<run dir or checkpoint file>`` continues in that run's directory (its eval.jsonl, tb/, checkpoints/)."""
    train(cfg, continued_run_dir(cfg.resume) or hydra_dir)


def main() -> None:
    """``python -m mtrl.train [overrides]``: one-line errors for bad configs, then Hydra runs :func:`train`."""
    _cli.main(PROG, "train", "agent.aggregator_kwargs", _precheck, _run,
              (ConfigError, CheckpointError, RunLockedError, RunDirError, DivergedError),
              subdir_keys=("env", "agent.aggregator", "seed"))  # fmt: skip


if __name__ == "__main__":
    main()
