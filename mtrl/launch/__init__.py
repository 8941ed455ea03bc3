"""Running many training runs: one interface, three engines (local processes, Slurm through submitit, Ray).

A :class:`Job` is one run of ``python -m mtrl.train`` in a directory of its own. Every engine runs it as
``python -m mtrl.train <overrides> hydra.run.dir=<run_dir> resume=true``: a run directory that holds a checkpoint
continues from it, an empty one starts fresh. So launching the same jobs again is always safe, and a job that a
scheduler requeues, or that Ray retries on another node, resumes in its own directory.

Engines live one per module (``_local.py``, ``_slurm.py``, ``_ray.py``), each with
``launch(jobs: list[Job], options: dict[str, Any]) -> None``; :func:`launch` picks one by name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINES = ("local", "slurm", "ray")


@dataclass(frozen=True)
class Job:
    """One training run: a name for humans (``"cagrad/seed_3"``), its directory and its overrides (without
    ``hydra.run.dir`` and ``resume``, which the engines add). ``module`` is the entry point engines run with
    ``python -m``: ``mtrl.train``, or ``mtrl.supervised.train`` for the supervised tables (same resume contract)."""

    name: str
    run_dir: Path
    overrides: tuple[str, ...] = field(default_factory=tuple)
    module: str = "mtrl.train"

    def argv(self) -> list[str]:
        """The ``mtrl.train`` command-line arguments that run (or continue) this job."""
        return [*self.overrides, f"hydra.run.dir={self.run_dir}", "resume=true"]


def launch(jobs: list[Job], engine: str, options: dict[str, Any] | None = None) -> None:
    """Run or submit ``jobs`` with ``engine`` (one of :data:`ENGINES`)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown launcher {engine!r}; valid: {', '.join(ENGINES)}")
    module = importlib.import_module(f"mtrl.launch._{engine}")
    module.launch(list(jobs), dict(options or {}))
