"""Real schedulers, no mocks (CI's slow step): runs through a one-node Slurm cluster (``scripts/cluster/
slurm_local.sh up``) survive a time limit and a requeue, a ``-m hydra/launcher=slurm`` sweep survives a requeue, and
runs on a multi-node Ray cluster survive the death of a worker node. Every run must finish with each evaluation step
in its ``eval.jsonl`` exactly once, and its ``train.log`` continued across attempts. All services bind to 127.0.0.1.

Without a Slurm cluster the Slurm tests are skipped, unless MTRL_REQUIRE_SLURM=1 (CI) turns that into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mtrl.launch import Job, launch

ROOT = Path(__file__).parents[1]
EVERY = 100


def _fake(steps: int, every: int = EVERY) -> list[str]:
    return ["env=fake", "experiment=smoke", f"train.steps_per_task={steps}", "train.warmup_steps_per_task=50",
            f"train.eval_every={every}", f"train.log_every={every}", f"train.checkpoint_every={every}",
            "train.torch_threads=1", "train.progress=false", "logger.tensorboard=false"]  # fmt: skip


def _steps(run_dir: Path) -> list[int]:
    path = run_dir / "eval.jsonl"
    return [json.loads(ln)["step"] for ln in path.read_text().splitlines()] if path.exists() else []


def _until(pred, timeout: float, what: str, poll: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def _log(run_dir: Path) -> str:
    path = run_dir / "train.log"
    return path.read_text() if path.exists() else ""


def _assert_complete_and_continued(run_dir: Path, steps: int, every: int, stopped_by: str | None) -> None:
    """Each evaluation step once, the whole run; one train.log holding every attempt, the first one first."""
    assert _steps(run_dir) == list(range(every, steps + 1, every)), (run_dir, _steps(run_dir))
    log = _log(run_dir)
    if stopped_by is not None:
        assert f"{stopped_by} at step" in log, log[-3000:]
        first, resumed = log.index("run directory:"), log.index("resumed from")
        assert first < log.index(f"{stopped_by} at step") < resumed, log[-3000:]
        assert log.count("run directory:") >= 2


def _slurm() -> None:
    ok = shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30).stdout.strip() not in ("", "down")
    if not ok:
        if os.environ.get("MTRL_REQUIRE_SLURM") == "1":
            pytest.fail("no Slurm cluster answers (sudo scripts/cluster/slurm_local.sh up)")
        pytest.skip("no Slurm cluster (sudo scripts/cluster/slurm_local.sh up)")
    pytest.importorskip("submitit", reason="submitit is not installed (pip install -e '.[launchers]')")


def _squeue(*args: str) -> str:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, timeout=30).stdout


def _state(job_id: str) -> str:
    return _squeue("-j", job_id, "-o", "%T").strip()


def _pid(run_dir: Path) -> int:
    """The training process of a run (the pid its lock file holds)."""
    return int((run_dir / ".lock").read_text().split()[0])


def _pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` waits to be delivered to the (stopped) process ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = [int(ln.split()[1], 16) for ln in status if ln.startswith(("SigPnd:", "ShdPnd:"))]
    return any(m >> (sig - 1) & 1 for m in masks)


@pytest.mark.slow
def test_slurm_runs_survive_a_time_limit_and_a_requeue(tmp_path: Path) -> None:
    """``mtrl.launch`` on Slurm: a run past its 1-minute time limit (SIGUSR2 from ``--signal``, checkpoint, submitit
    requeues it) and a run requeued by ``scontrol requeue`` (SIGTERM, checkpoint) both resume and finish; a third
    runs undisturbed. So that the two are still running when the time limit and the requeue come, however fast this
    machine is, each is paused (SIGSTOP) after its first evaluations: the time-limited one until Slurm's signal is
    pending, the requeued one until Slurm continues it (SIGCONT, then SIGTERM)."""
    import signal

    _slurm()
    limited = Job("limited", tmp_path / "limited", tuple(_fake(3000, 500)))
    requeued = Job("requeued", tmp_path / "requeued", tuple(_fake(800)))
    plain = Job("plain", tmp_path / "plain", tuple(_fake(300)))
    common = {"cpus_per_task": 1, "folder": str(tmp_path / ".submitit"), "job_name": "mtrl-test"}
    launch([limited], "slurm", {**common, "timeout_min": 1, "signal_delay_s": 20})
    launch([requeued, plain], "slurm", {**common, "timeout_min": 10})
    ids = {j.name: (j.run_dir / ".slurm_job").read_text().strip() for j in (limited, requeued, plain)}

    done: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while not {"requeue", "extended"} <= set(done):
        assert time.monotonic() < deadline, f"timed out; events so far: {done}"
        if "requeue" not in done and _steps(requeued.run_dir)[-1:] >= [2 * EVERY]:
            pid = _pid(requeued.run_dir)  # as an administrator or a preemption would
            os.kill(pid, signal.SIGSTOP)
            assert _state(ids["requeued"]) == "RUNNING"
            subprocess.run(["scontrol", "requeue", ids["requeued"]], check=True, timeout=30)
            os.kill(pid, signal.SIGCONT)
            done["requeue"] = pid
        signalled = "SIGUSR2 at step" in _log(limited.run_dir)
        if "paused" not in done and not signalled and _steps(limited.run_dir)[-1:] >= [500]:
            done["paused"] = _pid(limited.run_dir)
            os.kill(done["paused"], signal.SIGSTOP)
        if "paused" in done and "continued" not in done and _pending(done["paused"], signal.SIGUSR2):
            os.kill(done["paused"], signal.SIGCONT)
            done["continued"] = done["paused"]
        if signalled and "extended" not in done:  # the rest of the run fits in one more attempt
            subprocess.run(["scontrol", "update", f"JobId={ids['limited']}", "TimeLimit=10"], check=True, timeout=30)
            done["extended"] = 1
        time.sleep(0.2)

    _until(lambda: not _squeue("-n", "mtrl-test"), 480, "every job to leave the queue", poll=3)
    _assert_complete_and_continued(limited.run_dir, 3000, 500, "SIGUSR2")
    _assert_complete_and_continued(requeued.run_dir, 800, EVERY, "SIGTERM")
    _assert_complete_and_continued(plain.run_dir, 300, EVERY, None)


@pytest.mark.slow
def test_slurm_hydra_sweep_job_resumes_after_a_requeue(tmp_path: Path) -> None:
    """``python -m mtrl.train -m hydra/launcher=slurm``: a job requeued mid-run continues from its checkpoint in its
    own directory (the launcher sets resume=true for a second attempt of the same sweep job)."""
    import signal

    _slurm()
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher is not installed")
    cmd = [sys.executable, "-m", "mtrl.train", "-m", "hydra/launcher=slurm", "hydra.launcher.name=mtrl-sweep-test",
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0", "hydra.launcher.mem_gb=1",
           "hydra.launcher.timeout_min=10", f"hydra.launcher.submitit_folder={tmp_path}/.submitit",
           f"hydra.sweep.dir={tmp_path}", "seed=1,2", *_fake(800)]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        def run_of(seed: int) -> Path | None:
            for path in tmp_path.rglob("eval.jsonl"):
                if json.loads(path.read_text().splitlines()[0])["seed"] == seed:
                    return path.parent
            return None

        _until(lambda: run_of(1) is not None and _steps(run_of(1))[-1:] >= [2 * EVERY], 300, "seed 1's progress",
               poll=0.2)  # fmt: skip
        pid = _pid(run_of(1))
        os.kill(pid, signal.SIGSTOP)  # still running when the requeue comes, however fast this machine is
        array = _squeue("-n", "mtrl-sweep-test", "-o", "%F").split()[0]
        subprocess.run(["scontrol", "requeue", f"{array}_0"], check=True, timeout=30)
        os.kill(pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=480)
    assert proc.returncode == 0, out[-3000:]
    first = run_of(1)
    _assert_complete_and_continued(first, 800, EVERY, "SIGTERM")
    assert "ran before (requeued or retried): continuing with resume=true" in _log(first)
    _assert_complete_and_continued(run_of(2), 800, EVERY, None)


@pytest.mark.slow
def test_ray_runs_survive_the_death_of_a_worker_node(tmp_path: Path, monkeypatch) -> None:
    """A Ray cluster on this machine (a head without CPUs, two one-CPU worker nodes, all on 127.0.0.1): one worker
    node is killed while both runs are going; its run is retried on the node that remains and resumes."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no reports leave the machine
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[launchers]')")
    from ray.cluster_utils import Cluster

    loopback = {"node_ip_address": "127.0.0.1", "object_store_memory": 80 * 1024 * 1024}
    cluster = Cluster(initialize_head=True, head_node_args={**loopback, "num_cpus": 0, "include_dashboard": False})
    doomed = cluster.add_node(num_cpus=1, **loopback)
    cluster.add_node(num_cpus=1, **loopback)
    jobs = [Job(f"run{i}", tmp_path / f"run{i}", tuple(_fake(600) + [f"seed={i}"])) for i in (1, 2)]
    killed: list[float] = []

    def kill_when_going() -> None:
        import signal

        pids = []
        for job in jobs:  # each paused once it is going, so that both still run when the node dies
            _until(lambda j=job: _steps(j.run_dir)[-1:] >= [2 * EVERY], 300, f"{job.name}'s progress", poll=0.1)
            pids.append(_pid(job.run_dir))
            os.kill(pids[-1], signal.SIGSTOP)
        cluster.remove_node(doomed, allow_graceful=False)
        killed.append(time.monotonic())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    killer = threading.Thread(target=kill_when_going, daemon=True)
    killer.start()
    try:
        launch(jobs, "ray", {"address": cluster.address, "node_ip_address": "127.0.0.1", "max_retries": 3})
    finally:
        ray.shutdown()
        cluster.shutdown()
    killer.join(timeout=5)
    assert killed, "the worker node was never killed"
    resumed = [j for j in jobs if "resumed from" in _log(j.run_dir)]
    assert len(resumed) == 1, [_log(j.run_dir)[-2000:] for j in jobs]
    for job in jobs:
        assert _steps(job.run_dir) == list(range(EVERY, 601, EVERY)), (job.name, _steps(job.run_dir))
    log = _log(resumed[0].run_dir)
    assert log.index("run directory:") < log.index("resumed from") and log.count("run directory:") == 2


