"""Per-task SAC losses as pure functions of one task's parameters and batch (vmapped over the task axis).

Each function sees **one** task: its ``[B, ...]`` samples and its slice of the per-task parameters, so that
``vmap(grad(f), in_dims=(None, 0, ...))`` returns one gradient row per task for the shared trunk. Per-sample
values are reduced by a mean over the task's own samples (SAC, Haarnoja et al. 2018, Eqs. 5, 7, 18; twin Q and
clipped double-Q targets as Fujimoto et al. 2018). With ``weight`` (``[B]``, the task's per-sample weights, see
:func:`reduce`) the mean is a weighted sum instead: uniform replay gives each task a different number of real
samples, padded to a common ``B`` with weight 0.

The ``*_all`` functions are the same losses for all K tasks at once (``[K, B, ...]`` inputs, ``[K]`` losses) for a
task-batched network (``net(shared, task, x)`` on ``[K, B, in]``): the agent's default update path, which gets the
K per-task gradients from one ordinary backward pass (see :mod:`mtrl.agents.sac`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mtrl.agents.archs import Params

Net = Callable[[Params, Params, torch.Tensor], torch.Tensor]  # an architecture's forward_one (mtrl.agents.archs)

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as facebookresearch/mtrl's actor (tanh-rescaled into this range)
LOG_STDS = ("tanh", "clamp")  # agent.log_std
TANH_CORRECTIONS = ("exact", "capped")  # agent.tanh_correction
_CAP = 1e-6  # facebookresearch/mtrl and Stable-Baselines3: log(1 − tanh²u + 1e-6)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def policy_one(
    shared: Params, task: Params, obs: torch.Tensor, noise: torch.Tensor, net: Net, log_std: str = "tanh",
    tanh_correction: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tanh-Gaussian policy of one task: returns ``(action, log_prob, deterministic_action)``.

    ``log_std`` (``agent.log_std``) maps the network's raw log σ output ``o`` into [−20, 2]: ``tanh`` (default,
    facebookresearch/mtrl ``mtrl/agent/components/actor.py``): ``−20 + 11 (tanh(o) + 1)``, so an output near 0
    (a fresh network) gives log σ ≈ −9, σ ≈ 1e-4, a nearly deterministic first policy; ``clamp``
    (Stable-Baselines3 ``sac/policies.py``, ``Actor.get_action_dist_params``): ``clip(o, −20, 2)``, σ ≈ 1 at first.

    ``noise`` (``[B, A]``, standard normal) is drawn outside so the function is pure (reparameterisation trick);
    ``log π(a|s) = log N(u; μ, σ) − Σ log(1 − tanh²u)`` (SAC, Haarnoja et al. 2018, appendix C).
    ``tanh_correction`` (``agent.tanh_correction``) says how the last term is computed: ``exact`` (default) with the
    stable form ``log(1 − tanh²u) = 2(log 2 − u − softplus(−2u))``, which goes to −∞ as an action saturates;
    ``capped`` as facebookresearch/mtrl (``actor.py`` ``_squash``: ``log(relu(1 − a²) + 1e-6)``, ``a = tanh u``)
    and Stable-Baselines3 (``TanhBijector.log_prob_correction``: ``log(1 − a² + 1e-6)``) do, which stays above
    log 1e-6 ≈ −13.8 per action dimension, so a saturated action's log π, its entropy penalty and its gradient
    through this term are bounded (the gradient vanishes as ``a → ±1``; the exact form's tends to ``∓2``).
    """
    out = net(shared, task, obs)
    mean, raw = out.chunk(2, dim=-1)
    if log_std == "clamp":
        log_std = raw.clamp(LOG_STD_MIN, LOG_STD_MAX)
    else:
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1.0)
    u = mean + log_std.exp() * noise
    gauss = (-0.5 * noise.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)
    if tanh_correction == "capped":
        action = torch.tanh(u)
        squash = torch.log(F.relu(1.0 - action.pow(2)) + _CAP).sum(-1)
    else:  # (tanh after the term: the order in which autograd sums u's two gradients, hence every bit, as before)
        squash = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        action = torch.tanh(u)
    return action, gauss - squash, torch.tanh(mean)


