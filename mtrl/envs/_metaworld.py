"""Meta-World v3 (metaworld 3.1.x) vector envs for the two MT10 protocols and MT1.

- ``mt10`` (Meta-World v3 standard): ``gymnasium.make_vec("Meta-World/MT10")``, one sub-env per task in MT10 order,
  one-hot task id appended (39 + 10 = 49-d), reward v2, 500-step episodes, goal resampled from the task's 50 goals
  on every reset.
- ``mt10_legacy`` (facebookresearch/mtrl and the CAGrad fork, the protocol of the published tables): the same
  sub-envs with one fixed goal per task for the whole run (the first goal of each task's list for the run seed),
  150-step episodes, reward v1, running-std reward normalisation of training rewards (gymnasium's
  ``NormalizeReward``). v3 physics and observations differ from the v1/v2 envs of the papers: comparable only
  approximately.
- ``mt1``: one task (``env.task``, e.g. ``reach-v3``), v3 standard, no one-hot (K = 1).

Evaluation envs are built the same way with their own seed, ``terminate_on_success=True`` (as
``metaworld.evaluation``: success = any step of the episode succeeded) and no reward normalisation.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np

MT10_TASKS: tuple[str, ...] = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3",
)  # fmt: skip


def metaworld_task_names() -> list[str]:
    """All Meta-World v3 task names (for validating ``env.task``)."""
    import metaworld  # noqa: F401  (registers the gymnasium ids)
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return sorted(ALL_V3_ENVIRONMENTS)


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
) -> gym.vector.VectorEnv:
    """Build the MT10 (``benchmark="MT10"``) or MT1 (``"MT1"``, ``task``) vector env (SAME_STEP autoreset)."""
    import metaworld  # noqa: F401  (registers the gymnasium ids)

    kwargs: dict[str, Any] = dict(
        max_episode_steps=max_episode_steps,
        reward_function_version=reward_version,
        terminate_on_success=terminate_on_success,
        reward_normalization_method="gymnasium" if normalize_reward else None,
    )
    if benchmark == "MT10":
        envs = gym.make_vec("Meta-World/MT10", vector_strategy="sync", seed=seed, use_one_hot=True, **kwargs)
    elif benchmark == "MT1":
        if task is None:
            raise ValueError("env=mt1 needs env.task (e.g. env.task=reach-v3)")
        envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make("Meta-World/MT1", env_name=task, seed=seed, **kwargs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
    else:
        raise ValueError(f"unknown Meta-World benchmark {benchmark!r} (MT10 or MT1)")
    if fixed_goal:
        for sub in envs.envs:
            sub.set_wrapper_attr("tasks", list(sub.get_wrapper_attr("tasks"))[:1])
    return envs


def metaworld_get_state(envs: gym.vector.VectorEnv) -> str:
    """Task-sampling and simulator RNG states of every sub-env (Meta-World's own checkpoints) as JSON text,
    plus the running reward statistics of ``NormalizeReward`` where present. The MuJoCo state of episodes in
    progress is not saved: on resume, episodes restart from the restored RNG states."""
    subs = []
    for sub in envs.envs:
        entry: dict[str, Any] = {"ckpt": sub.get_wrapper_attr("get_checkpoint")()}
        try:
            rms = sub.get_wrapper_attr("return_rms")
            entry["return_rms"] = [np.asarray(rms.mean).tolist(), np.asarray(rms.var).tolist(), float(rms.count)]
            entry["discounted_reward"] = np.asarray(sub.get_wrapper_attr("discounted_reward")).tolist()
        except AttributeError:
            pass
        subs.append(entry)
    return json.dumps(subs)


def metaworld_set_state(envs: gym.vector.VectorEnv, text: str) -> np.ndarray:
    """Restore :func:`metaworld_get_state` and start new episodes; returns the first observation."""
    subs = json.loads(text)
    if len(subs) != len(envs.envs):
        raise ValueError(f"checkpoint has {len(subs)} sub-envs, this env {len(envs.envs)}")
    for sub, entry in zip(envs.envs, subs):
        env_id, ckpt = entry["ckpt"]
        sub.get_wrapper_attr("load_checkpoint")([(env_id, ckpt)])
        if "return_rms" in entry:
            rms = sub.get_wrapper_attr("return_rms")
            rms.mean, rms.var, rms.count = (
                np.asarray(entry["return_rms"][0]),
                np.asarray(entry["return_rms"][1]),
                entry["return_rms"][2],
            )
            sub.set_wrapper_attr("discounted_reward", np.asarray(entry["discounted_reward"]))
    obs, _ = envs.reset()
    return obs
