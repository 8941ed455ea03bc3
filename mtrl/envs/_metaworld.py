"""Meta-World v3 (metaworld 3.1.x) vector envs for the two MT10 protocols, MT50 and MT1.

- ``mt10`` (Meta-World v3 standard): ``gymnasium.make_vec("Meta-World/MT10")``, one sub-env per task in MT10 order,
  one-hot task id appended (39 + 10 = 49-d), reward v2, 500-step episodes, goal resampled from the task's 50 goals
  on every reset.
- ``mt10_legacy`` (facebookresearch/mtrl and the CAGrad fork, the protocol of the published tables): the same
  sub-envs with one fixed goal per task for the whole run (the first goal of each task's list for the run seed;
  the reference draws one at random, mtenv ``mtenv/envs/metaworld/env.py``), 150-step episodes, reward v1, and the
  reference's reward normalisation of training rewards (garage ``NormalizedEnv``: per-step moving variance, rate
  0.001; :mod:`mtrl.envs._normalize`). v3 physics and observations differ from the v1/v2 envs of the papers:
  comparable only approximately.
- ``mt50`` (Meta-World v3 standard MT50): ``gymnasium.make_vec("Meta-World/MT50")``, one sub-env per task in
  Meta-World's MT50 order (:data:`MT50_TASKS`), one-hot task id (39 + 50 = 89-d), otherwise exactly as ``mt10``
  (reward v2, 500-step episodes, goals resampled on reset, evaluation on the training goals).
- ``mt1``: one task (``env.task``, e.g. ``reach-v3``), v3 standard, no one-hot (K = 1).

``one_hot=False`` (``env.task_id=none``) drops the one-hot task id (39-d observations, as the CAGrad fork's run).

**Goals.** A Meta-World task (``metaworld.Task``) fixes the goal and the initial object positions of an episode;
each sub-env samples one task from its list (``tasks`` wrapper attribute) on every reset with its own RNG.
Evaluation envs get the training envs' task lists (``goals_from``), as fb/mtrl and the CAGrad fork reuse the
training ``env_id_to_task_map`` for evaluation (``mtrl/experiment/metaworld.py``) and as Meta-World v3 evaluates
on the training goals: their own seed only decides which of those tasks each evaluation episode gets. Evaluation
envs also terminate on success (as ``metaworld.evaluation``: success = any step succeeded) and never normalise.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl.envs._normalize import ExponentialRewardNormalization

MT10_TASKS: tuple[str, ...] = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3",
)  # fmt: skip


# Meta-World v3's MT50 order: ``metaworld.env_dict.ALL_V3_ENVIRONMENTS`` (= ``MT50_V3``, the sub-env order of
# ``make_vec("Meta-World/MT50")``); written out so that task names need no metaworld import (tests check the two agree).
MT50_TASKS: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3",
    "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3", "faucet-close-v3",
    "hammer-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3",
    "plate-slide-back-v3", "plate-slide-back-side-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3",
    "stick-push-v3", "stick-pull-v3", "push-v3", "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3",
    "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
)  # fmt: skip


def metaworld_task_names() -> list[str]:
    """All Meta-World v3 task names (for validating ``env.task``)."""
    import metaworld  # noqa: F401  (registers the gymnasium ids)
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return sorted(ALL_V3_ENVIRONMENTS)


def sub_envs(envs: gym.vector.VectorEnv) -> list[gym.Env]:
    """The per-task sub-envs of a (possibly wrapped) synchronous vector env."""
    return list(envs.unwrapped.envs)  # type: ignore[attr-defined]


def make_metaworld(
    benchmark: str,
    *,
    seed: int,
    max_episode_steps: int,
    reward_version: str,
    fixed_goal: bool,
    normalize_reward: bool,
    terminate_on_success: bool,
    task: str | None = None,
    one_hot: bool = True,
    reward_alpha: float = 0.001,
    goals_from: gym.vector.VectorEnv | None = None,
) -> gym.vector.VectorEnv:
    """Build the MT10 (``benchmark="MT10"``), MT50 (``"MT50"``) or MT1 (``"MT1"``, ``task``) vector env (SAME_STEP
    autoreset).

    ``goals_from``: a vector env of the same benchmark whose per-task goal lists (``tasks``) this one takes over,
    instead of those of its own seed (evaluation envs get the training envs' goals).
    """
    import metaworld  # noqa: F401  (registers the gymnasium ids)

    kwargs: dict[str, Any] = dict(
        max_episode_steps=max_episode_steps,
        reward_function_version=reward_version,
        terminate_on_success=terminate_on_success,
        reward_normalization_method=None,
    )
    if benchmark in ("MT10", "MT50"):
        envs = gym.make_vec(f"Meta-World/{benchmark}", vector_strategy="sync", seed=seed, use_one_hot=one_hot,
                            **kwargs)  # fmt: skip
    elif benchmark == "MT1":
        if task is None:
            raise ValueError("env=mt1 needs env.task (e.g. env.task=reach-v3)")
        envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make("Meta-World/MT1", env_name=task, seed=seed, **kwargs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
    else:
        raise ValueError(f"unknown Meta-World benchmark {benchmark!r} (MT10, MT50 or MT1)")
    if goals_from is not None:
        share_goals(goals_from, envs)
    elif fixed_goal:
        for sub in envs.envs:
            sub.set_wrapper_attr("tasks", list(sub.get_wrapper_attr("tasks"))[:1])
    if normalize_reward:
        envs = ExponentialRewardNormalization(envs, reward_alpha=reward_alpha)
    return envs


def share_goals(source: gym.vector.VectorEnv, target: gym.vector.VectorEnv) -> None:
    """Give each sub-env of ``target`` the task list (goals and initial positions) of the same sub-env of
    ``source``; the sub-envs keep their own RNGs (which of those tasks an episode gets)."""
    src, dst = sub_envs(source), sub_envs(target)
    if len(src) != len(dst):
        raise ValueError(f"cannot share goals between {len(src)} and {len(dst)} sub-envs")
    for s, d in zip(src, dst):
        if type(s.unwrapped) is not type(d.unwrapped):
            raise ValueError(f"cannot share goals of {type(s.unwrapped).__name__} with {type(d.unwrapped).__name__}")
        d.set_wrapper_attr("tasks", list(s.get_wrapper_attr("tasks")))


def metaworld_get_state(envs: gym.vector.VectorEnv) -> str:
    """Task lists and task-sampling / simulator RNG states of every sub-env (Meta-World's own checkpoints) as JSON
    text, plus the reward normaliser's running estimates where present. The MuJoCo state of episodes in progress
    is not saved: on resume, episodes restart from the restored RNG states."""
    subs: list[dict[str, Any]] = [{"ckpt": sub.get_wrapper_attr("get_checkpoint")()} for sub in sub_envs(envs)]
    state: dict[str, Any] = {"subs": subs}
    if isinstance(envs, ExponentialRewardNormalization):
        state["reward_norm"] = envs.get_state()
    return json.dumps(state)


def metaworld_set_state(envs: gym.vector.VectorEnv, text: str) -> np.ndarray:
    """Restore :func:`metaworld_get_state` and start new episodes; returns the first observation."""
    state = json.loads(text)
    if isinstance(state, list):  # written by mtrl before the reference normaliser: a list of sub-env entries
        if any("return_rms" in entry for entry in state):
            raise ValueError("checkpoint used gymnasium's NormalizeReward, this run the reference normalisation")
        state = {"subs": state}
    subs = state["subs"]
    if len(subs) != envs.num_envs:
        raise ValueError(f"checkpoint has {len(subs)} sub-envs, this env {envs.num_envs}")
    for sub, entry in zip(sub_envs(envs), subs):
        env_id, ckpt = entry["ckpt"]
        sub.get_wrapper_attr("load_checkpoint")([(env_id, ckpt)])
    if ("reward_norm" in state) != isinstance(envs, ExponentialRewardNormalization):
        raise ValueError("checkpoint and run differ in reward normalisation")
    if isinstance(envs, ExponentialRewardNormalization):
        envs.set_state(state["reward_norm"])
    obs, _ = envs.reset()
    return obs
