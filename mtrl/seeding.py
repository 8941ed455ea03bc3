"""The one place that seeds and snapshots random state (python, numpy, torch, and the run's own generators).

A run draws its randomness from explicit generators (``Rngs``): a numpy ``Generator`` for warm-up actions and
replay sampling and a torch ``Generator`` for policy noise, both derived from the run seed, plus the global
python/numpy/torch states for anything else. ``get_state``/``set_state`` put all of them into checkpoints so a
resumed run continues with the same random numbers as an uninterrupted one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Rngs:
    """The run's generators. ``torch`` lives on the CPU (noise is drawn there and moved, so CPU and CUDA runs
    draw the same numbers)."""

    numpy: np.random.Generator
    torch: torch.Generator


def seed_everything(seed: int) -> Rngs:
    """Seed python, numpy and torch globally and return the run's own generators (derived from ``seed``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed + 1)
    return Rngs(numpy=np.random.default_rng([seed, 0x5EED]), torch=gen)


def get_state(rngs: Rngs) -> dict[str, Any]:
    """Snapshot of every random state (plain types and tensors only, no pickled objects)."""
    py = random.getstate()
    np_state = np.random.get_state(legacy=False)
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy_global": {
            **np_state,
            "state": {"key": np_state["state"]["key"].tolist(), "pos": int(np_state["state"]["pos"])},
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "run_numpy": rngs.numpy.bit_generator.state,
        "run_torch": rngs.torch.get_state(),
    }


def set_state(rngs: Rngs, state: dict[str, Any]) -> None:
    """Restore what :func:`get_state` returned."""
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    g = state["numpy_global"]
    key = np.asarray(g["state"]["key"], dtype=np.uint32)
    np.random.set_state({**g, "state": {"key": key, "pos": g["state"]["pos"]}})
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    rngs.numpy.bit_generator.state = state["run_numpy"]
    rngs.torch.set_state(state["run_torch"])