@pytest.mark.slow
def test_slurm_wrong_partition_is_one_line_and_submits_nothing(tmp_path: Path) -> None:
    _slurm()
    from mtrl.launch._common import LaunchError

    before = _squeue("-o", "%i")
    with pytest.raises(LaunchError, match=r"^Slurm partition 'nosuch' does not exist here; partitions: .*debug"):
        launch([Job("x", tmp_path / "x", tuple(_fake(100)))], "slurm", {"partition": "nosuch"})
    assert _squeue("-o", "%i") == before and not (tmp_path / "x").exists()


def test_slurm_options_map_to_sbatch_and_bad_ones_are_refused(tmp_path: Path, monkeypatch) -> None:
    """The options a user gives become submitit's (sbatch's) parameters; an unknown option or a machine without
    Slurm is one line before anything is submitted."""
    from mtrl.launch import _slurm
    from mtrl.launch._common import LaunchError

    opts = {**_slurm.DEFAULTS, "partition": "gpu", "account": "proj", "gpus": 0, "mem_gb": 16, "timeout_min": 60}
    params = _slurm._parameters(opts)
    assert params["partition"] == "gpu" and params["account"] == "proj" and params["time"] == 60
    assert params["mem"] == "16GB" and "gpus_per_node" not in params and "qos" not in params
    assert params["signal_delay_s"] == 180 and params["additional_parameters"] == {"requeue": True}
    assert _slurm._parameters({**opts, "gpus": 2})["gpus_per_node"] == 2
    given = _slurm._parameters({**opts, "setup": "module load cuda", "additional": "constraint=a100,mail-type=END"})
    assert given["setup"] == ["module load cuda"]
    assert given["additional_parameters"] == {"constraint": "a100", "mail-type": "END", "requeue": True}
    with pytest.raises(LaunchError, match="unknown Slurm option.*partion"):
        launch([Job("x", tmp_path / "x")], "slurm", {"partion": "gpu"})
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(LaunchError, match="^sbatch not found"):
        launch([Job("x", tmp_path / "x")], "slurm", {})


