"""Reward normalisation of the ``mt10_legacy`` protocol: garage's ``NormalizedEnv`` as facebookresearch/mtrl ran it.

The reference (mtenv ``mtenv/envs/metaworld/wrappers/normalized_env.py``, taken from garage
``src/garage/envs/normalized_env.py``; fb/mtrl's ``config/env/metaworld-mt10.yaml`` turns it on with
``should_perform_reward_normalization: True``) keeps, for each task's env, exponential moving estimates of the
per-step reward's mean and variance and divides each reward by the current standard deviation. Per step, with rate
``α = reward_alpha = 0.001`` and initial ``μ = 0``, ``σ² = 1``::

    μ  ← (1 − α) μ  + α r
    σ² ← (1 − α) σ² + α (r − μ)²      (with the μ just updated)
    r̃  = r / (√σ² + 1e-8)

The estimates are updated **once per step** and never reset between episodes. Meta-World 3.1's
``reward_normalization_method="exponential"`` (``metaworld/wrappers.py``, ``NormalizeRewardsExponential``) uses the
same formula but updates the estimates twice per step (once in ``step`` and again inside
``_apply_normalize_reward``), so it is not the reference; this wrapper is. It is a vector wrapper with one
``(μ, σ²)`` pair per sub-env (sub-env ``k`` is task ``k``): with SAME_STEP autoreset every vector step returns
exactly one reward per sub-env, so this equals one reference wrapper around each task's env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

EPS = 1e-8  # as the reference


class ExponentialRewardNormalization(gym.vector.VectorWrapper):
    """Divide each sub-env's reward by a moving estimate of its per-step standard deviation (see the module).

    Args:
        env: the vector env to wrap.
        reward_alpha: update rate of the moving mean and variance (reference: 0.001).
    """

    def __init__(self, env: gym.vector.VectorEnv, reward_alpha: float = 0.001) -> None:
        super().__init__(env)
        if not 0.0 < reward_alpha <= 1.0:
            raise ValueError(f"reward_alpha must be in (0, 1], got {reward_alpha}")
        self.reward_alpha = float(reward_alpha)
        self.reward_mean = np.zeros(env.num_envs)
        self.reward_var = np.ones(env.num_envs)

    @property
    def envs(self) -> list[gym.Env]:
        """The sub-envs of the wrapped vector env (as ``SyncVectorEnv.envs``)."""
        return self.env.unwrapped.envs  # type: ignore[attr-defined]

    def normalize(self, reward: np.ndarray) -> np.ndarray:
        """Update the estimates with one reward per sub-env and return the normalised rewards."""
        r = np.asarray(reward, dtype=np.float64).reshape(self.num_envs)
        a = self.reward_alpha
        self.reward_mean = (1.0 - a) * self.reward_mean + a * r
        self.reward_var = (1.0 - a) * self.reward_var + a * np.square(r - self.reward_mean)
        return r / (np.sqrt(self.reward_var) + EPS)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return obs, self.normalize(reward), terminated, truncated, info

    def get_state(self) -> dict[str, list[float]]:
        """The running estimates (for checkpoints)."""
        return {"mean": self.reward_mean.tolist(), "var": self.reward_var.tolist()}

    def set_state(self, state: dict[str, list[float]]) -> None:
        """Restore :meth:`get_state`."""
        mean, var = np.asarray(state["mean"], np.float64), np.asarray(state["var"], np.float64)
        if mean.shape != (self.num_envs,) or var.shape != (self.num_envs,):
            raise ValueError(f"reward normalisation state for {mean.shape} sub-envs, this env has {self.num_envs}")
        self.reward_mean, self.reward_var = mean, var
