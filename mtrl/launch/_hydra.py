"""For Hydra's Slurm and Ray launchers (hydra-submitit-launcher, hydra-ray-launcher), one addition: a sweep job
that the scheduler runs again (Slurm requeues it after a time limit or a preemption; Ray retries it after its node
died) continues from its checkpoint instead of starting over.

Such a job runs again with the sweep's original overrides, so without help it would start a fresh run in a
directory that already holds one (which ``mtrl.train`` refuses unless ``resume`` is set). The launchers here wrap
the task function: the first attempt of each job writes the sweep's token (unique per ``-m`` invocation) into
``<job dir>/.mtrl_launch``; an attempt that finds its own sweep's token there is a requeue or a retry of the same
job and runs with ``resume=true``. A new sweep into the same directory has another token and is treated as a new
run. ``configs/hydra/launcher/slurm.yaml`` and ``ray_*.yaml`` select these launchers, which live in
``hydra_plugins/mtrl_launchers`` (Hydra only accepts launcher classes from its ``hydra_plugins`` namespace).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)
MARKER = ".mtrl_launch"


class ResumeOnRetry:
    """A Hydra task function that continues its run (``resume=true``) when it is a later attempt of the same
    sweep job."""

    def __init__(self, task_function: Any, token: str) -> None:
        self.task_function = task_function
        self.token = token

    def __call__(self, cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        marker = Path(HydraConfig.get().runtime.output_dir) / MARKER
        again = marker.is_file() and marker.read_text().strip() == self.token
        if again and "resume" in cfg and cfg.resume in (False, None, "false"):
            log.warning("this sweep job ran before (requeued or retried): continuing with resume=true")
            with open_dict(cfg):
                cfg.resume = True
        elif not again:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(self.token + "\n")
        return self.task_function(cfg)


def wrap(launcher: Any) -> None:
    """Give a Hydra launcher's task function the resume-on-retry behaviour (once; a fresh token per sweep)."""
    if not isinstance(launcher.task_function, ResumeOnRetry):
        launcher.task_function = ResumeOnRetry(launcher.task_function, uuid.uuid4().hex)
