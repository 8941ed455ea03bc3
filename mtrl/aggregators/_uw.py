"""Uncertainty weighting (UW; Kendall, Gal & Cipolla, CVPR 2018, Eq. 7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.aggregators._base import Stats
from mtrl.aggregators._loss_weighting import Adam, LossWeighting


class UW(LossWeighting):
    """Minimise ``Σ_i L_i / (2σ_i²) + log σ_i`` jointly in the model and ``s_i = log σ_i``.

    The shared gradient is ``Σ_i g_i / (2σ_i²)``: weights ``1/(2σ_i² K)`` (mean scale; at ``σ = 1`` half of LS).
    ``s`` is learned by the aggregator itself: :meth:`step` takes one Adam step (``lr``) on
    ``∂/∂s_i = 1 − L_i e^{−2 s_i}``, whose fixed point ``σ_i² = L_i`` gives weights ``1/(2 L_i K)``.

    Args:
        lr: Adam learning rate of ``log σ``.
    """

    name = "uw"

    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"uw: lr must be > 0, got {lr!r}")
        self.lr = float(lr)
        self.log_sigma: np.ndarray | None = None
        self._opt = Adam(self.lr)

    def loss_weights(self, losses: np.ndarray) -> tuple[np.ndarray, Stats]:
        K = losses.shape[0]
        if self.log_sigma is None or self.log_sigma.shape[0] != K:
            self.log_sigma = np.zeros(K)
        w = np.exp(-2.0 * self.log_sigma) / (2.0 * K)
        return w, {"log_sigma": self.log_sigma.tolist()}

    def step(self, losses: Any = None) -> None:
        if losses is None:
            return
        L = np.asarray(losses, dtype=np.float64).reshape(-1)
        if self.log_sigma is None or self.log_sigma.shape[0] != L.shape[0]:
            self.log_sigma = np.zeros(L.shape[0])
        self.log_sigma = self._opt.step(self.log_sigma, 1.0 - L * np.exp(-2.0 * self.log_sigma))

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "log_sigma": None if self.log_sigma is None else self.log_sigma.tolist(),
            "adam": self._opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        ls = state.get("log_sigma")
        self.log_sigma = None if ls is None else np.asarray(ls, dtype=np.float64)
        if "adam" in state:
            self._opt.load_state_dict(state["adam"])
