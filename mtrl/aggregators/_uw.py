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

    Parametrisation and default learning rate. mtrl learns ``s = log σ`` (the paper's σ, Eq. 7); the reference
    codes learn ``log σ²`` (nash-mtl ``methods/weight_methods.py`` ``Uncertainty``: ``½(e^{−v}L + v)``, Adam at
    ``--method-params-lr 0.025``; LibMTL ``LibMTL/weighting/UW.py``: the same loss, ``v`` initialised at −0.5).
    With ``v = 2s`` the two objectives are the same function, and Adam's steps do not depend on the gradient's
    scale, so an Adam step of ``lr`` on ``s`` is a step of ``2·lr`` on ``v``: mtrl's ``lr = x`` equals the
    references' ``lr = 2x``. The default ``lr = 0.0125`` is therefore exactly nash-mtl's default 0.025 (mtrl's
    earlier 1e-3 was 2e-3 there, 12.5 times slower). ``s`` starts at 0 (σ = 1, nash-mtl's start; LibMTL starts
    at ``σ² = e^{−0.5}``).

    Args:
        lr: Adam learning rate of ``log σ`` (0.0125 = nash-mtl's 0.025 on ``log σ²``).
    """

    name = "uw"

    def __init__(self, lr: float = 0.0125) -> None:
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
