"""Replay: one ring buffer per task, stored as numpy arrays ``[K, capacity_per_task, ...]``.

Every vector step adds one transition per task (sub-env k is task k), so all tasks share one write pointer.
Two ways to sample (``agent.replay``), both giving a ``[K, B, ...]`` batch whose task axis lines up with the
per-task losses:

- ``stratified`` (:meth:`MultiTaskReplayBuffer.sample`, default): ``batch_per_task`` indices per task (equal
  per-task sampling, SPEC §4: 128 x 10 = 1280);
- ``uniform`` (:meth:`MultiTaskReplayBuffer.sample_uniform`): ``total`` transitions drawn uniformly from all tasks'
  transitions together, as facebookresearch/mtrl's single buffer (``mtrl/replay_buffer.py``, ``sample``: one
  ``randint`` over the whole buffer). The K buffers advance together, so their union *is* that one buffer. Task k
  gets a random number ``n_k`` of samples; the batch is padded to ``B = max_k n_k`` and carries ``weight``
  (``1/n_k`` on real samples, 0 on padding), so that each task loss is the mean over its own samples, as the
  reference's per-task losses (``mtrl/agent/grad_manipulation.py``, ``_convert_loss_into_task_loss``).

``terminated`` is stored, not ``truncated``: time-limit truncation bootstraps.
"""

from __future__ import annotations

import numpy as np
import torch

from mtrl._ring import RingState

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")
REPLAYS = ("stratified", "uniform")


class MultiTaskReplayBuffer(RingState):
    """One FIFO buffer per task with a shared pointer; arrays only (checkpointed as arrays, never pickled)."""

    capacity_label = "replay capacity per task"

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

    def sample_uniform(self, total: int, rng: np.random.Generator, device: torch.device | str = "cpu"):
        """``total`` transitions drawn uniformly from all tasks together, as a padded ``[K, B, ...]`` batch with
        per-sample ``weight`` (see the module docstring). A task that drew no sample has all-zero weights."""
        K = self.num_tasks
        flat = rng.integers(0, K * self.size, size=total)  # one index into the union of the K buffers
        task, idx = flat % K, flat // K
        counts = np.bincount(task, minlength=K)
        order = np.argsort(task, kind="stable")
        t_sorted, i_sorted = task[order], idx[order]
        pos = np.arange(total) - (np.cumsum(counts) - counts)[t_sorted]  # rank of each sample within its task
        rows = np.zeros((K, max(int(counts.max()), 1)), dtype=np.int64)  # padding points at slot 0 (weight 0)
        rows[t_sorted, pos] = i_sorted
        weight = np.zeros(rows.shape, dtype=np.float32)
        weight[t_sorted, pos] = (1.0 / np.maximum(counts, 1))[t_sorted]
        tasks = np.arange(K)[:, None]
        batch = {k: torch.from_numpy(v[tasks, rows]).to(device) for k, v in self.data.items()}
        batch["weight"] = torch.from_numpy(weight).to(device)
        return batch
