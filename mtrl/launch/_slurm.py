"""The Slurm engine: every :class:`~mtrl.launch.Job` becomes one task of a Slurm job array, submitted through
submitit (facebookincubator/submitit), which survives time limits and preemption without a person.

How a run gets through a time limit or a preemption:

1. submitit submits with ``--signal=USR2@<signal_delay_s>``: Slurm sends SIGUSR2 to every process of the job that
   long before the time limit (to the second within Slurm's ~30-60 s timer resolution), and on a preemption that
   the cluster announces with a signal.
2. The training process (``python -m mtrl.train``, a child of submitit's worker) gets it and, like on SIGTERM,
   finishes the current iteration, writes a checkpoint and exits (``mtrl/train.py``, exit 140).
3. submitit's worker gets it too and calls :meth:`_Train.checkpoint`: that waits for the child's checkpoint (and
   sends it the signal itself, in case the cluster signals the batch shell only), then hands submitit the same job
   to run again; submitit requeues it (``scontrol requeue``).
4. The requeued job starts the same command, ``mtrl.train <overrides> hydra.run.dir=<run_dir> resume=true``, which
   continues from the checkpoint in its own run directory: the same ``eval.jsonl`` (each step once), ``train.log``
   continued, TensorBoard purged after the checkpoint's step.

A job requeued by an administrator or a preemption without the early signal (``scontrol requeue``, PreemptMode=
REQUEUE) gets SIGTERM instead: the training process checkpoints on it the same way and the requeued job resumes.
A run stopped at a time limit ``max_num_timeout`` times in a row is not requeued again; relaunching resumes it.

Options (``launch(jobs, "slurm", options)``; ``None`` leaves a setting to the cluster's defaults):
``partition``, ``account``, ``qos``; ``timeout_min`` (the job's time limit; default 2880, two days);
``cpus_per_task`` (default 4), ``gpus`` (GPUs per job, default 0), ``mem_gb``; ``signal_delay_s`` (how long before
the time limit the checkpoint signal comes, default 180 s: one iteration, an evaluation and a checkpoint must fit);
``max_num_timeout`` (requeues after time limits, default 100; preemptions do not count); ``array_parallelism``
(runs at once, default 64); ``job_name`` (default ``mtrl``); ``folder`` (submitit's scripts and the jobs'
stdout/stderr, default ``<common parent of the run directories>/.submitit``); ``additional`` (any other ``sbatch``
flag: a dict, or ``"constraint=a100,mail-type=END"``); ``setup`` (shell line(s) run before the job, e.g.
``module load cuda``);
``wait`` (block until every job ends; default false); ``python`` (the interpreter on the compute nodes; default this
one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mtrl.launch import Job
from mtrl.launch._common import LaunchError, describe_exit, resolve_options, start, stop, wait_for_lock

DEFAULTS: dict[str, Any] = {
    "partition": None, "account": None, "qos": None, "timeout_min": 2880, "cpus_per_task": 4, "gpus": 0,
    "mem_gb": None, "signal_delay_s": 180, "max_num_timeout": 100, "array_parallelism": 64, "job_name": "mtrl",
    "folder": None, "additional": None, "setup": None, "wait": False, "python": None,
}  # fmt: skip


class _Train:
    """submitit's callable for one job: runs ``mtrl.train`` as a child process; :meth:`checkpoint` (submitit calls
    it on the signal before the time limit or a preemption) lets the child write its checkpoint, then resubmits the
    same job, which resumes from it."""

    def __init__(self, python: str | None, grace_s: float, cpus: int | None = None) -> None:
        self.python = python
        self.grace_s = grace_s
        self.cpus = cpus
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"python": self.python, "grace_s": self.grace_s, "cpus": self.cpus, "_proc": None}

    def __call__(self, job: Job) -> str:
        wait_for_lock(job.run_dir, self.grace_s)  # a requeued job whose last attempt is still checkpointing
        self._proc = start(job, self.python, self.cpus)
        rc = self._proc.wait()
        if rc != 0:
            raise RuntimeError(describe_exit(job, rc))
        return str(job.run_dir)

    def checkpoint(self, job: Job) -> Any:
        """The run's checkpoint, then the same job again (submitit requeues it with ``scontrol requeue``)."""
        import submitit

        if self._proc is not None and not stop(self._proc, self.grace_s):
            print(f"mtrl: {job.name} did not exit within {self.grace_s:.0f} s of the signal; requeued from its last "
                  "checkpoint", file=sys.stderr, flush=True)  # fmt: skip
        return submitit.helpers.DelayedSubmission(_Train(self.python, self.grace_s, self.cpus), job)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def check_cluster(options: dict[str, Any]) -> None:
    """One-line errors before anything is submitted: no Slurm here, a partition or an account that does not
    exist (or that the user may not use)."""
    if shutil.which("sbatch") is None:
        raise LaunchError("sbatch not found: run this on a Slurm login node (or try Slurm on this machine: "
                          "sudo scripts/cluster/slurm_local.sh up)")  # fmt: skip
    info = _run(["sinfo", "-h", "-o", "%P"])
    if info.returncode != 0:
        raise LaunchError(f"sinfo failed: {(info.stderr or info.stdout).strip().splitlines()[-1:]}; is slurmctld up?")
    partitions = [p.rstrip("*") for p in info.stdout.split()]
    part = options.get("partition")
    if part is not None and str(part) not in partitions:
        raise LaunchError(f"Slurm partition {part!r} does not exist here; partitions: {', '.join(partitions)}")
    account = options.get("account")
    if account is not None and shutil.which("sacctmgr"):
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
        res = _run(["sacctmgr", "-nP", "show", "associations", f"user={user}", "format=account"])
        accounts = sorted({a.strip() for a in res.stdout.split() if a.strip()})
        if res.returncode == 0 and accounts and str(account) not in accounts:
            raise LaunchError(f"Slurm account {account!r} is not one of {user}'s: {', '.join(accounts)}")


