"""IMGrad on Nash-MTL (Zhou et al., IJCAI 2025, §5.2, Eq. 12-13). No official code exists; this is our derivation.

Derivation. The reference Nash-MTL CCCP (``_nashmtl.py``) solves, at each iteration from ``α_t``,

    min_α  Σ_i g_iᵀGα  +  ∇φ(α_t)ᵀα / n     s.t.  φ_i(α) = log α_i + log g_iᵀGα  ≥  0,   α ≥ 0,

i.e. the paper's Eq. 12 with the concave ``φ(α) = Σ_i φ_i(α)`` replaced by its linearisation (the convex-concave
step; constants dropped), and ``n`` the Frobenius norm that normalises ``GGᵀ``. (mtrl solves it in Nash-MTL's
scale-invariant form: variables ``β = α∘‖g‖`` on the cosine matrix, the first term weighted as for ``n = 1``;
see ``_nashmtl.py``.) The first term, ``1ᵀGGᵀα =
K·g0ᵀd`` for ``d = Σ α_i g_i``, "pushes away from g0"; the second "strikes balance among individuals". Eq. 13
reweights the two terms with ``cosθ``, θ the angle between ``g0`` and the MGDA direction (as in IMGrad):

    min_α  (1 − cosθ)·Σ_i g_iᵀGα  +  cosθ·∇φ(α_t)ᵀα / n    (same constraints),

so imbalance (small ``cosθ``) shifts weight to the push-away term. Both terms stay linear in α, so each CCCP step
is the same DPP conic program as Nash-MTL's with one coefficient vector changed. At ``cosθ = ½`` the objective is
exactly half of Nash-MTL's and the iterates coincide (tested).

Why it keeps the Pareto property: every feasible α has ``g_iᵀd = (GGᵀα)_i ≥ 1/(n α_i) > 0`` for all i, so any
successful solve gives ``cos(g_i, d) > 0``. Nash-MTL's step fails (and the reference then re-uses the previous α,
which may conflict with the new gradients) when the linear objective is unbounded below on the feasible set; its
recession directions ``r ≥ 0`` have ``GGᵀr ≥ 0``, on which the push-away term ``1ᵀGGᵀr`` is non-negative while
``∇φ(α_t)ᵀr`` can be negative when ``(GGᵀα_t)_j < 0``. Weighting the push-away term by ``1 − cosθ`` therefore
makes the step bounded in cases where Nash-MTL's is not (tested on such an input). The direction, scale
(``Σ α_i g_i / K``, clipped to ``max_norm``) and failure handling are Nash-MTL's.
"""

from __future__ import annotations

import numpy as np

from mtrl.aggregators._base import Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._nashmtl import NashMTL


class IMGradNash(NashMTL):
    """Nash-MTL's CCCP with the cosθ-weighted objective of IMGrad Eq. 13 (see module docstring).

    Args:
        max_norm, optim_niter, update_weights_every: as Nash-MTL (the solver is always the CCCP).
    """

    name = "imgrad_nash"

    def __init__(self, max_norm: float = 1.0, optim_niter: int = 20, update_weights_every: int = 1) -> None:
        super().__init__(
            solver="cccp", max_norm=max_norm, optim_niter=optim_niter, update_weights_every=update_weights_every
        )
        self._cos = 0.5

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        self._cos = ctx.cos_theta
        return super().weights_from_gram(ctx, losses)

    def _objective_weights(self) -> tuple[float, float]:
        return 1.0 - self._cos, self._cos

    def __repr__(self) -> str:
        return (
            f"IMGradNash(max_norm={self.max_norm!r}, optim_niter={self.optim_niter!r}, "
            f"update_weights_every={self.update_weights_every!r})"
        )
