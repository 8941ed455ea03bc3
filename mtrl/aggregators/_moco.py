"""MoCo (Fernando et al., "Mitigating gradient bias in multi-objective learning: a provably convergent approach",
ICLR 2023, Alg. 1): tracked gradients plus a projected-gradient update of the weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtrl.aggregators._base import Aggregator, Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._solvers import project_simplex


class MoCo(Aggregator):
    """``Y ← Y − β_t (Y − G)`` (tracking; ``β_t = β / t^σβ``), ``λ ← Π_Δ(λ − γ_t (Y Yᵀ + ρ I) λ)``
    (``γ_t = γ / t^σγ``), ``d = λᵀY`` (λ on the simplex: mean scale for identical rows).

    The tracked ``Y`` (K x P) is state: it lives on ``G``'s device and goes into the checkpoint.
    LibMTL's port replaces the simplex projection by a softmax; we follow the paper (Alg. 1).

    Args:
        beta, beta_sigma: tracking rate and its decay exponent (0.5, 0.5).
        gamma, gamma_sigma: weight step size and its decay exponent (0.1, 0.5).
        rho: regularisation ρ (0).
    """

    name = "moco"

    def __init__(
        self, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5, rho: float = 0.0
    ) -> None:
        super().__init__()
        if not (0 < beta <= 1 and gamma > 0 and beta_sigma >= 0 and gamma_sigma >= 0 and rho >= 0):
            raise ValueError("moco: need 0 < beta <= 1, gamma > 0, beta_sigma, gamma_sigma, rho >= 0")
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma, self.rho = beta, beta_sigma, gamma, gamma_sigma, rho
        self._Y: torch.Tensor | None = None
        self._lam: np.ndarray | None = None
        self._t = 0

    def _aggregate(self, ctx: Context, losses: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, Stats]:
        G = ctx.G.detach()
        K = ctx.K
        if self._Y is None or self._Y.shape != G.shape:
            self._Y, self._lam, self._t = G.clone(), np.full(K, 1.0 / K), 0
        self._t += 1
        beta = self.beta / self._t**self.beta_sigma
        gamma = self.gamma / self._t**self.gamma_sigma
        self._Y = self._Y.to(G) - beta * (self._Y.to(G) - G)
        Yd = self._Y.double()
        YY = (Yd @ Yd.T).cpu().numpy()
        YY = YY / max(float(np.max(np.diag(YY))), 1e-300)  # step size relative to the tracked gradients' scale
        self._lam = project_simplex(self._lam - gamma * (YY @ self._lam + self.rho * self._lam))
        w = torch.as_tensor(self._lam, dtype=G.dtype, device=G.device)
        return w @ self._Y, None, {"moco_lambda": self._lam.tolist()}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "Y": None if self._Y is None else self._Y.cpu(),
            "lam": None if self._lam is None else self._lam.tolist(),
            "t": self._t,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._Y = state.get("Y")
        self._lam = None if state.get("lam") is None else np.asarray(state["lam"], dtype=np.float64)
        self._t = int(state.get("t", 0))