def reduce(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """The task's loss from its per-sample values: the mean, or ``Σ weight · value`` (weights ``1/n`` on the ``n``
    real samples, 0 on padding: the mean over the task's own samples, as facebookresearch/mtrl's per-task losses
    from a uniform batch, ``mtrl/agent/grad_manipulation.py``)."""
    return per_sample.mean() if weight is None else (per_sample * weight).sum()


def twin_q_one(
    shared: dict[str, Params], task: dict[str, Params], obs: torch.Tensor, act: torch.Tensor, net: Net
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two Q estimates ``[B]`` of one task (``shared``/``task`` hold ``{"q1": ..., "q2": ...}``, and with
    ``agent.encoders=reference`` an ``"enc"`` entry: the parameters both Q functions share, the reference's
    ``critic.encoder`` and task encoder, read by both and so given the sum of both Q losses' gradients)."""
    x = torch.cat([obs, act], dim=-1)
    sh, tk = shared.get("enc", {}), task.get("enc", {})
    q1 = net({**sh, **shared["q1"]}, {**tk, **task["q1"]}, x).squeeze(-1)
    q2 = net({**sh, **shared["q2"]}, {**tk, **task["q2"]}, x).squeeze(-1)
    return q1, q2


def critic_loss_one(
    shared: dict[str, Params],
    task: dict[str, Params],
    obs: torch.Tensor,
    act: torch.Tensor,
    target: torch.Tensor,
    net: Net,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Task critic loss: mean over the task's samples of ``(Q1 − y)² + (Q2 − y)²`` (``y`` precomputed)."""
    q1, q2 = twin_q_one(shared, task, obs, act, net)
    per_sample = (q1 - target).pow(2) + (q2 - target).pow(2)
    return reduce(per_sample, weight)


def actor_loss_one(
    shared: Params,
    task: Params,
    critic_shared: dict[str, Params],
    critic_task: dict[str, Params],
    obs: torch.Tensor,
    noise: torch.Tensor,
    alpha: torch.Tensor,
    net_actor: Net,
    net_critic: Net,
    weight: torch.Tensor | None = None,
    log_std: str = "tanh",
    tanh_correction: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Task actor loss ``mean(α log π(a|s) − min(Q1, Q2)(s, a))``, ``a ~ π``; aux: mean ``log π`` (for α)."""
    action, logp, _ = policy_one(shared, task, obs, noise, net_actor, log_std, tanh_correction)
    q1, q2 = twin_q_one(critic_shared, critic_task, obs, action, net_critic)
    per_sample = alpha * logp - torch.minimum(q1, q2)
    return reduce(per_sample, weight), reduce(logp, weight).detach()


# ---------------------------------------------------------------------- all K tasks at once (task-batched nets)
def reduce_tasks(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """:func:`reduce` of each task: ``[K, B]`` per-sample values -> ``[K]`` task losses."""
    return per_sample.mean(-1) if weight is None else (per_sample * weight).sum(-1)


def critic_losses_all(
    shared: dict[str, Params], task: dict[str, Params], obs: torch.Tensor, act: torch.Tensor, target: torch.Tensor,
    net: Net, weight: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """The K task critic losses ``[K]`` (:func:`critic_loss_one` of every task; ``net`` task-batched)."""
    q1, q2 = twin_q_one(shared, task, obs, act, net)
    return reduce_tasks((q1 - target).pow(2) + (q2 - target).pow(2), weight)


def actor_losses_all(
    shared: Params, task: Params, critic_shared: dict[str, Params], critic_task: dict[str, Params],
    obs: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, net_actor: Net, net_critic: Net,
    weight: torch.Tensor | None = None, log_std: str = "tanh", tanh_correction: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The K task actor losses ``[K]`` and each task's mean ``log π`` (:func:`actor_loss_one` of every task)."""
    action, logp, _ = policy_one(shared, task, obs, noise, net_actor, log_std, tanh_correction)
    q1, q2 = twin_q_one(critic_shared, critic_task, obs, action, net_critic)
    per_sample = alpha[:, None] * logp - torch.minimum(q1, q2)
    return reduce_tasks(per_sample, weight), reduce_tasks(logp, weight).detach()
