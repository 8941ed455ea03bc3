"""``train.torch_threads``: how many intra-op threads torch gets (RL and supervised trainers).

Several runs sharing cores with torch's default thread count (one thread per core each) oversubscribe the machine:
a smoke run's update took 720-950 ms with 2 threads per run against 46-62 ms with 1, same machine, under load
(issue 14). So the default, ``auto``, is derived from what this job may use and cannot exceed it:

- the job's CPU allowance: the CPUs of its affinity mask (``os.sched_getaffinity``: taskset, Slurm, containers'
  cpusets), capped by a cgroup CPU quota (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us`` of v1; Docker ``--cpus``,
  Kubernetes limits), by ``SLURM_CPUS_PER_TASK`` (a Slurm job's ``--cpus-per-task``: without Slurm's affinity or
  cgroup plugins the mask is the whole node) and by ``OMP_NUM_THREADS`` when that is set (Ray sets it to a task's
  CPUs);
- divided by the launcher's jobs per machine when a Hydra multirun says it: the joblib launcher's ``n_jobs``
  (``hydra/launcher=local``), or the Ray launchers' CPUs per run (``ray.remote.num_cpus``) taken as is;
  otherwise one job (a single run, or Hydra's basic launcher, which runs jobs one after another);
- at least 1.

An integer sets the count explicitly; ``null`` leaves torch's own default (one thread per core: only for a
machine that runs nothing else). Runs started in parallel by hand (several shells, a script's ``&``) are not seen by
``auto``: give them ``train.torch_threads=<cores / runs>``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

AUTO = "auto"


def check_torch_threads(value: Any, key: str = "train.torch_threads") -> None:
    """Raise ``ValueError`` (one line) unless ``value`` is ``auto``, ``null`` or an integer >= 1."""
    if value is None or value == AUTO:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be auto, null (torch's default) or an integer >= 1, got {value!r}")


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``); None if
    there is none or it cannot be read."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else float(quota) / float(period)
        q, p = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if q.is_file() and p.is_file():
            quota_us = float(q.read_text())
            return None if quota_us <= 0 else quota_us / float(p.read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return None


def cpu_allowance() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup quota, ``SLURM_CPUS_PER_TASK`` and
    ``OMP_NUM_THREADS``; at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    for var in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) >= 1:
            n = min(n, int(v))
    return max(1, n)


def multirun_launcher() -> Any:
    """The launcher config of the Hydra multirun this process is a job of (None outside a multirun)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hc = HydraConfig.get()
        return hc.launcher if hc.mode == RunMode.MULTIRUN else None
    except Exception:  # noqa: BLE001 (no Hydra or no launcher config: not a multirun job)
        return None


def launcher_share(cpus: int, launcher: Any = None) -> int:
    """The CPUs of one job out of ``cpus`` when ``launcher`` (a Hydra launcher config) runs several at once on this
    machine: joblib's ``n_jobs`` splits them (``-1``: as many jobs as CPUs, joblib's convention), Ray's
    ``ray.remote.num_cpus`` is each run's share; anything else runs one job at a time (``cpus``)."""
    if launcher is None:
        return cpus
    try:
        ray = launcher.get("ray") or {}
        per_run = (ray.get("remote") or {}).get("num_cpus")
        n_jobs = launcher.get("n_jobs")
    except AttributeError:
        return cpus
    if isinstance(per_run, (int, float)) and not isinstance(per_run, bool) and per_run > 0:
        return max(1, min(cpus, int(per_run)))
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
        return cpus
    jobs = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, cpus // jobs)


def resolve_torch_threads(value: Any) -> int | None:
    """The thread count ``value`` means (``None``: torch's default); see the module docstring."""
    check_torch_threads(value)
    if value is None:
        return None
    if value == AUTO:
        return launcher_share(cpu_allowance(), multirun_launcher())
    return int(value)


def set_torch_threads(value: Any) -> int:
    """Apply ``train.torch_threads`` (:func:`resolve_torch_threads`); returns torch's thread count afterwards."""
    import torch

    n = resolve_torch_threads(value)
    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()
