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

Which official code. The repository has two copies of ``imgrad``: ``nyuv2/utils.py`` (three tasks, any K in form)
and ``cityscapes/utils.py`` (two tasks, ``w = (x, 1−x)`` written out). They differ for K = 2: in the CityScapes
objective an operator-precedence slip multiplies only the quadratic part of ``g_wᵀg0`` by ``(1.5 − cosθ)``
(``(1.5−cos)·½x(g11+g22−2g12) + (½+x)(g12−g22) + g22``; the bracket closes too early), so the linear and
constant parts of ``g_wᵀg0`` keep weight 1. mtrl follows the NYUv2 code, which scales the whole ``g_wᵀg0`` as
Eq. 11 prescribes, for every K including 2 (tested: K = 2 equals the general-K objective). Both copies are
called with ``rescale=1`` (``1+c²``), our default. ``cosθ`` is computed from the exact MGDA point (scale-invariant,
never negative: see ``Context.cos_theta``); the official code uses its own MGDA solver.
"""

from __future__ import annotations

import math

from mtrl.aggregators._cagrad import ConflictAverse
from mtrl.aggregators._diagnostics import Context


class IMGrad(ConflictAverse):
    """Imbalance-sensitive CAGrad (see module docstring).

    Args:
        c: trust-region radius (official code 0.8).
        a: coefficient of the ``g_wᵀg0`` term: 1.5 official code (default), 1.0 paper Eq. 11.
        rescale: 1 divides by ``1+c²`` (official), 2 by ``1+c``, 0 not at all.
    """

    name = "imgrad"

    def __init__(self, c: float = 0.8, a: float = 1.5, rescale: int = 1) -> None:
        super().__init__(c, rescale)
        if not (isinstance(a, (int, float)) and math.isfinite(a)):
            raise ValueError(f"imgrad: a must be a finite number, got {a!r}")
        self.a = float(a)

    def coefficients(self, ctx: Context) -> tuple[float, float]:
        cos = ctx.cos_theta
        return self.a - cos, cos
