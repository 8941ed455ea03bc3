"""Single-task learning (STL): only one task's gradient, for single-task baselines."""

from __future__ import annotations

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context


class STL(GramWeighting):
    """One-hot weights on ``task``: ``d = g_task`` (LS with K = 1; no ``1/K`` factor).

    Args:
        task: index of the task whose gradient is followed.
    """

    name = "stl"

    def __init__(self, task: int = 0) -> None:
        super().__init__()
        if not isinstance(task, int) or task < 0:
            raise ValueError(f"stl: task must be a non-negative int, got {task!r}")
        self.task = task

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        if self.task >= ctx.K:
            raise ValueError(f"stl: task={self.task} but there are only {ctx.K} tasks")
        w = np.zeros(ctx.K)
        w[self.task] = 1.0
        return w, {}
