"""Input corpora for the aggregator tests (TorchJD style): matrices every method must handle."""

from __future__ import annotations

import torch


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def normal(K: int, P: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randn(K, P, generator=_gen(seed), dtype=torch.float64)


def rank_deficient(K: int = 5, P: int = 20, rank: int = 2, seed: int = 1) -> torch.Tensor:
    g = _gen(seed)
    return torch.randn(K, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, P, generator=g, dtype=torch.float64
    )


def scaled(K: int = 4, P: int = 20, seed: int = 2) -> torch.Tensor:
    """Rows scaled from 1e-8 to 1e8 (the badly scaled case of SPEC §2)."""
    scales = torch.logspace(-8, 8, K, dtype=torch.float64)[:, None]
    return normal(K, P, seed) * scales


def imbalanced(K: int = 3, P: int = 20, seed: int = 3) -> torch.Tensor:
    return normal(K, P, seed) * torch.tensor([100.0] + [1.0] * (K - 1), dtype=torch.float64)[:, None]


def with_zero_row(K: int = 3, P: int = 20, seed: int = 4) -> torch.Tensor:
    G = normal(K, P, seed)
    G[1] = 0.0
    return G


CORPUS: dict[str, torch.Tensor] = {
    "normal2": normal(2),
    "normal3": normal(3, seed=5),
    "normal10": normal(10, P=200, seed=6),
    "zero": torch.zeros(3, 20, dtype=torch.float64),
    "rank_deficient": rank_deficient(),
    "scaled": scaled(),
    "imbalanced": imbalanced(),
    "zero_row": with_zero_row(),
    "float32": normal(4, seed=7).float(),
}

# well-conditioned, full-row-rank inputs on which each method's defining condition is checked
WELL_CONDITIONED: dict[str, torch.Tensor] = {
    "normal2": normal(2),
    "normal3": normal(3, seed=5),
    "imbalanced3": imbalanced(),
    "normal6": normal(6, P=30, seed=8),
    "conflicting2": torch.tensor([[1.0, 0.2], [-0.8, 1.0]], dtype=torch.float64),
}
