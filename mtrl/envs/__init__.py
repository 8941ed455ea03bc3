"""Multi-task vector environments: Meta-World MT10 (two protocols), MT50, MT1, and a fake env for tests.

Every env here is a gymnasium vector env with **one sub-env per task** (sub-env ``k`` is task ``k``), SAME_STEP
autoreset (the true last observation of a finished episode is ``info["final_obs"]``) and ``info["success"]``.

Evaluation envs (``make_envs(..., evaluation=True, goals_from=training_envs)``) run on the **training goals** of
every protocol: they take the training envs' per-task goal lists and keep only their own RNG (which of those goals
an evaluation episode gets; for ``mt10_legacy`` there is one). They terminate an episode on its first success and
never normalise rewards. ``env.task_id`` (``onehot`` | ``none``) says whether the one-hot task id is appended to
the observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl.envs._fake import FakeMultiTaskVecEnv
from mtrl.envs._metaworld import (
    MT10_TASKS,
    MT50_TASKS,
    make_metaworld,
    metaworld_get_state,
    metaworld_set_state,
    metaworld_task_names,
    sub_envs,
)
from mtrl.envs._normalize import ExponentialRewardNormalization

PROTOCOLS = ("mt10", "mt10_legacy", "mt50", "mt1", "fake")
TASK_IDS = ("onehot", "none")
EVAL_GOALS = ("train", "unseen")  # env.eval_goals: the protocol's (training goals) | a diagnostic (unseen goals)

__all__ = [
    "MT10_TASKS",
    "MT50_TASKS",
    "PROTOCOLS",
    "TASK_IDS",
    "EVAL_GOALS",
    "ExponentialRewardNormalization",
    "EvalResult",
    "FakeMultiTaskVecEnv",
    "env_get_state",
    "env_set_state",
    "evaluate",
    "reseed",
    "make_envs",
    "metaworld_task_names",
    "step_success",
    "task_names",
    "true_next_obs",
]


def task_names(env_cfg: Any) -> list[str]:
    """Task names in sub-env order for an ``env`` config node."""
    if env_cfg.name in ("mt10", "mt10_legacy"):
        return list(MT10_TASKS)
    if env_cfg.name == "mt50":
        return list(MT50_TASKS)
    if env_cfg.name == "mt1":
        return [str(env_cfg.task)]
    if env_cfg.name == "fake":
        return [f"fake-{k}" for k in range(int(env_cfg.num_tasks))]
    raise ValueError(f"unknown env {env_cfg.name!r}; valid: {', '.join(PROTOCOLS)}")


def make_envs(
    env_cfg: Any,
    seed: int,
    *,
    evaluation: bool = False,
    goals_from: gym.vector.VectorEnv | None = None,
    unseen_goals: bool = False,
) -> gym.vector.VectorEnv:
    """Build the training (or, with ``evaluation=True``, evaluation) vector env described by ``env_cfg``.

    Evaluation envs terminate an episode on its first success (so success = any step succeeded, as
    ``metaworld.evaluation``) and never normalise rewards. ``goals_from``: the training envs whose goals an
    evaluation env must use (required for Meta-World evaluation envs; see the module docstring).
    ``unseen_goals`` (``env.eval_goals=unseen``, a diagnostic): an evaluation env on the goal lists of its own
    seed instead, goals no training env of another seed has (Meta-World draws them from a continuous range).
    """
    one_hot = str(env_cfg.get("task_id", "onehot")) == "onehot"
    if unseen_goals and env_cfg.name == "fake":
        raise ValueError("env.eval_goals=unseen: the fake env has one goal per task, none unseen (Meta-World only)")
    if env_cfg.name == "fake":
        return FakeMultiTaskVecEnv(
            num_tasks=int(env_cfg.num_tasks),
            max_episode_steps=int(env_cfg.max_episode_steps),
            seed=seed,
            terminate_on_success=evaluation,
            one_hot=one_hot,
        )  # its goals are fixed by the task index: the same in every instance
    if env_cfg.name not in PROTOCOLS:
        raise ValueError(f"unknown env {env_cfg.name!r}; valid: {', '.join(PROTOCOLS)}")
    if unseen_goals and (not evaluation or goals_from is not None):
        raise ValueError("unseen_goals is for evaluation envs on their own goals (no goals_from)")
    if evaluation and goals_from is None and not unseen_goals:
        raise ValueError(
            "Meta-World evaluation envs need goals_from=<the training envs>: they run on the training "
            "goals (mtrl.train.make_eval_envs builds them)"
        )
    return make_metaworld(
        {"mt1": "MT1", "mt50": "MT50"}.get(str(env_cfg.name), "MT10"),
        seed=seed,
        max_episode_steps=int(env_cfg.max_episode_steps),
        reward_version=str(env_cfg.reward_version),
        fixed_goal=bool(env_cfg.fixed_goal),
        normalize_reward=bool(env_cfg.normalize_reward) and not evaluation,
        reward_alpha=float(env_cfg.get("reward_alpha", 0.001)),
        terminate_on_success=evaluation,
        task=env_cfg.get("task"),
        one_hot=one_hot,
        goals_from=goals_from,
    )


def true_next_obs(next_obs: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """The observation each transition really ended in: ``info["final_obs"]`` where an episode just ended
    (SAME_STEP autoreset already returned the next episode's first observation there), else ``next_obs``."""
    if "_final_obs" not in infos:
        return next_obs
    real = np.array(next_obs, copy=True)
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


def step_success(infos: dict[str, Any], num_envs: int) -> np.ndarray:
    """``success`` of this step per sub-env; on the last step of an episode it is only in ``final_info``."""
    out = np.zeros(num_envs, dtype=bool)
    if "success" in infos:
        out |= np.asarray(infos["success"], dtype=float).reshape(num_envs) > 0
    fin = infos.get("final_info")
    if fin is not None and "success" in fin:
        mask = np.asarray(fin.get("_success", infos["_final_info"]), dtype=bool)
        out |= mask & (np.asarray(fin["success"], dtype=float) > 0)
    return out


def env_get_state(envs: gym.vector.VectorEnv) -> str | dict:
    """Env state for a checkpoint: exact for the fake env; RNG states for Meta-World (see ``metaworld_get_state``)."""
    if isinstance(envs, FakeMultiTaskVecEnv):
        return envs.get_state()
    return metaworld_get_state(envs)


def env_set_state(envs: gym.vector.VectorEnv, state: str | dict, obs: np.ndarray) -> tuple[np.ndarray, bool]:
    """Restore :func:`env_get_state`. Returns the observation to continue from and whether the continuation is
    exact (fake env: yes, ``obs`` from the checkpoint; Meta-World: new episodes from the restored RNG states)."""
    if isinstance(envs, FakeMultiTaskVecEnv):
        envs.set_state(state)
        return obs, True
    return metaworld_set_state(envs, state), False


@dataclass
class EvalResult:
    """Per-task success rate and mean undiscounted episode return of one evaluation."""

    success: dict[str, float]
    returns: dict[str, float]

    @property
    def success_rate(self) -> float:
        return float(np.mean(list(self.success.values())))

    @property
    def episode_return(self) -> float:
        return float(np.mean(list(self.returns.values())))


def reseed(envs: gym.vector.VectorEnv, seed: int) -> None:
    """Seed every sub-env's random streams: sub-env ``i`` with ``seed + i``, as gymnasium's ``reset(seed=seed)``.

    ``reset(seed=...)`` is not enough for Meta-World v3: ``SawyerXYZEnv.reset`` ignores its seed ("use `seed()`
    instead") and the task-sampling wrapper draws the episode's task from the env's ``np_random`` before passing the
    seed on, so a reset with a seed reseeds nothing there. Its ``seed()`` is called instead (the env's ``np_random``,
    which the task choice reads, and its spaces); the fake env honours ``reset(seed=seed)``.
    """
    if isinstance(envs, FakeMultiTaskVecEnv):
        envs.reset(seed=seed)
        return
    for i, sub in enumerate(sub_envs(envs)):  # every other env of make_envs is Meta-World's
        sub.unwrapped.seed(int(seed) + i)


def evaluate(policy: Any, envs: gym.vector.VectorEnv, names: list[str], episodes: int, seed: int) -> EvalResult:
    """Run ``episodes`` episodes per task with the deterministic ``policy(obs) -> actions``.

    As ``metaworld.evaluation.evaluation``: eval envs terminate on success, an episode counts as a success if any
    of its steps succeeded; extra episodes beyond ``episodes`` are ignored. The envs are reseeded with ``seed``
    every time (:func:`reseed`, then one reset, so the task/goal choice of the first episode also comes from the new
    seed), so every evaluation with the same seed sees the same goals and starts: the same policy gets the same
    result, whatever the envs ran before (a resumed run's fresh envs included).
    """
    K = envs.num_envs
    reseed(envs, seed)
    obs, _ = envs.reset()
    done_count = np.zeros(K, dtype=np.int64)
    succ = np.zeros(K)
    rets = np.zeros(K)
    ep_ret = np.zeros(K)
    ep_succ = np.zeros(K, dtype=bool)
    while (done_count < episodes).any():
        obs, reward, term, trunc, infos = envs.step(policy(obs))
        ep_ret += np.asarray(reward, dtype=np.float64)
        ep_succ |= step_success(infos, K)
        for i in np.flatnonzero(np.logical_or(term, trunc)):
            if done_count[i] < episodes:
                succ[i] += ep_succ[i]
                rets[i] += ep_ret[i]
                done_count[i] += 1
            ep_ret[i], ep_succ[i] = 0.0, False
    return EvalResult(
        success={n: float(succ[i] / episodes) for i, n in enumerate(names)},
        returns={n: float(rets[i] / episodes) for i, n in enumerate(names)},
    )
