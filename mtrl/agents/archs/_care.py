"""``agent.arch=care``: CARE, Contextual Attention-based REpresentations (Sodhani, Zhang & Pineau, "Multi-Task
Reinforcement Learning with Context-based Representations", ICML 2021), as facebookresearch/mtrl configures it for
MT10.

Reference: facebookresearch/mtrl, ``mtrl/agent/components/encoder.py`` (``MixtureofExpertsEncoder``),
``moe_layer.py`` (``FeedForward``, ``AttentionBasedExperts``), ``task_encoder.py`` (``TaskEncoder`` with
``pretrained_embedding_cfg.should_use=True``), ``config/agent/components/metaworld_encoder.yaml`` (``moe``: experts
``feedforward`` 2 layers of 50, feature 50; ``attention``: 2 x 50 hidden, temperature 1, soft attention) and
``metaworld_multitask.yaml`` (task encoder 50-d, actor/critic conditioned on the task encoding by concatenation),
with the "CARE" command of its docs (``docs_src/source/pages/tutorials/baseline.rst``: ``encoder=moe``,
``mode=attention``, ``num_experts=4``, ``should_use_multi_head_policy=False``, ``should_use_disentangled_alpha=True``:
mtrl's ``agent.alpha=per_task``, the default). One network (the actor, or each Q function), for task i and a batch of
observations ``s`` (the one-hot task id dropped from ``s``: it selects task i's description embedding instead):

- context encoder: ``z_i = MLP_te(relu(W_2 relu(W_1 relu(r_i))))``, ``r_i`` the frozen 768-d RoBERTa embedding of
  task i's description (package data ``mtrl/agents/data/roberta_small_metaworld-mt{10,50}.json``, copied from the
  reference's ``metadata/task_embedding/roberta_small/``), ``W_1`` 768 -> 100, ``W_2`` 100 -> 50, ``MLP_te``
  50 -> 50 -> 50 -> 50;
- mixture of ``care_experts`` (4) encoders, each ``obs -> 50 -> 50`` (ReLU between), ``enc_k(s)``;
- attention: ``α = softmax(MLP_att(z_i) / T)``, ``MLP_att`` 50 -> 50 -> 50 -> k, ``T = 1``; the representation is
  ``Σ_k α_k enc_k(s)`` (α sums to 1);
- policy / Q trunk: ``[Σ_k α_k enc_k(s), z_i]`` (100-d; the critic appends the action) -> ``agent.num_layers`` x
  ``agent.hidden_dim`` (3 x 400) -> output: one head, as the reference's CARE command.

Shared and per task (what the aggregator sees): **every parameter is shared** (context encoder, experts, attention,
trunk); nothing is per task: the task enters through its fixed description embedding ``r_i`` (a buffer, not
trained). So all of CARE's gradients go through the aggregator.

Differences from the reference, from mtrl's one-network-per-optimiser layout: the reference shares one context
encoder between actor and critic (trained by the critic loss only) and ties the experts of the actor and the critic
(trained by the critic loss only, the actor's use detached); here each network (actor, Q1, Q2) has its own context
encoder, experts and attention, trained by its own loss. The reference detaches nothing between attention and
context encoder in ``mode=attention`` (its config key ``should_detach_task-encoding`` is misspelt, so the detach
flag reads as unset); neither does this.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import torch
from torch import nn

from mtrl.agents.archs._base import NetSpec, Params, add_linear, add_mlp, check_init, linear, mlp, split_obs

EMBED_DIM = 50  # task_encoder_cfg.model_cfg.embedding_dim / output_dim
FEATURE_DIM = 50  # encoder.moe.encoder_cfg: feedforward hidden_dim 50, feature_dim 50, num_layers 2
ROBERTA_FILES = ("roberta_small_metaworld-mt10.json", "roberta_small_metaworld-mt50.json")


@functools.cache
def _roberta_table() -> dict[str, tuple[float, ...]]:
    table: dict[str, tuple[float, ...]] = {}
    for name in ROBERTA_FILES:
        text = resources.files("mtrl.agents").joinpath("data", name).read_text()
        table.update({k: tuple(v) for k, v in json.loads(text).items()})
    return table


def task_description_embeddings(names: tuple[str, ...] | list[str], num_tasks: int) -> torch.Tensor:
    """``[K, 768]`` RoBERTa (small) embeddings of the tasks' descriptions, from the reference's package data.

    Meta-World names are matched without their version (``reach-v3`` -> ``reach-v1``: the descriptions are the
    same tasks'). Names that are not Meta-World tasks (the fake env's ``fake-k``), or no names, take the k-th MT10
    task's embedding (tests only).
    """
    table = _roberta_table()
    keys = list(table)
    rows = []
    for k in range(num_tasks):
        name = names[k] if k < len(names) else ""
        key = name.rsplit("-v", 1)[0] + "-v1" if name else ""
        if key in table:
            rows.append(table[key])
        elif not name or name.startswith("fake-"):
            rows.append(table[keys[k % 10]])
        else:
            raise ValueError(f"agent.arch=care: no task-description embedding for task {name!r}")
    return torch.tensor(rows, dtype=torch.float32)


class CareNet(nn.Module):
    """One CARE network (see the module docstring)."""

    def __init__(self, spec: NetSpec, care_experts: int = 4, temperature: float = 1.0) -> None:
        super().__init__()
        check_init(spec.init)
        self.spec, self.E, self.temperature = spec, care_experts, temperature
        init, raw = spec.init, spec.obs_dim - spec.id_dims
        self.register_buffer("roberta", task_description_embeddings(spec.task_names, spec.num_tasks),
                             persistent=False)  # fmt: skip
        self.shared, self.task = nn.ParameterDict(), nn.ParameterDict()
        dim = self.roberta.shape[1]
        add_mlp(self.shared, "proj", [dim, 2 * EMBED_DIM, EMBED_DIM], init)
        add_mlp(self.shared, "te", [EMBED_DIM] * 4, init)
        add_linear(self.shared, "exp0", raw, FEATURE_DIM, init, lead=(care_experts,))
        add_linear(self.shared, "exp1", FEATURE_DIM, FEATURE_DIM, init, lead=(care_experts,))
        add_mlp(self.shared, "att", [EMBED_DIM, EMBED_DIM, EMBED_DIM, care_experts], init)
        trunk_in = FEATURE_DIM + EMBED_DIM + spec.in_dim - spec.obs_dim
        self.n_trunk = add_mlp(self.shared, "trunk", [trunk_in] + [spec.hidden_dim] * spec.num_layers + [spec.out_dim],
                               init)  # fmt: skip

    @staticmethod
    def param_group(key: str) -> str:
        """Which reference component parameter ``key`` belongs to (``agent.encoders``, ``agent.encoder_tau``,
        ``agent.target_task_encoder``, ``agent.actor_attention``; :mod:`mtrl.agents.sac`): ``task_encoder`` (the
        context encoder ``W_1``, ``W_2``, ``MLP_te``: the reference's ``TaskEncoder``), ``encoder`` (the experts:
        ``MixtureofExpertsEncoder.moe``), ``attention`` (``MixtureofExpertsEncoder.selection_network``) or
        ``trunk`` (the policy / Q MLP: ``actor.model``, ``QFunction``)."""
        if key.startswith(("proj", "te")):
            return "task_encoder"
        if key.startswith("exp"):
            return "encoder"
        return "attention" if key.startswith("att") else "trunk"

    def context(self, shared: Params, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z [B, 50], attention weights [B, k])`` for the tasks named by the one-hot ids in ``x``."""
        _, one_hot, _ = split_obs(x, self.spec)
        if one_hot.shape[-1] == 0:  # no task id in the observation: one task
            one_hot = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
        r = one_hot @ self.roberta  # the embedding row of each sample's task (exact: one-hot)
        z = mlp(shared, "te", 3, torch.relu(mlp(shared, "proj", 2, torch.relu(r))))
        att = torch.softmax(mlp(shared, "att", 3, z) / self.temperature, dim=-1)
        return z, att

    def forward_one(self, shared: Params, task: Params, x: torch.Tensor) -> torch.Tensor:
        obs, _, act = split_obs(x, self.spec)
        z, att = self.context(shared, x)
        enc = linear(shared, "exp1", torch.relu(linear(shared, "exp0", obs)))  # [k, B, 50]
        rep = torch.einsum("bk,kbd->bd", att, enc)
        return mlp(shared, "trunk", self.n_trunk, torch.cat([rep, z, act], dim=-1))


def build_care(spec: NetSpec) -> CareNet:
    """``agent.arch=care`` (sizes: the reference's MT10 CARE config)."""
    return CareNet(spec)
