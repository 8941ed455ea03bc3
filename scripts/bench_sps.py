"""MT10 throughput (SPEC §7): env stepping against the raw simulator, and end-to-end steps/s per aggregator.

    python scripts/bench_sps.py                                   # both parts, paper-size networks
    python scripts/bench_sps.py --part env --windows 15
    python scripts/bench_sps.py --part train --methods ls,imgrad,cagrad --iterations 150 --threads 2

**env**: the same 10 MT10 sub-envs (v3 standard protocol, 500-step episodes), stepped with the same random
actions three ways, in interleaved windows of ``--window`` vector steps (median over ``--windows``):

- ``physics``: ``mujoco.mj_step`` x ``frame_skip`` on each sub-env's model/data (the simulator alone);
- ``raw``: each sub-env's own ``step`` on the unwrapped Meta-World object (physics + observation + reward),
  a Python loop, ``reset`` when the 500-step episode ends: the "raw simulator rate" of SPEC §7;
- ``mtrl``: the vector env of ``mtrl.envs.make_envs`` (gymnasium wrappers, one-hot task id, SAME_STEP
  autoreset) plus what ``python -m mtrl.train`` does with each step (``true_next_obs``, ``step_success``).

It prints env steps/s (all 10 tasks counted) and ``ratio mtrl/raw`` (SPEC: at least 0.9).

**train**: ``python -m mtrl.train env=mt10`` in-process for each method, with ``--warmup`` random-action steps and
then ``--iterations`` iterations (10 env steps + one SAC update each), TensorBoard on; the steps/s is the
``time/sps`` the run itself logged over its post-warm-up window (no evaluation inside it), next to its median
``time/update_ms`` and ``time/aggregator_ms``. Methods run one after the other, so compare them as ratios to
``ls`` from the same invocation; the machine's load is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------- env part
def bench_env(args: argparse.Namespace) -> None:
    import mujoco
    from omegaconf import OmegaConf

    from mtrl.envs import make_envs, step_success, true_next_obs

    env_cfg = OmegaConf.load(ROOT / "configs" / "env" / "mt10.yaml")
    t0 = time.perf_counter()
    vec = make_envs(env_cfg, seed=0)
    vec.reset(seed=0)
    print(f"built MT10 vector env in {time.perf_counter() - t0:.1f} s", flush=True)
    # Separate raw sub-envs (same task classes and goals), so that stepping them does not disturb ``vec``.
    raw_vec = make_envs(env_cfg, seed=0)
    raw_vec.reset(seed=0)
    raw = [sub.unwrapped for sub in raw_vec.envs]
    horizon = int(env_cfg.max_episode_steps)
    K = len(raw)
    act_dim = int(vec.single_action_space.shape[0])
    rng = np.random.default_rng(0)
    raw_len = [0] * K

    def run_mtrl(actions: np.ndarray) -> None:
        for a in actions:
            nxt, _, _, _, infos = vec.step(a)
            true_next_obs(nxt, infos)
            step_success(infos, K)

    def run_raw(actions: np.ndarray) -> None:
        for a in actions:
            for i, env in enumerate(raw):
                if raw_len[i] >= horizon:
                    env.reset()
                    raw_len[i] = 0
                env.step(a[i])
                raw_len[i] += 1

    def run_physics(actions: np.ndarray) -> None:
        for a in actions:
            for env, act in zip(raw, a):
                env.data.ctrl[:] = [act[-1], -act[-1]]
                mujoco.mj_step(env.model, env.data, nstep=env.frame_skip)

    kinds = {"physics": run_physics, "raw": run_raw, "mtrl": run_mtrl}
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.warmup_windows):
        actions = rng.uniform(-1, 1, size=(args.window, K, act_dim)).astype(np.float32)
        for fn in kinds.values():
            fn(actions)
    for w in range(args.windows):
        actions = rng.uniform(-1, 1, size=(args.window, K, act_dim)).astype(np.float32)
        order = list(kinds) if w % 2 == 0 else list(reversed(kinds))
        for k in order:
            t = time.perf_counter()
            kinds[k](actions)
            rates[k].append(args.window * K / (time.perf_counter() - t))
    vec.close()
    raw_vec.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nMT10 env stepping, 1 process, {args.windows} windows x {args.window} vector steps (median, "
          f"env steps/s over all {K} tasks):")  # fmt: skip
    print(f"{'':10s}{'steps/s':>10s}{'min':>10s}{'max':>10s}")
    for k in kinds:
        print(f"{k:10s}{med[k]:10.0f}{min(rates[k]):10.0f}{max(rates[k]):10.0f}")
    ratios = [m / r for m, r in zip(rates["mtrl"], rates["raw"])]
    print(f"ratio mtrl/raw: {med['mtrl'] / med['raw']:.3f} (per-window median {statistics.median(ratios):.3f})")
    print(f"ratio raw/physics: {med['raw'] / med['physics']:.3f}")


# -------------------------------------------------------------------------------------------------- train part
def _scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def bench_train(args: argparse.Namespace) -> None:
    from hydra import compose, initialize_config_dir

    from mtrl.train import train

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    size = [] if args.size == "paper" else [f"experiment={args.size}"]
    total = args.warmup + args.iterations
    rows = []
    for method in methods:
        overrides = [
            "env=mt10", f"agent.aggregator={method}", *size, "logger=tensorboard", "train.progress=false",
            f"train.warmup_steps_per_task={args.warmup}", f"train.steps_per_task={total}",
            f"train.log_every={args.warmup}", f"train.eval_every={total}", f"train.checkpoint_every={total}",
            "env.eval_episodes=1", f"device={args.device}",
        ]  # fmt: skip
        if args.threads:
            overrides.append(f"train.torch_threads={args.threads}")
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            train(cfg, tmp)
            wall = time.perf_counter() - t
            tb = _scalars(Path(tmp) / "tb")
        sps = [v for s, v in tb["time/sps"] if s > args.warmup]
        upd = [v for s, v in tb.get("time/update_ms", []) if s > args.warmup]
        agg = [v for s, v in tb.get("time/aggregator_ms", []) if s > args.warmup]
        rows.append((method, sps[-1], statistics.median(upd) if upd else float("nan"),
                     statistics.median(agg) if agg else float("nan"), wall))  # fmt: skip
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{method}: {sps[-1]:.1f} env steps/s (load {load:.2f}, run {wall:.0f} s incl. MT10 builds)", flush=True)
    base = next((r[1] for r in rows if r[0] == "ls"), rows[0][1])
    print(f"\nEnd-to-end MT10 ({args.size} networks, {args.iterations} iterations after {args.warmup} warm-up "
          f"steps/task; env steps/s over all 10 tasks):")  # fmt: skip
    print(f"{'method':16s}{'steps/s':>10s}{'ratio to ls':>13s}{'update ms':>11s}{'aggregator ms':>15s}")
    for m, s, u, a, _ in rows:
        print(f"{m:16s}{s:10.1f}{s / base:13.2f}{u:11.1f}{a:15.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["env", "train", "both"], default="both")
    p.add_argument("--window", type=int, default=100, help="env part: vector steps per timed window")
    p.add_argument("--windows", type=int, default=10, help="env part: timed windows per kind")
    p.add_argument("--warmup-windows", type=int, default=1)
    p.add_argument("--methods", default="ls,pcgrad,cagrad,nashmtl,imgrad,famo", help="train part: comma-separated")
    p.add_argument("--size", choices=["paper", "quick"], default="paper", help="train part: network/batch preset")
    p.add_argument("--warmup", type=int, default=150, help="train part: random-action steps per task (>= batch/task)")
    p.add_argument("--iterations", type=int, default=100, help="train part: timed iterations after warm-up")
    p.add_argument("--threads", type=int, default=None, help="train part: torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if min(args.window, args.windows, args.iterations, args.warmup) < 1 or args.warmup_windows < 0:
        p.error("--window, --windows, --iterations and --warmup must be >= 1, --warmup-windows >= 0")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    if args.part in ("env", "both"):
        bench_env(args)
    if args.part in ("train", "both"):
        bench_train(args)


if __name__ == "__main__":
    main()
