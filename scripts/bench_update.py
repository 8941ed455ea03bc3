"""Time one multi-task SAC update on MT10-sized networks for every Gram-based aggregator, relative to ``ls``.

    python scripts/bench_update.py                       # paper size: K=10, batch 1280 (128/task), 3 x 400
    python scripts/bench_update.py --repeats 30 --device cuda
    python scripts/bench_update.py --arch sm,care --methods ls,imgrad     # per architecture (agent.arch)
    python scripts/bench_update.py --tasks 10,50 --methods ls,imgrad      # MT10 -> MT50: cost growth per update

What is timed is :meth:`mtrl.agents.MultiTaskSAC.update` on a fixed random batch (critic + actor + α + targets,
both losses through the aggregator, as ``python -m mtrl.train`` does), after warm-up. Methods are measured
round-robin (one update of each method per round, ``--repeats`` rounds) so that a change in machine load hits
them all alike; the table gives the median update time, its ratio to ``ls`` (both with the agent's default
per-task gradients, ``per_task_grads=batched``, and ``agent.diagnostics_every``, ``--diagnostics-every``), the
median time inside the aggregator's full call (on the diagnostic updates), and ``ls`` with ``per_task_grads=loop``
(the reference code's K backward passes) relative to ``ls``. Each table ends with ``ratio imgrad/ls: <x>``. The
fixed cost per update against a plain PyTorch SAC update is ``scripts/bench_overhead.py``'s.

``--arch`` and ``--tasks`` take comma-separated lists: one table per (architecture, K). With several K, the last
lines give, per architecture and method, the growth of the update time from the smallest to the largest K
(``growth <arch> <method> K=10->50: <x>``; one update per iteration, so this is the per-iteration cost growth:
linear in K is 5x for 10 -> 50).

Observations are 39 Meta-World features + a K-way one-hot (49 for MT10, 89 for MT50), actions 4; random data
(the one-hot part a real one-hot), since the cost of an update does not depend on the values.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from mtrl.agents import ARCHITECTURES, MultiTaskSAC, SACConfig
from mtrl.aggregators import AGGREGATORS, make_aggregator
from mtrl.aggregators._base import GramWeighting


def gram_based() -> list[str]:
    """Registered methods that weight rows of ``G`` from its Gram matrix (K-space solves)."""
    return [n for n in AGGREGATORS if isinstance(make_aggregator(n), GramWeighting)]


def make_agent(method: str, per_task_grads: str, args: argparse.Namespace, seed: int = 0) -> MultiTaskSAC:
    torch.manual_seed(seed)
    kw = {} if args.diagnostics_every is None else {"diagnostics_every": args.diagnostics_every}
    cfg = SACConfig(hidden_dim=args.hidden, num_layers=args.layers, per_task_grads=per_task_grads, arch=args.arch,
                    **kw)  # fmt: skip
    aggs = {}
    for i, loss in enumerate(cfg.aggregate_on):
        aggs[loss] = make_aggregator(method)
        aggs[loss].seed(seed + i)
    return MultiTaskSAC(args.obs_dim, args.act_dim, args.tasks, cfg, aggs, device=args.device)


def make_batch(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    K, B = args.tasks, args.batch_per_task

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(args.device)

    def obs() -> torch.Tensor:
        x = r(K, B, args.obs_dim)
        x[..., args.obs_dim - K :] = torch.eye(K, device=args.device)[:, None, :]  # the one-hot task id
        return x

    return {
        "obs": obs(),
        "action": r(K, B, args.act_dim).clamp(-0.99, 0.99),
        "reward": r(K, B),
        "next_obs": obs(),
        "terminated": torch.zeros(K, B, device=args.device),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="10", help="K, or a comma-separated list (e.g. 10,50)")
    p.add_argument("--arch", default="multihead",
                   help=f"agent.arch, or a comma-separated list ({', '.join(ARCHITECTURES)})")  # fmt: skip
    p.add_argument("--skip-loop", action="store_true", help="leave out ls with per_task_grads=loop (K backward passes)")
    p.add_argument("--batch-per-task", type=int, default=128)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--obs-dim", type=int, default=None, help="default: 39 + K (Meta-World + one-hot)")
    p.add_argument("--act-dim", type=int, default=4)
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (each round: one update per method)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--methods", default=None, help="comma-separated subset (default: every Gram-based method)")
    p.add_argument("--diagnostics-every", type=int, default=None, help="agent.diagnostics_every (default: agent's)")
    args = p.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = gram_based() if args.methods is None else [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m not in AGGREGATORS]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(AGGREGATORS)}")
    if "ls" not in methods:
        methods.insert(0, "ls")
    if "imgrad" not in methods:
        methods.append("imgrad")

    try:
        tasks = [int(k) for k in str(args.tasks).split(",")]
    except ValueError:
        p.error(f"--tasks must be integers, got {args.tasks!r}")
    archs = [a.strip() for a in str(args.arch).split(",")]
    bad = [a for a in archs if a not in ARCHITECTURES]
    if bad or min(tasks) < 1:
        p.error(f"--arch must be among {', '.join(ARCHITECTURES)} and --tasks >= 1")
    obs_dim = args.obs_dim
    medians: dict[tuple[str, int, str], float] = {}
    for arch in archs:
        for K in tasks:
            args.arch, args.tasks, args.obs_dim = arch, K, obs_dim if obs_dim is not None else 39 + K
            medians.update({(arch, K, m): t for m, t in run_one(args, methods).items()})
    if len(tasks) > 1:
        lo, hi = min(tasks), max(tasks)
        for arch in archs:
            for m in methods:
                print(f"growth {arch} {m} K={lo}->{hi}: {medians[(arch, hi, m)] / medians[(arch, lo, m)]:.2f}")


def run_one(args: argparse.Namespace, methods: list[str]) -> dict[str, float]:
    """One table (architecture ``args.arch``, ``args.tasks`` tasks); returns the median update ms per method."""
    variants = [(m, "batched") for m in methods] + ([] if args.skip_loop else [("ls", "loop")])
    agents = {v: make_agent(v[0], v[1], args) for v in variants}
    batch = make_batch(args)
    sync = torch.cuda.synchronize if str(args.device).startswith("cuda") else (lambda: None)
    times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    agg_ms: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    for rnd in range(args.warmup + args.repeats):
        for v in variants:
            gen = torch.Generator().manual_seed(rnd)
            sync()
            t0 = time.perf_counter()
            info = agents[v].update(batch, gen)
            sync()
            if rnd >= args.warmup:
                times[v].append(1e3 * (time.perf_counter() - t0))
                if "aggregator_ms" in info.metrics:  # diagnostic updates only (agent.diagnostics_every)
                    agg_ms[v].append(info.metrics["aggregator_ms"])

    print(f"# multi-task SAC update, agent.arch={args.arch}, K={args.tasks}, batch {args.tasks * args.batch_per_task} "
          f"({args.batch_per_task}/task), {args.layers} x {args.hidden}, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
          f"median of {args.repeats} rounds")  # fmt: skip
    base = statistics.median(times[("ls", "batched")])
    print(f"{'method':<14} {'grads':<7} {'update ms':>10} {'ratio to ls':>12} {'aggregator ms':>14}")
    for v in variants:
        med = statistics.median(times[v])
        agg = statistics.median(agg_ms[v]) if agg_ms[v] else float("nan")
        print(f"{v[0]:<14} {v[1]:<7} {med:>10.1f} {med / base:>12.2f} {agg:>14.2f}")
    if not args.skip_loop:
        print(f"ratio ls-loop/ls: {statistics.median(times[('ls', 'loop')]) / base:.2f}")
    print(f"ratio imgrad/ls: {statistics.median(times[('imgrad', 'batched')]) / base:.2f}")
    return {m: statistics.median(times[(m, "batched")]) for m in methods}


if __name__ == "__main__":
    main()
