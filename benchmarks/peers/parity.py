"""Learning parity: mtrl's SAC against Stable-Baselines3's SAC at the same settings on Meta-World MT1 tasks.

    pip install -r benchmarks/peers/requirements.txt
    python benchmarks/peers/parity.py run --tasks reach-v3 push-v3 --seeds 1 2 3 --steps 30000 --jobs 2 \
        --out benchmarks/results/peers/parity
    python benchmarks/peers/parity.py summary --out benchmarks/results/peers/parity
    python benchmarks/peers/parity.py goals --out benchmarks/results/peers/parity --episodes 50

Both learners get the same env (mtrl's ``env=mt1`` construction: Meta-World v3 ``Meta-World/MT1``, reward v2,
500-step episodes, goal resampled from the task's 50 training goals on reset), the same settings (MLP 256x256,
batch 256, lr 3e-4, γ 0.99, τ 0.005, buffer 1M, 1,500 uniform random warm-up steps, one update per env step,
automatic temperature from α = 1 with target entropy −|A|) and **the same evaluator**: ``mtrl.envs.evaluate`` on
evaluation envs built exactly as ``mtrl.train`` builds them (the training goals; episodes end at the first
success), 10 deterministic episodes every 5,000 steps. SB3 is evaluated from a callback with its mean action.

Every (implementation, task, seed) is one subprocess with one torch thread (``--jobs`` at a time); each writes
``<out>/<impl>/<task>/seed_<s>/eval.jsonl`` in mtrl's format, so a killed ``run`` can be restarted and skips runs
whose last evaluation is already there. ``summary`` writes ``parity.md`` (success at equal steps: mean over seeds
with a 95% percentile-bootstrap interval, and each seed) and ``parity.png`` (curves with the same intervals).

The settings are the same on both sides except two differences that can change learning (docs/parity.md): the
log σ squashing (facebookresearch/mtrl: tanh into [−20, 2]; SB3 clamps) and the temperature loss
(facebookresearch/mtrl: α·(…); SB3: log α·(…)). The order of the α update and the critic loss scale differ in form
only (docs/parity.md says why). ``mtrl`` is mtrl's SAC with the reference's two settings, pinned here
(``REFERENCE_SAC``) whatever mtrl's defaults are, so that a label means the same run in every session.

mtrl variants: ``--impls sb3 mtrl "mtrl-clamp:agent.log_std=clamp" "mtrl-logalpha:agent.alpha_loss=log_alpha"``
adds runs labelled ``mtrl-clamp`` and ``mtrl-logalpha`` with the Hydra overrides after the colon (``;``-separated),
which replace the pinned settings they name: SB3's squashing, and SB3's temperature loss. ``sb3-<name>`` is another
set of SB3 runs (same worker and settings, no overrides), e.g. ``sb3-rerun``: the same seeds again, with snapshots.
``"mtrl-clamp-logalpha:agent.log_std=clamp;agent.alpha_loss=log_alpha"`` is both, mtrl's default since 5 Dec 2026.
Each ``run`` appends its command, commit, ``pip freeze`` and the runs it started to ``<out>/provenance.jsonl``.

``goals`` (a diagnostic, docs/parity.md): each finished run's final policy (mtrl: its last checkpoint; SB3: the
``sb3_final.zip`` its worker saves) on the training goals and on unseen goals (``env.eval_goals=unseen``: the
evaluation seed's own goals), ``--episodes`` deterministic episodes each, into ``goals.jsonl`` and ``goals.md``.
``snapshots`` (a diagnostic): every policy a finished run saved along the way (each 10k steps: mtrl's checkpoints,
SB3's ``sb3_<step>.zip``) on the training goals, into ``snapshots.jsonl`` and ``snapshots.md``: whether a learner's
policy changes from one snapshot to the next more than the evaluation's own noise, and its mean over snapshots.

This script is a benchmark, not part of the package: SB3 is never a dependency of mtrl.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# The one settings table both learners read.
SETTINGS: dict[str, Any] = {
    "hidden": [256, 256],
    "batch_size": 256,
    "lr": 3e-4,
    "gamma": 0.99,
    "tau": 0.005,
    "buffer_size": 1_000_000,
    "warmup_steps": 1500,
    "init_alpha": 1.0,
    "eval_every": 5000,
    "eval_episodes": 10,
    "max_episode_steps": 500,
}


# ============================================================================ workers (one run each)
def _env_cfg(task: str):
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "configs" / "env" / "mt1.yaml")
    cfg.task = task
    cfg.max_episode_steps = SETTINGS["max_episode_steps"]
    cfg.eval_episodes = SETTINGS["eval_episodes"]
    cfg.eval_every = SETTINGS["eval_every"]
    return cfg


def run_sb3(task: str, seed: int, steps: int, out: Path) -> None:
    """Train SB3's SAC on mtrl's MT1 training env; evaluate with mtrl's evaluator on mtrl's evaluation envs."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from mtrl import train as mtrl_train
    from mtrl.envs import make_envs
    from mtrl.logging import RunLogger

    torch.set_num_threads(1)
    env_cfg = _env_cfg(task)
    train_envs = make_envs(env_cfg, seed)
    eval_envs, eval_seed = mtrl_train.make_eval_envs(env_cfg, seed, train_envs)  # the training goals, as mtrl.train
    env = train_envs.envs[0]  # the single MT1 sub-env (TimeLimit-wrapped gymnasium env)
    names = [task]
    logger = RunLogger(out, names, "mt1", seed, "sb3", tensorboard=False)

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % SETTINGS["eval_every"] == 0:
                from mtrl.envs import evaluate

                def policy(obs: np.ndarray) -> np.ndarray:
                    return self.model.predict(obs, deterministic=True)[0]

                res = evaluate(policy, eval_envs, names, SETTINGS["eval_episodes"], eval_seed)
                logger.log_eval(self.num_timesteps, self.num_timesteps, res.success, res.returns)
                print(f"sb3 {task} seed {seed} step {self.num_timesteps}: success {res.success_rate:.2f}", flush=True)
            if self.num_timesteps % CHECKPOINT_EVERY == 0:  # the policy at this step, for `snapshots` (no buffer:
                # SB3's worker cannot resume, it restarts; stays local: .gitignore)
                (out / "checkpoints").mkdir(exist_ok=True)
                self.model.save(out / "checkpoints" / f"sb3_{self.num_timesteps:010d}.zip")
            return True

    model = SAC(
        "MlpPolicy", env, learning_rate=SETTINGS["lr"], buffer_size=SETTINGS["buffer_size"],
        learning_starts=SETTINGS["warmup_steps"], batch_size=SETTINGS["batch_size"], tau=SETTINGS["tau"],
        gamma=SETTINGS["gamma"], train_freq=1, gradient_steps=1, ent_coef=f"auto_{SETTINGS['init_alpha']}",
        target_entropy="auto", policy_kwargs={"net_arch": list(SETTINGS["hidden"])}, seed=seed, device="cpu",
        verbose=0,
    )  # fmt: skip
    model.learn(total_timesteps=steps, callback=Evaluate())
    model.save(out / "sb3_final.zip")  # the final policy, for the goals diagnostic (stays local: .gitignore)
    logger.close()
    train_envs.close()
    eval_envs.close()


