"""Gradient-norm loss scaling (Guo et al. 2025, "Revisit the imbalance optimization in multi-task learning",
``papers/gradient-norm-loss-scaling-summary.md``): scale each task's loss by the inverse of its gradient norm."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context


class GradNormScale(GramWeighting):
    """Weights ``w_i = n̄ / (K·n_i)`` with ``n_i = ‖g_i‖`` (optionally an EMA) and ``n̄ = mean_j n_j``: every task
    contributes a gradient of the same norm ``n̄/K``, and the sum of contributions stays on the mean scale.
    Zero rows get weight 0.

    Args:
        beta: EMA factor of the norms (0 = the current step's norms only).
    """

    name = "gradnorm_scale"

    def __init__(self, beta: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"gradnorm_scale: beta must be in [0, 1), got {beta!r}")
        self.beta = float(beta)
        self._ema: np.ndarray | None = None

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        n = ctx.norms
        if self.beta > 0:
            self._ema = (
                n.copy()
                if self._ema is None or self._ema.shape != n.shape
                else (self.beta * self._ema + (1 - self.beta) * n)
            )
            n = self._ema
        safe = np.where(n > 0, n, 1.0)
        w = np.where(n > 0, float(n.mean()) / (ctx.K * safe), 0.0)
        return w, {}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "ema": None if self._ema is None else self._ema.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        e = state.get("ema")
        self._ema = None if e is None else np.asarray(e, dtype=np.float64)
