"""The contract every architecture meets, and the layer helpers they share.

An architecture builds one network (the actor, or one of the twin Q functions) as an ``nn.Module`` with

- ``shared``: an ``nn.ParameterDict`` of the parameters every task uses (no task axis). Their K per-task gradients
  are the rows of ``G`` that go through the aggregator;
- ``task``: an ``nn.ParameterDict`` of per-task parameters, each with a leading K axis (task i gets slice i and
  the gradient of its own loss only);
- ``forward_one(shared, task, x)``: a pure function of those two dicts and one task's ``[B, in]`` batch (``task``
  holding that task's slices), returning ``[B, out]``. The agent vmaps it over the task axis, so the K per-task
  gradients of ``shared`` come from one vectorised pass. It may read constant buffers of the module (never
  parameters).

The agent, the losses and the trainer only use these three names: a new architecture is one module and one line in
:data:`mtrl.agents.archs.ARCHITECTURES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

INITS = ("torch", "xavier")
Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class NetSpec:
    """What a builder gets: sizes of the network and of the task set.

    ``in_dim`` is the network's input (actor: the observation; critic: observation + action, concatenated in that
    order); ``obs_dim`` the observation part of it, whose **last** ``task_id_dims`` entries are the one-hot task id
    (``K`` with ``env.task_id=onehot``, 0 without); ``task_names`` the tasks in sub-env order (may be empty: the
    architectures that need names then use the first K MT10 tasks').
    """

    in_dim: int
    out_dim: int
    obs_dim: int
    num_tasks: int
    hidden_dim: int
    num_layers: int
    init: str = "torch"
    task_id_dims: int = -1  # -1: num_tasks
    task_names: tuple[str, ...] = ()

    @property
    def id_dims(self) -> int:
        return self.num_tasks if self.task_id_dims < 0 else self.task_id_dims


def check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"unknown initialisation {init!r}; valid: {', '.join(INITS)}")


def linear_init(shape_w: tuple[int, ...], shape_b: tuple[int, ...], d_in: int, d_out: int, init: str):
    """Weights ``shape_w`` and biases ``shape_b`` of a linear layer ``d_in -> d_out`` (leading axes: tasks or
    modules, each initialised on its own). ``torch``: as ``nn.Linear`` (weights and biases uniform in ±1/√in);
    ``xavier``: as facebookresearch/mtrl (``mtrl/agent/utils.py``, ``weight_init_linear`` /
    ``weight_init_moe_layer``): Xavier/Glorot-uniform weights, ±√(6/(in + out)), zero biases."""
    w, b = torch.empty(*shape_w), torch.empty(*shape_b)
    if init == "torch":
        bound = 1.0 / math.sqrt(d_in)
        w.uniform_(-bound, bound)
        b.uniform_(-bound, bound)
    else:
        w.uniform_(-math.sqrt(6.0 / (d_in + d_out)), math.sqrt(6.0 / (d_in + d_out)))
        b.zero_()
    return w, b


def add_linear(target: nn.ParameterDict, name: str, d_in: int, d_out: int, init: str, lead: tuple[int, ...] = ()):
    """Register ``{name}_w`` (``[*lead, d_in, d_out]``) and ``{name}_b`` (``[*lead, 1, d_out]`` when ``lead``, for
    broadcasting over a batch, else ``[d_out]``) in ``target``."""
    w, b = linear_init((*lead, d_in, d_out), (*lead, 1, d_out) if lead else (d_out,), d_in, d_out, init)
    target[f"{name}_w"] = nn.Parameter(w)
    target[f"{name}_b"] = nn.Parameter(b)


def linear(p: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    return x @ p[f"{name}_w"] + p[f"{name}_b"]


def mlp(p: Params, prefix: str, n: int, x: torch.Tensor) -> torch.Tensor:
    """``n`` linear layers ``{prefix}0 .. {prefix}{n-1}`` with ReLU between them (none after the last)."""
    for i in range(n):
        x = linear(p, f"{prefix}{i}", x)
        if i < n - 1:
            x = torch.relu(x)
    return x


def add_mlp(target: nn.ParameterDict, prefix: str, dims: list[int], init: str) -> int:
    """Register the layers of :func:`mlp` for ``dims = [in, hidden..., out]``; returns the number of layers."""
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        add_linear(target, f"{prefix}{i}", d_in, d_out, init)
    return len(dims) - 1


def split_obs(x: torch.Tensor, spec: NetSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(observation without the task id, one-hot task id, the rest of the input (the critic's action))``."""
    cut = spec.obs_dim - spec.id_dims
    return x[..., :cut], x[..., cut : spec.obs_dim], x[..., spec.obs_dim :]