@pytest.mark.slow
def test_train_checkpoints_on_the_schedulers_signal_and_resumes(tmp_path: Path) -> None:
    """SIGUSR2 (what submitit asks Slurm to send before a time limit) makes ``mtrl.train`` write a checkpoint and
    exit 140; ``resume=true`` then finishes the run with each evaluation step once."""
    import signal

    job = Job("r", tmp_path / "r", tuple(_fake(600)))
    cmd = [sys.executable, "-m", "mtrl.train", *job.argv()]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as p:
        _until(lambda: _steps(job.run_dir)[-1:] >= [EVERY], 120, "the first evaluation", poll=0.2)
        p.send_signal(signal.SIGUSR2)
        p.send_signal(signal.SIGUSR2)  # a second one (from submitit's worker) must not stop it before the checkpoint
        _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGUSR2, err[-2000:]
    assert "SIGUSR2 at step" in _log(job.run_dir) and _steps(job.run_dir)[-1] < 600
    assert any((job.run_dir / "checkpoints").glob("ckpt_*.pt"))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _steps(job.run_dir) == list(range(EVERY, 601, EVERY)) and "resumed from" in _log(job.run_dir)


class _Submitit:
    """Stands in for the handler submitit installs for SIGUSR2 before it calls a job (it requeues the job and
    exits); records what the run directory held when it was called."""

    def __init__(self, ckpt_dir: Path) -> None:
        self.ckpt_dir = ckpt_dir
        self.saw: list[str] | None = None

    def __call__(self, signum, frame) -> None:  # noqa: ARG002
        self.saw = sorted(p.name for p in self.ckpt_dir.glob("ckpt_*.pt"))
        raise SystemExit(-1)