# The label ``mtrl``: facebookresearch/mtrl's log σ squashing and temperature loss (mtrl's defaults until 5 Dec 2026,
# when the study made SB3's the defaults); a variant's override of the same key replaces the pinned value.
REFERENCE_SAC = {"agent.log_std": "tanh", "agent.alpha_loss": "alpha"}
# Every mtrl label without its own value: the tanh term of log π as all the study's runs before 5 Dec 2026 computed it
# (mtrl's exact form); "mtrl-capped:...;agent.tanh_correction=capped" is SB3's (and fb/mtrl's) capped form
STUDY_SAC = {"agent.tanh_correction": "exact"}


# mtrl's runs write a checkpoint this often (and when stopped by SIGTERM or Ctrl-C), so that an unfinished run
# continues where it stopped in a later session; writing one changes nothing in what is learned, but on Meta-World a
# continued run restarts the episode in progress, so it is another sample of the same training (docs/sac.md).
# Every one is kept (and SB3's worker saves its policy as often): `snapshots` evaluates each of them
CHECKPOINT_EVERY = 10_000


def mtrl_command(task: str, seed: int, steps: int, out: Path, overrides: list[str], resume: bool = False) -> list[str]:
    """``python -m mtrl.train`` with the shared settings (MT1 is K = 1: the multi-head MLP is a plain MLP), the
    reference's SAC settings, then the variant's ``overrides``; ``resume``: continue from the run's checkpoint."""
    s = SETTINGS
    named = {o.partition("=")[0] for o in overrides}
    pinned = [f"{k}={v}" for k, v in {**REFERENCE_SAC, **STUDY_SAC}.items() if k not in named]
    return [
        sys.executable, "-m", "mtrl.train", "env=mt1", f"env.task={task}", f"seed={seed}",
        f"train.steps_per_task={steps}", f"train.warmup_steps_per_task={s['warmup_steps']}",
        f"train.eval_every={s['eval_every']}", f"env.eval_episodes={s['eval_episodes']}",
        f"env.max_episode_steps={s['max_episode_steps']}", f"agent.hidden_dim={s['hidden'][0]}",
        f"agent.num_layers={len(s['hidden'])}", f"agent.batch_size_per_task={s['batch_size']}",
        f"agent.buffer_capacity={s['buffer_size']}", f"agent.lr={s['lr']}", f"agent.alpha_lr={s['lr']}",
        f"agent.gamma={s['gamma']}", f"agent.tau={s['tau']}", f"agent.init_alpha={s['init_alpha']}",
        f"train.checkpoint_every={min(CHECKPOINT_EVERY, steps)}",
        f"train.keep_checkpoints={steps // CHECKPOINT_EVERY + 2}", "train.torch_threads=1", "train.progress=false",
        "logger=none", f"hydra.run.dir={out}", *pinned, *overrides, *(["resume=true"] if resume else []),
    ]  # fmt: skip


