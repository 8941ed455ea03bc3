"""MGDA (Sener & Koltun, "Multi-task learning as multi-objective optimization", NeurIPS 2018, Eq. 3 / Alg. 2)."""

from __future__ import annotations

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context


class MGDA(GramWeighting):
    """Min-norm point of the convex hull of the task gradients: ``w = argmin_{w∈Δ} ‖wᵀG‖²``, ``d = wᵀG``.

    Solved exactly in K-space on the Gram matrix (closed form for K = 2, primal active-set QP otherwise);
    the weights sum to 1, so ``d`` is on the mean-gradient scale for identical rows.
    """

    name = "mgda"

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        return ctx.mgda_weights.copy(), {}
