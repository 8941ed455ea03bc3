"""Multi-task SAC on Meta-World MT10 (or MT1, or the fake env) with a pluggable gradient aggregator.

    python -m mtrl.train env=mt10 agent.aggregator=imgrad
    python -m mtrl.train env=mt10 agent.aggregator=cagrad agent.aggregator_kwargs.c=0.9 experiment=quick
    python -m mtrl.train experiment=cagrad_mt10     # the published MT10 run (CAGrad fork of fb/mtrl, run.sh)

Reads top to bottom like cleanrl's ``sac_continuous_action.py``: config check -> seeding -> envs -> agent (with its
aggregators) -> replay -> resume -> loop (collect, update, log, evaluate, checkpoint). Each step is one call into
a small module: ``mtrl.envs``, ``mtrl.agents``, ``mtrl.logging`` (tags, eval.jsonl), ``mtrl.checkpoint``,
``mtrl.seeding``. Outputs go to Hydra's run directory: ``.hydra/``, ``tb/``, ``eval.jsonl``, ``checkpoints/``,
``resolved_config.yaml``, ``train.log``.

Evaluation envs run on the training goals (:func:`make_eval_envs`). The loop's reference-run options, all off by
default: ``train.warmup_updates`` (that many updates at once when warm-up ends, as fb/mtrl's
``mtrl/experiment/multitask.py``), ``train.eval_at_start`` (evaluate at step 0 too), ``agent.replay=uniform``
(:meth:`mtrl.agents.MultiTaskReplayBuffer.sample_uniform`).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
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
    RunLockedError,
    abandon_newer,
    continued_run_dir,
    find_resume_checkpoint,
    latest_checkpoint,
    lock_run_dir,
    remove_temp_files,
    save_checkpoint,
)
from mtrl.envs import (
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


# keys of the fingerprint that come from the built envs (compared once they are built)
_ENV_KEYS = ("obs_dim", "act_dim")
# a checkpoint loaded by the command line's check before Hydra starts (path -> payload), reused by ``train``
_PRELOADED: dict[str, tuple[Path, dict[str, Any]]] = {}


# ====================================================================== config checks (before anything is built)
def check_config(cfg: DictConfig) -> None:
    """Reject impossible configurations with one clear sentence (raises :class:`ConfigError`)."""
    e, a, t = cfg.env, cfg.agent, cfg.train
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
            encoders=str(a.get("encoders", "separate")), actor_attention=str(a.get("actor_attention", "train")),
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
        log_std=str(a_cfg.get("log_std", "tanh")), encoders=str(a_cfg.get("encoders", "separate")),
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


# Settings added after checkpoints existed: in the fingerprint only when not at their default (so older checkpoints
# of default runs still resume; ``load_checkpoint`` compares the keys of both sides). ``env.task_id`` is covered by
# ``obs_dim``; ``agent.init`` and ``train.warmup_updates`` only matter before the first checkpoint.
_FINGERPRINT_DEFAULTS = {"agent.alpha": "per_task", "agent.replay": "stratified", "agent.encoders": "separate",
                         "agent.actor_attention": "train"}  # fmt: skip


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
    own RNG. See :mod:`mtrl.envs`.
    """
    eval_seed = int(seed) + EVAL_SEED_OFFSET if eval_seed is None else int(eval_seed)
    source = train_envs if train_envs is not None else make_envs(env_cfg, int(seed))
    try:
        return make_envs(env_cfg, eval_seed, evaluation=True, goals_from=source), eval_seed
    finally:
        if train_envs is None:
            source.close()