# ============================================================================ orchestration
def _is_sb3(impl: str) -> bool:
    """``sb3`` and ``sb3-<name>`` (another set of SB3 runs at the same settings, e.g. a rerun that keeps its
    snapshots) are SB3's worker; every other label is mtrl."""
    return impl == "sb3" or impl.startswith("sb3-")


def _parse_impl(spec: str) -> tuple[str, list[str]]:
    label, _, rest = spec.partition(":")
    if not _is_sb3(label) and not label.startswith("mtrl"):
        raise SystemExit(f"parity.py: unknown implementation {label!r} (sb3, sb3-<name>, mtrl, or "
                         "mtrl-<name>:<overrides>)")  # fmt: skip
    if _is_sb3(label) and rest:
        raise SystemExit(f"parity.py: {label!r} takes no overrides (SB3's settings are the SETTINGS table)")
    return label, [o for o in rest.split(";") if o]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (none when it does not exist)."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _finished(out: Path, steps: int) -> bool:
    lines = _jsonl(out / "eval.jsonl")
    return bool(lines) and lines[-1]["step"] >= steps


def _finished_runs(root: Path, steps: int) -> list[tuple[str, str, int, Path]]:
    """``(impl, task, seed, run directory)`` of every run under ``root`` that reached ``steps``, sorted."""
    if not root.is_dir():
        raise SystemExit(f"parity.py: no results directory {root} (run `parity.py run --out {root}` first)")
    return sorted((impl.name, task.name, int(run.name.split("_")[1]), run)
                  for impl in root.iterdir() if impl.is_dir()
                  for task in impl.iterdir() if task.is_dir()
                  for run in task.glob("seed_*") if _finished(run, steps))  # fmt: skip


def _resumable(impl: str, out: Path) -> bool:
    """Whether an unfinished run continues instead of restarting: mtrl's, from its newest checkpoint (its resume
    keeps its evaluations up to the checkpoint and drops the later ones). SB3's worker keeps no checkpoint."""
    from mtrl.checkpoint import latest_checkpoint

    return not _is_sb3(impl) and (out / "checkpoints").is_dir() and latest_checkpoint(out / "checkpoints") is not None


def _one(impl: str, overrides: list[str], task: str, seed: int, steps: int, root: Path) -> tuple[str, float, int]:
    out = root / impl / task / f"seed_{seed}"
    if _finished(out, steps):
        return f"{impl} {task} seed {seed}: already finished", 0.0, 0
    out.mkdir(parents=True, exist_ok=True)
    resume = _resumable(impl, out)
    if not resume and out.joinpath("eval.jsonl").exists():
        out.joinpath("eval.jsonl").unlink()  # an unfinished SB3 run (or mtrl's before its first checkpoint) restarts
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if _is_sb3(impl):
        cmd = [sys.executable, __file__, "worker", "--task", task, "--seed", str(seed), "--steps", str(steps),
               "--out", str(out)]  # fmt: skip
    else:
        cmd = mtrl_command(task, seed, steps, out, overrides, resume=resume)
    t0 = time.perf_counter()
    with open(out / "stdout.log", "a" if resume else "w") as fh:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    dt = time.perf_counter() - t0
    return f"{impl} {task} seed {seed}: rc={rc} in {dt:.0f} s", dt, rc


