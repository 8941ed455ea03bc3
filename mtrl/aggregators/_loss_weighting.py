"""Base of the loss-based weightings (SI, DWA, UW, FAMO): weights from the per-task losses and a state.

The direction is ``wᵀG`` with ``w`` on the mean-gradient scale (equal weights are ``1/K``). State that learns
(UW's log σ, FAMO's logits, DWA's loss history) is updated in :meth:`step`, called once after each optimiser
step with the per-task losses, and saved by ``state_dict``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context


class LossWeighting(GramWeighting):
    """A weighting of the rows computed from the losses (it does not read the Gram matrix)."""

    uses_losses = True

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        assert losses is not None
        return self.loss_weights(losses)

    def loss_weights(self, losses: np.ndarray) -> tuple[np.ndarray, Stats]:
        raise NotImplementedError


class Adam:
    """A minimal numpy Adam (Kingma & Ba 2015, Alg. 1) with decoupled-free L2 weight decay as in ``torch.optim.Adam``,
    for the few learnable scalars some weightings own (UW's log σ, FAMO's logits)."""

    def __init__(self, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps=1e-8):
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.t = 0

    def step(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.m is None or self.v is None:
            self.m, self.v = np.zeros_like(x), np.zeros_like(x)
        g = grad + self.weight_decay * x
        b1, b2 = self.betas
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        mhat = self.m / (1 - b1**self.t)
        vhat = self.v / (1 - b2**self.t)
        return x - self.lr * mhat / (np.sqrt(vhat) + self.eps)

    def state_dict(self) -> dict[str, Any]:
        return {
            "m": None if self.m is None else self.m.tolist(),
            "v": None if self.v is None else self.v.tolist(),
            "t": self.t,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.m = None if s["m"] is None else np.asarray(s["m"], dtype=np.float64)
        self.v = None if s["v"] is None else np.asarray(s["v"], dtype=np.float64)
        self.t = int(s["t"])
