"""Multi-task SAC: task-batched networks (architecture registry ``ARCHITECTURES``), per-task losses, replay."""

from mtrl.agents.archs import ARCHITECTURES, NetSpec, make_network
from mtrl.agents.buffer import REPLAYS, MultiTaskReplayBuffer
from mtrl.agents.networks import ARCHS, INITS, TaskMLP
from mtrl.agents.sac import ALPHAS, LOSSES, MultiTaskSAC, SACConfig, UpdateInfo

__all__ = [
    "ALPHAS",
    "ARCHITECTURES",
    "ARCHS",
    "INITS",
    "LOSSES",
    "REPLAYS",
    "MultiTaskReplayBuffer",
    "MultiTaskSAC",
    "NetSpec",
    "SACConfig",
    "TaskMLP",
    "UpdateInfo",
    "make_network",
]
