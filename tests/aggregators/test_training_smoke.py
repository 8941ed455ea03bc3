"""Every registered method (and two compositions) trains a small shared-trunk model through
``aggregate_backward``: each task's loss must fall. This is the contract any PyTorch trainer relies on."""

from __future__ import annotations

import pytest
import torch

from mtrl.aggregators import AGGREGATORS, aggregate_backward, make_aggregator

METHODS = sorted(set(AGGREGATORS) - {"stl"}) + ["igbv1+nashmtl", "dwa+imgrad"]


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    w1, w2 = torch.randn(8, 1, generator=g), torch.randn(8, 1, generator=g)
    return x, [x @ w1, 10.0 * torch.tanh(x @ w2)]  # two related tasks on different scales


@pytest.mark.parametrize("name", METHODS)
def test_every_method_reduces_every_task_loss(name: str) -> None:
    torch.manual_seed(0)
    x, ys = _problem()
    trunk = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh())
    heads = torch.nn.ModuleList([torch.nn.Linear(32, 1) for _ in ys])
    params = list(trunk.parameters()) + list(heads.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    agg = make_aggregator(name)
    agg.seed(0)

    def losses() -> list[torch.Tensor]:
        h = trunk(x)
        return [torch.nn.functional.mse_loss(head(h), y) for head, y in zip(heads, ys)]

    first = [float(v.detach()) for v in losses()]
    for _ in range(150):
        opt.zero_grad()
        ls = losses()
        res = aggregate_backward(agg, ls, list(trunk.parameters()), list(heads.parameters()))
        if not res.skipped:
            opt.step()
        agg.step(torch.stack([v.detach() for v in losses()]))
    last = [float(v.detach()) for v in losses()]
    for f, l_ in zip(first, last):
        assert l_ < 0.7 * f, (name, first, last)
