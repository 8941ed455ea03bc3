"""MGDA (Sener & Koltun, "Multi-task learning as multi-objective optimization", NeurIPS 2018, Eq. 3 / Alg. 2)."""

from __future__ import annotations

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context


class MGDA(GramWeighting):
    """Min-norm point of the convex hull of the task gradients: ``w = argmin_{w∈Δ} ‖wᵀG‖²``, ``d = wᵀG``.

    Solved exactly in K-space on the Gram matrix (:func:`~mtrl.aggregators._solvers.min_norm_weights`: closed form
    for K = 2, enumeration of the simplex's faces for K <= 4, primal active-set QP otherwise, its KKT test relative
    to each task's own norm, so it stays exact at gradient-norm ratios of 1e6: ``diag(1e-3, 1e-3, 1e3)`` gives
    ``w = (½, ½, 5e-13)``, ``‖d‖ = 7.07e-4``); the weights sum to 1, so ``d`` is on the mean-gradient scale for
    identical rows. The reference code (LibMTL ``MGDA.py``, Sener & Koltun's ``min_norm_solvers.py``) runs
    Frank-Wolfe with gradient normalisation ``"none"`` by default; we solve the same QP exactly.
    """

    name = "mgda"

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        return ctx.mgda_weights.copy(), {}
