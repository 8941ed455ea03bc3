"""Evaluate trained multi-task SAC checkpoints: per-task success over N episodes, as JSONL.

    python scripts/evaluate.py <run_dir | sweep_dir | ckpt_*.pt> [--episodes 50] [--goals train|unseen]
                               [--out evaluation.jsonl]

Every run under the target (a directory with ``checkpoints/ckpt_*.pt``; or one checkpoint file) is evaluated with
its newest checkpoint under **its own protocol**, read from the configuration stored in the checkpoint:
``mt10`` (v3 standard: goals resampled on reset, success at any step of an episode, ``--episodes`` per task
(default: the protocol's own, 50) and ``mt10_legacy`` (fixed goal per task, 150-step episodes, deterministic
policy; default 1 episode per task as the published tables, ``--episodes 10`` for a less noisy number). As during
training, evaluation runs on the run's own training goals (rebuilt from its seed) and only the choice among them
and the episode starts come from the evaluation seed ``seed + 10000`` (``--eval-seed`` to change it); the policy
is the deterministic mean action. ``--goals unseen`` (a diagnostic, ``env.eval_goals=unseen``): the evaluation
seed's own goals instead, which the run never trained on (Meta-World only): how far a policy generalises.

Each line of the output is one run, with the fields of ``eval.jsonl`` (``step``, ``total_env_steps``,
``protocol``, ``seed``, ``method``, ``success_rate``, ``episode_return``, ``tasks``) plus ``checkpoint``,
``episodes``, ``goals`` and ``run_dir``, so ``scripts/report.py`` can read it. A run that cannot be evaluated (corrupt
checkpoint, missing files) is reported on stderr and as a line with ``"error"``; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from mtrl.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from mtrl.envs import evaluate, task_names
from mtrl.train import build_agent, make_eval_envs


def find_checkpoints(target: Path) -> list[Path]:
    """The newest checkpoint of every run under ``target`` (or ``target`` itself if it is a file)."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such file or directory")
    found = []
    for ckpt_dir in sorted({p.parent for p in target.rglob("ckpt_*.pt")}):
        newest = latest_checkpoint(ckpt_dir)
        if newest is not None:
            found.append(newest)
    return found


def evaluate_checkpoint(path: Path, episodes: int | None, eval_seed: int | None, device: str,
                        goals: str = "train") -> dict[str, Any]:  # fmt: skip
    """One JSONL record: per-task success and return of the checkpoint's deterministic policy (``goals``: the
    training goals, or ``unseen`` ones)."""
    state = load_checkpoint(path)
    cfg = OmegaConf.create(state["config"])
    cfg.env.eval_goals = goals  # unseen on the fake env: make_envs's one-line ValueError
    n_episodes = int(episodes if episodes is not None else cfg.env.eval_episodes)
    names = task_names(cfg.env)
    # the run's own training goals (rebuilt from its seed), episode starts from the evaluation seed
    envs, seed = make_eval_envs(cfg.env, int(cfg.seed), eval_seed=eval_seed)
    try:
        obs_dim = int(np.prod(envs.single_observation_space.shape))
        act_dim = int(np.prod(envs.single_action_space.shape))
        agent = build_agent(cfg, obs_dim, act_dim, len(names), torch.device(device))
        agent.load_state_dict(state["agent"])
        res = evaluate(lambda o: agent.act(o, deterministic=True), envs, names, n_episodes, seed)
    finally:
        envs.close()
    step = int(state["loop"]["step"])
    return {
        "step": step,
        "total_env_steps": step * len(names),
        "protocol": str(cfg.env.name),
        "seed": int(cfg.seed),
        "method": str(cfg.agent.aggregator),
        "success_rate": float(np.mean(list(res.success.values()))),
        "episode_return": float(np.mean(list(res.returns.values()))),
        "tasks": {n: {"success_rate": res.success[n], "episode_return": res.returns[n]} for n in names},
        "episodes": n_episodes,
        "goals": goals,
        "checkpoint": str(path),
        "run_dir": str(path.parent.parent),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target", type=Path, help="a run directory, a sweep directory or one ckpt_*.pt file")
    ap.add_argument("--episodes", type=int, default=None, help="episodes per task (default: the protocol's)")
    ap.add_argument("--eval-seed", type=int, default=None, help="seed of the evaluation envs (default: seed+10000)")
    ap.add_argument("--goals", choices=("train", "unseen"), default="train",
                    help="the training goals (the protocol, default) or unseen ones (a diagnostic)")
    ap.add_argument("--out", type=Path, default=None, help="JSONL output (default: <target dir>/evaluation.jsonl)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.episodes is not None and args.episodes < 1:
        ap.error("--episodes must be >= 1")
    try:
        ckpts = find_checkpoints(args.target)
    except FileNotFoundError as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2
    if not ckpts:
        print(f"evaluate: error: no checkpoints (checkpoints/ckpt_*.pt) under {args.target}", file=sys.stderr)
        return 2
    out = args.out or (args.target.parent if args.target.is_file() else args.target) / "evaluation.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    with out.open("w") as f:
        for i, ckpt in enumerate(ckpts, 1):
            t0 = time.perf_counter()
            try:
                rec = evaluate_checkpoint(ckpt, args.episodes, args.eval_seed, args.device, args.goals)
                msg = (f"success {rec['success_rate']:.3f} ({rec['protocol']}, {rec['episodes']} episodes/task, "
                       f"{args.goals} goals)")  # fmt: skip
            except (CheckpointError, KeyError, OSError, ValueError) as err:
                failed += 1
                rec = {"checkpoint": str(ckpt), "run_dir": str(ckpt.parent.parent), "error": str(err)}
                msg = f"FAILED: {err}"
            f.write(json.dumps(rec) + "\n")
            f.flush()
            print(f"[{i}/{len(ckpts)}] {ckpt}: {msg} [{time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    print(f"wrote {out} ({len(ckpts) - failed} evaluated, {failed} failed)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
