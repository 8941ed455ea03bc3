"""The Ray engine: every :class:`~mtrl.launch.Job` becomes one Ray task that runs ``mtrl.train`` as a child
process; a task whose node dies is retried on the nodes that remain and resumes from its checkpoint.

How a run survives the loss of its node: the task is retried by Ray (``max_retries``; Ray retries system failures
such as a dead node or worker, and a training process stopped by a signal, :class:`LostAttempt`; not a run's own
error). The training process of the lost attempt gets SIGTERM when
its Ray worker dies (Linux ``PR_SET_PDEATHSIG``) and writes a checkpoint if it can; the retry waits until that
process has let go of the run directory's lock, then runs ``mtrl.train <overrides> hydra.run.dir=<run_dir>
resume=true``, which continues from the newest checkpoint: same ``eval.jsonl`` (each step once), ``train.log``
continued. Run directories must be on storage every node shares (as for any Ray sweep).

Options (``launch(jobs, "ray", options)``): ``address`` (an existing cluster: ``"auto"``, ``"<head>:6379"`` or
``"ray://<head>:10001"``; default ``None``: a Ray runtime on this machine); ``num_cpus`` (per run, default 1; keep
``train.torch_threads`` equal to it), ``num_gpus`` (per run, default 0); ``max_retries`` (default 3);
``local_cpus`` (CPUs the local runtime offers; default all); ``node_ip_address`` (the driver's address; default
127.0.0.1 for a local runtime, so nothing leaves the machine); ``python`` (the interpreter on the nodes).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from mtrl.launch import Job
from mtrl.launch._common import STOP_SIGNAL, LaunchError, describe_exit, resolve_options, start, wait_for_lock

DEFAULTS: dict[str, Any] = {
    "address": None, "num_cpus": 1, "num_gpus": 0, "max_retries": 3, "local_cpus": None, "node_ip_address": None,
    "python": None, "lock_wait_s": 300,
}  # fmt: skip


class LostAttempt(RuntimeError):
    """The training process was stopped by a signal (its node or worker going away; SIGTERM after a checkpoint):
    the attempt is lost, not the run, so Ray retries it and the retry resumes. Whether the Ray worker or its child
    dies first when a node is removed is a race; without this a child killed first (SIGHUP, SIGTERM) read as the
    run's own failure and was not retried."""


def run_job(job: Job, python: str | None, lock_wait_s: float, cpus: float | None = None) -> str:
    """One attempt of ``job`` (the body of the Ray task): wait for a lost attempt to let go of the run directory,
    run ``mtrl.train`` to the end; raise :class:`LostAttempt` (retried) if a signal stopped it, RuntimeError (not
    retried) if the run itself failed."""
    wait_for_lock(job.run_dir, lock_wait_s)
    proc = start(job, python, cpus)
    try:
        rc = proc.wait()
    except BaseException:  # the task is being cancelled: let the run checkpoint and go
        proc.terminate()
        proc.wait()
        raise
    if rc < 0 or rc in (128 + signal.SIGTERM, 128 + signal.SIGHUP, 128 + STOP_SIGNAL):
        raise LostAttempt(describe_exit(job, rc))
    if rc != 0:
        raise RuntimeError(describe_exit(job, rc))
    return str(job.run_dir)


def _keep_loopback(address: str) -> None:
    """Ray replaces a loopback address (``127.0.0.1:6379``) by this machine's interface address before it
    connects, where a cluster started with ``--node-ip-address=127.0.0.1`` does not listen: for a loopback address,
    keep it (Ray's own switch for this, ``ENABLE_RAY_CLUSTER``, is what macOS and Windows use)."""
    host = address.split("://")[-1].rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", "::1"):
        try:
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
        except (ImportError, AttributeError):  # pragma: no cover - another Ray version
            pass


def launch(jobs: list[Job], options: dict[str, Any]) -> None:
    """Run ``jobs`` as Ray tasks (see the module docstring for ``options``) and wait for all of them; raise one
    :class:`LaunchError` naming every job that failed."""
    opts = resolve_options("Ray", options, DEFAULTS)
    if not jobs:
        return
    try:
        import ray
    except ImportError:
        raise LaunchError("Ray is not installed: pip install -e '.[launchers]'") from None
    init: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": True}
    if opts["address"] is None:  # a runtime on this machine, on the loopback address, without usage reports
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        init.update(num_cpus=opts["local_cpus"], _node_ip_address=opts["node_ip_address"] or "127.0.0.1")
    else:
        init["address"] = str(opts["address"])
        _keep_loopback(init["address"])
        if opts["node_ip_address"]:
            init["_node_ip_address"] = str(opts["node_ip_address"])
    started = not ray.is_initialized()
    try:
        ray.init(**init)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise LaunchError(f"cannot reach the Ray cluster at {opts['address']}: {str(err).splitlines()[0]}") from None
    try:
        task = ray.remote(num_cpus=float(opts["num_cpus"]), num_gpus=float(opts["num_gpus"]),
                          max_retries=int(opts["max_retries"]), retry_exceptions=[LostAttempt])(run_job)  # fmt: skip
        cpus = float(opts["num_cpus"])
        refs = {task.remote(job, opts["python"], float(opts["lock_wait_s"]), cpus): job for job in jobs}
        print(f"mtrl: {len(jobs)} run(s) submitted to Ray ({ray.cluster_resources().get('CPU', 0):.0f} CPUs)",
              flush=True)  # fmt: skip
        failed = []
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            job = refs[done[0]]
            try:
                ray.get(done[0])
                print(f"mtrl: finished {job.name} ({job.run_dir})", flush=True)
            except Exception as err:  # noqa: BLE001 - one line per failed job
                lines = [ln for ln in str(err).splitlines() if ln.strip()]
                failed.append(f"{job.name}: {lines[-1] if lines else type(err).__name__}")
        if failed:
            raise LaunchError(f"{len(failed)} of {len(jobs)} Ray run(s) failed: {'; '.join(failed)}")
    finally:
        if started:
            ray.shutdown()
