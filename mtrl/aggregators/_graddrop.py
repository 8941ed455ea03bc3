"""GradDrop (Chen et al., "Just pick a sign: optimizing deep multitask models with gradient sign dropout",
NeurIPS 2020, Alg. 1), applied to the shared-parameter gradients as in the CAGrad / IMGrad code."""

from __future__ import annotations

from typing import Any

import torch

from mtrl.aggregators._base import Aggregator, Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._random import RandomMixin


class GradDrop(RandomMixin, Aggregator):
    """Per coordinate, sign purity ``P = ½(1 + Σ_i g_i / Σ_i |g_i|)``; draw ``U ~ U(0, 1)``; keep the positive
    entries where ``P > U`` and the negative ones where ``P < U``; ``d = (1/K) Σ_i M_i ⊙ g_i`` (mean scale).
    Not a weighting of the rows (``weights`` is ``None``); the work is O(KP), vectorised.

    Args:
        seed: seed of the private generator; ``generator``: an existing ``torch.Generator``.
    """

    name = "graddrop"

    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self._init_generator(seed, generator)

    def _aggregate(self, ctx: Context, losses: torch.Tensor | None) -> tuple[torch.Tensor, None, Stats]:
        G = ctx.G
        purity = 0.5 * (1.0 + G.sum(0) / (G.abs().sum(0) + 1e-8))
        u = torch.rand(G.shape[1], generator=self.generator, dtype=torch.float64).to(G.device, G.dtype)
        mask = ((purity > u) & (G > 0)) | ((purity < u) & (G < 0))
        return (G * mask).sum(0) / G.shape[0], None, {"kept_frac": float(mask.float().mean())}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self._random_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._load_random_state(state)

    def __repr__(self) -> str:
        return "GradDrop()"
