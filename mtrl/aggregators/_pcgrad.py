"""PCGrad (Yu et al., "Gradient surgery for multi-task learning", NeurIPS 2020, Alg. 1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._random import RandomMixin


class PCGrad(RandomMixin, GramWeighting):
    """Project each ``g_i`` off the normal plane of every ``g_j`` it conflicts with, in random order; mean.

    For each task ``i`` and each other task ``j`` in a random order: if ``g_i'·g_j < 0`` then
    ``g_i' ← g_i' − (g_i'·g_j / ‖g_j‖²) g_j`` (projection against the *original* ``g_j``, as in Alg. 1).
    Every ``g_i'`` stays a linear combination ``Σ_k C_ik g_k`` of the rows, and every inner product it needs is
    ``(C A)_ij``, so the surgery runs on K x K coefficients and the direction is ``(1/K) 1ᵀC G``
    (reduction ``mean``; ``sum`` multiplies by K).

    Args:
        reduction: ``"mean"`` (default, mean-gradient scale) or ``"sum"`` (the reference code's scale).
        seed: seed of the private generator; ``generator``: use an existing ``torch.Generator``.
    """

    name = "pcgrad"

    def __init__(self, reduction: str = "mean", seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"pcgrad: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._init_generator(seed, generator)

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        K = ctx.K
        A = ctx.gram
        diag = np.diag(A)
        C = np.eye(K)
        n_proj = 0
        for i in range(K):
            order = torch.randperm(K, generator=self.generator).tolist()
            ci = C[i]
            for j in order:
                if j == i or diag[j] <= 0.0:
                    continue
                dot = float(ci @ A[:, j])
                if dot < 0.0:
                    ci[j] -= dot / diag[j]
                    n_proj += 1
        w = C.sum(0)
        if self.reduction == "mean":
            w = w / K
        return w, {"n_projections": float(n_proj)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self._random_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._load_random_state(state)

    def __repr__(self) -> str:
        return f"PCGrad(reduction={self.reduction!r})"