@pytest.mark.parametrize("entry", ["rl", "supervised"])
def test_sigusr2_checkpoints_first_then_hands_over_to_the_handler_before_it(tmp_path: Path, monkeypatch,
                                                                          entry: str) -> None:  # fmt: skip
    """In a ``hydra/launcher=slurm`` job the training runs inside submitit's worker: on SIGUSR2 the run writes its
    checkpoint, then calls the handler installed before it (submitit's: requeue, exit), then restores it."""
    import signal

    from hydra import compose, initialize_config_dir

    from mtrl._paths import config_dir

    ckpt = tmp_path / "checkpoints"
    submitit_handler = _Submitit(ckpt)
    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        if entry == "rl":
            from mtrl import train as module

            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                cfg = compose(config_name="train", overrides=_fake(400) + ["train.checkpoint_every=400"])
            real, calls = module.Progress.after_updates, {"n": 0}

            def after_updates(self, step, n_updates):
                calls["n"] += 1
                if calls["n"] == 60:
                    os.kill(os.getpid(), signal.SIGUSR2)
                return real(self, step, n_updates)

            monkeypatch.setattr(module.Progress, "after_updates", after_updates)
            run = lambda: module.train(cfg, tmp_path)  # noqa: E731
        else:
            from mtrl.supervised import trainer
            from tests.test_supervised_train import _cfg

            real, calls = trainer.aggregate_backward, {"n": 0}

            def aggregate_backward(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 3:
                    os.kill(os.getpid(), signal.SIGUSR2)
                return real(*args, **kwargs)

            monkeypatch.setattr(trainer, "aggregate_backward", aggregate_backward)
            run = lambda: trainer.train(_cfg(tmp_path, "benchmark=cityscapes", "aggregator=ls", "epochs=2"), tmp_path)  # noqa: E731
        with pytest.raises(SystemExit) as exc:
            run()
        assert exc.value.code == -1  # the previous handler's exit, not the run's own
        assert submitit_handler.saw == [p.name for p in sorted(ckpt.glob("ckpt_*.pt"))] != []
        assert signal.getsignal(signal.SIGUSR2) is submitit_handler
    finally:
        signal.signal(signal.SIGUSR2, previous)
