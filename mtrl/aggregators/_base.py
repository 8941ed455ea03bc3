"""Base classes of the aggregator core.

An *aggregator* maps the per-task gradient matrix ``G`` (K x P, one row per task) of the shared parameters,
and optionally the K per-task losses, to one update direction (P), the task weights where they are defined,
and diagnostics. A *Gram weighting* is the common special case that only needs the K x K Gram matrix
``G Gᵀ``: it solves for weights ``w`` in K-space and the direction is ``wᵀ G`` (TorchJD's two-level design).

Scale convention: the direction is on the scale of the mean gradient ``g0 = mean_i g_i`` (``ls`` returns
``g0``). Methods that rescale document it.

Hooks for loss-based and stateful methods: ``__call__(G, losses=...)`` receives the losses, ``step(losses)``
is called once after each optimiser step, ``state_dict``/``load_state_dict`` carry state into checkpoints and
``seed`` reseeds randomised methods from the run seed. No trainer needs to know which method it holds.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mtrl.aggregators._diagnostics import Context, diagnostics

Stats = dict[str, Any]


@dataclass
class AggregatorResult:
    """What an aggregator returns.

    Attributes:
        direction: combined update direction, shape ``[P]``, same dtype/device as ``G``.
        weights: task weights ``[K]`` such that ``direction == weights @ G`` when the method is a weighting
            of the rows (``None`` where no such weights exist).
        stats: diagnostics (IMGrad paper Defs. 1-3): ``imbalance_ratio``, ``cos_theta``, ``conflict_frac``,
            ``pareto_failure``, ``grad_norms``, ``cos_to_direction``, ``weights``, ``solver_ms`` (the method's
            own work after the Gram matrix: K-space solve plus forming ``wᵀG``), ``skipped`` and method-specific
            entries.
        skipped: ``True`` when the input was degenerate (NaN/Inf) and the direction is zero: the caller
            should skip the optimiser step.
    """

    direction: torch.Tensor
    weights: torch.Tensor | None
    stats: Stats = field(default_factory=dict)
    skipped: bool = False


class Aggregator:
    """Base class: subclasses implement :meth:`_aggregate`.

    Subclasses take their hyperparameters as keyword arguments of ``__init__``; ``__repr__`` shows them.
    """

    #: registry name, set by subclasses
    name: str = ""
    #: whether the method reads the per-task losses
    uses_losses: bool = False

    def __init__(self) -> None:
        self.n_calls = 0
        self.n_skipped = 0
        self.n_solver_failures = 0

    # ------------------------------------------------------------------ public API
    def __call__(self, G: torch.Tensor, losses: torch.Tensor | None = None) -> AggregatorResult:
        """Combine the rows of ``G`` (``[K, P]``) into one direction; ``losses`` is ``[K]`` or ``None``."""
        if not isinstance(G, torch.Tensor) or G.dim() != 2 or G.shape[0] < 1:
            shape = tuple(G.shape) if isinstance(G, torch.Tensor) else type(G).__name__
            raise ValueError(f"{self.name}: expected a gradient matrix of shape [K, P] with K >= 1, got {shape}")
        if not G.is_floating_point():
            raise ValueError(f"{self.name}: expected a floating-point gradient matrix, got {G.dtype}")
        if losses is not None:
            losses = torch.as_tensor(losses).detach().reshape(-1)
            if losses.numel() != G.shape[0]:
                raise ValueError(f"{self.name}: got {losses.numel()} losses for {G.shape[0]} gradient rows")
        if self.uses_losses and losses is None:
            raise ValueError(f"{self.name}: this method needs the per-task losses: call agg(G, losses=...)")
        self.n_calls += 1
        # The Gram matrix (K x P x K, float64) is shared by the method and the diagnostics (not solver time). It
        # doubles as the NaN/Inf check of G: a non-finite entry makes its row's diagonal entry (a sum of squares)
        # NaN or Inf, and a finite float32 G cannot overflow it; this saves a pass over G.
        ctx = Context(G)
        if not np.isfinite(ctx.gram).all() or (losses is not None and not bool(torch.isfinite(losses).all())):
            self.n_skipped += 1
            K = G.shape[0]
            stats: Stats = {"skipped": 1.0, "n_skipped": float(self.n_skipped), "grad_norms": [float("nan")] * K}
            return AggregatorResult(torch.zeros_like(G[0]), None, stats, skipped=True)
        t0 = time.perf_counter()
        direction, weights, extra = self._aggregate(ctx, losses)
        solver_ms = (time.perf_counter() - t0) * 1e3
        stats = diagnostics(ctx, direction, weights)
        stats.update(extra)
        stats["solver_ms"] = solver_ms
        stats["skipped"] = 0.0
        stats["n_solver_failures"] = float(self.n_solver_failures)
        return AggregatorResult(direction, weights, stats, skipped=False)

    def _count(self, res: AggregatorResult) -> None:
        """Counters of wrappers that delegate ``__call__`` to inner aggregators."""
        self.n_calls += 1
        self.n_skipped += int(res.skipped)

    def step(self, losses: torch.Tensor | None = None) -> None:
        """Hook called once after each optimiser step (loss-based methods update their state here)."""

    def seed(self, seed: int) -> None:
        """Reseed the method's random generator from the run seed (no-op for deterministic methods)."""

    def state_dict(self) -> dict[str, Any]:
        """State to put into a checkpoint (counters plus any method state)."""
        return {"n_calls": self.n_calls, "n_skipped": self.n_skipped, "n_solver_failures": self.n_solver_failures}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.n_calls = int(state.get("n_calls", 0))
        self.n_skipped = int(state.get("n_skipped", 0))
        self.n_solver_failures = int(state.get("n_solver_failures", 0))

    # ------------------------------------------------------------------ for subclasses
    def _aggregate(self, ctx: Context, losses: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, Stats]:
        raise NotImplementedError

    def _hparams(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n) and not n.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hparams().items())
        return f"{type(self).__name__}({args})"


class GramWeighting(Aggregator):
    """An aggregator whose direction is ``wᵀG`` for weights computed from the Gram matrix (K-space)."""

    def _aggregate(self, ctx: Context, losses: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, Stats]:
        w, extra = self.weights_from_gram(ctx, None if losses is None else losses.double().cpu().numpy())
        w = np.asarray(w, dtype=np.float64)
        ctx.set_weights(w)
        wt = torch.as_tensor(w, dtype=ctx.G.dtype, device=ctx.G.device)
        return wt @ ctx.G, wt, extra

    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        """Return the K weights (float64 numpy) and method-specific stats; ``ctx.gram`` is ``G Gᵀ``."""
        raise NotImplementedError
