"""Multi-task SAC whose shared-trunk gradients go through a gradient aggregator (IMGrad, CAGrad, ...).

Per update (cleanrl order): critic (twin Q, clipped double-Q target from target nets, per-task α), then actor,
then the per-task temperatures, then Polyak averaging of the targets. For the critic and the actor, each task's
loss depends only on its own samples, so the K per-task gradients of the shared trunk come from **one** pass at
about the cost of one backward: ``per_task_grads="batched"`` (default) runs the task-batched network with each
shared parameter expanded to one view per task (``w.expand(K, ...)``) and takes one ordinary backward of
``Σ_i L_i`` with respect to those views (row i of their gradient is ``∇L_i``); ``"vmap"`` is
``vmap(grad_and_value(loss_one))`` over the task axis; ``"loop"`` the reference code's K backward passes (tests,
benchmarks). All three give the same ``G``.

Fixed cost per update (issue 14; ``scripts/bench_overhead.py`` against a plain PyTorch SAC update): the
aggregators' diagnostics, the losses, α and metrics of :class:`UpdateInfo` come every ``agent.diagnostics_every``
updates (default 10; nothing the update does depends on it, tested); between two diagnostic updates a method whose
weights do not read ``G`` (``ls``, the loss-based weightings) takes one plain backward of ``Σ_i w_i L_i`` and no
per-task gradients are formed (:meth:`MultiTaskSAC._gradient_free_step`), and the others skip the statistics
(:func:`lean_call`); a loss without an aggregator is one plain backward of its mean; Adam is fused (one kernel for
all tensors), the Polyak step one ``foreach`` call. ``tests/test_overhead.py`` compares it, for every method, with
the update as it was before (``tests/_reference_update.py``, a test oracle); ``agent.compile=true`` compiles the
task-batched losses with ``torch.compile``.

Gradient routing for each of ``aggregate_on`` (``critic``, ``actor``, ``alpha``): the trunk gets the aggregator's
direction (on the scale of the mean gradient ``g0 = mean_i g_i``); each per-task parameter (head) gets ``∇L_i / K``,
its own task's gradient of the mean loss ``(1/K) Σ_i L_i``. So ``aggregator=ls`` is exactly SAC on the mean loss. A
loss not in ``aggregate_on`` uses the mean gradient without calling the aggregator. A degenerate ``G`` (NaN/Inf,
``result.skipped``) skips that optimiser step and is counted.

Temperature (``alpha``): ``per_task`` (default) gives each task its own ``log α_i`` trained by its own loss
``−α_i (log π_i + H̄)``; ``shared`` gives all tasks one ``α`` (facebookresearch/mtrl with
``should_use_disentangled_alpha=False``: ``log_alpha[0]``, ``mtrl/agent/sac.py``, ``get_alpha``), trained on the
mean of the K task losses or, with ``alpha`` in ``aggregate_on``, on the aggregator's combination of the K per-task
gradients: the CAGrad fork replaces the gradient computation of every component, ``log_alpha`` included
(``mtrl/agent/cagrad.py``, ``_compute_gradient``).

SM and CARE as facebookresearch/mtrl trains them (docs/reference-sm-care.md; defaults keep mtrl's own training):
``agent.encoders=reference`` makes Q2's encoder, attention and task encoder Q1's parameter objects and ties the
actor's encoder (sm) / experts (care) and task encoder to them; the critic views then hold them once, under ``"enc"``
(:func:`mtrl.agents.losses.twin_q_one` gives them to both Q functions), the actor reads them as detached views (no
actor gradient), and the task encoder has its own Adam, stepped after the actor. ``agent.encoder_tau`` averages the
target critic's encoder at its own rate, ``agent.target_task_encoder=online`` feeds the target critic the online task
encoder, ``agent.actor_attention=frozen`` keeps CARE's actor attention out of the actor's optimiser.
``agent.log_std`` (tanh | clamp) is the policy's log σ squashing, ``agent.tanh_correction`` (exact | capped) how its
log π computes the tanh term (:func:`mtrl.agents.losses.policy_one`).

Replay batches are ``[K, B, ...]``; an optional ``weight`` entry (``[K, B]``) gives per-sample weights for the task
losses (uniform replay: ``1/n_k`` on task k's ``n_k`` samples, 0 on padding; see :mod:`mtrl.agents.buffer`).
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.func import grad_and_value, vmap

from mtrl.agents import losses as L
from mtrl.agents.archs import INITS, NetSpec, make_network
from mtrl.agents.losses import actor_loss_one, critic_loss_one, policy_one, twin_q_one
from mtrl.aggregators import Aggregator, AggregatorResult, per_task_gradients
from mtrl.aggregators._base import GramWeighting
from mtrl.aggregators._diagnostics import Context
from mtrl.checkpoint import check_optimizer_state

ALPHAS = ("per_task", "shared")
PER_TASK_GRADS = ("batched", "vmap", "loop")
LOSSES = ("critic", "actor", "alpha")
ENCODERS = ("separate", "reference")  # agent.encoders
TARGET_TASK_ENCODERS = ("target", "online")  # agent.target_task_encoder
ACTOR_ATTENTIONS = ("train", "frozen")  # agent.actor_attention
ALPHA_LOSSES = ("alpha", "log_alpha")  # agent.alpha_loss
# agent.encoders=reference (docs/reference-sm-care.md): the parameter groups (an architecture's ``param_group``) that
# Q2 takes from Q1 (the reference's one ``critic.encoder`` and one task encoder) and the actor from Q1 (the tied
# encoder weights, ``copy_conv_weights_from``, and the task encoder); agent.encoder_tau: the target critic's groups
# averaged at that rate (``soft_update_params(critic.encoder, ...)``)
TIED_Q = ("encoder", "attention", "task_encoder")
TIED_ACTOR = ("encoder", "task_encoder")
ENCODER_GROUPS = ("encoder", "attention")


def _leaves(tree: Any) -> list[torch.Tensor]:
    """Tensors of a nested dict in insertion order (the order torch.func returns gradients in)."""
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in _leaves(v)]
    return [tree]


def _expanded(tree: Any, K: int) -> Any:
    """Each tensor of a nested dict expanded to ``[K, *shape]`` (a view: one copy per task, no memory)."""
    if isinstance(tree, dict):
        return {k: _expanded(v, K) for k, v in tree.items()}
    return tree.expand(K, *tree.shape)


def lean_call(agg: Aggregator, G: torch.Tensor, losses: torch.Tensor) -> AggregatorResult:
    """``agg(G, losses=losses)`` without the diagnostics (an update between two diagnostic ones).

    The same steps as :meth:`mtrl.aggregators.Aggregator.__call__` (counters, the NaN/Inf check, the method's own
    ``_aggregate``, so its state advances exactly as with the full call) less the ``diagnostics()`` call, whose
    K-space statistics (norms, conflicts, cosθ with its MGDA solve, cos to the direction) the direction never
    depends on. The NaN/Inf check is the sum of ``G`` instead of its Gram matrix (the same verdict: a float32 ``G``
    is finite exactly when its float64 Gram matrix is; a NaN or an Inf in ``G`` makes the sum one, and a sum that
    overflowed on finite entries is told apart by the elementwise check), so the Gram matrix (``K² P`` float64
    work, the largest fixed cost at paper size) is only formed when the method reads it (``ctx.gram`` is lazy):
    ``ls`` and the loss-based weightings never do. Aggregators that override ``__call__`` (wrappers) get the full call.
    ``tests/test_overhead.py`` checks the result equals the full call's for every method of the benchmark.
    """
    if type(agg).__call__ is not Aggregator.__call__:
        return agg(G, losses=losses)
    if agg.uses_losses and losses is None:
        raise ValueError(f"{agg.name}: this method needs the per-task losses: call agg(G, losses=...)")
    agg.n_calls += 1
    ctx = Context(G)
    ok = torch.isfinite(G.sum())
    if losses is not None:
        ok = ok & torch.isfinite(losses).all()
    # the one host synchronisation of the call (besides the method's own K-space work)
    finite = bool(ok) or (bool(torch.isfinite(G).all()) and (losses is None or bool(torch.isfinite(losses).all())))
    if not finite:
        agg.n_skipped += 1
        return AggregatorResult(torch.zeros_like(G[0]), None, {"skipped": 1.0}, skipped=True)
    direction, weights, _ = agg._aggregate(ctx, losses)
    return AggregatorResult(direction, weights, {"skipped": 0.0}, skipped=False)


class _NeedsGradients(Exception):
    """Raised when a method reads ``G`` or its Gram matrix from a :class:`_GradientFree` context."""


class _GradientFree(Context):
    """A :class:`Context` of K tasks without ``G``: reading ``G`` or ``G Gᵀ`` (or anything made from them: norms,
    MGDA weights, cosθ) raises :class:`_NeedsGradients`."""

    def __init__(self, K: int) -> None:
        super().__init__(torch.empty(K, 0))

    @property
    def G(self) -> torch.Tensor:  # noqa: N802 (Context's name)
        raise _NeedsGradients

    @G.setter
    def G(self, value: torch.Tensor) -> None:  # noqa: N802
        pass

    @property
    def gram(self) -> np.ndarray:
        raise _NeedsGradients


def _adam_dispatch(device: torch.device) -> dict[str, bool]:
    """``{"fused": True}`` where torch has a fused Adam for ``device`` (CPU and CUDA since torch 2.4), else
    ``{"foreach": True}``."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return {"fused": True}
    except (RuntimeError, TypeError, ValueError):
        return {"foreach": True}


