"""Glue between any PyTorch model and the aggregators: per-task losses -> ``G``; direction -> ``.grad``.

``G`` (``[K, P]``) is computed either with K backward passes through the shared part (``loop``) or with one
batched vector-Jacobian product (``batched``: ``torch.autograd.grad(..., is_grads_batched=True)``, i.e. a vmap
over the K unit cotangents). Both give the same ``G`` to float tolerance; which is faster depends on the model and
the device (:class:`PerTaskGradients` chooses, and falls back to ``loop`` where the batched pass is not supported).
The aggregators themselves only ever see ``G``: gradients in, direction out.
"""

from __future__ import annotations

import logging
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mtrl.aggregators._base import Aggregator, AggregatorResult

log = logging.getLogger("mtrl.aggregators")
MODES = ("auto", "loop", "batched")
#: how task-specific parameters get their gradient (``aggregate_backward``'s ``head_grads``)
HEAD_GRADS = ("plain", "weighted")


def _flat(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor], lead: tuple[int, ...]) -> torch.Tensor:
    parts = [(g if g is not None else p.new_zeros(*lead, *p.shape)).reshape(*lead, -1) for g, p in zip(grads, params)]
    return torch.cat(parts, dim=-1)


def per_task_gradients(
    losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor], batched: bool = False
) -> torch.Tensor:
    """Stack the gradients of each scalar loss w.r.t. ``params`` into ``G`` (``[K, P]``).

    ``batched=False``: K calls to ``torch.autograd.grad`` on one graph (kept alive with ``retain_graph``).
    ``batched=True``: one call with the K unit vectors as a batch of cotangents (``is_grads_batched``); raises
    where an operation of the graph cannot run under vmap (see :class:`PerTaskGradients` for the fallback).
    Parameters a loss does not reach get zeros; the graph is kept alive either way.
    """
    params = list(params)
    if not params:
        raise ValueError("per_task_gradients: no parameters given")
    losses = list(losses)
    if batched:
        L = torch.stack(losses)
        eye = torch.eye(len(losses), dtype=L.dtype, device=L.device)
        grads = torch.autograd.grad(
            L, params, grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True
        )
        return _flat(grads, params, (len(losses),))
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(_flat(grads, params, ()))
    return torch.stack(rows)