def provenance(argv: list[str]) -> dict[str, Any]:
    """What a run was made with: the command, the commit (and whether the tree had uncommitted changes), the time,
    Python, and ``pip freeze`` (SB3, torch, metaworld, gymnasium versions among them)."""

    def _out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "command": shlex.join(["python", "benchmarks/peers/parity.py", *argv]),
        "commit": _out(["git", "rev-parse", "HEAD"]),
        "dirty": bool(_out(["git", "status", "--porcelain", "--untracked-files=no"])),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "pip_freeze": _out([sys.executable, "-m", "pip", "freeze"]).splitlines(),
    }


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    impls = [_parse_impl(s) for s in args.impls]
    jobs = [(i, o, t, s) for t in args.tasks for s in args.seeds for i, o in impls]
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    # one provenance record per invocation (runs of several sessions share a directory), naming the runs it started;
    # taken before anything is written here, so that "dirty" speaks of the code
    started = [f"{i}/{t}/seed_{s}" for i, _, t, s in jobs if not _finished(root / i / t / f"seed_{s}", args.steps)]
    # the runs that continue from a checkpoint: on Meta-World the episodes in progress at the checkpoint restart, so
    # such a run is another sample of the same training, not the uninterrupted run's numbers (docs/sac.md)
    resumed = [r for r in started if _resumable(r.split("/")[0], root / r)]
    prov = {**provenance(argv), "steps": args.steps, "impls": args.impls, "started": started, "resumed": resumed}
    (root / "settings.json").write_text(json.dumps(SETTINGS, indent=1) + "\n")
    with open(root / "provenance.jsonl", "a") as fh:
        fh.write(json.dumps(prov) + "\n")
    failures = 0
    print(f"{len(jobs)} runs, {args.jobs} at a time", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_one, i, o, t, s, args.steps, root) for i, o, t, s in jobs]
        for n, fut in enumerate(futures, 1):
            line, _, rc = fut.result()
            failures += rc != 0
            print(f"[{n}/{len(jobs)}] {line}", flush=True)
    return 1 if failures else 0


# ============================================================================ goals (a diagnostic)
def _policy(impl: str, path: Path):
    """The deterministic policy saved at ``path``: an SB3 ``.zip`` or an mtrl checkpoint."""
    import torch

    if _is_sb3(impl):
        from stable_baselines3 import SAC

        model = SAC.load(path, device="cpu")
        return lambda obs: model.predict(obs, deterministic=True)[0]
    from omegaconf import OmegaConf

    from mtrl.checkpoint import load_checkpoint
    from mtrl.train import build_agent

    state = load_checkpoint(path)
    cfg = OmegaConf.create(state["config"])
    agent = build_agent(cfg, int(state["fingerprint"]["obs_dim"]), int(state["fingerprint"]["act_dim"]), 1,
                        torch.device("cpu"))  # fmt: skip
    agent.load_state_dict(state["agent"])
    return lambda obs: agent.act(obs, deterministic=True)


def _final_policy(impl: str, run: Path):
    """The deterministic final policy of a finished run, or ``None`` when it kept none."""
    from mtrl.checkpoint import latest_checkpoint

    if _is_sb3(impl):
        return _policy(impl, run / "sb3_final.zip") if (run / "sb3_final.zip").is_file() else None
    ckpt = latest_checkpoint(run / "checkpoints") if (run / "checkpoints").is_dir() else None
    return None if ckpt is None else _policy(impl, ckpt)


def _success(policy, task: str, seed: int, goal_sets: tuple[str, ...], episodes: int) -> dict[str, float]:
    """Success rate of ``policy`` over ``episodes`` deterministic episodes on each goal set of run ``seed``, with
    the evaluation envs and seeds ``mtrl.train`` uses (the same episodes for every policy evaluated)."""
    import torch

    from mtrl import train as mtrl_train
    from mtrl.envs import evaluate, make_envs

    torch.set_num_threads(1)
    env_cfg = _env_cfg(task)
    train_envs = make_envs(env_cfg, seed)  # the run's training goals (unseen goals are the evaluation seed's own)
    out = {}
    try:
        for goals in goal_sets:
            env_cfg.eval_goals = goals
            eval_envs, eval_seed = mtrl_train.make_eval_envs(env_cfg, seed, train_envs)
            try:
                out[goals] = float(evaluate(policy, eval_envs, [task], episodes, eval_seed).success_rate)
            finally:
                eval_envs.close()
    finally:
        train_envs.close()
    return out


def goals_one(impl: str, task: str, seed: int, run: Path, episodes: int) -> dict[str, Any] | None:
    """Success of a run's final policy on the training goals and on unseen goals (same evaluator, same seeds)."""
    policy = _final_policy(impl, run)
    if policy is None:
        return None
    return {"impl": impl, "task": task, "seed": seed, "episodes": episodes,
            **_success(policy, task, seed, ("train", "unseen"), episodes)}  # fmt: skip


def _goal_key(rec: dict[str, Any]) -> tuple:
    return rec["impl"], rec["task"], rec["seed"], rec.get("steps"), rec["episodes"]


