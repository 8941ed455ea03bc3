"""hydra-submitit-launcher's Slurm launcher and hydra-ray-launcher's launcher, whose jobs resume when the scheduler
runs them again (a Slurm requeue, a Ray retry): see ``mtrl/launch/_hydra.py``. Selected by
``configs/hydra/launcher/slurm.yaml`` and ``ray_*.yaml``; each is defined only when its plugin is installed."""

from __future__ import annotations

from typing import Any

from mtrl.launch._hydra import wrap

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurm
except ImportError:  # pragma: no cover - the launchers extra is not installed
    _SubmititSlurm = None  # type: ignore[assignment,misc]

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _HydraRay
except ImportError:  # pragma: no cover
    _HydraRay = None  # type: ignore[assignment,misc]


if _SubmititSlurm is not None:

    class MtrlSlurmLauncher(_SubmititSlurm):
        """Slurm through submitit: SIGUSR2 ``signal_delay_s`` before the time limit, ``mtrl.train`` writes its
        checkpoint, submitit requeues the job (``max_num_timeout`` times at most after time limits) and the
        requeued job resumes; so does one requeued by ``scontrol requeue`` or a preemption."""

        def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
            wrap(self)
            return super().launch(job_overrides, initial_job_idx)


if _HydraRay is not None:

    class MtrlRayLauncher(_HydraRay):
        """Ray: a job whose node died is retried (``ray.remote.max_retries``) and resumes."""

        def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
            wrap(self)
            return super().launch(job_overrides, initial_job_idx)
