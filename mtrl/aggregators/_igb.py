"""Improvable gap balancing v1 (IGBv1; Dai et al., "Improvable gap balancing for multi-task learning", UAI 2023,
``papers/improvable-gap-balancing-summary.md``; reference code ``YanqiDai/IGB4MTL``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.aggregators._base import Stats
from mtrl.aggregators._loss_weighting import LossWeighting


class IGBv1(LossWeighting):
    """Weights ``λ_i = K·softmax(gap/T)_i`` with the improvable gap ``gap_i = L_i / B_i`` (the ideal loss taken as
    0): a task whose loss has fallen less relative to its baseline ``B_i`` gets more weight. ``B`` is the mean
    loss over one window of ``window`` steps (an epoch in the paper): the window ``baseline_window`` (the second
    window, as the paper's second epoch) when ``reference="baseline"``, or the most recent complete window when
    ``reference="last"`` (what the reference code's default does). Neutral weights until the baseline exists.
    Weights ``λ/K`` (mean scale).

    Args:
        window: steps per window (set to the steps of an epoch in supervised training).
        temperature: ``T`` (1).
        baseline_window: index of the baseline window (1 = the second).
        reference: ``"baseline"`` or ``"last"``.
    """

    name = "igbv1"

    def __init__(
        self, window: int = 1, temperature: float = 1.0, baseline_window: int = 1, reference: str = "baseline"
    ):
        super().__init__()
        if not (isinstance(window, int) and window >= 1 and isinstance(baseline_window, int) and baseline_window >= 0):
            raise ValueError(
                f"igbv1: window must be >= 1 and baseline_window >= 0, got {window!r}, {baseline_window!r}"
            )
        if not temperature > 0:
            raise ValueError(f"igbv1: temperature must be > 0, got {temperature!r}")
        if reference not in ("baseline", "last"):
            raise ValueError(f"igbv1: reference must be 'baseline' or 'last', got {reference!r}")
        self.window, self.temperature = window, float(temperature)
        self.baseline_window, self.reference = baseline_window, reference
        self._sum: np.ndarray | None = None
        self._count = 0
        self._n_windows = 0
        self._baseline: np.ndarray | None = None

    def loss_weights(self, losses: np.ndarray) -> tuple[np.ndarray, Stats]:
        K = losses.shape[0]
        if self._baseline is None:
            return np.full(K, 1.0 / K), {}
        gap = losses / np.maximum(self._baseline, 1e-12)
        e = np.exp((gap - gap.max()) / self.temperature)
        return e / e.sum(), {"improvable_gap": gap.tolist()}

    def step(self, losses: Any = None) -> None:
        if losses is None:
            return
        x = np.asarray(losses, dtype=np.float64).reshape(-1)
        self._sum = x.copy() if self._sum is None else self._sum + x
        self._count += 1
        if self._count == self.window:
            mean = self._sum / self._count
            if self.reference == "last" and self._n_windows >= self.baseline_window:
                self._baseline = mean
            elif self._n_windows == self.baseline_window:
                self._baseline = mean
            self._n_windows += 1
            self._sum, self._count = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "sum": None if self._sum is None else self._sum.tolist(),
            "count": self._count,
            "n_windows": self._n_windows,
            "baseline": None if self._baseline is None else self._baseline.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._sum = None if state.get("sum") is None else np.asarray(state["sum"], dtype=np.float64)
        self._count, self._n_windows = int(state.get("count", 0)), int(state.get("n_windows", 0))
        self._baseline = None if state.get("baseline") is None else np.asarray(state["baseline"], dtype=np.float64)