def cmd_goals(args: argparse.Namespace) -> int:
    """Evaluate every finished run's final policy on both goal sets; ``goals.jsonl`` grows one line per run as it is
    measured, so an interrupted evaluation keeps what it measured and a later call (more seeds finished) evaluates
    only the runs not yet in it, unless ``--redo``."""
    root = Path(args.out)
    finished = _finished_runs(root, args.steps)
    path = root / "goals.jsonl"
    kept = _jsonl(path)
    if args.redo:  # only this length and episode count: the file's other measurements stay
        kept = [r for r in kept if (r.get("steps"), r["episodes"]) != (args.steps, args.episodes)]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, path)  # never a half-written file, even if killed here
    done = {_goal_key(r): r for r in kept}
    records, missing = [], []
    with open(path, "a") as fh:
        for impl, task, seed, run in finished:
            rec = done.get((impl, task, seed, args.steps, args.episodes))
            if rec is None:
                rec = goals_one(impl, task, seed, run, args.episodes)
                if rec is None:
                    missing.append(f"{impl}/{task}/seed_{seed}")
                    continue
                rec["steps"] = args.steps
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                verb = "measured"
            else:
                verb = "already in goals.jsonl"
            records.append(rec)
            print(f"{impl} {task} seed {seed}: train goals {rec['train']:.2f}, unseen goals {rec['unseen']:.2f} "
                  f"({verb})", flush=True)  # fmt: skip
    if not records:
        print(f"parity.py: no finished run with a final policy under {root}", file=sys.stderr)
        return 1
    lines = [f"Final policies at {args.steps} steps, {args.episodes} deterministic episodes on each goal set "
             "(training goals: the protocol; unseen: `env.eval_goals=unseen`, the evaluation seed's own goals).", "",
             "| impl | task | seeds | train goals (per seed) | unseen goals (per seed) | mean drop |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for impl, task in sorted({(r["impl"], r["task"]) for r in records}):
        rs = sorted((r for r in records if (r["impl"], r["task"]) == (impl, task)), key=lambda r: r["seed"])
        tr, un = np.array([r["train"] for r in rs]), np.array([r["unseen"] for r in rs])
        per = lambda v: ", ".join(f"{x:.2f}" for x in v)  # noqa: E731
        lines.append(f"| {impl} | {task} | {', '.join(str(r['seed']) for r in rs)} | {tr.mean():.2f} ({per(tr)}) | "
                     f"{un.mean():.2f} ({per(un)}) | {tr.mean() - un.mean():+.2f} |")  # fmt: skip
    if missing:
        lines += ["", f"Finished without a final policy (not evaluated): {', '.join(missing)}."]
    (root / "goals.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


# ============================================================================ snapshots (a diagnostic)
def _snapshots(impl: str, run: Path) -> list[tuple[int, Path]]:
    """``(step, file)`` of every policy a run saved along the way (mtrl: its checkpoints; SB3: ``sb3_<step>.zip``)."""
    pattern = "sb3_*.zip" if _is_sb3(impl) else "ckpt_*.pt"
    files = sorted((run / "checkpoints").glob(pattern)) if (run / "checkpoints").is_dir() else []
    return [(int(f.stem.split("_")[1]), f) for f in files]


def snapshot_stats(values: np.ndarray, episodes: int) -> tuple[float, float]:
    """Of one seed's snapshot success rates (in step order): the SD between consecutive snapshots,
    ``sqrt(mean (x[i+1] − x[i])² / 2)`` (von Neumann's successive-difference estimate: a steady learning trend adds
    little to it, unlike the plain SD), and the SD that ``episodes``-episode estimates of one fixed policy would
    show, ``sqrt(mean p(1 − p) / episodes)`` (binomial). The first well above the second: the policy itself
    changes from one snapshot to the next."""
    between = float(np.sqrt(np.mean(np.diff(values) ** 2) / 2)) if len(values) > 1 else float("nan")
    return between, float(np.sqrt(np.mean(values * (1 - values)) / episodes))


def snapshots_report(records: list[dict[str, Any]], paired_with: list[tuple[str, str]]) -> str:
    """Markdown: per task, the success of every snapshot (mean over seeds, each seed), each seed's mean over its
    snapshots and the spread between them, the final snapshot; and the seed-by-seed differences asked for."""
    lines = []
    for task in sorted({r["task"] for r in records}):
        rs = [r for r in records if r["task"] == task]
        impls = sorted({r["impl"] for r in rs}, key=lambda x: (not _is_sb3(x), x))
        data = {i: {} for i in impls}  # impl -> seed -> step -> success
        for r in rs:
            data[r["impl"]].setdefault(r["seed"], {})[r["step"]] = r["success"]
        eps = sorted({r["episodes"] for r in rs})
        lines += [f"### {task} ({', '.join(map(str, eps))} episodes per snapshot)", "",
                  "| step | " + " | ".join(impls) + " |", "|---" * (len(impls) + 1) + "|"]  # fmt: skip
        for st in sorted({r["step"] for r in rs}):
            row = [str(st)]
            for i in impls:
                v = [data[i][sd][st] for sd in sorted(data[i]) if st in data[i][sd]]
                row.append(f"{np.mean(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})" if v else "—")
            lines.append("| " + " | ".join(row) + " |")
        row_mean, row_sd, row_last = ["mean over snapshots"], ["SD between snapshots (binomial)"], ["final snapshot"]
        for i in impls:
            seeds = sorted(data[i])
            means = np.array([np.mean(list(data[i][sd].values())) for sd in seeds])
            stats = [snapshot_stats(np.array([data[i][sd][st] for st in sorted(data[i][sd])]), eps[-1]) for sd in seeds]
            finals = np.array([data[i][sd][max(data[i][sd])] for sd in seeds])
            row_mean.append(_cell(means))
            row_sd.append(f"{np.nanmean([b for b, _ in stats]):.2f} ({np.mean([e for _, e in stats]):.2f}) "
                          f"({', '.join(f'{b:.2f}' for b, _ in stats)})")  # fmt: skip
            row_last.append(_cell(finals))
        lines += ["| " + " | ".join(r) + " |" for r in (row_mean, row_sd, row_last)]
        for a, b in paired_with:
            if a not in data or b not in data:
                continue
            seeds = sorted(set(data[a]) & set(data[b]))
            for label, f in (("mean over snapshots", lambda d: np.mean(list(d.values()))),
                             ("final snapshot", lambda d: d[max(d)])):  # fmt: skip
                dv = np.array([f(data[a][sd]) - f(data[b][sd]) for sd in seeds])
                lo, hi = t_ci(dv)
                t = "—" if np.isnan(lo) else f"{lo:+.2f}, {hi:+.2f}"
                lines.append(f"| {a} − {b}: {label} | {dv.mean():+.2f} {{{t}}} ({', '.join(f'{x:+.2f}' for x in dv)})"
                             + " |" * len(impls))  # fmt: skip
        lines.append("")
    lines.append("Cells: mean over seeds (each seed's value, in seed order); for the means: [95% percentile-bootstrap] "
                 "{95% Student-t}. SD between snapshots: mean over seeds of each seed's SD between consecutive "
                 "snapshots, sqrt(mean (x[i+1] − x[i])² / 2); in brackets the SD that estimates of one fixed policy "
                 "from this many episodes would show.")
    return "\n".join(lines) + "\n"


def cmd_snapshots(args: argparse.Namespace) -> int:
    """Evaluate every policy the finished runs saved along the way (from ``--from`` steps on) on the training goals;
    ``snapshots.jsonl`` grows one line per policy as it is measured, and a later call measures only the new ones."""
    root = Path(args.out)
    path = root / "snapshots.jsonl"
    done = {(r["impl"], r["task"], r["seed"], r["step"], r["episodes"]): r for r in _jsonl(path)}
    todo = [(i, t, sd, st, f) for i, t, sd, run in _finished_runs(root, args.steps) for st, f in _snapshots(i, run)
            if st >= args.start and (i, t, sd, st, args.episodes) not in done]  # fmt: skip
    print(f"{len(todo)} snapshots to evaluate ({len(done)} already in snapshots.jsonl)", flush=True)
    with open(path, "a") as fh:
        for n, (impl, task, seed, step, f) in enumerate(todo, 1):
            rec = {"impl": impl, "task": task, "seed": seed, "step": step, "episodes": args.episodes,
                   "success": _success(_policy(impl, f), task, seed, ("train",), args.episodes)["train"]}  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[(impl, task, seed, step, args.episodes)] = rec
            print(f"[{n}/{len(todo)}] {impl} {task} seed {seed} step {step}: success {rec['success']:.2f}", flush=True)
    records = [r for r in done.values() if r["episodes"] == args.episodes and r["step"] >= args.start]
    if not records:
        print(f"parity.py: no finished run with saved policies under {root}", file=sys.stderr)
        return 1
    text = snapshots_report(records, [tuple(p) for p in (args.paired or [])])
    (root / "snapshots.md").write_text(text)
    print(text)
    return 0


# ============================================================================ summary
def load(root: Path) -> dict[str, dict[str, dict[int, dict[int, float]]]]:
    """``{impl: {task: {seed: {step: success}}}}`` from every ``eval.jsonl`` under ``root``."""
    data: dict = {}
    for path in sorted(root.glob("*/*/seed_*/eval.jsonl")):
        impl, task, seed = path.parts[-4], path.parts[-3], int(path.parts[-2].split("_")[1])
        recs = _jsonl(path)
        data.setdefault(impl, {}).setdefault(task, {})[seed] = {int(r["step"]): float(r["success_rate"]) for r in recs}
    return data


def bootstrap_ci(values: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean over seeds. With n seeds a resample has at most C(2n-1, n)
    distinct means (10 for 3 seeds), so the interval is close to the seeds' range and too narrow: read it with the
    t-interval and the seeds' own values."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n, len(values)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def t_ci(values: np.ndarray) -> tuple[float, float]:
    """95% Student-t interval of the mean over seeds, ``mean ± t(0.975, n−1)·s/√n`` (NaN for one seed; it may leave
    [0, 1]: it is not clipped)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return float(values.mean()) - half, float(values.mean()) + half


def _cell(v: np.ndarray) -> str:
    lo, hi = bootstrap_ci(v)
    tlo, thi = t_ci(v)
    t = "—" if np.isnan(tlo) else f"{tlo:.2f}, {thi:.2f}"
    return f"{v.mean():.2f} [{lo:.2f}, {hi:.2f}] {{{t}}} ({', '.join(f'{x:.2f}' for x in v)})"


_WINDOWS = {
    "mean ≥10k": lambda sd: [v for st, v in sd.items() if st >= 10_000],
    "mean ≥20k": lambda sd: [v for st, v in sd.items() if st >= 20_000],
    "last 5": lambda sd: [sd[st] for st in sorted(sd)[-5:]],
    # where the run ended up, over many evaluations: the second half of the run (≥50k of 100k, ≥15k of 30k), less
    # dependent than "last 5" on how the policy happened to swing in the last few snapshots
    "second half": lambda sd: [v for st, v in sd.items() if st >= max(sd) / 2],
}


# "how fast": the first evaluation at which a seed reached 0.9 (the task learned) and 0.5 (on a task that no
# learner masters within the budget, such as window-open-v3 at 100k steps, where learning starts)
_THRESHOLDS = (0.9, 0.5)


def _first_hit(sd: dict[int, float], level: float = 0.9) -> int | None:
    return min((st for st, v in sd.items() if v >= level), default=None)


def paired(data: dict, a: str, b: str) -> str:
    """Markdown: per task, the seed-by-seed difference ``a − b`` of each one-number measure (the seeds both ran;
    for the first step at 0.9, the seeds on which both reached it), its mean and 95% t-interval: with few seeds the
    pairing removes the spread between seeds that both learners share."""
    lines = [f"Paired differences {a} − {b} (seeds both ran, in seed order; mean {{95% t-interval}}):", ""]
    for task in sorted(set(data.get(a, {})) & set(data.get(b, {}))):
        A, B = data[a][task], data[b][task]
        seeds = sorted(set(A) & set(B))
        lines += [f"### {task} (seeds {', '.join(map(str, seeds))})", "", "| measure | mean {95% t} | per seed |",
                  "|---|---|---|"]  # fmt: skip
        measures = {k: [(np.mean(w(A[s])), np.mean(w(B[s]))) for s in seeds if w(A[s]) and w(B[s])]
                    for k, w in _WINDOWS.items()}  # fmt: skip
        for level in _THRESHOLDS:
            hits = [(_first_hit(A[s], level), _first_hit(B[s], level)) for s in seeds]
            measures[f"first ≥{level} (steps)"] = [(x, y) for x, y in hits if x is not None and y is not None]
        for k, pairs in measures.items():
            d = np.asarray([x - y for x, y in pairs], dtype=float)
            if not len(d):
                continue
            lo, hi = t_ci(d)
            fmt = (lambda v: f"{v / 1000:+.1f}k") if k.startswith("first") else (lambda v: f"{v:+.2f}")
            t = "—" if np.isnan(lo) else f"{fmt(lo)}, {fmt(hi)}"
            lines.append(f"| {k} | {fmt(d.mean())} {{{t}}} | {', '.join(fmt(v) for v in d)} |")
        lines.append("")
    return "\n".join(lines)


def table(data: dict) -> str:
    """Markdown: one block per task, rows = evaluation step, columns = implementation."""
    impls = sorted(data, key=lambda s: (not _is_sb3(s), s))
    tasks = sorted({t for d in data.values() for t in d})
    lines = []
    for task in tasks:
        steps = sorted({st for i in impls for sd in data[i].get(task, {}).values() for st in sd})
        lines += [f"### {task}", "", "| step | " + " | ".join(impls) + " |", "|---" * (len(impls) + 1) + "|"]
        for st in steps:
            row = [str(st)]
            for impl in impls:
                vals = [sd[st] for sd in data[impl].get(task, {}).values() if st in sd]
                if not vals:
                    row.append("—")
                    continue
                row.append(_cell(np.asarray(vals)))
            lines.append("| " + " | ".join(row) + " |")
        # the whole curve in one number per seed: mean success over the evaluations from 10k (20k) steps on, and
        # over each seed's last five evaluations (where it ended up)
        for label, window in _WINDOWS.items():
            row = [label]
            for impl in impls:
                per_seed = [np.mean(window(sd)) for sd in data[impl].get(task, {}).values() if window(sd)]
                row.append(_cell(np.asarray(per_seed)) if per_seed else "—")
            lines.append("| " + " | ".join(row) + " |")
        # how fast: the first evaluation at which each seed reached the level (mean over the seeds that did; n of N)
        for level in _THRESHOLDS:
            row = [f"first ≥{level}"]
            for impl in impls:
                seeds = list(data[impl].get(task, {}).values())
                first = [_first_hit(sd, level) for sd in seeds]
                hit = [f for f in first if f is not None]
                if not seeds:
                    row.append("—")
                    continue
                mean = f"{np.mean(hit) / 1000:.1f}k" if hit else "never"
                per = ", ".join("—" if f is None else f"{f // 1000}k" for f in first)
                row.append(f"{mean} ({len(hit)} of {len(seeds)}: {per})")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines.append(
        "Cells: mean success over seeds [95% percentile-bootstrap interval of the mean] {95% Student-t "
        "interval of the mean} (each seed's value, in seed order). With 3 seeds the bootstrap has at most "
        "10 distinct resample means: read the t-interval and the seeds."
    )
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for d in data.values() for t in d})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for impl in sorted(data, key=lambda s: (not _is_sb3(s), s)):
            seeds = data[impl].get(task, {})
            steps = sorted({st for sd in seeds.values() for st in sd})
            if not steps:
                continue
            mean, lo, hi = [], [], []
            for st in steps:
                v = np.asarray([sd[st] for sd in seeds.values() if st in sd])
                a, b = bootstrap_ci(v)
                mean.append(v.mean())
                lo.append(a)
                hi.append(b)
            ax.plot(steps, mean, marker="o", ms=3, label=f"{impl} (n={len(seeds)})")
            ax.fill_between(steps, lo, hi, alpha=0.2)
        ax.set_title(f"MT1 {task}")
        ax.set_xlabel("env steps")
        ax.set_ylabel("success rate (10 eval episodes)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_summary(args: argparse.Namespace) -> int:
    root = Path(args.out)
    data = load(root)
    if not data:
        print(f"parity.py: no eval.jsonl under {root}", file=sys.stderr)
        return 1
    name = "parity"
    if args.until is not None:  # every curve cut at one length (runs of several lengths in one study)
        data = {i: {t: {s: {st: v for st, v in sd.items() if st <= args.until} for s, sd in td.items()}
                    for t, td in d.items()} for i, d in data.items()}  # fmt: skip
        name = f"parity_until{args.until // 1000}k"
    text = table(data)
    for a, b in args.paired or []:
        text += "\n\n" + paired(data, a, b)
    (root / f"{name}.md").write_text(text + "\n")
    plot(data, root / f"{name}.png")
    print(text)
    print(f"wrote {root / f'{name}.md'} and {root / f'{name}.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every (impl, task, seed) and write eval.jsonl files")
    r.add_argument("--tasks", nargs="+", default=["reach-v3", "push-v3"])
    r.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    r.add_argument("--steps", type=int, default=30_000)
    r.add_argument("--impls", nargs="+", default=["sb3", "mtrl"])
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--out", default="benchmarks/results/peers/parity")
    s = sub.add_parser("summary", help="table (parity.md) and curves (parity.png)")
    s.add_argument("--out", default="benchmarks/results/peers/parity")
    s.add_argument("--until", type=int, default=None,
                   help="cut every curve at this step (parity_until<k>k.md/.png): runs of several lengths")
    s.add_argument("--paired", nargs=2, action="append", metavar=("A", "B"),
                   help="add the seed-by-seed differences A − B of each measure (repeatable)")
    g = sub.add_parser("goals", help="final policies on the training goals and on unseen goals (goals.md)")
    g.add_argument("--out", default="benchmarks/results/peers/parity")
    g.add_argument("--steps", type=int, default=30_000, help="the runs' length (only finished runs are evaluated)")
    g.add_argument("--episodes", type=int, default=50)
    g.add_argument("--redo", action="store_true", help="evaluate again the runs already in goals.jsonl")
    n = sub.add_parser("snapshots", help="every policy saved along the way, on the training goals (snapshots.md)")
    n.add_argument("--out", default="benchmarks/results/peers/parity")
    n.add_argument("--steps", type=int, default=30_000, help="the runs' length (only finished runs are evaluated)")
    n.add_argument("--episodes", type=int, default=50)
    n.add_argument("--from", dest="start", type=int, default=0, help="only the snapshots from this step on")
    n.add_argument("--paired", nargs=2, action="append", metavar=("A", "B"),
                   help="add the seed-by-seed differences A − B (mean over snapshots, final snapshot)")
    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("--task", required=True)
    w.add_argument("--seed", type=int, required=True)
    w.add_argument("--steps", type=int, required=True)
    w.add_argument("--out", required=True)
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    if args.cmd == "run":
        return cmd_run(args, argv)
    if args.cmd == "summary":
        return cmd_summary(args)
    if args.cmd == "goals":
        return cmd_goals(args)
    if args.cmd == "snapshots":
        return cmd_snapshots(args)
    run_sb3(args.task, args.seed, args.steps, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
