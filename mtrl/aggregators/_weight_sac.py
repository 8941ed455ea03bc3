"""The small Soft Actor-Critic that chooses IGBv2's task weights (:mod:`mtrl.aggregators._igbv2`), and its replay.

It lives here, below both the RL agents and the supervised trainer, so that ``mtrl.aggregators`` imports nothing
from ``mtrl.agents`` (the architecture: aggregators know nothing of agents) and IGBv2 works the same in RL and in
supervised training.

It is the computation of :class:`mtrl.agents.MultiTaskSAC` with one task, ``agent.arch=shared`` (one MLP, every
layer shared), ``init=torch``, a per-task temperature, no aggregator (``aggregate_on=()``) and the reference's
``log_std=tanh`` and ``alpha_loss=alpha`` (the agent's defaults until 5 Dec 2026), which is what IGBv2 used
before; ``tests/aggregators/test_igbv2_weight_sac.py`` checks step by step that both give the same parameters,
actions and states. To keep that equality bit for bit (and the checkpoints written before loadable), it keeps
that agent's layout:

- a leading task axis of size 1 on batches (``[1, B, ...]``) and the same ``vmap(grad_and_value(...))`` passes
  over it, the same order of random draws (initialisation: actor, then the two critics, layer by layer, weight
  then bias; per update: the critic's next-action noise, then the actor's noise);
- the same ``state_dict`` keys (networks ``shared.w{i}`` / ``shared.b{i}``, optimisers, ``log_alpha``, counters)
  and the replay's arrays ``[1, capacity, ...]``.

Per update (cleanrl order): twin-Q critic on the clipped double-Q soft target from the target networks, then the
actor (critic fixed), then the temperature ``−α (log π + H̄)`` with ``H̄ = −|A|``, then Polyak averaging (τ).
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad_and_value, vmap

from mtrl._ring import RingState

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

Params = dict[str, torch.Tensor]


# ---------------------------------------------------------------------------------------------------- networks
class _MLP(nn.Module):
    """ReLU MLP ``in -> hidden x num_layers -> out``; parameters ``shared.w{i}`` (``[in, out]``) and
    ``shared.b{i}``, initialised as ``nn.Linear`` (uniform in ±1/√in), layer by layer, weight then bias."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * num_layers + [out_dim]
        self.n_linear = len(dims) - 1
        self.shared = nn.ParameterDict()
        for layer, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            w, b = torch.empty(d_in, d_out), torch.empty(d_out)
            bound = 1.0 / math.sqrt(d_in)
            w.uniform_(-bound, bound)
            b.uniform_(-bound, bound)
            self.shared[f"w{layer}"] = nn.Parameter(w)
            self.shared[f"b{layer}"] = nn.Parameter(b)
        self.forward_one = functools.partial(_mlp, n_linear=self.n_linear)


def _mlp(p: Params, x: torch.Tensor, n_linear: int) -> torch.Tensor:
    for layer in range(n_linear):
        x = x @ p[f"w{layer}"] + p[f"b{layer}"]
        if layer < n_linear - 1:
            x = torch.relu(x)
    return x


# ---------------------------------------------------------------------------------------------------- losses
def _policy(p: Params, obs: torch.Tensor, noise: torch.Tensor, net) -> tuple[torch.Tensor, torch.Tensor]:
    """Tanh-Gaussian policy: ``(action, log π(a|s))`` (reparameterised with the standard-normal ``noise``)."""
    mean, log_std = net(p, obs).chunk(2, dim=-1)
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
    u = mean + log_std.exp() * noise
    gauss = (-0.5 * noise.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)
    squash = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
    return torch.tanh(u), gauss - squash


def _twin_q(q: dict[str, Params], obs: torch.Tensor, act: torch.Tensor, net) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([obs, act], dim=-1)
    return net(q["q1"], x).squeeze(-1), net(q["q2"], x).squeeze(-1)


def _critic_loss(q: dict[str, Params], obs, act, target, net) -> torch.Tensor:
    q1, q2 = _twin_q(q, obs, act, net)
    return ((q1 - target).pow(2) + (q2 - target).pow(2)).mean()


def _actor_loss(p: Params, q: dict[str, Params], obs, noise, alpha, net_actor, net_critic):
    action, logp = _policy(p, obs, noise, net_actor)
    q1, q2 = _twin_q(q, obs, action, net_critic)
    return (alpha * logp - torch.minimum(q1, q2)).mean(), logp.mean().detach()


