"""Multi-task SAC: task-batched networks (three architectures), per-task losses, per-task replay."""

from mtrl.agents.buffer import MultiTaskReplayBuffer
from mtrl.agents.networks import ARCHS, TaskMLP
from mtrl.agents.sac import MultiTaskSAC, SACConfig, UpdateInfo

__all__ = ["ARCHS", "MultiTaskReplayBuffer", "MultiTaskSAC", "SACConfig", "TaskMLP", "UpdateInfo"]
