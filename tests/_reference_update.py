"""The SAC update as it was before the fixed-cost work of issue 14: a test oracle, kept out of the product.

:class:`ReferenceSAC` is :class:`mtrl.agents.MultiTaskSAC` with its update written the plain way, every step of
which the optimised update replaced by a faster equivalent:

- every update is a diagnostic one (the aggregator's full call, losses and metrics each time);
- the per-task gradients always come from :meth:`MultiTaskSAC.critic_task_grads`/``actor_task_grads`` (no
  gradient-free step for methods whose weights do not read ``G``, no plain backward without an aggregator);
- acting, the critic target and the after-step losses ``vmap`` the single-task functions over the task axis
  instead of calling the task-batched networks;
- the parameter views are rebuilt from the modules at each call;
- Adam is torch's default (per-tensor loop), the Polyak step one ``lerp_`` per parameter; nothing is compiled.

``tests/test_overhead.py`` checks that the product's update equals this one to float tolerance for every registered
aggregator; ``tests/aggregators/test_igbv2_weight_sac.py`` that IGBv2's weight agent is this update with one task;
``scripts/bench_overhead.py --with-reference`` times it (the "before" row). The one thing of the old update not
kept: it set each shared parameter's ``.grad`` to a copy of the direction, the product to a view of it (the
optimiser never writes into gradients), which changes no number.

It runs with the default SM/CARE training options only (``agent.encoders=separate``, no ``encoder_tau``,
``target_task_encoder=target``, ``actor_attention=train``): those options came after issue 14.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.func import vmap

from mtrl.agents.losses import critic_loss_one, twin_q_one
from mtrl.agents.sac import MultiTaskSAC, SACConfig, UpdateInfo, _leaves
from mtrl.aggregators import Aggregator


class ReferenceSAC(MultiTaskSAC):
    """:class:`MultiTaskSAC` with the pre-issue-14 update (see the module docstring); same constructor."""

    def __init__(self, obs_dim: int, act_dim: int, num_tasks: int, cfg: SACConfig,
                 aggregators: dict[str, Aggregator], device: torch.device | str = "cpu") -> None:  # fmt: skip
        changed = (cfg.encoders, cfg.target_task_encoder, cfg.actor_attention) != ("separate", "target", "train")
        if changed or cfg.encoder_tau is not None:
            raise ValueError("ReferenceSAC (the pre-issue-14 update) runs with the default encoder options")
        super().__init__(obs_dim, act_dim, num_tasks, dataclasses.replace(cfg, compile=False), aggregators, device)
        self._adam = {}  # torch's default Adam, over the same parameters in the same order
        for name, lr in (("actor_opt", cfg.lr), ("critic_opt", cfg.lr), ("alpha_opt", cfg.alpha_lr)):
            params = list(getattr(self, name).param_groups[0]["params"])
            setattr(self, name, torch.optim.Adam(params, lr=lr))

    # ------------------------------------------------------------------ views rebuilt from the modules
    def _critic_params(self, target: bool = False) -> tuple[dict, dict]:
        a, b = (self.q1_target, self.q2_target) if target else (self.q1, self.q2)
        return {"q1": dict(a.shared), "q2": dict(b.shared)}, {"q1": dict(a.task), "q2": dict(b.task)}

    def _actor_params(self) -> tuple[dict, dict]:
        return dict(self.actor.shared), dict(self.actor.task)

    # ------------------------------------------------------------------ the single-task functions, vmapped
    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None, deterministic: bool = False) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(self.K, 1, -1)
        if deterministic:
            noise = torch.zeros((self.K, 1, self.act_dim), device=self.device)
        else:
            noise = torch.randn((self.K, 1, self.act_dim), generator=generator).to(self.device)
        a_sh, a_tk = self._actor_params()
        action, _, mean_action = vmap(self._policy_one, in_dims=(None, 0, 0, 0, None))(a_sh, a_tk, x, noise,
                                                                                       self.n_actor)  # fmt: skip
        out = mean_action if deterministic else action
        return out.reshape(self.K, self.act_dim).cpu().numpy()

    @torch.no_grad()
    def critic_target(self, reward, next_obs, terminated, noise, alpha) -> torch.Tensor:
        a_sh, a_tk = self._actor_params()
        t_sh, t_tk = self._critic_params(target=True)
        next_a, next_logp, _ = vmap(self._policy_one, in_dims=(None, 0, 0, 0, None))(a_sh, a_tk, next_obs, noise,
                                                                                     self.n_actor)  # fmt: skip
        tq1, tq2 = vmap(twin_q_one, in_dims=(None, 0, 0, 0, None))(t_sh, t_tk, next_obs, next_a, self.n_critic)
        soft_q = torch.minimum(tq1, tq2) - alpha[:, None] * next_logp
        return reward + self.cfg.gamma * (1.0 - terminated) * soft_q

    @torch.no_grad()
    def _post_step_losses(self, name, obs, act, target, noise, alpha, weight, logp) -> torch.Tensor:
        if name == "alpha":
            return self._alpha_losses(logp)
        c_sh, c_tk = self._critic_params()
        wdim = None if weight is None else 0
        if name == "critic":
            return vmap(critic_loss_one, in_dims=(None, 0, 0, 0, 0, None, wdim))(c_sh, c_tk, obs, act, target,
                                                                                 self.n_critic, weight)  # fmt: skip
        a_sh, a_tk = self._actor_params()
        dims = (None, 0, None, 0, 0, 0, 0, None, None, wdim)
        return vmap(self._actor_loss_one, in_dims=dims)(a_sh, a_tk, c_sh, c_tk, obs, noise, alpha, self.n_actor,
                                                        self.n_critic, weight)[0]  # fmt: skip

    # ------------------------------------------------------------------ the update
    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> UpdateInfo:
        cfg, K = self.cfg, self.K
        obs, act, rew = batch["obs"], batch["action"], batch["reward"]
        next_obs, term = batch["next_obs"], batch["terminated"]
        weight = batch.get("weight")
        B = obs.shape[1]
        info = UpdateInfo()
        alpha = self.alphas()

        # --- critic: y = r + γ (1 − terminated) (min Q̄(s', a') − α log π(a'|s')); truncation bootstraps
        noise = torch.randn((K, B, self.act_dim), generator=generator).to(self.device)
        target = self.critic_target(rew, next_obs, term, noise, alpha)
        G, g_tk, closs = self.critic_task_grads(obs, act, target, weight)
        c_sh, c_tk = self._critic_params()
        self._apply("critic", self.critic_opt, _leaves(c_sh), _leaves(c_tk), G, g_tk, closs, info)

        # --- actor: min E[α log π − min Q], critic fixed
        noise = torch.randn((K, B, self.act_dim), generator=generator).to(self.device)
        G, g_tk, aloss, logp = self.actor_task_grads(obs, noise, alpha, weight)
        a_sh, a_tk = self._actor_params()
        self._apply("actor", self.actor_opt, _leaves(a_sh), _leaves(a_tk), G, g_tk, aloss, info)

        # --- temperature: task i's loss −α_i (log π_i + H̄) (α_i = the one shared α when agent.alpha=shared)
        logp = logp.detach()
        alpha_losses = self._alpha_losses(logp)
        self.alpha_opt.zero_grad(set_to_none=True)
        if cfg.alpha == "per_task":
            alpha_losses.sum().backward()
            self.alpha_opt.step()
        else:  # one log α: the K per-task gradients, combined by the aggregator or averaged
            G = torch.stack([torch.autograd.grad(alpha_losses[i], self.log_alpha, retain_graph=i < K - 1)[0]
                             for i in range(K)])  # fmt: skip
            self._apply("alpha", self.alpha_opt, [self.log_alpha], [], G, [], alpha_losses.detach(), info)

        # --- targets (Polyak), one parameter at a time
        with torch.no_grad():
            for tgt, src in ((self.q1_target, self.q1), (self.q2_target, self.q2)):
                for pt, ps in zip(tgt.parameters(), src.parameters()):
                    pt.lerp_(ps, cfg.tau)

        self._step_aggregators(info, closs, aloss, alpha_losses, obs, act, target, noise, alpha, weight, logp)

        self.n_updates += 1
        info.critic_losses, info.actor_losses = closs.cpu().numpy(), aloss.cpu().numpy()
        info.alphas = self.alphas().cpu().numpy()
        info.metrics.update(critic_loss=float(closs.mean()), actor_loss=float(aloss.mean()),
                            alpha_loss=float(alpha_losses.detach().mean()), entropy=float(-logp.mean()))  # fmt: skip
        return info
