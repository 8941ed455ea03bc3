"""Dynamic weight average (DWA; Liu, Johns & Davison, "End-to-end multi-task learning with attention", CVPR 2019,
Eq. 7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.aggregators._base import Stats
from mtrl.aggregators._loss_weighting import LossWeighting


class DWA(LossWeighting):
    """``λ_i = K·exp(r_i/T) / Σ_j exp(r_j/T)``, ``r_i = L̄_i(t−1) / L̄_i(t−2)`` the ratio of the last two window
    means of task i's loss; ``λ = 1`` for the first two windows. Weights ``λ_i/K`` (mean scale).

    The paper's window is an epoch; here it is ``window`` calls of :meth:`step` (set it to the steps per epoch in
    supervised training).

    Args:
        window: number of steps averaged into one loss mean.
        temperature: ``T`` (paper: 2).
    """

    name = "dwa"

    def __init__(self, window: int = 1, temperature: float = 2.0) -> None:
        super().__init__()
        if not (isinstance(window, int) and window >= 1):
            raise ValueError(f"dwa: window must be an int >= 1, got {window!r}")
        if not temperature > 0:
            raise ValueError(f"dwa: temperature must be > 0, got {temperature!r}")
        self.window = window
        self.temperature = float(temperature)
        self._sum: np.ndarray | None = None
        self._count = 0
        self._means: list[list[float]] = []  # the last two completed window means

    def loss_weights(self, losses: np.ndarray) -> tuple[np.ndarray, Stats]:
        K = losses.shape[0]
        if len(self._means) < 2:
            return np.full(K, 1.0 / K), {}
        r = np.asarray(self._means[-1]) / np.maximum(np.asarray(self._means[-2]), 1e-12)
        e = np.exp((r - r.max()) / self.temperature)
        return e / e.sum(), {}

    def step(self, losses: Any = None) -> None:
        if losses is None:
            return
        x = np.asarray(losses, dtype=np.float64).reshape(-1)
        self._sum = x.copy() if self._sum is None else self._sum + x
        self._count += 1
        if self._count == self.window:
            self._means = (self._means + [(self._sum / self._count).tolist()])[-2:]
            self._sum, self._count = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "sum": None if self._sum is None else self._sum.tolist(),
            "count": self._count,
            "means": self._means,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._sum = None if state.get("sum") is None else np.asarray(state["sum"], dtype=np.float64)
        self._count = int(state.get("count", 0))
        self._means = [list(m) for m in state.get("means", [])]
