"""Task-batched MLPs (``multihead``, ``shared``, ``independent``): kept here as the import path they always had.

The architectures now live in :mod:`mtrl.agents.archs` (one module each, one registry, ``agent.arch``); the MLPs
are :mod:`mtrl.agents.archs._mlp`. ``ARCHS`` stays the three MLP architectures of :class:`TaskMLP`; every valid
``agent.arch`` is a key of :data:`mtrl.agents.archs.ARCHITECTURES`.
"""

from __future__ import annotations

from mtrl.agents.archs import ARCHITECTURES, INITS, NetSpec, Params, TaskMLP, make_network, mlp_all, mlp_one
from mtrl.agents.archs._mlp import MLP_ARCHS as ARCHS

__all__ = ["ARCHITECTURES", "ARCHS", "INITS", "NetSpec", "Params", "TaskMLP", "make_network", "mlp_all", "mlp_one"]
