"""Per-update diagnostics shared by every aggregator (IMGrad paper, Definitions 1-3 and Fig. 4).

Everything is computed in K-space from the Gram matrix ``A = G Gᵀ`` (float64), plus one ``G d`` product for
methods whose direction is not a weighting of the rows. Both products run in float64 over column blocks of ``G``
(:func:`f64_matmul`): the accuracy of a float64 product (the summation error of float32 over ~1e6 parameters is
~1e-5 relative) at about a third of the cost of converting the whole matrix first, because each block stays in cache.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from mtrl.aggregators._solvers import min_norm_weights

_TINY = 1e-300
_BLOCK = 1 << 16  # columns of G per float64 block (10 x 65536 x 8 bytes = 5 MiB)


def f64_matmul(G: torch.Tensor, B: torch.Tensor | None = None) -> torch.Tensor:
    """``G Bᵀ`` in float64 for ``G`` ``[K, P]`` and ``B`` ``[m, P]`` (``B = G``, the Gram matrix, when None),
    accumulated over blocks of columns converted one at a time. ``[K, m]`` float64 on ``G``'s device."""
    K, P = G.shape
    m = K if B is None else B.shape[0]
    out = torch.zeros((K, m), dtype=torch.float64, device=G.device)
    for s in range(0, P, _BLOCK):
        g = G[:, s : s + _BLOCK].to(torch.float64)
        b = g if B is None else B[:, s : s + _BLOCK].to(torch.float64)
        out.addmm_(g, b.T)
    return out


def f64_row_norms(G: torch.Tensor) -> torch.Tensor:
    """``‖g_i‖`` of every row in float64, over the same column blocks as :func:`f64_matmul` (no float64 copy of G)."""
    sq = torch.zeros(G.shape[0], dtype=torch.float64, device=G.device)
    for s in range(0, G.shape[1], _BLOCK):
        g = G[:, s : s + _BLOCK].to(torch.float64)
        sq += (g * g).sum(dim=1)
    return sq.sqrt()


class Context:
    """Lazily computed quantities of one gradient matrix, shared between a method and its diagnostics."""

    def __init__(self, G: torch.Tensor) -> None:
        self.G = G
        self.K = int(G.shape[0])
        self._gram: np.ndarray | None = None
        self._mgda: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._cos_theta: float | None = None

    @property
    def gram(self) -> np.ndarray:
        """``G Gᵀ`` as a float64 numpy array (symmetrised)."""
        if self._gram is None:
            A = f64_matmul(self.G.detach()).cpu().numpy()
            self._gram = 0.5 * (A + A.T)
        return self._gram

    @property
    def norms(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.gram), 0.0, None))

    @property
    def mgda_weights(self) -> np.ndarray:
        """Weights of the MGDA min-norm point of the convex hull of the rows (cached)."""
        if self._mgda is None:
            self._mgda = min_norm_weights(self.gram)
        return self._mgda

    @property
    def cos_theta(self) -> float:
        """cos of the angle between ``g0`` (mean gradient) and ``g_m`` (MGDA min-norm point); 0 if either is 0."""
        if self._cos_theta is None:
            self._cos_theta = self._compute_cos_theta()
        return self._cos_theta

    def _compute_cos_theta(self) -> float:
        """``cosθ = g0ᵀg_m / (‖g0‖‖g_m‖)`` (IMGrad Eq. 9). At the min-norm point every ``g_iᵀg_m ≥ ‖g_m‖²``
        (the KKT conditions of the MGDA QP, equality on its support), so ``g0ᵀg_m`` is formed as the mean of
        ``max(g_iᵀg_m, ‖g_m‖²)``: rounding in ``g_iᵀg_m`` (whose terms can be 1e6 times larger than ``‖g_m‖²`` at
        strong imbalance) can then never make ``cosθ`` negative, and it is bounded below by ``‖g_m‖/‖g0‖ > 0``.
        0 if either vector is 0."""
        A = self.gram
        u = np.full(self.K, 1.0 / self.K)
        wm = self.mgda_weights
        Aw = A @ wm
        gm2 = max(float(wm @ Aw), 0.0)
        num = float(np.mean(np.maximum(Aw, gm2)))
        den = math.sqrt(max(float(u @ A @ u), 0.0) * gm2)
        return min(num / den, 1.0) if den > _TINY else 0.0

    def set_weights(self, w: np.ndarray) -> None:
        self._weights = w


@functools.lru_cache(maxsize=64)
def _triu(K: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(K, 1)


def diagnostics(ctx: Context, direction: torch.Tensor, weights: torch.Tensor | None) -> dict[str, Any]:
    """Diagnostics of one aggregation step.

    Returns ``grad_norms`` (per task), ``imbalance_ratio`` ``r = max‖g_i‖ / min‖g_i‖`` (Def. 2; ``inf`` if some
    but not all rows are zero, 1 if all are), ``conflict_frac`` (fraction of task pairs with
    ``cos(g_i, g_j) < 0``, Def. 1), ``cos_to_direction`` (``cos(g_i, d)``), ``pareto_failure`` (1 if any
    ``cos(g_i, d) < 0``, Def. 3), ``cos_theta`` (angle between ``g0`` and the MGDA point, IMGrad Eq. 9) and the
    weights.
    """
    A = ctx.gram
    K = ctx.K
    norms = ctx.norms
    nmax, nmin = float(norms.max()), float(norms.min())
    if nmax == 0.0:
        ratio = 1.0
    elif nmin == 0.0:
        ratio = math.inf
    else:
        ratio = nmax / nmin
    if K > 1:
        iu = _triu(K)
        conflict = float(np.mean(A[iu] < -1e-12 * (norms[iu[0]] * norms[iu[1]] + _TINY)))
    else:
        conflict = 0.0
    if ctx._weights is not None:
        w = ctx._weights
        Gd = A @ w
        dnorm = math.sqrt(max(float(w @ A @ w), 0.0))
    else:
        d = direction.detach().reshape(1, -1)
        Gd = f64_matmul(ctx.G.detach(), d)[:, 0].cpu().numpy()
        dnorm = math.sqrt(max(float(f64_matmul(d)[0, 0]), 0.0))
    den = norms * dnorm
    with np.errstate(over="ignore", invalid="ignore"):
        cos_d = np.where(den > _TINY, Gd / np.maximum(den, _TINY), 0.0)
    stats: dict[str, Any] = {
        "grad_norms": norms.tolist(),
        "imbalance_ratio": ratio,
        "conflict_frac": conflict,
        "cos_to_direction": cos_d.tolist(),
        "pareto_failure": float(bool(np.any(cos_d < -1e-9))),
        "cos_theta": ctx.cos_theta,
        "direction_norm": dnorm,
    }
    if weights is not None:
        stats["weights"] = weights.detach().double().cpu().tolist()
    return stats
