"""IMTL-G (Liu et al., "Towards impartial multi-task learning", ICLR 2021, Eq. 10, closed form)."""

from __future__ import annotations

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context


class IMTL(GramWeighting):
    """Weights ``α`` with ``Σα = 1`` such that ``d = αᵀG`` has equal projections on every unit gradient ``u_i``.

    With ``D = [g_1 − g_i]_{i≥2}`` and ``U = [u_1 − u_i]_{i≥2}``: ``α_{2:K} = g_1 Uᵀ (D Uᵀ)⁻¹`` and
    ``α_1 = 1 − Σ α_{2:K}``. Every inner product is read off the Gram matrix (``g_i·u_j = A_ij/‖g_j‖``), so
    the solve is K x K. A singular system (identical or zero rows) is solved by least squares.
    """

    name = "imtl"

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        K = ctx.K
        if K == 1:
            return np.ones(1), {}
        A = ctx.gram
        n = ctx.norms
        inv = np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0)
        B = A * inv[None, :]  # B[i, j] = g_i · u_j
        # (g_1 − g_i)·(u_1 − u_j) = B11 − B1j − Bi1 + Bij,   g_1·(u_1 − u_j) = B11 − B1j
        rhs = B[0, 0] - B[0, 1:]
        M = B[0, 0] - B[0, 1:][None, :] - B[1:, 0][:, None] + B[1:, 1:]
        # α_{2:K} solves α M = rhs, i.e. Mᵀ αᵀ = rhsᵀ
        a, *_ = np.linalg.lstsq(M.T, rhs, rcond=None)
        w = np.concatenate([[1.0 - a.sum()], a])
        return w, {}
