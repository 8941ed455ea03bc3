"""CAGrad (Liu et al., "Conflict-averse gradient descent for multi-task learning", NeurIPS 2021, Eq. 5 / Alg. 1)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._solvers import min_linear_plus_norm

_RESCALE = {0: "none", 1: "1+c^2", 2: "1+c"}


def _rescale(c: float, rescale: int) -> float:
    return {0: 1.0, 1: 1.0 + c * c, 2: 1.0 + c}[rescale]


def conflict_averse_direction(
    ctx: Context, c: float, lin_coef: float, norm_coef: float, rescale: int, w0: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, Stats]:
    """Shared core of CAGrad and IMGrad (K-space).

    Solves ``w = argmin_{w∈Δ} lin_coef·g_wᵀg0 + norm_coef·√φ·‖g_w‖`` with ``√φ = c‖g0‖``, forms
    ``d = g0 + (√φ/‖g_w‖) g_w`` and divides by the rescale factor. Returns ``(row weights of d, w, stats)``;
    ``stats["solver_gap"]`` is the smallest relative Frank-Wolfe gap at ``w`` (>= −1e-8 when the solve is
    optimal; the solver has no failure mode beyond stopping early, which this shows).
    """
    K = ctx.K
    A = ctx.gram
    u = np.full(K, 1.0 / K)
    b = A @ u  # g_iᵀg0
    g0_norm = math.sqrt(max(float(u @ b), 0.0))
    sqrt_phi = c * g0_norm
    s = norm_coef * sqrt_phi
    w = min_linear_plus_norm(A, lin_coef * b, s, w0=w0)
    Aw = A @ w
    gw_norm = math.sqrt(max(float(w @ Aw), 0.0))
    lam = sqrt_phi / gw_norm if gw_norm > 1e-300 else 0.0
    weights = (u + lam * w) / _rescale(c, rescale)
    # optimality of the weight solve, as the solver tests it: the smallest Frank-Wolfe gap of the objective,
    # relative to each task's own scale (>= -1e-8: optimal; more negative: the solve stopped early)
    grad = lin_coef * b + (s * Aw / gw_norm if gw_norm > 1e-300 else 0.0)
    scale = np.abs(lin_coef * b) + s * np.sqrt(np.clip(np.diag(A), 0.0, None)) + abs(lin_coef * float(b @ w)) + 1e-300
    gap = float(np.min((grad - float(grad @ w)) / scale)) if gw_norm > 1e-300 else 0.0
    return weights, w, {"g0_norm": g0_norm, "gw_norm": gw_norm, "simplex_weights": w.tolist(), "solver_gap": gap}


class ConflictAverse(GramWeighting):
    """Shared part of CAGrad and IMGrad: the ``c``/``rescale`` checks, the K-space solve of
    :func:`conflict_averse_direction` warm-started from the previous step's simplex weights, and that state in
    checkpoints. Subclasses give the two coefficients of the objective."""

    def __init__(self, c: float, rescale: int) -> None:
        super().__init__()
        if not (isinstance(c, (int, float)) and c >= 0 and math.isfinite(c)):
            raise ValueError(f"{self.name}: c must be a finite number >= 0, got {c!r}")
        if rescale not in _RESCALE:
            raise ValueError(f"{self.name}: rescale must be one of {sorted(_RESCALE)}, got {rescale!r}")
        self.c = float(c)
        self.rescale = rescale
        self._w_prev: np.ndarray | None = None

    def coefficients(self, ctx: Context) -> tuple[float, float]:
        """``(lin_coef, norm_coef)`` of ``min_{w∈Δ} lin_coef·g_wᵀg0 + norm_coef·√φ·‖g_w‖``."""
        raise NotImplementedError

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        w0 = self._w_prev if self._w_prev is not None and self._w_prev.shape[0] == ctx.K else None
        lin_coef, norm_coef = self.coefficients(ctx)
        weights, w, stats = conflict_averse_direction(ctx, self.c, lin_coef, norm_coef, self.rescale, w0)
        self._w_prev = w
        return weights, stats

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "w_prev": None if self._w_prev is None else self._w_prev.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        wp = state.get("w_prev")
        self._w_prev = None if wp is None else np.asarray(wp, dtype=np.float64)


class CAGrad(ConflictAverse):
    """``min_{w∈Δ} g_wᵀg0 + √φ‖g_w‖`` with ``√φ = c‖g0‖``; ``d = (g0 + (√φ/‖g_w‖) g_w) / (1+c²)``.

    The dual of ``max_d min_i g_iᵀd  s.t. ‖d − g0‖ ≤ c‖g0‖`` (paper Eq. 5); solved exactly in K-space
    (closed form for K = 2, face enumeration for K <= 4, sequential QP with a per-task relative stopping test
    otherwise, warm-started from the previous step; exact at gradient-norm ratios up to 1e6, tested).

    Args:
        c: radius of the trust region around ``g0`` (0.4 supervised, 0.9 on MT10 in the CAGrad fork).
        rescale: 1 divides by ``1+c²`` (official code default), 2 by ``1+c``, 0 not at all.
    """

    name = "cagrad"

    def __init__(self, c: float = 0.4, rescale: int = 1) -> None:
        super().__init__(c, rescale)

    def coefficients(self, ctx: Context) -> tuple[float, float]:
        return 1.0, 1.0
