"""Hydra's Slurm and Ray launchers (hydra-submitit-launcher, hydra-ray-launcher) with one addition: a sweep job
that the scheduler runs again (Slurm requeues it after a time limit or a preemption; Ray retries it after its node
died) continues from its checkpoint instead of starting over.

Such a job runs again with the sweep's original overrides, so without help it would start a fresh run in a
directory that already holds one (which ``mtrl.train`` refuses unless ``resume`` is set). The launchers here wrap
the task function: the first attempt of each job writes the sweep's token (unique per ``-m`` invocation) into
``<job dir>/.mtrl_launch``; an attempt that finds its own sweep's token there is a requeue or a retry of the same
job and runs with ``resume=true``. A new sweep into the same directory has another token and is treated as a new
run. ``configs/hydra/launcher/slurm.yaml`` and ``ray_*.yaml`` select these classes.
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


def _wrap(launcher: Any) -> None:
    if not isinstance(launcher.task_function, ResumeOnRetry):
        launcher.task_function = ResumeOnRetry(launcher.task_function, uuid.uuid4().hex)


try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurm
except ImportError:  # pragma: no cover - the launchers extra is not installed
    _SubmititSlurm = None  # type: ignore[assignment,misc]

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _HydraRay
except ImportError:  # pragma: no cover
    _HydraRay = None  # type: ignore[assignment,misc]


if _SubmititSlurm is not None:

    class SlurmLauncher(_SubmititSlurm):
        """hydra-submitit-launcher's Slurm launcher; a requeued job resumes (see the module docstring). With
        submitit's checkpoint/requeue: SIGUSR2 ``signal_delay_s`` before the time limit, ``mtrl.train`` writes its
        checkpoint, then submitit requeues the job (``max_num_timeout`` times at most after time limits)."""

        def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
            _wrap(self)
            return super().launch(job_overrides, initial_job_idx)


if _HydraRay is not None:

    class RayLauncher(_HydraRay):
        """hydra-ray-launcher's launcher; a job retried after its node died resumes (see the module docstring);
        ``ray.remote.max_retries`` sets how often."""

        def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
            _wrap(self)
            return super().launch(job_overrides, initial_job_idx)
