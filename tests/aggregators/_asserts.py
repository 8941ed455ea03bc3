"""Reusable assertions for aggregator tests."""

from __future__ import annotations

import torch

from mtrl.aggregators import AggregatorResult


def assert_well_formed(res: AggregatorResult, G: torch.Tensor) -> None:
    assert res.direction.shape == G.shape[1:]
    assert res.direction.dtype == G.dtype
    assert res.direction.device == G.device
    assert torch.isfinite(res.direction).all()
    if res.weights is not None:
        assert res.weights.shape == (G.shape[0],)
        assert torch.isfinite(res.weights).all()
        torch.testing.assert_close(res.weights @ G, res.direction, rtol=1e-5, atol=1e-12 * (1 + G.abs().max().item()))
    for key in ("imbalance_ratio", "cos_theta", "conflict_frac", "pareto_failure", "grad_norms", "cos_to_direction"):
        assert key in res.stats, key


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))
