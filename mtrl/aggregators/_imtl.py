"""IMTL-G (Liu et al., "Towards impartial multi-task learning", ICLR 2021, Eq. 10, closed form)."""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dgesv

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._solvers import correlation


class IMTL(GramWeighting):
    """Weights ``α`` with ``Σα = 1`` such that ``d = αᵀG`` has equal projections on every unit gradient ``u_i``.

    The paper's closed form (Eq. 10; LibMTL ``LibMTL/weighting/IMTL.py``) is ``α_{2:K} = g_1 Uᵀ (D Uᵀ)⁻¹``,
    ``α_1 = 1 − Σ α_{2:K}`` with ``D = [g_1 − g_i]``, ``U = [u_1 − u_i]``. Equal projections ``(Aα)_i/‖g_i‖ = t``
    mean ``α ∝ A⁻¹n``; with ``A = DCD`` (``C`` the cosine matrix, unit diagonal) that is ``α_i ∝ β_i/‖g_i‖`` for
    ``Cβ = 1``. We solve that K x K system: the same ``α`` wherever Eq. 10 is defined, and a condition number
    that does not grow with the spread of the gradient norms (Eq. 10's ``D Uᵀ`` mixes scales 1e6 apart at a
    norm ratio of 1e6). A singular ``C`` (identical or rank-deficient rows) is solved by least squares (minimum
    norm β: identical rows get equal weights); zero rows get weight 0. If ``Σ_i β_i/‖g_i‖`` vanishes (no such
    ``α`` exists) the weights fall back to the mean (``stats["imtl_fallback"] = 1``).
    """

    name = "imtl"

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        K = ctx.K
        if K == 1:
            return np.ones(1), {"imtl_fallback": 0.0}
        A = ctx.gram
        n = np.sqrt(np.clip(np.diag(A), 0.0, None))
        ones = np.ones(K)
        if n.min() > 0:  # fast path: every row non-zero
            act, Cs = np.arange(K), A / np.outer(n, n)
        else:
            C, n = correlation(A)
            act = np.flatnonzero(n > 0)
            if act.size == 0:
                return np.full(K, 1.0 / K), {"imtl_fallback": 1.0}
            Cs, ones = C[np.ix_(act, act)], np.ones(act.size)
        w = np.zeros(K)
        _, _, beta, info = dgesv(Cs, ones)
        if info != 0 or not np.isfinite(beta).all() or np.abs(Cs @ beta - ones).max() > 1e-8:
            beta = np.linalg.lstsq(Cs, ones, rcond=1e-12)[0]  # singular: identical or rank-deficient rows
        a = beta / n[act]
        tot = float(a.sum())
        if not (np.isfinite(tot) and abs(tot) > 1e-12 * float(np.abs(a).sum())):
            return np.full(K, 1.0 / K), {"imtl_fallback": 1.0}
        w[act] = a / tot
        return w, {"imtl_fallback": 0.0}
