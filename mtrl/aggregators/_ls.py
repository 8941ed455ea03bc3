"""Linear scalarisation (LS): the mean of the task gradients, ``d = g0 = (1/K) Σ_i g_i``."""

from __future__ import annotations

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context


class LS(GramWeighting):
    """Equal weights ``1/K``: the direction of the mean loss. This is the reference scale of every method."""

    name = "ls"

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        return np.full(ctx.K, 1.0 / ctx.K), {}
