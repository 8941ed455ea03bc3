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


def _finite(losses: Any) -> bool:
    if losses is None:
        return True
    try:
        t = torch.as_tensor(losses).detach()
    except (TypeError, ValueError, RuntimeError):
        return True  # not numeric: leave it to the method
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


def _finite_losses_only(step: Any) -> Any:
    """Wrap a method's ``step(losses)`` so that a call with non-finite losses is ignored."""

    def guarded(self: Any, losses: Any = None, *args: Any, **kwargs: Any) -> None:
        if not _finite(losses):
            self.n_step_ignored = getattr(self, "n_step_ignored", 0) + 1
            return None
        return step(self, losses, *args, **kwargs)

    guarded.__name__, guarded.__qualname__, guarded.__doc__ = step.__name__, step.__qualname__, step.__doc__
    guarded.__wrapped__ = step  # type: ignore[attr-defined]
    guarded._finite_guarded = True  # type: ignore[attr-defined]
    return guarded


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
        loss_weights: where it differs from ``weights``, the task weights of the weighted loss ``Σ_i w_i L_i``
            whose backward the method's reference code runs (on the same mean scale as ``weights``). Nash-MTL:
            ``α/K`` before the clip, which the reference applies to the shared gradient only, so its heads get
            the unclipped ``α_i ∇L_i``. ``None``: the same as ``weights``. Read by the supervised trainer's
            ``head_grads=weighted``.
    """

    direction: torch.Tensor
    weights: torch.Tensor | None
    stats: Stats = field(default_factory=dict)
    skipped: bool = False
    loss_weights: torch.Tensor | None = None


class Aggregator:
    """Base class: subclasses implement :meth:`_aggregate`.

    Subclasses take their hyperparameters as keyword arguments of ``__init__``; ``__repr__`` shows them.
    """

    #: registry name, set by subclasses
    name: str = ""
    #: whether the method reads the per-task losses
    uses_losses: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Every method's own ``step`` is wrapped so that non-finite losses never reach its state (one NaN batch
        # would otherwise poison e.g. uw's log-variances or dwa's loss history for good).
        own = cls.__dict__.get("step")
        if own is not None and not getattr(own, "_finite_guarded", False):
            cls.step = _finite_losses_only(own)  # type: ignore[method-assign]

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
        lw = stats.pop("loss_weights", None)  # a method's weighted-loss weights where they differ (Nash-MTL)
        lw = None if lw is None else torch.as_tensor(np.asarray(lw, dtype=np.float64), dtype=G.dtype, device=G.device)
        return AggregatorResult(direction, weights, stats, skipped=False, loss_weights=lw)

    def _count(self, res: AggregatorResult) -> None:
        """Counters of wrappers that delegate ``__call__`` to inner aggregators."""
        self.n_calls += 1
        self.n_skipped += int(res.skipped)

    def step(self, losses: torch.Tensor | None = None) -> None:
        """Hook called once after each optimiser step (loss-based methods update their state here).

        Non-finite losses are ignored (the call is a no-op and counted in ``n_step_ignored``): subclasses'
        ``step`` methods are wrapped automatically, so no method's state can be poisoned by one bad batch.
        """

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