# ---------------------------------------------------------------------------------------------------- agent
class WeightSAC:
    """Single-task SAC on ``obs_dim``-dimensional states and actions in ``(−1, 1)^act_dim`` (CPU).

    Args:
        obs_dim, act_dim: state and action sizes.
        hidden_dim, num_layers: the MLPs (actor and twin critics).
        lr: learning rate of the actor, the critics and the temperature.
        gamma: discount.
        tau: Polyak factor of the target critics.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, num_layers: int, lr: float, gamma: float,
                 tau: float = 0.005) -> None:  # fmt: skip
        self.act_dim, self.gamma, self.tau = act_dim, float(gamma), float(tau)
        self.actor = _MLP(obs_dim, 2 * act_dim, hidden_dim, num_layers)
        self.q1 = _MLP(obs_dim + act_dim, 1, hidden_dim, num_layers)
        self.q2 = _MLP(obs_dim + act_dim, 1, hidden_dim, num_layers)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        for p in [*self.q1_target.parameters(), *self.q2_target.parameters()]:
            p.requires_grad_(False)
        self.log_alpha = torch.zeros(1, requires_grad=True)  # α = 1 at the start
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr)
        self.n_actor, self.n_critic = self.actor.forward_one, self.q1.forward_one
        self.n_updates = 0

    def _critics(self, target: bool = False) -> dict[str, Params]:
        a, b = (self.q1_target, self.q2_target) if target else (self.q1, self.q2)
        return {"q1": dict(a.shared), "q2": dict(b.shared)}

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
        """A stochastic action ``[1, act_dim]`` for the state ``obs`` (``[1, obs_dim]``)."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32).reshape(1, 1, -1)
        noise = torch.randn((1, 1, self.act_dim), generator=generator)
        action, _ = vmap(_policy, in_dims=(None, 0, 0, None))(dict(self.actor.shared), x, noise, self.n_actor)
        return action.reshape(1, self.act_dim).numpy()

    @staticmethod
    def _set_grads(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        for p, g in zip(params, grads):  # g: [1, *p.shape], the one task's gradient
            p.grad = g.reshape(p.shape).to(p.dtype).clone()

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> None:
        """One SAC update on a ``[1, B, ...]`` batch (keys obs, action, reward, next_obs, terminated)."""
        obs, act, rew = batch["obs"], batch["action"], batch["reward"]
        next_obs, term = batch["next_obs"], batch["terminated"]
        B = obs.shape[1]
        alpha = self.log_alpha.detach().exp().expand(1).clone()
        actor_p = dict(self.actor.shared)

        # critic: y = r + γ (1 − terminated) (min Q̄(s', a') − α log π(a'|s'))
        noise = torch.randn((1, B, self.act_dim), generator=generator)
        with torch.no_grad():
            next_a, next_logp = vmap(_policy, in_dims=(None, 0, 0, None))(actor_p, next_obs, noise, self.n_actor)
            tq1, tq2 = vmap(_twin_q, in_dims=(None, 0, 0, None))(self._critics(True), next_obs, next_a,
                                                                 self.n_critic)  # fmt: skip
            target = rew + self.gamma * (1.0 - term) * (torch.minimum(tq1, tq2) - alpha[:, None] * next_logp)
        critics = self._critics()
        grads, _ = vmap(grad_and_value(_critic_loss), in_dims=(None, 0, 0, 0, None))(critics, obs, act, target,
                                                                                      self.n_critic)  # fmt: skip
        self._set_grads([*critics["q1"].values(), *critics["q2"].values()],
                        [*grads["q1"].values(), *grads["q2"].values()])  # fmt: skip
        self.critic_opt.step()

        # actor: min E[α log π − min Q], critic fixed
        noise = torch.randn((1, B, self.act_dim), generator=generator)
        fixed = {k: {n: t.detach() for n, t in v.items()} for k, v in self._critics().items()}
        grads, (_, logp) = vmap(grad_and_value(_actor_loss, has_aux=True), in_dims=(None, None, 0, 0, 0, None, None))(
            actor_p, fixed, obs, noise, alpha, self.n_actor, self.n_critic
        )
        self._set_grads(list(actor_p.values()), list(grads.values()))
        self.actor_opt.step()

        # temperature: −α (log π + H̄)
        alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy))
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.sum().backward()
        self.alpha_opt.step()

        with torch.no_grad():
            for tgt, src in ((self.q1_target, self.q1), (self.q2_target, self.q2)):
                for pt, ps in zip(tgt.parameters(), src.parameters()):
                    pt.lerp_(ps, self.tau)
        self.n_updates += 1

    # the keys of mtrl.agents.MultiTaskSAC.state_dict (one task, no aggregator): checkpoints stay interchangeable
    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "q1": self.q1.state_dict(),
            "q2": self.q2.state_dict(),
            "q1_target": self.q1_target.state_dict(),
            "q2_target": self.q2_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "aggregators": {},
            "n_updates": self.n_updates,
            "n_skipped": {"critic": 0, "actor": 0, "alpha": 0},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("actor", "q1", "q2", "q1_target", "q2_target"):
            getattr(self, k).load_state_dict(state[k])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.n_updates = int(state["n_updates"])


class WeightReplay(RingState):
    """FIFO replay of ``capacity`` transitions, arrays ``[1, capacity, ...]`` (the layout of mtrl's multi-task
    replay with one task, so its ``state_dict`` is the same)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        C = self.capacity = capacity
        self.data = {
            "obs": np.zeros((1, C, obs_dim), np.float32),
            "action": np.zeros((1, C, act_dim), np.float32),
            "reward": np.zeros((1, C), np.float32),
            "next_obs": np.zeros((1, C, obs_dim), np.float32),
            "terminated": np.zeros((1, C), np.float32),
        }
        self.ptr = 0
        self.size = 0

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        for name, value in zip(_FIELDS, (obs, action, reward, next_obs, terminated)):
            self.data[name][:, self.ptr] = np.asarray(value, dtype=np.float32).reshape(self.data[name][:, 0].shape)
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` uniform samples (with replacement) as ``[1, B, ...]`` float32 tensors."""
        idx = rng.integers(0, self.size, size=(1, batch_size))
        rows = np.zeros((1, 1), dtype=np.int64)
        return {k: torch.from_numpy(v[rows, idx]) for k, v in self.data.items()}
