"""Replay: one ring buffer per task, stored as numpy arrays ``[K, capacity_per_task, ...]``.

Every vector step adds one transition per task (sub-env k is task k), so all tasks share one write pointer.
Sampling draws ``batch_per_task`` indices per task (equal per-task sampling, SPEC §4: 128 x 10 = 1280), giving a
``[K, B, ...]`` batch whose task axis lines up with the per-task losses. ``terminated`` is stored, not
``truncated``: time-limit truncation bootstraps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class MultiTaskReplayBuffer:
    """One FIFO buffer per task with a shared pointer; arrays only (checkpointed as arrays, never pickled)."""

    def __init__(self, num_tasks: int, capacity_per_task: int, obs_dim: int, act_dim: int) -> None:
        if capacity_per_task < 1:
            raise ValueError(f"replay capacity per task must be >= 1, got {capacity_per_task}")
        K, C = num_tasks, capacity_per_task
        self.num_tasks, self.capacity = K, C
        self.data = {
            "obs": np.zeros((K, C, obs_dim), np.float32),
            "action": np.zeros((K, C, act_dim), np.float32),
            "reward": np.zeros((K, C), np.float32),
            "next_obs": np.zeros((K, C, obs_dim), np.float32),
            "terminated": np.zeros((K, C), np.float32),
        }
        self.ptr = 0
        self.size = 0

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Add one transition per task (arrays with leading dimension K)."""
        for name, value in zip(FIELDS, (obs, action, reward, next_obs, terminated)):
            self.data[name][:, self.ptr] = np.asarray(value, dtype=np.float32).reshape(self.data[name][:, 0].shape)
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_per_task: int, rng: np.random.Generator, device: torch.device | str = "cpu"):
        """``batch_per_task`` uniform samples from each task's buffer, as ``[K, B, ...]`` float32 tensors."""
        idx = rng.integers(0, self.size, size=(self.num_tasks, batch_per_task))
        rows = np.arange(self.num_tasks)[:, None]
        return {k: torch.from_numpy(v[rows, idx]).to(device) for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the arrays (as tensors, for ``torch.save(weights_only)``), pointer and size."""
        return {
            "ptr": self.ptr,
            "size": self.size,
            "capacity": self.capacity,
            **{k: torch.from_numpy(np.ascontiguousarray(v[:, : self.size])) for k, v in self.data.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity per task differs: checkpoint {state['capacity']}, run {self.capacity}")
        self.ptr, self.size = int(state["ptr"]), int(state["size"])
        for k, v in self.data.items():
            arr = state[k].numpy()
            if arr.shape[0] != v.shape[0] or arr.shape[2:] != v.shape[2:]:
                raise ValueError(f"replay field {k!r}: checkpoint shape {tuple(arr.shape)}, run {v.shape}")
            v[:, : self.size] = arr
