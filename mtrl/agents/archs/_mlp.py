"""Task-batched MLPs: ``multihead`` ("MH SAC", default), ``shared`` ("MTL SAC"), ``independent`` ("STL SAC").

Each linear layer is either **shared** by all tasks (weight ``[in, out]``) or **per task** (weights stacked
``[K, in, out]``), SPEC §4 (facebookresearch/mtrl names in brackets):

- ``multihead``: shared trunk, one output head per task; the one-hot task id is part of the observation so the
  trunk sees it too. Shared: every layer but the last; per task: the output layer (head).
- ``shared``: every layer shared, one head; tasks differ only through the one-hot input. Per task: nothing.
- ``independent``: every layer per task: K separate networks, nothing shared (nothing to aggregate).

:func:`mlp_one` evaluates one task's network on that task's ``[B, in]`` batch; vmapping it over the task axis with
the shared parameters unbatched (``in_dims=(None, 0, 0)``) gives the whole ``[K, B, out]`` output, and vmapping its
*gradient* gives the K per-task gradients of the shared trunk in one vectorised pass.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.func import vmap

from mtrl.agents.archs._base import Params, check_init

MLP_ARCHS = ("multihead", "shared", "independent")


def _per_task_layers(arch: str, n_linear: int) -> list[bool]:
    if arch == "multihead":
        return [False] * (n_linear - 1) + [True]
    if arch == "shared":
        return [False] * n_linear
    if arch == "independent":
        return [True] * n_linear
    raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(MLP_ARCHS)}")


class TaskMLP(nn.Module):
    """ReLU MLP ``in -> hidden x num_layers -> out`` whose layers are shared or per task as ``arch`` says.

    Parameters live in two ``ParameterDict`` s: ``shared`` (the trunk the aggregator combines gradients for) and
    ``task`` (leading dimension K: heads, or everything for ``independent``). Initialisation, independently for
    each task's copy (``init``):

    - ``torch`` (default): as ``nn.Linear``, weights and biases uniform in ±1/√in;
    - ``xavier``: as facebookresearch/mtrl (``mtrl/agent/utils.py``, ``weight_init_linear``, applied to the actor
      and the critic): Xavier/Glorot-uniform weights, ±√(6/(in + out)), and zero biases.
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden_dim: int, num_layers: int, num_tasks: int, arch: str,
        init: str = "torch",
    ) -> None:  # fmt: skip
        super().__init__()
        check_init(init)
        dims = [in_dim] + [hidden_dim] * num_layers + [out_dim]
        self.per_task = _per_task_layers(arch, len(dims) - 1)
        self.n_linear = len(dims) - 1
        self.shared = nn.ParameterDict()
        self.task = nn.ParameterDict()
        for layer, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            lead = (num_tasks,) if self.per_task[layer] else ()
            target = self.task if self.per_task[layer] else self.shared
            w, b = torch.empty(*lead, d_in, d_out), torch.empty(*lead, d_out)
            if init == "torch":
                bound = 1.0 / math.sqrt(d_in)
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)
            else:
                bound = math.sqrt(6.0 / (d_in + d_out))
                w.uniform_(-bound, bound)
                b.zero_()
            target[f"w{layer}"] = nn.Parameter(w)
            target[f"b{layer}"] = nn.Parameter(b)
        self.forward_one = functools.partial(mlp_one, n_linear=self.n_linear)
        self.forward_all = functools.partial(mlp_batched, n_linear=self.n_linear)

    def params(self) -> tuple[Params, Params]:
        """``(shared, task)`` parameter dicts (the live tensors)."""
        return dict(self.shared), dict(self.task)


def mlp_one(shared: Params, task: Params, x: torch.Tensor, n_linear: int) -> torch.Tensor:
    """One task's MLP on its batch ``x`` (``[B, in]``); ``task`` holds that task's slice of the per-task layers."""
    for layer in range(n_linear):
        src = shared if f"w{layer}" in shared else task
        x = x @ src[f"w{layer}"] + src[f"b{layer}"]
        if layer < n_linear - 1:
            x = torch.relu(x)
    return x


def mlp_batched(shared: Params, task: Params, x: torch.Tensor, n_linear: int) -> torch.Tensor:
    """All tasks at once without ``vmap``: ``x`` ``[K, B, in]`` -> ``[K, B, out]``, per-task layers as batched
    matmuls. A shared parameter may be given as is (``[in, out]``, ``[out]``) or expanded to one view per task
    (``[K, in, out]``, ``[K, out]``, e.g. ``w.expand(K, *w.shape)``): the gradient with respect to the expanded
    view then holds the K per-task gradients (task k's rows only see task k's samples), from one backward pass."""
    for layer in range(n_linear):
        src = shared if f"w{layer}" in shared else task
        w, b = src[f"w{layer}"], src[f"b{layer}"]
        if w.dim() == 3:
            x = torch.baddbmm(b.unsqueeze(-2), x, w)
        else:
            x = torch.addmm(b, x.flatten(0, -2), w).view(*x.shape[:-1], w.shape[-1])
        if layer < n_linear - 1:
            x = torch.relu(x)
    return x


def mlp_all(shared: Params, task: Params, x: torch.Tensor, n_linear: int) -> torch.Tensor:
    """All tasks at once: ``x`` is ``[K, B, in]``, the result ``[K, B, out]`` (vmap of :func:`mlp_one`)."""
    return vmap(mlp_one, in_dims=(None, 0, 0, None))(shared, task, x, n_linear)


def build_mlp_arch(arch: str):
    """The registry's builder for one of :data:`MLP_ARCHS`."""

    def build(spec) -> TaskMLP:
        return TaskMLP(spec.in_dim, spec.out_dim, spec.hidden_dim, spec.num_layers, spec.num_tasks, arch, spec.init)

    build.__doc__ = f"``agent.arch={arch}``: :class:`TaskMLP` with ``arch={arch!r}``."
    return build
