"""Random loss weighting (RLW; Lin et al., "Reasonable effectiveness of random weighting", TMLR 2022)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._random import RandomMixin


class RLW(RandomMixin, GramWeighting):
    """Weights ``softmax(z)``, ``z ~ N(0, I)`` drawn afresh each step; they sum to 1 (mean-gradient scale).

    Args:
        seed: seed of the private generator (reseeded from the run seed by ``seed()``).
        generator: an existing ``torch.Generator`` to draw from instead.
    """

    name = "rlw"

    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self._init_generator(seed, generator)

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        z = torch.randn(ctx.K, generator=self.generator, dtype=torch.float64)
        return torch.softmax(z, 0).numpy(), {}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self._random_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._load_random_state(state)

    def __repr__(self) -> str:
        return "RLW()"
