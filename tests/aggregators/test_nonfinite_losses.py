"""Issue 15 item 1: one batch of non-finite losses in the middle of a run never poisons a method's state."""

from __future__ import annotations

import math

import pytest
import torch

from mtrl.aggregators import AGGREGATORS, make_aggregator

K, P = 3, 6

LOSS_BASED = sorted(n for n in AGGREGATORS if n != "threshold") + ["dwa+imgrad", "uw+pcgrad"]


def _run(name: str, bad_at: int, drop: bool, n: int = 12) -> list[torch.Tensor]:
    """``drop``: leave batch ``bad_at`` out entirely (the reference); else feed it non-finite losses."""
    torch.manual_seed(0)
    agg = make_aggregator(name)
    agg.seed(0)
    g = torch.Generator().manual_seed(1)
    out = []
    for t in range(n):
        G = torch.randn(K, P, generator=g, dtype=torch.float64)
        L = torch.rand(K, generator=g, dtype=torch.float64) + 0.5
        if t == bad_at and drop:
            continue
        if t == bad_at:
            bad = L.clone()
            bad[1] = float("nan")
            res = agg(G, losses=bad)
            assert res.skipped
            agg.step(bad)  # must be ignored
            bad[1] = float("inf")
            agg.step(bad)
            continue
        res = agg(G, losses=L)
        out.append(res.direction)
        agg.step(L)
    return out


@pytest.mark.parametrize("name", LOSS_BASED)
def test_one_nan_batch_leaves_the_method_state_as_if_it_never_happened(name: str) -> None:
    clean = _run(name, 6, drop=True)
    poisoned = _run(name, 6, drop=False)
    assert len(clean) == len(poisoned)
    for a, b in zip(clean, poisoned):
        assert bool(torch.isfinite(b).all())
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_uw_and_dwa_ignore_nan_losses_in_step() -> None:
    for name in ("uw", "dwa", "famo", "si"):
        agg = make_aggregator(name)
        G = torch.randn(K, P, dtype=torch.float64)
        L = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
        for _ in range(3):
            agg(G, losses=L)
            agg.step(L)
        before = repr(agg.state_dict())
        agg.step(torch.tensor([math.nan, 1.0, 2.0]))
        agg.step([math.inf, 1.0, 2.0])
        assert repr(agg.state_dict()) == before, name
        res = agg(G, losses=L)
        assert not res.skipped and bool(torch.isfinite(res.direction).all()), name