def _parameters(options: dict[str, Any]) -> dict[str, Any]:
    """submitit's ``SlurmExecutor.update_parameters`` keywords for ``options``."""
    params: dict[str, Any] = {
        "time": int(options["timeout_min"]), "signal_delay_s": int(options["signal_delay_s"]),
        "array_parallelism": int(options["array_parallelism"]), "job_name": str(options["job_name"]),
        "ntasks_per_node": 1, "nodes": 1,
    }  # fmt: skip
    for key in ("partition", "account", "qos"):
        if options.get(key) is not None:
            params[key] = str(options[key])
    if options.get("cpus_per_task") is not None:
        params["cpus_per_task"] = int(options["cpus_per_task"])
    if int(options.get("gpus") or 0) > 0:
        params["gpus_per_node"] = int(options["gpus"])
    if options.get("mem_gb") is not None:
        params["mem"] = f"{int(options['mem_gb'])}GB"
    setup = options.get("setup")
    if setup:
        params["setup"] = [setup] if isinstance(setup, str) else list(setup)
    extra = options.get("additional") or {}
    if isinstance(extra, str):  # from a command line: "constraint=a100,mail-type=END"
        extra = dict(kv.split("=", 1) for kv in extra.split(",") if "=" in kv)
    extra = dict(extra)
    extra.setdefault("requeue", True)  # requeueable even where the cluster's JobRequeue=0
    params["additional_parameters"] = extra
    return params


def launch(jobs: list[Job], options: dict[str, Any]) -> None:
    """Submit ``jobs`` as one Slurm job array (see the module docstring for ``options``); print one line per job
    (``<array id>_<index> <name> <run dir>``); with ``wait``, block until every job ends and raise if any failed."""
    opts = resolve_options("Slurm", options, DEFAULTS)
    if not jobs:
        return
    check_cluster(opts)
    import submitit
    from submitit.core.utils import FailedJobError

    common = Path(os.path.commonpath([str(Path(j.run_dir).resolve()) for j in jobs]))
    folder = Path(opts["folder"] or common / ".submitit")
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=int(opts["max_num_timeout"]),
                                      python=opts["python"])  # fmt: skip
    executor.update_parameters(**_parameters(opts))
    grace = 0.75 * float(opts["signal_delay_s"])  # the requeue must be done before the time limit's kill
    try:
        cpus = int(opts["cpus_per_task"]) if opts["cpus_per_task"] is not None else None
        submitted = executor.map_array(_Train(opts["python"], grace, cpus), jobs)
    except FailedJobError as err:  # sbatch's own message: invalid account, partition, QOS, time limit, ...
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise LaunchError(f"sbatch refused the jobs: {lines[-1] if lines else err}") from None
    for job, sub in zip(jobs, submitted):
        Path(job.run_dir).mkdir(parents=True, exist_ok=True)
        (Path(job.run_dir) / ".slurm_job").write_text(f"{sub.job_id}\n")
        print(f"{sub.job_id} {job.name} {job.run_dir}", flush=True)
    print(f"mtrl: {len(jobs)} run(s) submitted to Slurm; watch: squeue -u $USER; logs: {folder}", flush=True)
    if opts["wait"]:
        wait(jobs, [sub.job_id for sub in submitted], [sub.paths.result_pickle for sub in submitted])


def wait(jobs: list[Job], job_ids: list[str], results: list[Path], poll_s: float = 5.0) -> None:
    """Block until none of ``job_ids`` is in ``squeue`` any more (a requeued job is pending again, not done), then
    raise if any of them did not end with its run finished (submitit's result file of its last attempt)."""
    from submitit.core.utils import pickle_load

    arrays = sorted({j.split("_")[0] for j in job_ids})
    while True:
        res = _run(["squeue", "-h", "-o", "%i", "-j", ",".join(arrays)])
        if res.returncode == 0 and not res.stdout.strip():
            break
        time.sleep(poll_s)
    failed = []
    for job, job_id, path in zip(jobs, job_ids, results):
        outcome, result = pickle_load(path) if Path(path).exists() else ("error", "no result (cancelled?)")
        if outcome != "success":
            failed.append(f"{job.name} ({job_id}): {str(result).strip().splitlines()[-1]}")
    if failed:
        raise LaunchError(f"{len(failed)} of {len(jobs)} Slurm job(s) did not finish: {'; '.join(failed)}")
