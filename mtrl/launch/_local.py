"""The local engine: every job a ``python -m mtrl.train`` subprocess on this machine, ``n_jobs`` at a time.

Options (``launcher.<key>=<value>`` on the ``mtrl.reproduce`` command line):

- ``n_jobs``: jobs running at once (default: the CPUs this process may use, :func:`mtrl._threads.cpu_allowance`);
- ``torch_threads``: ``train.torch_threads`` of each job unless its overrides set it (default 1: ``n_jobs``
  processes with one thread each share the cores without oversubscribing them);
- ``nice``: niceness added to each job (default 0);
- ``python``: the interpreter (default: this one).

Each job's stdout and stderr go to ``<run_dir>/launch.log`` (appended; ``train.log`` is the run's own log), and
every attempt appends one line to ``<run_dir>/launch.jsonl`` (engine, exit status, start, seconds), which
``mtrl.reproduce``'s status view reads. Progress is one line per start and per end. A failed job is reported with
its exit status and the last line of its log; the others go on; :class:`JobsFailed` is raised at the end if any
failed. Ctrl-C or SIGTERM is forwarded once to every running job (each writes a checkpoint and stops; the jobs run
in their own sessions so a terminal's Ctrl-C reaches them only through this engine, once); launching again resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mtrl import _threads
from mtrl.launch import Job

POLL_S = 0.2


class JobsFailed(RuntimeError):
    """Some jobs exited with a non-zero status (the message names them)."""


def _int_option(options: dict[str, Any], key: str, default: int, low: int) -> int:
    value = options.get(key, default)
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"launcher.{key} must be an integer, got {value!r}") from None
    if out < low or isinstance(value, bool):
        raise ValueError(f"launcher.{key} must be an integer >= {low}, got {value!r}")
    return out


def command(job: Job, options: dict[str, Any]) -> list[str]:
    """The command line that runs ``job`` here (with ``train.torch_threads`` unless the job sets it)."""
    threads = options.get("torch_threads", 1)
    extra = [] if any(o.split("=", 1)[0].lstrip("+") == "train.torch_threads" for o in job.overrides) else [
        f"train.torch_threads={threads}"]  # fmt: skip
    return [str(options.get("python", sys.executable)), "-m", job.module, *extra, *job.argv()]


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def launch(jobs: list[Job], options: dict[str, Any]) -> None:
    """Run ``jobs`` here, ``n_jobs`` at a time; raise :class:`JobsFailed` if any exits non-zero."""
    known = {"n_jobs", "torch_threads", "nice", "python"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown local launcher option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    n_jobs = _int_option(options, "n_jobs", _threads.cpu_allowance(), 1)
    nice = _int_option(options, "nice", 0, 0)
    _threads.check_torch_threads(options.get("torch_threads", 1), "launcher.torch_threads")
    pending = list(jobs)
    total = len(pending)
    running: dict[subprocess.Popen, tuple[Job, float, Any]] = {}
    failed: list[tuple[Job, int, str]] = []
    done = 0
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum, frame):  # noqa: ARG001
        if stop["signal"] is None:
            stop["signal"] = signum
            for proc in running:
                if proc.poll() is None:
                    proc.send_signal(signum)  # once: the job checkpoints and exits

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while pending or running:
            while pending and len(running) < n_jobs and stop["signal"] is None:
                job = pending.pop(0)
                Path(job.run_dir).mkdir(parents=True, exist_ok=True)
                log = open(Path(job.run_dir) / "launch.log", "ab")  # noqa: SIM115 - closed when the job ends
                cmd = command(job, options)
                log.write(f"\n$ {' '.join(cmd)}\n".encode())
                log.flush()
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=(lambda: os.nice(nice)) if nice else None)  # fmt: skip
                running[proc] = (job, time.time(), log)
                _say(f"started {job.name} ({len(running)} running, {len(pending)} waiting, {done}/{total} ended)")
            for proc in [p for p in running if p.poll() is not None]:
                job, t0, log = running.pop(proc)
                log.close()
                rc = int(proc.returncode)
                seconds = time.time() - t0
                done += 1
                with open(Path(job.run_dir) / "launch.jsonl", "a") as f:
                    f.write(json.dumps({"engine": "local", "rc": rc, "start": round(t0, 3),
                                        "seconds": round(seconds, 1)}) + "\n")  # fmt: skip
                if rc == 0:
                    _say(f"finished {job.name} in {seconds / 60:.1f} min ({done}/{total})")
                else:
                    why = _last_line(Path(job.run_dir) / "launch.log")
                    failed.append((job, rc, why))
                    _say(f"FAILED {job.name} (exit {rc}) after {seconds / 60:.1f} min: {why} "
                         f"[{Path(job.run_dir) / 'launch.log'}] ({done}/{total})")  # fmt: skip
            if stop["signal"] is not None and not running:
                break
            time.sleep(POLL_S)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stop["signal"] is not None:
        name = signal.Signals(stop["signal"]).name
        _say(f"{name}: {done} job(s) ended, {len(pending)} not started; launch again to resume")
        if stop["signal"] == signal.SIGINT:
            raise KeyboardInterrupt
        sys.exit(128 + int(stop["signal"]))
    if failed:
        raise JobsFailed(f"{len(failed)} of {total} job(s) failed: "
                         + "; ".join(f"{j.name} (exit {rc})" for j, rc, _ in failed))  # fmt: skip
    _say(f"all {total} job(s) finished")
