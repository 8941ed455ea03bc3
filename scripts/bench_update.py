"""Time one multi-task SAC update on MT10-sized networks for every Gram-based aggregator, relative to ``ls``.

    python scripts/bench_update.py                       # paper size: K=10, batch 1280 (128/task), 3 x 400
    python scripts/bench_update.py --repeats 30 --device cuda

What is timed is :meth:`mtrl.agents.MultiTaskSAC.update` on a fixed random batch (critic + actor + α + targets,
both losses through the aggregator, as ``python -m mtrl.train`` does), after warm-up. Methods are measured
round-robin (one update of each method per round, ``--repeats`` rounds) so that a change in machine load hits
them all alike; the table gives the median update time, its ratio to ``ls`` (both with the one-pass ``vmap``
per-task gradients), the median time inside the aggregator, and ``ls`` with ``per_task_grads=loop`` (the
reference code's K backward passes) relative to ``ls``. The last line is ``ratio imgrad/ls: <x>``.

Observations are 39 Meta-World features + a 10-way one-hot (49), actions 4; random data, since the cost of an
update does not depend on the values.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from mtrl.agents import MultiTaskSAC, SACConfig
from mtrl.aggregators import AGGREGATORS, make_aggregator
from mtrl.aggregators._base import GramWeighting


def gram_based() -> list[str]:
    """Registered methods that weight rows of ``G`` from its Gram matrix (K-space solves)."""
    return [n for n in AGGREGATORS if isinstance(make_aggregator(n), GramWeighting)]


def make_agent(method: str, per_task_grads: str, args: argparse.Namespace, seed: int = 0) -> MultiTaskSAC:
    torch.manual_seed(seed)
    cfg = SACConfig(hidden_dim=args.hidden, num_layers=args.layers, per_task_grads=per_task_grads)
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

    return {
        "obs": r(K, B, args.obs_dim),
        "action": r(K, B, args.act_dim).clamp(-0.99, 0.99),
        "reward": r(K, B),
        "next_obs": r(K, B, args.obs_dim),
        "terminated": torch.zeros(K, B, device=args.device),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=10)
    p.add_argument("--batch-per-task", type=int, default=128)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--obs-dim", type=int, default=49)
    p.add_argument("--act-dim", type=int, default=4)
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (each round: one update per method)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--methods", default=None, help="comma-separated subset (default: every Gram-based method)")
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

    variants = [(m, "vmap") for m in methods] + [("ls", "loop")]
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
                agg_ms[v].append(info.metrics.get("aggregator_ms", 0.0))

    print(f"# multi-task SAC update, K={args.tasks}, batch {args.tasks * args.batch_per_task} "
          f"({args.batch_per_task}/task), {args.layers} x {args.hidden}, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
          f"median of {args.repeats} rounds")  # fmt: skip
    base = statistics.median(times[("ls", "vmap")])
    print(f"{'method':<14} {'grads':<5} {'update ms':>10} {'ratio to ls':>12} {'aggregator ms':>14}")
    for v in variants:
        med = statistics.median(times[v])
        print(f"{v[0]:<14} {v[1]:<5} {med:>10.1f} {med / base:>12.2f} {statistics.median(agg_ms[v]):>14.2f}")
    loop = statistics.median(times[("ls", "loop")])
    print(f"ratio ls-loop/ls: {loop / base:.2f}")
    print(f"ratio imgrad/ls: {statistics.median(times[('imgrad', 'vmap')]) / base:.2f}")


if __name__ == "__main__":
    main()