class PerTaskGradients:
    """``G`` by K backward passes or one batched VJP, whichever the setting (or a measurement) picks.

    Modes:
        ``loop``: K backward passes.
        ``batched``: one batched vector-Jacobian pass; where the graph cannot run under vmap (an operation without
            a batching rule that fails, e.g. a custom ``autograd.Function`` calling ``.item()`` in its backward),
            it falls back to ``loop`` for good, with one log line.
        ``auto``: on CPU ``loop`` (the batched pass was slower there in ``scripts/bench_supervised.py``); on other
            devices a quick measurement: the first ``2 * rounds`` calls alternate the two ways (the first call of
            each is a warm-up), then the one with the lower median time is kept. An unsupported batched pass
            falls back as above. The choice is part of :meth:`state_dict` so that a resumed run keeps it.

    Both ways compute the same ``G`` up to float rounding, so the choice never changes what is optimised.
    """

    def __init__(self, mode: str = "auto", rounds: int = 3, measure_on_cpu: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"per-task gradients mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.rounds = max(2, int(rounds))  # the first timing of each way is a warm-up
        self.measure_on_cpu = bool(measure_on_cpu)
        self.chosen: str | None = mode if mode != "auto" else None
        self.fallback_reason: str | None = None
        self._times: dict[str, list[float]] = {"loop": [], "batched": []}

    # ------------------------------------------------------------------ the call
    def __call__(self, losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> torch.Tensor:
        params = list(params)
        if self.chosen is None and params and params[0].device.type == "cpu" and not self.measure_on_cpu:
            self.chosen = "loop"
        if self.chosen == "loop":
            return per_task_gradients(losses, params)
        if self.chosen == "batched":
            G = self._batched(losses, params)
            return G if G is not None else per_task_gradients(losses, params)
        # auto: measuring
        n = sum(len(v) for v in self._times.values())
        way = "batched" if n % 2 == 0 else "loop"
        sync = params[0].device.type == "cuda"
        if sync:
            torch.cuda.synchronize(params[0].device)
        t0 = time.perf_counter()
        G = self._batched(losses, params) if way == "batched" else per_task_gradients(losses, params)
        if G is None:  # unsupported: chosen = loop already
            return per_task_gradients(losses, params)
        if sync:
            torch.cuda.synchronize(params[0].device)
        self._times[way].append(time.perf_counter() - t0)
        if all(len(v) >= self.rounds for v in self._times.values()):
            med = {k: statistics.median(v[1:]) for k, v in self._times.items()}  # the first call is a warm-up
            self.chosen = min(med, key=med.__getitem__)
            log.info("per-task gradients: %s (median %.1f ms batched vs %.1f ms loop)", self.chosen,
                     1e3 * med["batched"], 1e3 * med["loop"])  # fmt: skip
        return G

    def _batched(self, losses: Sequence[torch.Tensor], params: list[torch.Tensor]) -> torch.Tensor | None:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*performance drop.*")  # vmap's slow-path notice
                return per_task_gradients(losses, params, batched=True)
        except (RuntimeError, NotImplementedError, ValueError) as err:
            self.chosen = "loop"
            self.fallback_reason = str(err).strip().split("\n")[0][:200]
            log.warning("per-task gradients: the batched pass is not supported by this model (%s); using %d "
                        "backward passes", self.fallback_reason, len(losses))  # fmt: skip
            return None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "chosen": self.chosen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mode") == self.mode and state.get("chosen") in ("loop", "batched"):
            self.chosen = state["chosen"]


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
    jacobian: Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor] | None = None,
    head_grads: str = "plain",
) -> AggregatorResult:
    """One multi-task backward: aggregate the shared gradient and give task parameters their own gradients.

    Shared parameters get ``scale * direction``. ``task_params`` (heads, and the MTAN attention masks when they
    are not shared) get the gradient of

    - ``Σ_i L_i`` with ``head_grads="plain"``: each head its own task's gradient ``∇L_i``, since a head only
      reaches its own loss (the CAGrad/IMGrad code: K backward passes accumulate into the heads);
    - ``Σ_i α_i L_i`` with ``head_grads="weighted"``, ``α = scale · w`` and ``w`` the method's weights
      (``result.loss_weights`` where set, else ``result.weights``): head ``i`` gets ``α_i ∇L_i``, as in the
      Nash-MTL and FAMO code, which backpropagates the weighted loss through every parameter
      (``AvivNavon/nash-mtl`` and ``Cranial-XIX/FAMO``, ``methods/weight_methods.py``, ``backward``). A
      method without task weights (e.g. ``pcgrad``) raises ``ValueError``.

    On a degenerate input (``result.skipped``) the shared gradients are set to zero and the heads get the plain
    gradient; the caller should skip the optimiser step. ``jacobian(losses, params) -> G`` computes the per-task
    gradients (default: K backward passes; a :class:`PerTaskGradients` picks between those and one batched pass).
    """
    if head_grads not in HEAD_GRADS:
        raise ValueError(f"head_grads must be one of {', '.join(HEAD_GRADS)}, got {head_grads!r}")
    shared_params = list(shared_params)
    G = (jacobian or per_task_gradients)(losses, shared_params)
    result = aggregator(G, losses=torch.stack([loss.detach() for loss in losses]))
    write_direction(shared_params, result.direction, scale)
    if task_params:
        stacked = torch.stack(list(losses))
        if head_grads == "weighted" and not result.skipped:
            w = result.loss_weights if result.loss_weights is not None else result.weights
            if w is None:
                raise ValueError(f"head_grads=weighted needs task weights, and {aggregator.name} returns none "
                                 "(it is not a weighting of the task gradients); use head_grads=plain")  # fmt: skip
            total = (stacked * (scale * w.detach()).to(stacked.dtype)).sum()
        else:
            total = stacked.sum()
        grads = torch.autograd.grad(total, list(task_params), allow_unused=True)
        for p, g in zip(task_params, grads):
            p.grad = g if g is not None else torch.zeros_like(p)
    return result


def aggregate_backward_rep(
    aggregator: Aggregator,
    losses: Sequence[torch.Tensor],
    rep: torch.Tensor,
    rep_input: torch.Tensor,
    task_params: Sequence[torch.Tensor] = (),
    scale: float = 1.0,
    jacobian: Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor] | None = None,
    head_grads: str = "plain",
) -> AggregatorResult:
    """The ``rep_grad`` approximation (LibMTL's ``rep_grad``; MGDA-UB of Sener & Koltun, 2018): aggregate the
    gradients w.r.t. the shared *representation* instead of the shared parameters, then backpropagate the
    direction through the shared part once.

    ``rep`` is the output of the shared part (in the graph of the shared parameters) and ``rep_input`` its detached
    copy with ``requires_grad`` that the task-specific part was run on. ``G`` has one row per task of size
    ``rep.numel()`` (the whole batch's representation, flattened), so each row costs a backward pass through the
    task-specific part only; the shared parameters get ``J_rep^T (scale * direction)``. Exact where the method's
    weights do not depend on ``G`` (``ls`` and other fixed linear weightings); otherwise an approximation, since a
    method sees the gradients of the representation, not of the parameters.
    """
    result = aggregate_backward(aggregator, losses, [rep_input], task_params, scale, jacobian, head_grads)
    rep.backward(rep_input.grad)
    return result
