"""Wrappers that build one aggregator from others: the IMGrad §4.3 adaptive threshold and loss-weighting
composition (``"igbv1+nashmtl"``, ``"dwa+imgrad"``)."""

from __future__ import annotations

from typing import Any

import torch

from mtrl.aggregators._base import Aggregator, AggregatorResult
from mtrl.aggregators._diagnostics import f64_row_norms


class Threshold(Aggregator):
    """IMGrad §4.3 "adaptive threshold": apply ``base`` only when the imbalance ratio ``r = max‖g_i‖/min‖g_i‖``
    exceeds ``threshold``, else LS. ``stats["threshold_active"]`` says which one ran.

    Args:
        base: registry name of the wrapped method.
        threshold: imbalance ratio above which ``base`` is applied.
        base_kwargs: hyperparameters of ``base``.
    """

    name = "threshold"

    def __init__(self, base: str = "imgrad", threshold: float = 2.0, base_kwargs: dict[str, Any] | None = None):
        super().__init__()
        from mtrl.aggregators._registry import make_aggregator

        if not threshold >= 1.0:
            raise ValueError(f"threshold: threshold must be >= 1 (an imbalance ratio), got {threshold!r}")
        self.base = base
        self.threshold = float(threshold)
        self.base_kwargs = dict(base_kwargs or {})
        self._base = make_aggregator(base, **self.base_kwargs)
        self._ls = make_aggregator("ls")
        self.uses_losses = self._base.uses_losses

    def __call__(self, G: torch.Tensor, losses: torch.Tensor | None = None) -> AggregatorResult:
        norms = f64_row_norms(G.detach())
        nmax, nmin = float(norms.max()), float(norms.min())
        ratio = float("inf") if nmin == 0 < nmax else (1.0 if nmax == 0 else nmax / nmin)
        active = ratio > self.threshold
        res = (self._base if active else self._ls)(G, losses=losses)
        res.stats["threshold_active"] = float(active)
        self._count(res)
        return res

    def step(self, losses: Any = None) -> None:
        self._base.step(losses)

    def seed(self, seed: int) -> None:
        self._base.seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "base": self._base.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._base.load_state_dict(state["base"])


class Composed(Aggregator):
    """A loss weighting in front of a gradient method: ``make_aggregator("dwa+imgrad")``.

    The weighting ``a`` gives weights ``w^a`` (mean scale, ``1/K`` each when neutral); each row and loss is
    scaled by ``s_i = K·w^a_i`` and the gradient method ``b`` combines ``diag(s) G``. The result's weights are
    ``s ⊙ w^b`` (so ``direction == weights @ G``); its diagnostics are those of ``b`` on the scaled rows plus
    ``pre_weights`` (``w^a``). ``step``, ``seed`` and the state go to both parts.
    """

    def __init__(self, first: Aggregator, second: Aggregator) -> None:
        super().__init__()
        self.first, self.second = first, second
        self.name = f"{first.name}+{second.name}"
        self.uses_losses = first.uses_losses or second.uses_losses

    def __call__(self, G: torch.Tensor, losses: torch.Tensor | None = None) -> AggregatorResult:
        pre = self.first(G, losses=losses)
        if pre.skipped or pre.weights is None:
            self._count(pre)
            return pre
        s = (pre.weights * G.shape[0]).to(G.dtype)
        res = self.second(G * s[:, None], losses=None if losses is None else losses * s.to(losses.dtype))
        if res.weights is not None:
            res.weights = s * res.weights
        if res.loss_weights is not None:
            res.loss_weights = s * res.loss_weights
        res.stats["pre_weights"] = pre.weights.double().tolist()
        self._count(res)
        return res

    def step(self, losses: Any = None) -> None:
        self.first.step(losses)
        self.second.step(losses)

    def seed(self, seed: int) -> None:
        self.first.seed(seed)
        self.second.seed(seed + 1)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "first": self.first.state_dict(), "second": self.second.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.first.load_state_dict(state["first"])
        self.second.load_state_dict(state["second"])

    def __repr__(self) -> str:
        return f"Composed({self.first!r}, {self.second!r})"
