"""What the Slurm and Ray engines share: the training command of a :class:`~mtrl.launch.Job`, run as a child
process that writes its checkpoint and exits when asked, and the wait for a run directory's lock.

The engines run ``python -m mtrl.train`` as a child of the process the scheduler starts (submitit's worker, a Ray
task) rather than in it: the child owns its signal handlers, its Hydra state and its ``train.log``, and the parent
stays free to talk to the scheduler while the child writes its checkpoint.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mtrl.launch import Job

#: The signal that asks a training run to write its checkpoint and exit (``mtrl.train`` handles it like SIGTERM;
#: it is also the one submitit asks Slurm to send ``signal_delay_s`` before a job's time limit).
STOP_SIGNAL = signal.SIGUSR2


class LaunchError(RuntimeError):
    """A launch that cannot go ahead (no scheduler, a wrong partition or account); its message is one line."""


def resolve_options(engine: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``options`` over the engine's ``defaults`` (a ``None`` value keeps the default); an unknown option is one
    line naming the valid ones."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise LaunchError(f"unknown {engine} option(s) {', '.join(unknown)}; valid: {', '.join(defaults)}")
    return {**defaults, **{k: v for k, v in options.items() if v is not None}}


def command(job: Job, python: str | None = None) -> list[str]:
    """The command line that runs (or continues) ``job`` (``job.module``: ``mtrl.train`` unless the job names
    another entry point with the same resume contract, e.g. ``mtrl.supervised.train``)."""
    return [python or sys.executable, "-m", getattr(job, "module", "mtrl.train"), *job.argv()]


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The child ignores :data:`STOP_SIGNAL` until ``mtrl.train`` installs its handler (a signal during start-up
    would otherwise kill it: nothing to save yet, and its parent still requeues the job). On Linux it also gets
    SIGTERM (checkpoint, exit 143) when the process that started it dies, so a run whose Ray worker or submitit
    worker is killed does not go on writing into its directory beside its retry."""
    signal.signal(STOP_SIGNAL, signal.SIG_IGN)
    if sys.platform == "linux":
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def start(job: Job, python: str | None = None, cpus: float | None = None) -> subprocess.Popen:
    """Start ``job``'s training process (stdout/stderr inherited: they land in the scheduler's log of the job).
    ``cpus``: what the scheduler granted the run; ``train.torch_threads=auto`` then uses that many threads
    (through ``OMP_NUM_THREADS``, unless it is set) even where the node does not pin the job to its CPUs."""
    Path(job.run_dir).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if cpus is not None and cpus >= 1 and not env.get("OMP_NUM_THREADS"):
        env["OMP_NUM_THREADS"] = str(int(cpus))
    return subprocess.Popen(command(job, python), preexec_fn=_child_setup, env=env)


def exited(proc: subprocess.Popen) -> bool:
    """Whether the child has exited, without reaping it (safe inside a signal handler that interrupted
    ``proc.wait()``, which holds Popen's own lock)."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop(proc: subprocess.Popen, grace_s: float) -> bool:
    """Ask the child to write its checkpoint and exit (:data:`STOP_SIGNAL`; sending it twice is harmless) and wait
    up to ``grace_s`` seconds; True if it exited."""
    if exited(proc):
        return True
    try:
        os.kill(proc.pid, STOP_SIGNAL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if exited(proc):
            return True
        time.sleep(0.2)
    return exited(proc)


def wait_for_lock(run_dir: Path, timeout_s: float) -> None:
    """Wait until no process holds ``run_dir``'s lock (``mtrl.checkpoint.lock_run_dir``): a retry that starts
    while the interrupted attempt is still writing its checkpoint waits for it instead of failing."""
    lock = Path(run_dir) / ".lock"
    if not lock.exists():
        return
    deadline = time.monotonic() + timeout_s
    with open(lock, "a") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # the run reports who holds it
                time.sleep(0.5)


def describe_exit(job: Job, rc: int) -> str:
    """One line for a training process that did not finish."""
    if rc in (128 + signal.SIGTERM, 128 + STOP_SIGNAL, -signal.SIGTERM, -signal.SIGKILL):
        how = "stopped by a signal" + (" after writing its checkpoint" if rc > 0 else "")
        return f"{job.name}: {how} (exit {rc}); it continues from its checkpoint when relaunched ({job.run_dir})"
    return f"{job.name}: mtrl.train exited with status {rc}; see {Path(job.run_dir) / 'train.log'}"
