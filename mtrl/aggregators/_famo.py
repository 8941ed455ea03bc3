"""FAMO (Liu et al., "FAMO: Fast adaptive multitask optimization", NeurIPS 2023, Alg. 1): O(1) loss-space weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.aggregators._base import Stats
from mtrl.aggregators._loss_weighting import Adam, LossWeighting


class FAMO(LossWeighting):
    """Weights from logits ``ξ``: ``z = softmax(ξ)``, direction ``Σ_i c·z_i/ℓ_i · g_i`` with
    ``ℓ_i = L_i − min_loss + ε`` and ``c = (Σ_i z_i/ℓ_i)⁻¹`` (the weights sum to 1: mean scale).

    After the optimiser step, :meth:`step` receives the new losses and updates
    ``ξ ← Adam(ξ; ∂z/∂ξᵀ δ + γ ξ)`` with ``δ_i = log ℓ_i(before) − log ℓ_i(after)`` (Alg. 1, lines 6-7): a task
    whose loss fell more gets less weight next. ``before`` is the loss of the last aggregation.

    Args:
        gamma: weight decay of ξ (paper 1e-3 supervised; RL 1e-3 to 1e-2).
        w_lr: Adam learning rate of ξ (0.025).
        min_loss: ``min_loss`` offset (0 for non-negative losses).
        eps: ε.
    """

    name = "famo"

    def __init__(self, gamma: float = 0.001, w_lr: float = 0.025, min_loss: float = 0.0, eps: float = 1e-8):
        super().__init__()
        if not (gamma >= 0 and w_lr > 0 and eps > 0):
            raise ValueError(f"famo: need gamma >= 0, w_lr > 0, eps > 0; got {gamma!r}, {w_lr!r}, {eps!r}")
        self.gamma, self.w_lr, self.min_loss, self.eps = float(gamma), float(w_lr), float(min_loss), float(eps)
        self.logits: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._opt = Adam(self.w_lr, weight_decay=self.gamma)

    def _shift(self, losses: np.ndarray) -> np.ndarray:
        return np.maximum(losses - self.min_loss, 0.0) + self.eps

    def loss_weights(self, losses: np.ndarray) -> tuple[np.ndarray, Stats]:
        K = losses.shape[0]
        if self.logits is None or self.logits.shape[0] != K:
            self.logits = np.zeros(K)
        z = np.exp(self.logits - self.logits.max())
        z /= z.sum()
        ell = self._shift(losses)
        self._prev = ell
        inv = z / ell
        return inv / inv.sum(), {"famo_z": z.tolist()}

    def step(self, losses: Any = None) -> None:
        if losses is None or self._prev is None or self.logits is None:
            return
        ell = self._shift(np.asarray(losses, dtype=np.float64).reshape(-1))
        delta = np.log(self._prev) - np.log(ell)
        z = np.exp(self.logits - self.logits.max())
        z /= z.sum()
        grad = z * delta - z * float(z @ delta)  # (diag(z) − z zᵀ) δ, the softmax Jacobian applied to δ
        self.logits = self._opt.step(self.logits, grad)
        self._prev = None

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "logits": None if self.logits is None else self.logits.tolist(),
            "prev": None if self._prev is None else self._prev.tolist(),
            "adam": self._opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        lg, pv = state.get("logits"), state.get("prev")
        self.logits = None if lg is None else np.asarray(lg, dtype=np.float64)
        self._prev = None if pv is None else np.asarray(pv, dtype=np.float64)
        if "adam" in state:
            self._opt.load_state_dict(state["adam"])
