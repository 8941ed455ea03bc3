"""Scale-invariant loss (SI): minimise ``Σ_i log L_i`` (as in the LibMTL / Nash-MTL baselines)."""

from __future__ import annotations

import numpy as np

from mtrl.aggregators._base import Stats
from mtrl.aggregators._loss_weighting import LossWeighting


class SI(LossWeighting):
    """``∇ Σ log L_i = Σ g_i / L_i``: weights ``1/(K·L_i)`` (mean scale). Needs positive losses; losses below
    ``eps`` are clamped to it and counted in ``stats["n_nonpositive"]``.

    Args:
        eps: floor of the losses.
    """

    name = "si"

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"si: eps must be > 0, got {eps!r}")
        self.eps = float(eps)

    def loss_weights(self, losses: np.ndarray) -> tuple[np.ndarray, Stats]:
        n_bad = float(np.sum(losses < self.eps))
        return 1.0 / (losses.shape[0] * np.maximum(losses, self.eps)), {"n_nonpositive": n_bad}
