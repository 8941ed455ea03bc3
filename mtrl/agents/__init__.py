"""Multi-task SAC: task-batched networks (three architectures), per-task losses, per-task replay."""

from mtrl.agents.buffer import REPLAYS, MultiTaskReplayBuffer
from mtrl.agents.networks import ARCHS, INITS, TaskMLP
from mtrl.agents.sac import ALPHAS, LOSSES, MultiTaskSAC, SACConfig, UpdateInfo

__all__ = [
    "ALPHAS",
    "ARCHS",
    "INITS",
    "LOSSES",
    "REPLAYS",
    "MultiTaskReplayBuffer",
    "MultiTaskSAC",
    "SACConfig",
    "TaskMLP",
    "UpdateInfo",
]
