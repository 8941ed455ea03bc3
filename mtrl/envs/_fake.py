"""A small, fast, deterministic multi-task vector env for tests: K point-mass reaching tasks.

Task ``k`` moves a point in the plane towards its own goal on a circle (angle ``2πk/K``); the task is visible only
through the one-hot appended to the observation, as in MT10 (``one_hot=False``: not at all, so one network without
task identity cannot tell the tasks apart). The goals depend only on ``K``: every instance (training or
evaluation, any seed) has the same ones; the seed only moves the start positions. Dense reward
``1 − ‖p − goal‖``, ``success`` when the distance is below ``success_radius``. The interface copies Meta-World v3
vector envs: SAME_STEP autoreset (the returned observation of a finished episode is already the next episode's, the
true last one is in ``info["final_obs"]``), ``info["success"]`` on ordinary steps and
``info["final_info"]["success"]`` on the last step, time-limit truncation and optional termination on success (used
for evaluation, as Meta-World's ``terminate_on_success``). Random policies rarely succeed; SAC learns it in a few
thousand steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space


class FakeMultiTaskVecEnv(gym.vector.VectorEnv):
    """K point-mass reaching tasks, one sub-env per task (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_tasks: int = 4,
        max_episode_steps: int = 25,
        seed: int | None = None,
        terminate_on_success: bool = False,
        step_size: float = 0.15,
        success_radius: float = 0.15,
        one_hot: bool = True,
    ) -> None:
        if num_tasks < 1 or max_episode_steps < 1:
            raise ValueError(
                f"fake env: need num_tasks >= 1 and max_episode_steps >= 1, got {num_tasks}, {max_episode_steps}"
            )
        self.num_envs = int(num_tasks)
        self.max_episode_steps = int(max_episode_steps)
        self.terminate_on_success = bool(terminate_on_success)
        self.step_size, self.success_radius = float(step_size), float(success_radius)
        K = self.num_envs
        self.one_hot = bool(one_hot)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (2 + K * self.one_hot,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, K)
        self.action_space = batch_space(self.single_action_space, K)
        angles = 2 * np.pi * np.arange(K) / K
        self.goals = 0.6 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self.task_names = [f"fake-{k}" for k in range(K)]
        self._one_hot = np.eye(K, dtype=np.float32) if self.one_hot else np.zeros((K, 0), np.float32)
        self._rng = np.random.default_rng(seed)
        self._pos = np.zeros((K, 2))
        self._t = np.zeros(K, dtype=np.int64)

    def _start(self, idx: np.ndarray) -> None:
        self._pos[idx] = self._rng.uniform(
            -0.3, 0.3, (int(np.count_nonzero(idx)) if idx.dtype == bool else len(idx), 2)
        )
        self._t[idx] = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos.astype(np.float32), self._one_hot], axis=1)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._start(np.ones(self.num_envs, dtype=bool))
        return self._obs(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_envs, 2), -1.0, 1.0)
        self._pos = np.clip(self._pos + self.step_size * a, -1.0, 1.0)
        self._t += 1
        dist = np.linalg.norm(self._pos - self.goals, axis=1)
        success = (dist < self.success_radius).astype(np.float64)
        reward = 1.0 - dist
        terminated = (success > 0) & self.terminate_on_success
        truncated = (self._t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        obs = self._obs()
        info: dict[str, Any] = {"success": np.where(done, 0.0, success), "_success": ~done}
        if done.any():
            final_obs = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = obs[i].copy()
            info["final_obs"], info["_final_obs"] = final_obs, done.copy()
            info["final_info"] = {"success": np.where(done, success, 0.0), "_success": done.copy()}
            info["_final_info"] = done.copy()
            self._start(done)
            obs = self._obs()
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ checkpoints (exact)
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: positions, step counters, the RNG."""
        return {"pos": self._pos.tolist(), "t": self._t.tolist(), "rng": self._rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> np.ndarray:
        """Restore :meth:`get_state`; returns the current observation."""
        self._pos = np.asarray(state["pos"], dtype=np.float64)
        self._t = np.asarray(state["t"], dtype=np.int64)
        self._rng.bit_generator.state = state["rng"]
        return self._obs()
