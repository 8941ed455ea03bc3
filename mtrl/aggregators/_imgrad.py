"""IMGrad (Zhou et al., "Injecting imbalance sensitivity for multi-task learning", IJCAI 2025, Eq. 11).

CAGrad's dual objective (paper Eq. 10) with its two terms reweighted by ``cosθ``, the cosine between the mean
gradient ``g0`` and the MGDA min-norm direction ``g_m`` (Fig. 6): imbalance makes ``g0`` lean towards the
dominant task and away from ``g_m``, so ``cosθ`` drops and the objective shifts weight to the term that pushes
``d`` away from ``g0``.

    ``min_{w∈Δ} (a − cosθ) g_wᵀg0 + cosθ·√φ·‖g_w‖``,   ``√φ = c‖g0‖``,
    ``d = (g0 + (√φ/‖g_w‖) g_w) / (1 + c²)``

Coefficients: the paper prints ``a = 1`` (Eq. 11); the official code (``zzpustc/IMGrad``, ``utils.py``) uses
``a = 1.5`` and ``c = 0.8`` with the ``1+c²`` rescale, which are our defaults. Eq. 11 as printed squares the
norm (``‖g_w‖²``); the official code and the derivation from Eq. 9-10 use ``‖g_w‖``, as we do.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._cagrad import _RESCALE, conflict_averse_direction
from mtrl.aggregators._diagnostics import Context


class IMGrad(GramWeighting):
    """Imbalance-sensitive CAGrad (see module docstring).

    Args:
        c: trust-region radius (official code 0.8).
        a: coefficient of the ``g_wᵀg0`` term: 1.5 official code (default), 1.0 paper Eq. 11.
        rescale: 1 divides by ``1+c²`` (official), 2 by ``1+c``, 0 not at all.
    """

    name = "imgrad"

    def __init__(self, c: float = 0.8, a: float = 1.5, rescale: int = 1) -> None:
        super().__init__()
        if not (isinstance(c, (int, float)) and c >= 0 and math.isfinite(c)):
            raise ValueError(f"imgrad: c must be a finite number >= 0, got {c!r}")
        if not (isinstance(a, (int, float)) and math.isfinite(a)):
            raise ValueError(f"imgrad: a must be a finite number, got {a!r}")
        if rescale not in _RESCALE:
            raise ValueError(f"imgrad: rescale must be one of {sorted(_RESCALE)}, got {rescale!r}")
        self.c = float(c)
        self.a = float(a)
        self.rescale = rescale
        self._w_prev: np.ndarray | None = None

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        cos = ctx.cos_theta
        w0 = self._w_prev if self._w_prev is not None and self._w_prev.shape[0] == ctx.K else None
        weights, w, stats = conflict_averse_direction(ctx, self.c, self.a - cos, cos, self.rescale, w0)
        self._w_prev = w
        return weights, stats

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "w_prev": None if self._w_prev is None else self._w_prev.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        wp = state.get("w_prev")
        self._w_prev = None if wp is None else np.asarray(wp, dtype=np.float64)
