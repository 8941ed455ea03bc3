"""Seeded random generator shared by the randomised methods (RLW, PCGrad), with checkpointable state."""

from __future__ import annotations

from typing import Any

import torch


class RandomMixin:
    """Gives a method ``self.generator`` (a CPU ``torch.Generator``), ``seed()`` and generator state in checkpoints."""

    generator: torch.Generator

    def _init_generator(self, seed: int | None, generator: torch.Generator | None) -> None:
        if generator is not None:
            self.generator = generator
        else:
            self.generator = torch.Generator()
            self.generator.manual_seed(0 if seed is None else int(seed))

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def _random_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def _load_random_state(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
