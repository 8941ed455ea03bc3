"""``agent.arch=sm``: Soft Modularization (Yang et al., "Multi-Task Reinforcement Learning with Soft
Modularization", NeurIPS 2020), as facebookresearch/mtrl configures it for MT10.

Reference: facebookresearch/mtrl, ``mtrl/agent/components/soft_modularization.py`` (``SoftModularizedMLP``,
``RoutingNetwork``), ``task_encoder.py``, ``encoder.py`` (``FeedForwardEncoder``), ``critic.py`` (``QFunction``
with ``should_condition_model_on_task_info``), and the "SoftModularization" command of its docs
(``docs_src/source/pages/tutorials/baseline.rst``: task encoder on, no pretrained embedding, ``feedforward``
encoder 2 x 50 -> 50, ``moe_cfg.mode=soft_modularization``, ``num_experts=4``, single-head policy, disentangled α).
One network (the actor, or each Q function) is, for task i and a batch of observations ``s`` (the one-hot task id
is dropped from ``s``: the reference's ``env_obs`` carries no task id, the task enters through its embedding):

- task encoder: ``z_i = MLP_te(relu(e_i))``, ``e_i`` a learned 50-d embedding of task i (``nn.Embedding``, init
  N(0, 1)), ``MLP_te`` 50 -> 50 -> 50 -> 50 (``build_mlp(num_layers=2)``: three linear layers);
- observation encoder: ``h = MLP_enc(s)``, ``obs -> 50 -> 50 -> 50``; the critic then projects ``[h, a]`` back to
  50 (``obs_action_projection_layer``);
- routing network: ``u = W_p(h ⊙ z_i)`` (50 -> hidden), logits ``p_0 = W_d0(relu(u))`` and, for deeper nets,
  ``p_l = W_dl(relu(W_ul(p_{l-1}) ⊙ u))``; ``softmax`` over the last axis of each ``p_l`` viewed as
  ``n_modules x n_modules``: ``P_l[j, k]`` is the weight of module k of layer l in module j of layer l+1 (each row a
  distribution);
- modular trunk: ``n_modules`` modules per layer; layer 0 maps ``h`` to ``relu(h W_0m + b_0m)`` for every module m,
  each next layer's module j takes ``Σ_k P_l[j, k]·y_k``, the last layer maps every module to the output and the
  modules' outputs are averaged. The reference builds this trunk with ``num_layers=2`` **hard-coded**
  (``actor.py``/``critic.py`` ``_make_trunk``; its docs command sets ``agent.actor.num_layers=4``, which therefore
  changes nothing): two module layers (50 -> hidden, hidden -> out) and one routing step. Here the constructor's
  ``sm_layers`` (default 2) and ``sm_modules`` (default 4) and ``agent.hidden_dim`` (400 there) set them;
  ``agent.num_layers`` does not apply.

Shared and per task (what the aggregator sees): **shared** = everything above except the task embeddings (task
encoder MLP, observation encoder, the critic's projection, routing network, all modules); **per task** = the
embedding row ``e_i`` of each task (``task["emb"]``, ``[K, 50]``), which only task i's loss touches.

Differences from the reference, all from mtrl's one-network-per-optimiser layout: the reference shares one task
encoder between actor and critic (trained by the critic loss only) and one observation encoder between the actor
and both Q functions (tied weights, trained by the critic loss only, the actor's use detached); here each network
(actor, Q1, Q2) has its own task embedding, task encoder and observation encoder, trained by its own loss. The
per-network parameter counts are the reference's components' (``tests/test_rl_archs.py`` counts them by hand).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import vmap

from mtrl.agents.archs._base import NetSpec, Params, add_linear, add_mlp, check_init, linear, mlp, split_obs

EMBED_DIM = 50  # metaworld_multitask.yaml task_encoder_cfg.model_cfg: embedding_dim, hidden_dim, output_dim 50
FEATURE_DIM = 50  # agent.encoder_feature_dim 50; encoder.feedforward hidden_dim 50, num_layers 2
GROUP_BYTES = 8 << 20  # forward_all: tasks in groups whose module activation [tasks, B, E, H] stays in a CPU cache


class SoftModularNet(nn.Module):
    """One SM network (see the module docstring). ``sm_layers`` module layers of ``sm_modules`` modules each."""

    def __init__(self, spec: NetSpec, sm_layers: int = 2, sm_modules: int = 4) -> None:
        super().__init__()
        check_init(spec.init)
        if sm_layers < 2 or sm_modules < 1:
            raise ValueError(f"soft modularization needs sm_layers >= 2 and sm_modules >= 1, got {sm_layers}, "
                             f"{sm_modules}")  # fmt: skip
        self.spec, self.L, self.E = spec, sm_layers, sm_modules
        init, H, E = spec.init, spec.hidden_dim, sm_modules
        raw = spec.obs_dim - spec.id_dims
        self.is_critic = spec.in_dim > spec.obs_dim
        self.shared, self.task = nn.ParameterDict(), nn.ParameterDict()
        self.task["emb"] = nn.Parameter(torch.randn(spec.num_tasks, EMBED_DIM))  # nn.Embedding's N(0, 1)
        add_mlp(self.shared, "te", [EMBED_DIM] * 4, init)
        add_mlp(self.shared, "enc", [raw, FEATURE_DIM, FEATURE_DIM, FEATURE_DIM], init)
        if self.is_critic:  # QFunction.obs_action_projection_layer: [h, a] -> obs feature size
            add_linear(self.shared, "proj", FEATURE_DIM + spec.in_dim - spec.obs_dim, FEATURE_DIM, init)
        add_linear(self.shared, "route_in", FEATURE_DIM, H, init)
        for l in range(self.L - 1):
            add_linear(self.shared, f"route_d{l}", H, E * E, init)
        for l in range(self.L - 2):
            add_linear(self.shared, f"route_u{l}", E * E, H, init)
        dims = [FEATURE_DIM] + [H] * (self.L - 1) + [spec.out_dim]
        for l in range(self.L):
            add_linear(self.shared, f"mod{l}", dims[l], dims[l + 1], init, lead=(E,))

    @staticmethod
    def param_group(key: str) -> str:
        """Which reference component parameter ``key`` belongs to (``agent.encoders``, ``agent.encoder_tau``,
        ``agent.target_task_encoder``; :mod:`mtrl.agents.sac`): ``task_encoder`` (the embedding and ``MLP_te``:
        the reference's ``TaskEncoder``), ``encoder`` (the observation encoder: the critic's ``encoder``,
        ``FeedForwardEncoder``) or ``trunk`` (the projection, routing network and modules: the ``QFunction`` /
        ``actor.model``)."""
        if key == "emb" or key.startswith("te"):
            return "task_encoder"
        return "encoder" if key.startswith("enc") else "trunk"

    def routing(self, shared: Params, task: Params, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(h, [P_0, ..., P_{L-2}])``: the trunk's input features ``[B, 50]`` and the routing weights, each
        ``[B, E, E]`` with rows on the simplex."""
        obs, _, act = split_obs(x, self.spec)
        z = mlp(shared, "te", 3, torch.relu(task["emb"]))
        h = mlp(shared, "enc", 3, obs)
        if self.is_critic:
            h = linear(shared, "proj", torch.cat([h, act], dim=-1))
        u = linear(shared, "route_in", h * z)
        logits = [linear(shared, "route_d0", torch.relu(u))]
        for l in range(1, self.L - 1):
            logits.append(linear(shared, f"route_d{l}", torch.relu(linear(shared, f"route_u{l - 1}", logits[-1]) * u)))
        E = self.E
        return h, [torch.softmax(p.reshape(*p.shape[:-1], E, E), dim=-1) for p in logits]

    def forward_one(self, shared: Params, task: Params, x: torch.Tensor) -> torch.Tensor:
        """Modules are kept sample-major, ``[B, E, H]``, so that the first layer and the last are one GEMM each
        (below) and no permuted copy of the largest activation is made: the ``[E, B, H]`` layout with ``B`` tiny
        ``E x E`` mixing products made the update grow ~8.6x from MT10 to MT50 on a CPU (issue 13)."""
        h, probs = self.routing(shared, task, x)
        W0, b0 = shared["mod0_w"], shared["mod0_b"]  # [E, 50, H], [E, 1, H]: every module's first layer at once
        E, d_in, H = W0.shape
        y = torch.relu(torch.addmm(b0.reshape(1, E * H), h, W0.transpose(0, 1).reshape(d_in, E * H)))
        y = y.unflatten(-1, (E, H))  # [B, E, H]
        for l in range(1, self.L - 1):  # module j of layer l takes Σ_k P[b, j, k] y_k (only for sm_layers > 2)
            y = torch.bmm(probs[l - 1], y)
            y = torch.relu(torch.einsum("bjh,jho->bjo", y, shared[f"mod{l}_w"]) + shared[f"mod{l}_b"].transpose(0, 1))
        return self._last_layer(shared, probs[-1], y)

    def forward_all(self, shared: Params, task: Params, x: torch.Tensor) -> torch.Tensor:
        """All tasks at once, ``x`` ``[K, B, in]`` -> ``[K, B, out]``: ``vmap`` of :meth:`forward_one` over groups
        of tasks. ``shared`` is given as is or expanded to one view per task (``[K, ...]``: the agent's per-task
        gradients); ``task`` holds the ``[K, ...]`` slices.

        Why groups: the trunk's module activation is ``[K·B, E·H]`` (39 MB at MT50 size); past the CPU's cache every
        elementwise pass over it costs ~7x more per element, which made the update grow ~7x from MT10 to MT50.
        Groups of tasks whose activation fits in ``GROUP_BYTES`` keep each pass (forward, and backward, which
        follows the same groups) in cache. The tasks are independent, so the result is the same computation."""
        K, B = x.shape[0], x.shape[1]
        batched = {k: int(v.dim() > self.shared[k].dim()) for k, v in shared.items()}
        dims = ({k: 0 if b else None for k, b in batched.items()}, 0, 0)
        fn = vmap(self.forward_one, in_dims=dims)
        per_task = B * self.E * max(self.spec.hidden_dim, FEATURE_DIM) * x.element_size()
        group = max(1, GROUP_BYTES // max(1, per_task))
        if group >= K:
            return fn(shared, task, x)
        outs = []
        for i in range(0, K, group):
            sh = {k: v[i : i + group] if batched[k] else v for k, v in shared.items()}
            outs.append(fn(sh, {k: v[i : i + group] for k, v in task.items()}, x[i : i + group]))
        return torch.cat(outs)

    def _last_layer(self, shared: Params, P: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The last module layer and the mean over its modules: ``(1/E) Σ_j ((Σ_k P[b, j, k] y_k) W_j + b_j)``,
        computed as ``(1/E) Σ_j Σ_k P[b, j, k] (y_k W_j) + mean_j b_j`` (the same sum, linear in ``y``): one GEMM of
        every module output with every last-layer weight, ``[B·E, H] @ [H, E·out]`` (``out``, the action or Q
        size, is small), instead of the mixing products over the largest activation first."""
        W, b = shared[f"mod{self.L - 1}_w"], shared[f"mod{self.L - 1}_b"]  # [E, H, out], [E, 1, out]
        E, H, out = W.shape
        z = (y @ W.transpose(0, 1).reshape(H, E * out)).unflatten(-1, (E, out))  # [B, E_k, E_j, out]
        mixed = (P.transpose(1, 2).unsqueeze(-1) * z).sum(dim=(1, 2))  # Σ_k Σ_j P[b, j, k] z[b, k, j] -> [B, out]
        return mixed / E + b.mean(dim=0)


def build_sm(spec: NetSpec) -> SoftModularNet:
    """``agent.arch=sm`` (sizes: the reference's MT10 soft-modularization config)."""
    return SoftModularNet(spec)