# ====================================================================== the run
def train(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train one multi-task SAC run described by ``cfg`` into ``out_dir``; returns a small summary."""
    check_config(cfg)
    out_dir = Path(out_dir)
    t_cfg, a_cfg = cfg.train, cfg.agent
    threads = _threads.set_torch_threads(t_cfg.get("torch_threads", _threads.AUTO))  # auto: see mtrl/_threads.py
    log.info("torch threads: %d (train.torch_threads=%s)", threads, t_cfg.get("torch_threads", _threads.AUTO))
    device = _device(str(cfg.device))
    names = task_names(cfg.env)
    K = len(names)
    batch_per_task = int(a_cfg.batch_size) // K if a_cfg.batch_size is not None else int(a_cfg.batch_size_per_task)
    uniform_replay = str(a_cfg.replay) == "uniform"  # batch_per_task * K drawn from all tasks together

    # --- seeding: python, numpy, torch globally + the run's own generators
    rngs = seeding.seed_everything(int(cfg.seed))

    # --- the run directory: locked (one run writes into it at a time), leftovers of killed writes removed
    lock = lock_run_dir(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    remove_temp_files(ckpt_dir)
    remove_text_temp_files(out_dir)
    log.info("run directory: %s (building the %s environments, %d tasks)", out_dir.resolve(), cfg.env.name, K)

    # --- resume: the checkpoint is read and checked against the config before anything is built or written
    resumed = None
    if cfg.resume not in (False, None, "false"):
        resumed = _load_resume(cfg, ckpt_dir)
        if resumed is None:
            log.warning("resume=true but no checkpoint in %s: starting from scratch", ckpt_dir)

    # --- envs: training envs (seed); the evaluation envs are built after a resume, on the training goals
    envs = make_envs(cfg.env, int(cfg.seed))
    assert envs.num_envs == K, f"expected one sub-env per task ({K}), got {envs.num_envs}"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    if not (np.allclose(envs.single_action_space.low, -1) and np.allclose(envs.single_action_space.high, 1)):
        raise ConfigError("the env's actions must lie in [-1, 1]")

    # --- agent: one aggregator instance per aggregated loss (stateful methods keep per-loss state)
    agent = build_agent(cfg, obs_dim, act_dim, K, device)

    # --- replay: one buffer per task
    buffer = MultiTaskReplayBuffer(K, max(1, int(a_cfg.buffer_capacity) // K), obs_dim, act_dim)

    fingerprint = _fingerprint(cfg, names, obs_dim, act_dim)

    # --- start or resume
    step = 0
    obs, _ = envs.reset(seed=int(cfg.seed))
    ep_return, ep_success = np.zeros(K), np.zeros(K, dtype=bool)
    if resumed is not None:
        path, state = resumed
        theirs = state.get("fingerprint", {})
        diff = [f"{k}: checkpoint {theirs.get(k)!r} vs run {fingerprint[k]!r}" for k in _ENV_KEYS
                if theirs.get(k) != fingerprint[k]]  # fmt: skip
        if diff:
            raise CheckpointError(f"checkpoint {path} does not match this run ({'; '.join(diff)}); "
                                  "refusing to resume, file kept")  # fmt: skip
        try:  # a checkpoint of another code version (missing key, renamed parameter, other shapes): one line
            agent.load_state_dict(state["agent"])
            buffer.load_state_dict(state["buffer"])
            seeding.set_state(rngs, state["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
            why = str(err).strip().split("\n")[0][:200]
            raise CheckpointError(
                f"checkpoint {path} cannot be restored into this code version "
                f"({type(err).__name__}: {why}); refusing to resume, file kept"
            ) from None
        try:
            obs, exact = env_set_state(envs, state["env"], state["loop"]["obs"].numpy())
            step = int(state["loop"]["step"])
            if exact:
                ep_return = state["loop"]["ep_return"].numpy().copy()
                ep_success = state["loop"]["ep_success"].numpy().copy()
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint {path}: env state cannot be restored ({err}); file kept") from None
        del state
        log.info("resumed from %s at step %d%s", path, step, "" if exact else " (episodes in progress restart)")
        newer = abandon_newer(path.parent, step)
        if newer:  # a later resume=true must continue this branch, not the one left behind
            log.warning("resumed from the older %s: %d newer checkpoint(s) moved to %s", path.name, len(newer),
                        path.parent / "abandoned")  # fmt: skip

    # --- logging (after the resume: TensorBoard purges what the interrupted run logged after the checkpoint)
    logger = RunLogger(out_dir, names, str(cfg.env.name), int(cfg.seed), str(a_cfg.aggregator),
                       tensorboard=bool(cfg.logger.tensorboard), purge_step=step + 1 if resumed else None)  # fmt: skip
    logger.log_config(OmegaConf.to_yaml(cfg, resolve=True), tensorboard=resumed is None)
    if resumed is not None:
        logger.restore_evals(step)

    # --- evaluation envs: the training goals (restored ones after a resume), their own RNG for the rest
    eval_envs, eval_seed = make_eval_envs(cfg.env, int(cfg.seed), envs)

    last_ckpt: dict[str, Path | None] = {"path": None}

    def check_finite(why: str = "") -> None:
        bad = agent.nonfinite_parameters()
        if bad or why:
            why = why or f"non-finite parameters in {', '.join(bad)}"
            good = last_ckpt["path"] or latest_checkpoint(ckpt_dir) or "none"
            raise DivergedError(
                f"training diverged at step {step}: {why}; stopped without a new checkpoint "
                f"(last good checkpoint: {good}); lower agent.lr/agent.alpha_lr or check the rewards"
            )

    def checkpoint() -> Path:
        check_finite()  # a diverged state is never checkpointed
        payload = {
            "fingerprint": fingerprint,
            "agent": agent.state_dict(),
            "buffer": buffer.state_dict(),
            "rng": seeding.get_state(rngs),
            "env": env_get_state(envs),
            "loop": {"step": step, "obs": torch.as_tensor(np.asarray(obs, dtype=np.float32)),
                     "ep_return": torch.as_tensor(ep_return), "ep_success": torch.as_tensor(ep_success)},
            "config": OmegaConf.to_yaml(cfg, resolve=True),
        }  # fmt: skip
        last_ckpt["path"] = save_checkpoint(ckpt_dir, step, payload, int(t_cfg.keep_checkpoints))
        return last_ckpt["path"]

    def run_eval() -> dict[str, Any]:
        res = evaluate(lambda o: agent.act(o, deterministic=True), eval_envs, names, int(cfg.env.eval_episodes),
                       eval_seed)  # fmt: skip
        rec = logger.log_eval(step, step * K, res.success, res.returns)
        log.info("eval step %d: success %.3f return %.1f", step, rec["success_rate"], rec["episode_return"])
        return rec

    # --- Ctrl-C or SIGTERM (what Slurm and most schedulers send before killing): finish the current iteration (or
    # evaluation), write a checkpoint, exit (130 / 143); a second signal stops at once
    stop: dict[str, Any] = {"signal": None}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["signal"] = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _terminate_now)

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    max_skipped = int(t_cfg.get("max_skipped_in_a_row", 100))
    skipped_in_a_row = 0

    total = int(t_cfg.steps_per_task)
    warmup = int(t_cfg.warmup_steps_per_task)
    first_update = max(warmup, 1)  # the step whose update ends warm-up: train.warmup_updates updates there
    last_eval: dict[str, Any] | None = logger.records[-1] if logger.records else None
    bar = _progress(t_cfg.progress, total, step)
    progress = Progress(total, step, first_update, agent.n_updates)
    t_window, steps_window, env_time = time.perf_counter(), 0, 0.0
    try:
        if step == 0 and t_cfg.eval_at_start:  # the untrained policy (fb/mtrl evaluates at step 0)
            last_eval = run_eval()
        while step < total:
            # --- collect one transition per task
            if step < warmup:
                actions = rngs.numpy.uniform(-1.0, 1.0, size=(K, act_dim)).astype(np.float32)
            else:
                actions = agent.act(obs, rngs.torch)
            t0 = time.perf_counter()
            next_obs, reward, terminated, truncated, infos = envs.step(actions)
            env_time += time.perf_counter() - t0
            buffer.add(obs, actions, reward, true_next_obs(next_obs, infos), terminated)
            ep_return += reward
            ep_success |= step_success(infos, K)
            for i in np.flatnonzero(np.logical_or(terminated, truncated)):
                logger.add_episode(int(i), float(ep_return[i]), bool(ep_success[i]))
                ep_return[i], ep_success[i] = 0.0, False
            obs = next_obs
            step += 1
            steps_window += 1

            # --- one SAC update per vector step after warm-up (train.warmup_updates of them when warm-up ends,
            # as fb/mtrl's mtrl/experiment/multitask.py: ``num_updates = init_steps if step == init_steps else 1``)
            for _ in range(int(t_cfg.warmup_updates) if step == first_update else int(step >= warmup)):
                t0 = time.perf_counter()
                if uniform_replay:
                    batch = buffer.sample_uniform(batch_per_task * K, rngs.numpy, device)
                else:
                    batch = buffer.sample(batch_per_task, rngs.numpy, device)
                info = agent.update(batch, rngs.torch)
                info.metrics["update_ms"] = 1e3 * (time.perf_counter() - t0)
                if info.diagnostics:  # every agent.diagnostics_every-th update carries losses, α and diagnostics
                    logger.add_update(info.metrics, info.critic_losses, info.actor_losses, info.alphas, info.results)
                else:
                    logger.add_scalar("time/update_ms", info.metrics["update_ms"])
                skipped_in_a_row = skipped_in_a_row + 1 if any(r.skipped for r in info.results.values()) else 0
                if skipped_in_a_row >= max_skipped:
                    check_finite(f"{skipped_in_a_row} updates in a row skipped (non-finite gradients or losses)")
            progress.after_updates(step, agent.n_updates)  # the ETA's clock starts when warm-up is over

            # --- log (and a plain progress line: stdout and train.log), evaluate, checkpoint
            if step % int(t_cfg.log_every) == 0 or step == total:
                check_finite()
                dt = time.perf_counter() - t_window
                sps = steps_window * K / max(dt, 1e-9)
                window = logger.flush(step, {
                    "time/sps": sps, "time/env_ms": 1e3 * env_time / max(steps_window, 1),
                    "train/skipped_updates": float(sum(agent.n_skipped.values()))})  # fmt: skip
                t_window, steps_window, env_time = time.perf_counter(), 0, 0.0
                progress.episodes += int(window.get("rollout/episodes", 0))
                if bar is not None:
                    bar.clear()
                log.info(progress.line(step, agent.n_updates, last_eval))
                if bar is not None:
                    bar.set_postfix(sps=f"{sps:.0f}", success=_fmt(last_eval), eta=progress.eta(step), refresh=False)
            if step % int(t_cfg.eval_every) == 0 or step == total:
                last_eval = run_eval()
                if bar is not None:
                    bar.set_postfix(success=_fmt(last_eval), eta=progress.eta(step), refresh=False)
            if step % int(t_cfg.checkpoint_every) == 0 or step == total:
                checkpoint()
            if bar is not None:
                bar.update(1)
            if stop["signal"] is not None:
                path = checkpoint()
                name = signal.Signals(stop["signal"]).name
                log.warning("%s at step %d: checkpoint written to %s", name, step, path)
                if stop["signal"] == signal.SIGTERM:
                    raise Terminated(name)
                raise KeyboardInterrupt
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        lock.close()
        if bar is not None:
            bar.close()
        logger.close()
        envs.close()
        eval_envs.close()
    return {"step": step, "last_eval": last_eval, "out_dir": str(out_dir), "skipped": dict(agent.n_skipped)}


class Terminated(SystemExit):
    """SIGTERM after the checkpoint: exit status 143 (128 + SIGTERM), as a shell reports a terminated process."""

    def __init__(self, what: str = "SIGTERM") -> None:
        super().__init__(128 + signal.SIGTERM)
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
    return find_resume_checkpoint(cfg.resume, ckpt_dir, fp, skip=_ENV_KEYS)


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
    lock_run_dir(run_dir)  # before Hydra writes .hydra/ and train.log into it


def _run(cfg: DictConfig, hydra_dir: Path) -> None:
    """``resume=<run dir or checkpoint file>`` continues in that run's directory (its eval.jsonl, tb/, checkpoints/)."""
    train(cfg, continued_run_dir(cfg.resume) or hydra_dir)


def main() -> None:
    """``python -m mtrl.train [overrides]``: one-line errors for bad configs, then Hydra runs :func:`train`."""
    _cli.main(PROG, "train", "agent.aggregator_kwargs", _precheck, _run,
              (ConfigError, CheckpointError, RunLockedError, DivergedError))  # fmt: skip


if __name__ == "__main__":
    main()
