"""Glue between any PyTorch model and the aggregators: per-task losses -> ``G``; direction -> ``.grad``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtrl.aggregators._base import Aggregator, AggregatorResult


def per_task_gradients(losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack the gradients of each scalar loss w.r.t. ``params`` into ``G`` (``[K, P]``).

    K calls to ``torch.autograd.grad`` on one graph (kept alive with ``retain_graph``); parameters a loss does
    not reach get zeros. For the cost of one backward pass when the losses depend on disjoint data, see the
    vectorised path of the SAC agent (``torch.func.vmap``).
    """
    params = list(params)
    if not params:
        raise ValueError("per_task_gradients: no parameters given")
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
        )
    return torch.stack(rows)


def write_direction(params: Sequence[torch.Tensor], direction: torch.Tensor, scale: float = 1.0) -> None:
    """Write ``scale * direction`` (``[P]``, concatenated in ``params`` order) into each parameter's ``.grad``."""
    offset = 0
    for p in params:
        n = p.numel()
        g = direction[offset : offset + n].view_as(p).to(p.dtype)
        p.grad = g * scale if scale != 1.0 else g.clone()
        offset += n
    if offset != direction.numel():
        raise ValueError(f"write_direction: direction has {direction.numel()} entries, parameters {offset}")


def aggregate_backward(
    aggregator: Aggregator,
    losses: Sequence[torch.Tensor],
    shared_params: Sequence[torch.Tensor],
    task_params: Sequence[torch.Tensor] = (),
    scale: float = 1.0,
) -> AggregatorResult:
    """One multi-task backward: aggregate the shared gradient and give task parameters their own gradients.

    Shared parameters get ``scale * direction``; ``task_params`` (heads) get the gradient of ``Σ_i L_i``, i.e.
    each head its own task's gradient since a head only reaches its own loss. On a degenerate input
    (``result.skipped``) the shared gradients are set to zero; the caller should skip the optimiser step.
    """
    shared_params = list(shared_params)
    G = per_task_gradients(losses, shared_params)
    result = aggregator(G, losses=torch.stack([loss.detach() for loss in losses]))
    write_direction(shared_params, result.direction, scale)
    if task_params:
        total = torch.stack(list(losses)).sum()
        grads = torch.autograd.grad(total, list(task_params), allow_unused=True)
        for p, g in zip(task_params, grads):
            p.grad = g if g is not None else torch.zeros_like(p)
    return result