def _unique(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """``params`` with each tensor once (a tied parameter appears in several networks), in order."""
    seen: set[int] = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


def _detached(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _detached(v) for k, v in tree.items()}
    return tree.detach()


@dataclass
class SACConfig:
    """Hyperparameters (defaults: SPEC §4, facebookresearch/mtrl MT10 SAC)."""

    hidden_dim: int = 400
    num_layers: int = 3
    arch: str = "multihead"
    lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    target_entropy: float | None = None  # None: −|A|
    aggregate_on: tuple[str, ...] = ("critic", "actor")  # any of critic, actor, alpha (alpha: only when shared)
    per_task_grads: str = "batched"  # batched (one backward, task-batched forward) | vmap | loop
    alpha: str = "per_task"  # per_task | shared (one α for all tasks)
    init: str = "torch"  # torch | xavier (Xavier-uniform weights, zero biases, as facebookresearch/mtrl)
    task_names: tuple[str, ...] = ()  # tasks in sub-env order (care: which description embeddings)
    task_id_dims: int = -1  # size of the one-hot task id at the end of the observation (-1: K; 0: none)
    diagnostics_every: int = 10  # aggregator diagnostics and the update's metrics every n updates (1: every one)
    compile: bool = False  # torch.compile the task-batched loss functions (per_task_grads=batched)
    # the settings that change learning (docs/parity.md): log_std and alpha_loss SB3's by default, the reference's in
    # its presets; tanh_correction mtrl's exact term by default, the references' capped one in those presets
    log_std: str = "clamp"  # clamp (Stable-Baselines3) | tanh (facebookresearch/mtrl): losses.policy_one
    alpha_loss: str = "log_alpha"  # log_alpha: −log α(log π + H̄) (SB3) | alpha: −α(log π + H̄) (fb/mtrl, cleanrl)
    tanh_correction: str = "exact"  # exact | capped: log(1 − tanh²u + 1e-6) (fb/mtrl and SB3): losses.policy_one
    # SM and CARE as facebookresearch/mtrl trains them (docs/reference-sm-care.md); the defaults keep mtrl's own
    encoder_tau: float | None = None  # Polyak rate of the target critic's encoder (sm: obs encoder; care: experts
    # and attention); None: tau. Reference: encoder_tau=0.05
    target_task_encoder: str = "target"  # target (a lagging copy in the target critic) | online (the reference)
    actor_attention: str = "train"  # care: train | frozen (the reference's actor optimiser holds actor.model only)
    encoders: str = "separate"  # separate (actor, Q1, Q2 each their own) | reference (one critic encoder and task
    # encoder shared by Q1 and Q2, tied into the actor and trained by the critic loss only)


@dataclass
class UpdateInfo:
    """What one update reports: scalar metrics and the aggregator results (by loss name)."""

    metrics: dict[str, float] = field(default_factory=dict)
    results: dict[str, AggregatorResult] = field(default_factory=dict)
    critic_losses: np.ndarray | None = None
    actor_losses: np.ndarray | None = None
    alphas: np.ndarray | None = None
    diagnostics: bool = True  # False: an update between two diagnostic ones (agent.diagnostics_every): no metrics,
    # no losses, results without stats (their ``skipped`` flags are always there)


class MultiTaskSAC:
    """Multi-task SAC over ``num_tasks`` tasks, batches laid out ``[K, B, ...]``.

    Args:
        obs_dim, act_dim: single-env observation and action sizes (actions in [−1, 1]).
        num_tasks: K.
        cfg: :class:`SACConfig`.
        aggregators: ``{"critic": agg, "actor": agg}`` for the losses in ``cfg.aggregate_on`` (separate instances:
            stateful methods keep per-loss state).
        device: torch device of the networks.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_tasks: int,
        cfg: SACConfig,
        aggregators: dict[str, Aggregator],
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg, self.K, self.act_dim, self.device = cfg, num_tasks, act_dim, torch.device(device)
        if cfg.per_task_grads not in PER_TASK_GRADS:
            raise ValueError(f"per_task_grads must be one of {', '.join(PER_TASK_GRADS)}, got {cfg.per_task_grads!r}")
        if not isinstance(cfg.diagnostics_every, int) or isinstance(cfg.diagnostics_every, bool) or \
                cfg.diagnostics_every < 1:  # fmt: skip
            raise ValueError(f"agent.diagnostics_every must be an integer >= 1, got {cfg.diagnostics_every!r}")
        bad = sorted(set(cfg.aggregate_on) - set(LOSSES))
        if bad:
            raise ValueError(f"agent.aggregate_on: unknown loss(es) {bad}; valid: {', '.join(LOSSES)}")
        if cfg.alpha not in ALPHAS:
            raise ValueError(f"agent.alpha must be one of {', '.join(ALPHAS)}, got {cfg.alpha!r}")
        if "alpha" in cfg.aggregate_on and cfg.alpha != "shared":
            raise ValueError("agent.aggregate_on: alpha needs agent.alpha=shared (per-task α have no shared gradient)")
        if cfg.init not in INITS:
            raise ValueError(f"agent.init must be one of {', '.join(INITS)}, got {cfg.init!r}")
        self._check_reference_options(cfg)
        net = dict(obs_dim=obs_dim, num_tasks=num_tasks, hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers,
                   init=cfg.init, task_id_dims=cfg.task_id_dims, task_names=tuple(cfg.task_names))  # fmt: skip
        self.actor = make_network(cfg.arch, NetSpec(obs_dim, 2 * act_dim, **net)).to(self.device)
        self.q1 = make_network(cfg.arch, NetSpec(obs_dim + act_dim, 1, **net)).to(self.device)
        self.q2 = make_network(cfg.arch, NetSpec(obs_dim + act_dim, 1, **net)).to(self.device)
        self._group = getattr(self.q1, "param_group", lambda key: "trunk")  # MLPs: everything is trunk
        if cfg.encoders == "reference":
            self._tie()
        # one deepcopy of both: parameters Q2 shares with Q1 stay shared in the targets
        self.q1_target, self.q2_target = copy.deepcopy((self.q1, self.q2))
        for p in [*self.q1_target.parameters(), *self.q2_target.parameters()]:
            p.requires_grad_(False)
        n_alpha = num_tasks if cfg.alpha == "per_task" else 1
        self.log_alpha = torch.full((n_alpha,), float(np.log(cfg.init_alpha)), device=self.device,
                                    requires_grad=True)  # fmt: skip
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        # Adam's fused kernel (one call for all tensors; the per-tensor loop's arithmetic up to rounding), else its
        # multi-tensor (foreach) form
        self._adam = _adam_dispatch(self.device)
        # what each optimiser holds (each parameter once): the actor's own parameters (not those tied to the
        # critic's, nor a frozen attention); the critic's, less the shared task encoder under encoders=reference,
        # which has its own optimiser stepped after the actor (the reference's task_encoder_optimizer, whose
        # step comes last in Agent.update)
        q_ids = {id(p) for p in self.q1.parameters()}
        frozen = {id(p) for k, p in self._named(self.actor) if cfg.actor_attention == "frozen"
                  and self._group(k) == "attention"}  # fmt: skip
        actor_params = [p for _, p in self._named(self.actor) if id(p) not in q_ids | frozen]
        te_params = [p for k, p in self._named(self.q1) if self._group(k) == "task_encoder"] \
            if cfg.encoders == "reference" else []  # fmt: skip
        te_ids = {id(p) for p in te_params}
        critic_params = _unique([p for q in (self.q1, self.q2) for _, p in self._named(q) if id(p) not in te_ids])
        self.actor_opt = torch.optim.Adam(actor_params, lr=cfg.lr, **self._adam)
        self.critic_opt = torch.optim.Adam(critic_params, lr=cfg.lr, **self._adam)
        self.task_encoder_opt = torch.optim.Adam(te_params, lr=cfg.lr, **self._adam) if te_params else None
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, **self._adam)
        self.aggregators = {k: v for k, v in aggregators.items() if k in cfg.aggregate_on}
        self.n_actor, self.n_critic = self.actor.forward_one, self.q1.forward_one  # pure: (shared, task, x)
        # the actor's views: its trained parameters; what it reads without training it (the critic's tied encoders,
        # a frozen attention) enters its forward as detached views (the same storage: they follow every step)
        a_own = [{k: v for k, v in getattr(self.actor, d).items() if id(v) not in q_ids | frozen}
                 for d in ("shared", "task")]  # fmt: skip
        fixed = [{k: v.detach() for k, v in getattr(self.actor, d).items() if k not in own}
                 for d, own in zip(("shared", "task"), a_own)]  # fmt: skip
        # task-batched forwards ([K, B, in] -> [K, B, out]): plain shared parameters, or expanded to one view per task
        # (the per-task gradients of the shared parameters are then the gradients of those views)
        self.b_actor, self.b_actor_x = self._batched(self.actor, *fixed)
        self.b_critic, self.b_critic_x = self._batched(self.q1)
        self._polyak = self._polyak_groups()
        self._critic_losses, self._actor_losses = L.critic_losses_all, L.actor_losses_all
        self._views = {"actor": (a_own[0], a_own[1]), "critic": self._q_views(self.q1, self.q2),
                       "target": self._q_views(self.q1_target, self.q2_target, online=(self.q1, self.q2))}  # fmt: skip
        if cfg.compile:
            self._critic_losses = torch.compile(L.critic_losses_all)  # dynamic shapes after a change of B
            self._actor_losses = torch.compile(L.actor_losses_all)
        # agent.log_std: every policy evaluation (acting, the target, the actor loss) squashes log σ the same way
        # (and agent.tanh_correction computes its log π the same way)
        pol = {"log_std": cfg.log_std, "tanh_correction": cfg.tanh_correction}
        self._policy_one = functools.partial(policy_one, **pol)
        self._actor_loss_one = functools.partial(actor_loss_one, **pol)
        self._actor_losses = functools.partial(self._actor_losses, **pol)
        self.n_updates = 0
        self.n_skipped = {"critic": 0, "actor": 0, "alpha": 0}
        self._reads_gradients: set[str] = set()  # losses whose method read G (see _gradient_free_step)

    # ------------------------------------------------------------------ SM / CARE as the reference trains them
    @staticmethod
    def _check_reference_options(cfg: SACConfig) -> None:
        """One clear ``ValueError`` for a bad value of the reference-training options (docs/reference-sm-care.md)."""
        for key, value, valid in (("encoders", cfg.encoders, ENCODERS), ("log_std", cfg.log_std, L.LOG_STDS),
                                  ("alpha_loss", cfg.alpha_loss, ALPHA_LOSSES),
                                  ("tanh_correction", cfg.tanh_correction, L.TANH_CORRECTIONS),
                                  ("target_task_encoder", cfg.target_task_encoder, TARGET_TASK_ENCODERS),
                                  ("actor_attention", cfg.actor_attention, ACTOR_ATTENTIONS)):  # fmt: skip
            if value not in valid:
                raise ValueError(f"agent.{key} must be one of {', '.join(valid)}, got {value!r}")
        if cfg.encoder_tau is not None and not 0 < float(cfg.encoder_tau) <= 1:
            raise ValueError(f"agent.encoder_tau must be null or in (0, 1], got {cfg.encoder_tau!r}")
        if cfg.encoders == "reference" and cfg.arch not in ("sm", "care"):
            raise ValueError(f"agent.encoders=reference needs agent.arch=sm or care (got {cfg.arch}: no encoders)")
        if cfg.actor_attention == "frozen" and cfg.arch != "care":
            raise ValueError(f"agent.actor_attention=frozen needs agent.arch=care (got {cfg.arch}: no attention)")
        actor_reads_fixed = cfg.encoders == "reference" or cfg.actor_attention == "frozen"
        if actor_reads_fixed and cfg.per_task_grads != "batched":
            raise ValueError("agent.encoders=reference and agent.actor_attention=frozen need "
                             f"agent.per_task_grads=batched (got {cfg.per_task_grads})")  # fmt: skip

    @staticmethod
    def _named(net: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        """``(key, parameter)`` of a network's ``shared`` then ``task`` dict (keys without the dict's name)."""
        return [*net.shared.items(), *net.task.items()]

    def _tie(self) -> None:
        """``agent.encoders=reference``: Q2's encoder, attention and task encoder become Q1's (one ``critic.encoder``,
        one task encoder); the actor's encoder (sm) or experts (care) and its task encoder become Q1's too (the
        reference ties them: ``Actor.encoder.copy_conv_weights_from``; one ``TaskEncoder``)."""
        for net, groups in ((self.q2, TIED_Q), (self.actor, TIED_ACTOR)):
            for d in ("shared", "task"):
                own, src = getattr(net, d), getattr(self.q1, d)
                for k in list(own.keys()):
                    if self._group(k) in groups:
                        own[k] = src[k]

    def _q_views(self, q1: torch.nn.Module, q2: torch.nn.Module, online: tuple | None = None) -> tuple[dict, dict]:
        """The critic's (or target critic's) parameter views ``({"q1", "q2"[, "enc"]}, same for task)``: each
        parameter once; what Q2 shares with Q1 (encoders=reference) under ``"enc"``. For the target with
        ``agent.target_task_encoder=online``, the task-encoder entries are the online critic's (the reference feeds
        the target critic the online task encoding: ``Agent.update`` computes one ``task_info`` for both)."""
        views: tuple[dict, dict] = ({}, {})
        for i, d in enumerate(("shared", "task")):
            a, b = dict(getattr(q1, d)), dict(getattr(q2, d))
            if online is not None and self.cfg.target_task_encoder == "online":
                oa, ob = dict(getattr(online[0], d)), dict(getattr(online[1], d))
                a = {k: oa[k] if self._group(k) == "task_encoder" else v for k, v in a.items()}
                b = {k: ob[k] if self._group(k) == "task_encoder" else v for k, v in b.items()}
            if self.cfg.encoders == "reference":
                views[i]["enc"] = {k: v for k, v in a.items() if self._group(k) in TIED_Q}
                a = {k: v for k, v in a.items() if self._group(k) not in TIED_Q}
                b = {k: v for k, v in b.items() if self._group(k) not in TIED_Q}
            views[i]["q1"], views[i]["q2"] = a, b
        return views

    def _polyak_groups(self) -> list[tuple[list[torch.Tensor], list[torch.Tensor], float]]:
        """``[(targets, sources, rate)]`` of the Polyak step, each target parameter once: the encoder groups at
        ``agent.encoder_tau`` (when set), the rest at ``agent.tau``; none of the target's task encoder when the
        target reads the online one."""
        cfg, seen = self.cfg, set()
        groups: dict[float, tuple[list, list]] = {}
        for tgt, src in ((self.q1_target, self.q1), (self.q2_target, self.q2)):
            src_p = dict(self._named(src))
            for k, pt in self._named(tgt):
                g = self._group(k)
                if id(pt) in seen or (cfg.target_task_encoder == "online" and g == "task_encoder"):
                    continue
                seen.add(id(pt))
                rate = float(cfg.encoder_tau) if cfg.encoder_tau is not None and g in ENCODER_GROUPS else cfg.tau
                groups.setdefault(rate, ([], []))
                groups[rate][0].append(pt)
                groups[rate][1].append(src_p[k])
        return [(t, s, r) for r, (t, s) in groups.items()]

    @staticmethod
    def _batched(net: torch.nn.Module, fixed_sh: dict | None = None, fixed_tk: dict | None = None):
        """``(forward on plain shared params, forward on per-task expanded shared params)``, both task-batched: the
        architecture's own ``forward_all`` where it has one (the MLPs: batched matmuls), else ``vmap`` of its
        ``forward_one`` (shared parameters unbatched, or batched along their expanded task axis).

        ``fixed_sh``/``fixed_tk``: parameters the network reads but is not trained on (detached views, the actor's
        under ``agent.encoders=reference`` or a frozen attention), merged into what it is given."""
        if not fixed_sh and not fixed_tk:
            if hasattr(net, "forward_all"):
                return net.forward_all, net.forward_all
            return vmap(net.forward_one, in_dims=(None, 0, 0)), vmap(net.forward_one, in_dims=(0, 0, 0))
        fsh, ftk = fixed_sh or {}, fixed_tk or {}
        if hasattr(net, "forward_all"):
            fn = lambda sh, tk, x: net.forward_all({**fsh, **sh}, {**ftk, **tk}, x)  # noqa: E731
            return fn, fn

        def one(sh, tk, x, f_sh, f_tk):
            return net.forward_one({**f_sh, **sh}, {**f_tk, **tk}, x)

        plain, expanded = (vmap(one, in_dims=(d, 0, 0, None, 0)) for d in (None, 0))
        return (lambda sh, tk, x: plain(sh, tk, x, fsh, ftk)), (lambda sh, tk, x: expanded(sh, tk, x, fsh, ftk))

    # ------------------------------------------------------------------ parameter views
    def _critic_params(self, target: bool = False) -> tuple[dict, dict]:
        return self._views["target" if target else "critic"]  # (load_state_dict copies in place: fixed objects)

    def _actor_params(self) -> tuple[dict, dict]:
        return self._views["actor"]

    def alphas(self) -> torch.Tensor:
        """Current temperature of each task, ``[K]`` (``α_i = exp(log α_i)``; one value repeated when shared)."""
        return self.log_alpha.detach().exp().expand(self.K).clone()

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None, deterministic: bool = False) -> np.ndarray:
        """Actions ``[K, A]`` for observations ``[K, obs]`` (sub-env k is task k)."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(self.K, 1, -1)
        if deterministic:  # draws no random numbers (evaluation must not shift the training RNG streams)
            noise = torch.zeros((self.K, 1, self.act_dim), device=self.device)
        else:
            noise = torch.randn((self.K, 1, self.act_dim), generator=generator).to(self.device)
        a_sh, a_tk = self._actor_params()
        action, _, mean_action = self._policy_one(a_sh, a_tk, x, noise, self.b_actor)  # on the task-batched actor
        out = mean_action if deterministic else action
        return out.reshape(self.K, self.act_dim).cpu().numpy()

    # ------------------------------------------------------------------ per-task gradients
    def critic_task_grads(
        self, obs, act, target, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """``(G [K, P_shared], per-task param grads (rows = ∇L_i), losses [K])`` of the critic."""
        c_sh, c_tk = self._critic_params()
        dims = (None, 0, 0, 0, 0, None, None if weight is None else 0)
        args = (c_sh, c_tk, obs, act, target, self.n_critic, weight)
        if self.cfg.per_task_grads == "batched":
            c_x = _expanded(c_sh, self.K)
            losses = self._critic_losses(c_x, c_tk, obs, act, target, self.b_critic_x, weight)
            return self._batched_grads(losses, _leaves(c_x), _leaves(c_tk))
        if self.cfg.per_task_grads == "vmap":
            fn = vmap(grad_and_value(critic_loss_one, argnums=(0, 1)), in_dims=dims)
            (g_sh, g_tk), losses = fn(*args)
            return self._stack(_leaves(g_sh)), _leaves(g_tk), losses.detach()
        losses = vmap(critic_loss_one, in_dims=dims)(*args)
        return self._loop(losses, _leaves(c_sh), _leaves(c_tk))

    def actor_task_grads(
        self, obs, noise, alpha, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, Any]:
        """``(G, per-task param grads, losses [K], mean log π [K])`` of the actor (critic held fixed)."""
        a_sh, a_tk = self._actor_params()
        c_sh, c_tk = (_detached(t) for t in self._critic_params())
        args = (a_sh, a_tk, c_sh, c_tk, obs, noise, alpha, self.n_actor, self.n_critic, weight)
        dims = (None, 0, None, 0, 0, 0, 0, None, None, None if weight is None else 0)
        if self.cfg.per_task_grads == "batched":
            a_x = _expanded(a_sh, self.K)
            losses, logp = self._actor_losses(a_x, a_tk, c_sh, c_tk, obs, noise, alpha, self.b_actor_x, self.b_critic,
                                              weight)  # fmt: skip
            G, g_tk, losses = self._batched_grads(losses, _leaves(a_x), _leaves(a_tk))
            return G, g_tk, losses, logp
        if self.cfg.per_task_grads == "vmap":
            fn = vmap(grad_and_value(self._actor_loss_one, argnums=(0, 1), has_aux=True), in_dims=dims)
            (g_sh, g_tk), (losses, logp) = fn(*args)
            return self._stack(_leaves(g_sh)), _leaves(g_tk), losses.detach(), logp
        losses, logp = vmap(self._actor_loss_one, in_dims=dims)(*args)
        G, g_tk, losses = self._loop(losses, _leaves(a_sh), _leaves(a_tk))
        return G, g_tk, losses, logp.detach()

    def _stack(self, grads: list[torch.Tensor]) -> torch.Tensor:
        if not grads:
            return torch.zeros((self.K, 0), device=self.device)
        return torch.cat([g.reshape(self.K, -1) for g in grads], dim=1)

    def _batched_grads(self, losses: torch.Tensor, shared_x: list[torch.Tensor], task: list[torch.Tensor]):
        """One ordinary backward of ``Σ_i L_i`` with respect to the per-task expanded views of the shared parameters
        (their gradient's row i is ``∇L_i``: task i's loss only sees its own rows) and the per-task parameters."""
        grads = torch.autograd.grad(losses.sum(), [*shared_x, *task])
        n = len(shared_x)
        return self._stack(list(grads[:n])), list(grads[n:]), losses.detach()

    def _gradient_free_step(self, name: str, opt: torch.optim.Optimizer, sh: dict, tk: dict, losses: torch.Tensor,
                            info: UpdateInfo) -> torch.Tensor | None:  # fmt: skip
        """Between two diagnostic updates, a method whose weights do not read ``G`` (``ls``, the loss-based
        weightings: ``wᵀG`` from the losses alone) needs no per-task gradients: its direction ``Σ_i w_i g_i`` is the
        gradient of ``Σ_i w_i L_i``, one ordinary backward through the plain (not task-expanded) networks.

        The method's ``weights_from_gram`` is given a context without ``G``; if it reads ``G`` (or its Gram matrix),
        its state is restored and ``None`` returned: the caller then forms ``G`` as usual (and this loss does so
        from then on). Per-task parameters get ``∇L_i / K`` as always (from the same backward, rescaled per task,
        when every ``w_i > 0``; else from a second backward of ``Σ_i L_i / K``). The skip rule is the full call's:
        non-finite losses, or non-finite gradients (with every ``w_i ≠ 0`` a NaN/Inf in any ``g_i`` reaches the
        combination; with a zero weight, the unweighted gradient is checked too); the method's state is then as
        if it had not been called, as in the full call. Returns the detached losses.
        """
        agg, K = self.aggregators[name], self.K
        shared, task = _leaves(sh), _leaves(tk)
        ld = losses.detach()
        if not bool(torch.isfinite(ld).all()):  # as Aggregator.__call__: counted, skipped, the method not called
            agg.n_calls += 1
            agg.n_skipped += 1
            self._skip(name, opt, info, shared)
            return ld
        snapshot = copy.deepcopy(agg.state_dict())
        try:
            w, _ = agg.weights_from_gram(_GradientFree(K), ld.double().cpu().numpy())
        except _NeedsGradients:
            agg.load_state_dict(snapshot)
            self._reads_gradients.add(name)
            return None
        w = np.asarray(w, dtype=np.float64)
        agg.n_calls += 1
        wt = torch.as_tensor(w, dtype=ld.dtype, device=ld.device)
        positive = bool(np.all(w > 0) and np.all(np.isfinite(w)))
        if positive:
            grads = torch.autograd.grad((wt * losses).sum(), [*shared, *task])
            g_sh, g_tk = list(grads[: len(shared)]), list(grads[len(shared) :])
            g_tk = [g / (K * wt).view(K, *[1] * (g.dim() - 1)) for g in g_tk]
        else:
            g_sh = list(torch.autograd.grad((wt * losses).sum(), shared, retain_graph=True))
            g_plain = torch.autograd.grad(losses.sum(), [*shared, *task])
            g_tk = [g / K for g in g_plain[len(shared) :]]
            g_sh = g_sh + list(g_plain[: len(shared)])  # checked for finiteness below, then dropped
        if not bool(torch.isfinite(torch.stack([g.sum() for g in g_sh])).all()):
            agg.load_state_dict(snapshot)  # the full call skips before the method runs
            agg.n_calls += 1
            agg.n_skipped += 1
            self._skip(name, opt, info, shared)
            return ld
        g_sh = g_sh[: len(shared)]
        for p, g in zip(shared, g_sh):
            p.grad = g
        for p, g in zip(task, g_tk):
            p.grad = g
        direction = torch.cat([g.reshape(-1) for g in g_sh])
        info.results[name] = AggregatorResult(direction, wt, {"skipped": 0.0}, skipped=False)
        opt.step()
        return ld

    def _skip(self, name: str, opt: torch.optim.Optimizer, info: UpdateInfo, shared: list[torch.Tensor]) -> None:
        n = sum(p.numel() for p in shared)
        info.results[name] = AggregatorResult(torch.zeros(n, device=self.device), None, {"skipped": 1.0}, skipped=True)
        self.n_skipped[name] += 1
        opt.zero_grad(set_to_none=True)

    def _gradient_free(self, name: str, diag: bool) -> bool:
        """Whether loss ``name``'s update this time may try :meth:`_gradient_free_step`."""
        agg = self.aggregators.get(name)
        return (not diag and self.cfg.per_task_grads == "batched" and name not in self._reads_gradients
                and type(agg).__call__ is Aggregator.__call__ and isinstance(agg, GramWeighting)
                and type(agg)._aggregate is GramWeighting._aggregate)  # fmt: skip

    def _loop(self, losses: torch.Tensor, shared: list[torch.Tensor], task: list[torch.Tensor]):
        """The reference code's way: K backward passes through the whole batch's graph, one per task loss."""
        G = per_task_gradients(list(losses), shared) if shared else self._stack([])
        g_tk = list(torch.autograd.grad(losses.sum(), task)) if task else []
        return G, g_tk, losses.detach()

    # ------------------------------------------------------------------ applying gradients
    def _apply(
        self, name: str, opt: torch.optim.Optimizer, shared: list[torch.Tensor], task: list[torch.Tensor],
        G: torch.Tensor, g_task: list[torch.Tensor], losses: torch.Tensor, info: UpdateInfo, full: bool = True,
    ) -> None:  # fmt: skip
        """``full``: the aggregator's full call (diagnostics); else :func:`lean_call`, and ``.grad`` are views of
        the direction (no copy: the optimiser does not write into gradients)."""
        agg = self.aggregators.get(name)
        skipped = False
        if shared:
            if agg is not None:
                t0 = time.perf_counter()
                res = agg(G, losses=losses) if full else lean_call(agg, G, losses)
                if full:
                    agg_ms = 1e3 * (time.perf_counter() - t0)
                    info.metrics["aggregator_ms"] = info.metrics.get("aggregator_ms", 0.0) + agg_ms
                info.results[name] = res
                direction, skipped = res.direction, res.skipped
            else:
                direction = G.mean(dim=0)
            offset = 0
            for p in shared:
                n = p.numel()
                p.grad = direction[offset : offset + n].view_as(p).to(p.dtype)  # a view (Adam never writes it)
                offset += n
        for p, g in zip(task, g_task):
            p.grad = g / self.K
        if skipped:
            self.n_skipped[name] += 1
            opt.zero_grad(set_to_none=True)
            return
        opt.step()

    # ------------------------------------------------------------------ one update
    @torch.no_grad()
    def critic_target(self, reward, next_obs, terminated, noise, alpha) -> torch.Tensor:
        """Soft clipped double-Q target ``r + γ (1 − terminated)(min_j Q̄_j(s', a') − α_i log π(a'|s'))``, ``[K, B]``.

        Only termination stops bootstrapping: a time-limit truncation stores ``terminated = 0`` and ``s'`` = the true
        last observation (``info["final_obs"]``), so it bootstraps from it.
        """
        a_sh, a_tk = self._actor_params()
        t_sh, t_tk = self._critic_params(target=True)
        next_a, next_logp, _ = self._policy_one(a_sh, a_tk, next_obs, noise, self.b_actor)  # task-batched networks
        tq1, tq2 = twin_q_one(t_sh, t_tk, next_obs, next_a, self.b_critic)
        soft_q = torch.minimum(tq1, tq2) - alpha[:, None] * next_logp
        return reward + self.cfg.gamma * (1.0 - terminated) * soft_q

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> UpdateInfo:
        """One SAC update on a ``[K, B, ...]`` batch (keys obs, action, reward, next_obs, terminated; optional
        weight, ``[K, B]`` per-sample weights of the task losses).

        Every ``agent.diagnostics_every``-th update (the first included) is a diagnostic one: the aggregators' full
        call (their statistics in ``info.results``) and the losses, α and metrics in ``info``; the others return
        only the results' ``skipped`` flags (no host synchronisation for metrics). The parameters after an update
        do not depend on it."""
        cfg, K = self.cfg, self.K
        obs, act, rew = batch["obs"], batch["action"], batch["reward"]
        next_obs, term = batch["next_obs"], batch["terminated"]
        weight = batch.get("weight")
        B = obs.shape[1]
        diag = self.n_updates % cfg.diagnostics_every == 0
        info = UpdateInfo(diagnostics=diag)
        alpha = self.log_alpha.detach().exp().expand(K)

        # --- critic
        noise = torch.randn((K, B, self.act_dim), generator=generator).to(self.device)
        target = self.critic_target(rew, next_obs, term, noise, alpha)
        c_sh, c_tk = self._critic_params()
        critic_skips = self.n_skipped["critic"]
        closs, aggregated = None, "critic" in self.aggregators and bool(c_sh["q1"])
        if aggregated and self._gradient_free("critic", diag):  # None: the method reads G
            losses = self._critic_losses(c_sh, c_tk, obs, act, target, self.b_critic, weight)
            closs = self._gradient_free_step("critic", self.critic_opt, c_sh, c_tk, losses, info)
        if closs is None and aggregated:
            G, g_tk, closs = self.critic_task_grads(obs, act, target, weight)
            self._apply("critic", self.critic_opt, _leaves(c_sh), _leaves(c_tk), G, g_tk, closs, info, full=diag)
        elif closs is None:  # no aggregator: the plain backward of the mean loss (trunk: g0; each head: ∇L_i / K)
            closs = self._critic_losses(c_sh, c_tk, obs, act, target, self.b_critic, weight)
            self.critic_opt.zero_grad(set_to_none=True)
            closs.mean().backward()
            self.critic_opt.step()
            closs = closs.detach()

        # --- actor (critic fixed)
        noise = torch.randn((K, B, self.act_dim), generator=generator).to(self.device)
        a_sh, a_tk = self._actor_params()
        aloss, aggregated = None, "actor" in self.aggregators and bool(a_sh)
        if aggregated and self._gradient_free("actor", diag):
            cd_sh, cd_tk = (_detached(t) for t in self._critic_params())
            losses, logp = self._actor_losses(a_sh, a_tk, cd_sh, cd_tk, obs, noise, alpha, self.b_actor,
                                              self.b_critic, weight)  # fmt: skip
            aloss = self._gradient_free_step("actor", self.actor_opt, a_sh, a_tk, losses, info)
        if aloss is None and aggregated:
            G, g_tk, aloss, logp = self.actor_task_grads(obs, noise, alpha, weight)
            self._apply("actor", self.actor_opt, _leaves(a_sh), _leaves(a_tk), G, g_tk, aloss, info, full=diag)
        elif aloss is None:
            cd_sh, cd_tk = (_detached(t) for t in self._critic_params())
            aloss, logp = self._actor_losses(a_sh, a_tk, cd_sh, cd_tk, obs, noise, alpha, self.b_actor, self.b_critic,
                                             weight)  # fmt: skip
            self.actor_opt.zero_grad(set_to_none=True)
            aloss.mean().backward()
            self.actor_opt.step()
            aloss = aloss.detach()

        # --- temperature
        logp = logp.detach()
        alpha_losses = self._alpha_losses(logp)
        self.alpha_opt.zero_grad(set_to_none=True)
        if cfg.alpha == "per_task" or "alpha" not in self.aggregators:  # per task, or the mean loss's gradient
            (alpha_losses.sum() if cfg.alpha == "per_task" else alpha_losses.mean()).backward()
            self.alpha_opt.step()
        else:
            G = torch.stack([torch.autograd.grad(alpha_losses[i], self.log_alpha, retain_graph=i < K - 1)[0]
                             for i in range(K)])  # fmt: skip
            self._apply("alpha", self.alpha_opt, [self.log_alpha], [], G, [], alpha_losses.detach(), info, full=diag)

        # --- the shared task encoder (encoders=reference): the critic loss's gradient, set with the critic's, applied
        # after the actor has read the encoding it had before (the reference's update_task_encoder comes last)
        if self.task_encoder_opt is not None:
            if self.n_skipped["critic"] == critic_skips:
                self.task_encoder_opt.step()
            self.task_encoder_opt.zero_grad(set_to_none=True)

        # --- targets (Polyak)
        with torch.no_grad():
            for targets, sources, rate in self._polyak:
                torch._foreach_lerp_(targets, sources, rate)

        # --- after-step hooks (only of methods that have one: the base hook does nothing)
        self._step_aggregators(info, closs, aloss, alpha_losses, obs, act, target, noise, alpha, weight, logp)

        self.n_updates += 1
        if diag:
            info.critic_losses, info.actor_losses = closs.cpu().numpy(), aloss.cpu().numpy()
            info.alphas = self.alphas().cpu().numpy()
            m = torch.stack([closs.mean(), aloss.mean(), alpha_losses.detach().mean(), -logp.mean()]).tolist()
            info.metrics.update(zip(("critic_loss", "actor_loss", "alpha_loss", "entropy"), m))
        return info

    def _alpha_losses(self, logp: torch.Tensor) -> torch.Tensor:
        """The K temperature losses ``−α_i (log π_i + H̄)`` (``logp``: each task's mean log π, detached).

        ``agent.alpha_loss=log_alpha``: ``−log α_i (log π_i + H̄)`` (Stable-Baselines3's ``ent_coef_loss``). Both have
        the same sign of gradient in ``log α``; the first's is ``α`` times the second's, so with Adam it moves
        ``log α`` more slowly once α is small and changing (docs/parity.md)."""
        scale = self.log_alpha if self.cfg.alpha_loss == "log_alpha" else self.log_alpha.exp()
        return -(scale.expand(self.K) * (logp + self.target_entropy))

    def _step_aggregators(self, info, closs, aloss, alpha_losses, obs, act, target, noise, alpha, weight,
                          logp) -> None:  # fmt: skip
        """The aggregators' after-step hooks (loss-based methods read the losses, after the step where they ask for
        it); a skipped update, or non-finite losses, never reach a method's state. Methods without a hook (the base
        class's no-op ``step``) are passed over."""
        before = {"critic": closs, "actor": aloss, "alpha": alpha_losses.detach()}
        for name, agg in self.aggregators.items():
            if type(agg).step is Aggregator.step:
                continue
            res = info.results.get(name)
            if (res is not None and res.skipped) or not bool(torch.isfinite(before[name]).all()):
                continue  # a skipped or non-finite update must not reach the method's state
            losses = before[name]
            if agg.uses_losses:
                losses = self._post_step_losses(name, obs, act, target, noise, alpha, weight, logp)
            if bool(torch.isfinite(losses).all()):
                agg.step(losses)

    @torch.no_grad()
    def _post_step_losses(self, name, obs, act, target, noise, alpha, weight, logp) -> torch.Tensor:
        if name == "alpha":
            return self._alpha_losses(logp)
        c_sh, c_tk = self._critic_params()
        if name == "critic":
            return L.critic_losses_all(c_sh, c_tk, obs, act, target, self.b_critic, weight)
        a_sh, a_tk = self._actor_params()
        return L.actor_losses_all(a_sh, a_tk, c_sh, c_tk, obs, noise, alpha, self.b_actor, self.b_critic, weight,
                                  log_std=self.cfg.log_std, tanh_correction=self.cfg.tanh_correction)[0]  # fmt: skip

    # ------------------------------------------------------------------ checkpoints
    def nonfinite_parameters(self) -> list[str]:
        """Names of the networks (``actor``, ``q1``, ``q2``, ``log_alpha``) holding a NaN/Inf parameter."""
        bad = [n for n in ("actor", "q1", "q2", "q1_target", "q2_target")
               if not all(bool(torch.isfinite(p).all()) for p in getattr(self, n).parameters())]  # fmt: skip
        return bad + ([] if bool(torch.isfinite(self.log_alpha).all()) else ["log_alpha"])

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers, log α, aggregator states and counters."""
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
            **({"task_encoder_opt": self.task_encoder_opt.state_dict()} if self.task_encoder_opt else {}),
            "aggregators": {k: a.state_dict() for k, a in self.aggregators.items()},
            "n_updates": self.n_updates,
            "n_skipped": dict(self.n_skipped),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (shapes must match: checked by the checkpoint's fingerprint first)."""
        for k in ("actor", "q1", "q2", "q1_target", "q2_target"):
            getattr(self, k).load_state_dict(state[k])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("actor_opt", "critic_opt", "alpha_opt"):  # Adam moments of another shape: refused (issue 21)
            check_optimizer_state(getattr(self, name), state[name], name)
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        opts = [self.actor_opt, self.critic_opt, self.alpha_opt]
        if self.task_encoder_opt is not None:
            self.task_encoder_opt.load_state_dict(state["task_encoder_opt"])
            opts.append(self.task_encoder_opt)
        for opt in opts:  # a checkpoint's groups carry its dispatch
            for group in opt.param_groups:
                group["fused"], group["foreach"] = self._adam.get("fused"), self._adam.get("foreach")
                for p in group["params"]:  # fused Adam keeps its step count on the parameter's device
                    st = opt.state.get(p, {})
                    if self._adam.get("fused") and torch.is_tensor(st.get("step")):
                        st["step"] = st["step"].to(device=p.device, dtype=torch.float32)
        for k, a in self.aggregators.items():
            a.load_state_dict(state["aggregators"][k])
        self.n_updates = int(state["n_updates"])
        self.n_skipped = {"critic": 0, "actor": 0, "alpha": 0, **dict(state["n_skipped"])}
