"""Architectures of the multi-task SAC networks: one module each, one registry (``agent.arch``).

=============== ============================================ ============================================== =========
``agent.arch``  what                                         shared (per-task gradients -> aggregator)      per task
=============== ============================================ ============================================== =========
``multihead``   MH SAC: MLP trunk, one head per task         every layer but the last                       the head
``shared``      MTL SAC: one MLP, one head                   every layer                                    nothing
``independent`` STL SAC: K separate MLPs                     nothing                                        all
``sm``          Soft Modularization (Yang et al. 2020)       encoders, routing network, modules             task emb.
``care``        CARE (Sodhani et al. 2021)                   context encoder, experts, attention, trunk     nothing
=============== ============================================ ============================================== =========

Each builder takes a :class:`NetSpec` and returns a module with ``shared``/``task`` parameter dicts and a pure
``forward_one(shared, task, x)`` (contract: :mod:`mtrl.agents.archs._base`). Adding an architecture: one module with
a builder and one line in :data:`ARCHITECTURES`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mtrl.agents.archs._base import INITS, NetSpec, Params
from mtrl.agents.archs._care import CareNet, build_care, task_description_embeddings
from mtrl.agents.archs._mlp import MLP_ARCHS, TaskMLP, build_mlp_arch, mlp_all, mlp_one
from mtrl.agents.archs._sm import SoftModularNet, build_sm

ARCHITECTURES: dict[str, Callable[[NetSpec], nn.Module]] = {
    "multihead": build_mlp_arch("multihead"),
    "shared": build_mlp_arch("shared"),
    "independent": build_mlp_arch("independent"),
    "sm": build_sm,
    "care": build_care,
}


def make_network(arch: str, spec: NetSpec) -> nn.Module:
    """The network ``agent.arch=arch`` for ``spec`` (``ValueError`` listing the valid names if unknown)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](spec)


__all__ = [
    "ARCHITECTURES",
    "INITS",
    "MLP_ARCHS",
    "CareNet",
    "NetSpec",
    "Params",
    "SoftModularNet",
    "TaskMLP",
    "make_network",
    "mlp_all",
    "mlp_one",
    "task_description_embeddings",
]
