"""Improvable gap balancing v2 (IGBv2; Dai et al., "Improvable gap balancing for multi-task learning", UAI 2023,
``papers/improvable-gap-balancing-summary.md``; reference code ``YanqiDai/IGB4MTL``, ``ImprovableGapBalancing_v2``).

Task weighting as a sequential decision problem solved by Soft Actor-Critic. The agent is
:class:`mtrl.aggregators._weight_sac.WeightSAC` with its replay: the computation of mtrl's own
:class:`mtrl.agents.MultiTaskSAC` with one "task" and a shared MLP (checked step by step in the tests), kept below
both agents and the supervised trainer so that aggregators import nothing from ``mtrl.agents``:

- state ``s_t = L_t / B``: the per-task losses of this step normalised by the baseline ``B`` (IGBv1's baseline
  window, the paper's second epoch), so that the same SAC hyperparameters serve any loss scale;
- action ``a_t ∈ (−1, 1)^K`` (mtrl's SAC squashes with tanh), weights ``w_t = softmax(β a_t)`` on the mean scale
  (sum 1; ``β = action_scale``, so the largest weight ratio is ``e^{2β}``). The reference maps an unbounded
  Gaussian sample ``u`` to ``K·softmax(u)``; the tanh bound is the one change, and ``β`` sets its range;
- reward ``r_t = min_i (L_{t,i} − L_{t+1,i}) / B_i``: the smallest normalised loss decline among the tasks from
  this step to the next (the reference's default), times ``reward_scale``; no terminal states (γ = ``gamma``);
- the first ``random_windows`` windows (the reference's 5 epochs) use random weights ``softmax(z)``,
  ``z ~ N(0, I)`` (RLW) to fill the buffer; from ``update_after`` windows on, every ``update_every`` steps the
  SAC makes ``⌊update_every·k/2⌋`` updates on batches of ``⌊batch_size·k/2⌋``, ``k = 1 + size/capacity``
  (the reference's schedule); afterwards the weights are the SAC's stochastic action for the current state.

Transitions are formed from consecutive calls, as in the reference: the weights chosen at call t are judged by
the losses at call t+1. The SAC, its replay buffer, the baseline and the generator are part of ``state_dict``,
so a resumed run continues exactly. Weights are applied to the losses (not to ``log L``: RL actor losses can be
negative); put ``si`` semantics in by composing if wanted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtrl.aggregators._base import Stats
from mtrl.aggregators._igb import IGBv1
from mtrl.aggregators._weight_sac import WeightReplay, WeightSAC


class IGBv2(IGBv1):
    """IGBv2 weights from a SAC agent whose reward is the loss decline (see the module docstring).

    Args:
        window: steps per window (an epoch in the paper; set it to the steps of an epoch in supervised training).
        baseline_window: index of the window whose mean loss is the baseline ``B`` (1 = the second).
        random_windows: windows of random weights before the SAC chooses (reference: 5 epochs).
        update_after: windows before the SAC's first update (reference: 3).
        update_every: steps between SAC training rounds (reference: 50).
        hidden_dim, num_layers: SAC networks (reference: 2 x 128).
        batch_size: SAC batch (reference: 256, scaled by k/2 as above).
        buffer_size: SAC replay capacity (reference: 10,000).
        lr: SAC learning rates (reference: 3e-4).
        gamma: SAC discount (reference: 0.99).
        action_scale: ``β`` in ``softmax(β a)``.
        reward_scale: factor on the reward (reference: 1).
        seed: seed of the private generator (reseeded from the run seed by ``seed()``).
    """

    name = "igbv2"

    def __init__(
        self,
        window: int = 1,
        baseline_window: int = 1,
        random_windows: int = 5,
        update_after: int = 3,
        update_every: int = 50,
        hidden_dim: int = 128,
        num_layers: int = 2,
        batch_size: int = 256,
        buffer_size: int = 10_000,
        lr: float = 3e-4,
        gamma: float = 0.99,
        action_scale: float = 3.0,
        reward_scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(window=window, baseline_window=baseline_window, reference="baseline")
        ints = {"random_windows": random_windows, "update_after": update_after, "update_every": update_every,
                "hidden_dim": hidden_dim, "num_layers": num_layers, "batch_size": batch_size,
                "buffer_size": buffer_size}  # fmt: skip
        for key, v in ints.items():
            if not (
                isinstance(v, int)
                and not isinstance(v, bool)
                and v >= (0 if key in ("random_windows", "update_after") else 1)
            ):
                raise ValueError(f"igbv2: {key} must be a positive integer, got {v!r}")
        if random_windows <= baseline_window:
            raise ValueError(f"igbv2: random_windows ({random_windows}) must exceed baseline_window "
                             f"({baseline_window}): the SAC's state needs the baseline")  # fmt: skip
        for key, v in {"lr": lr, "action_scale": action_scale, "reward_scale": reward_scale}.items():
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"igbv2: {key} must be > 0, got {v!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"igbv2: gamma must be in (0, 1], got {gamma!r}")
        self.random_windows, self.update_after, self.update_every = random_windows, update_after, update_every
        self.hidden_dim, self.num_layers = hidden_dim, num_layers
        self.batch_size, self.buffer_size = batch_size, buffer_size
        self.lr, self.gamma = float(lr), float(gamma)
        self.action_scale, self.reward_scale = float(action_scale), float(reward_scale)
        self.generator = torch.Generator()
        self.generator.manual_seed(0 if seed is None else int(seed))
        self._steps = 0
        self._sac = None  # built on the first call, when K is known
        self._buffer = None
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # (losses, action) of the previous call
        self._pending_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ the SAC agent (mtrl.aggregators._weight_sac)
    def _build(self, K: int) -> None:
        with torch.random.fork_rng(devices=[]):
            if self._pending_state is None:  # a restored agent overwrites the initial weights: draw nothing then
                torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=self.generator)))
            self._sac = WeightSAC(K, K, self.hidden_dim, self.num_layers, lr=self.lr, gamma=self.gamma)
        self._buffer = WeightReplay(self.buffer_size, K, K)
        if self._pending_state is not None:
            self._sac.load_state_dict(self._pending_state["sac"])
            self._buffer.load_state_dict(self._pending_state["buffer"])
            self._pending_state = None

    def loss_weights(self, losses: np.ndarray) -> tuple[np.ndarray, Stats]:
        K = losses.shape[0]
        if self._sac is None:
            self._build(K)
        stats: Stats = {}
        if self._baseline is not None:
            state = losses / np.maximum(np.abs(self._baseline), 1e-12)
            if self._prev is not None:
                prev_state, prev_action = self._prev
                reward = self.reward_scale * float(np.min(prev_state - state))
                self._buffer.add(prev_state[None], prev_action[None], [reward], state[None], [0.0])
                stats["igb_reward"] = reward
        else:
            state = None
        if state is None or self._n_windows < self.random_windows:
            z = torch.randn(K, generator=self.generator, dtype=torch.float64).numpy()
            w = np.exp(z - z.max())
            action = np.clip(np.log(w / w.sum() * K + 1e-12) / self.action_scale, -0.999, 0.999)
        else:
            action = self._sac.act(state[None].astype(np.float32), self.generator)[0].astype(np.float64)
            z = self.action_scale * action
            w = np.exp(z - z.max())
        w = w / w.sum()
        self._prev = None if state is None else (state, np.asarray(action, dtype=np.float64))
        stats["igb_sac_updates"] = float(0 if self._sac is None else self._sac.n_updates)
        return w, stats

    def step(self, losses: Any = None) -> None:
        super().step(losses)
        if losses is None:
            return
        self._steps += 1
        if (self._buffer is not None and self._buffer.size > 0 and self._n_windows >= self.update_after
                and self._steps % self.update_every == 0):  # fmt: skip
            k = 1.0 + self._buffer.size / self._buffer.capacity
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=self.generator)))
            for _ in range(int(self.update_every * k / 2)):
                batch = self._buffer.sample(max(1, int(self.batch_size * k / 2)), rng)
                self._sac.update(batch, self.generator)

    # ------------------------------------------------------------------ checkpoints
    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def state_dict(self) -> dict[str, Any]:
        state = {
            **super().state_dict(),
            "generator": self.generator.get_state(),
            "steps": self._steps,
            "prev": None if self._prev is None else [self._prev[0].tolist(), self._prev[1].tolist()],
        }
        if self._sac is not None:
            state["sac"] = self._sac.state_dict()
            state["buffer"] = self._buffer.state_dict()
        elif self._pending_state is not None:  # restored, not called since: a checkpoint now must keep the agent
            state["sac"] = self._pending_state["sac"]
            state["buffer"] = self._pending_state["buffer"]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])
        self._steps = int(state.get("steps", 0))
        prev = state.get("prev")
        self._prev = None if prev is None else (np.asarray(prev[0]), np.asarray(prev[1]))
        if "sac" in state:
            if self._sac is not None:
                self._sac.load_state_dict(state["sac"])
                self._buffer.load_state_dict(state["buffer"])
            else:
                self._pending_state = {"sac": state["sac"], "buffer": state["buffer"]}

    def __repr__(self) -> str:
        return f"IGBv2(window={self.window}, action_scale={self.action_scale}, update_every={self.update_every})"
